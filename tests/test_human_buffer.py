"""convert --from-human-buffer: the panda-gym DDPG+HER+human system's buffer layouts (episode
dicts and flat step dicts), action rescale, stale step 0, recomputed success, dims refusal."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

from baselines_her import demo_cli
from baselines_her.demo import load_episodes_for_env

ENV, T, DO, DU, DG, ROBOT = "PandaPickAndPlace-v3", 50, 19, 4, 3, 7


def human_episodes(n=3, do=DO, du=DU, seed=0, failing=()):
    """Episode dicts as that system pickled them (keys in its order, float64, ``info`` empty);
    the object reaches the goal at the last step except in episodes ``failing``."""
    rng = np.random.default_rng(seed)
    eps = []
    for e in range(n):
        state = [rng.normal(size=do) for _ in range(T + 1)]
        goal = rng.uniform(-0.15, 0.15, DG)
        ag = [goal + rng.uniform(0.2, 0.3, DG) for _ in range(T + 1)]
        ag[-1] = goal + (0.2 if e in failing else 0.01)
        action = [rng.uniform(-0.9, 0.9, du) for _ in range(T)]
        eps.append({"state": state, "action": action, "info": [], "achieved_goal": ag,
                    "desired_goal": [goal.copy() for _ in range(T + 1)],
                    "next_state": state[1:], "next_achieved_goal": ag[1:]})
    return eps


def flat_steps(eps):
    """The older layout: one dict per step, no ``info``, no episode boundaries."""
    return [{"state": ep["state"][t], "action": ep["action"][t],
             "achieved_goal": ep["achieved_goal"][t], "desired_goal": ep["desired_goal"][t],
             "next_state": ep["state"][t + 1], "next_achieved_goal": ep["achieved_goal"][t + 1]}
            for ep in eps for t in range(T)]


def write(path, data):
    path.write_bytes(pickle.dumps(data, protocol=4))
    return str(path)


def convert(tmp_path, src, *flags, env=ENV):
    dst = tmp_path / "human.npz"
    rc = demo_cli.main(["convert", "--from-human-buffer", src, str(dst), "--env", env, *flags])
    return rc, dst


def test_episode_dicts_round_trip_rescale_and_success(tmp_path, capsys):
    eps = human_episodes(failing=(2,))
    eps[0]["action"][5][3] = 2.0  # stored gripper command: 0.6 in env units
    eps[0]["action"][6][3] = 5.0  # 1.5 in env units: the env clipped it to 1
    eps[1]["action"][7][0] = -1.4  # |x| > 1: an unclipped P-controller
    rc, dst = convert(tmp_path, write(tmp_path / "buf.pkl", eps))
    assert rc == 0
    out = capsys.readouterr().out
    assert "unpickling" in out and "executes code" in out and "3 episode dicts" in out
    assert "actions scaled by 1,1,1,0.3; 2 value(s) outside [-1, 1] clipped" in out
    assert "(x 1, y 0, z 0, gripper 1; max |u| 1.5)" in out
    assert "2/3 episodes end in success; 1 do not" in out
    b = load_episodes_for_env(dst, ENV, source="human file")
    for e, ep in enumerate(eps):
        assert np.allclose(b["o"][e], np.array(ep["state"]), atol=1e-6)
        assert np.allclose(b["ag"][e], np.array(ep["achieved_goal"]), atol=1e-6)
        assert np.allclose(b["g"][e], np.array(ep["desired_goal"][:T]), atol=1e-6)
        want = np.clip(np.array(ep["action"]) * [1, 1, 1, 0.3], -1, 1)
        assert np.allclose(b["u"][e], want, atol=1e-6)
    assert b["u"][0, 5, 3] == pytest.approx(0.6) and b["u"][0, 6, 3] == 1.0
    assert b["u"][1, 7, 0] == -1.0
    assert b["info_is_success"][:, -1, 0].tolist() == [1.0, 1.0, 0.0]
    assert not b["info_is_success"][:, :-1].any()  # ag is 20-30 cm from the goal before


def test_action_scale_flag(tmp_path, capsys):
    eps = human_episodes(n=1)
    eps[0]["action"][0][3] = 0.5
    src = write(tmp_path / "buf.pkl", eps)
    rc, dst = convert(tmp_path, src, "--action_scale", "1,1,1,1")
    assert rc == 0 and "actions scaled by 1,1,1,1; none outside" in capsys.readouterr().out
    assert load_episodes_for_env(dst, ENV)["u"][0, 0, 3] == pytest.approx(0.5)
    rc, _ = convert(tmp_path, src, "--action_scale", "1,1,0.3")
    assert rc == 2
    assert capsys.readouterr().err == ("error: --action_scale has 3 values, the actions have 4 "
                                       "components; give 4 numbers or one\n")
    rc, _ = convert(tmp_path, src, "--action_scale", "a,b")
    assert rc == 2 and "--action_scale must be numbers" in capsys.readouterr().err


def make_stale(eps, e, rng):
    """Index 0 of state, achieved_goal and desired_goal from another reset: the robot part of
    the state is the same home pose, the object and goal differ."""
    ep = eps[e]
    ep["state"][0] = np.concatenate([ep["state"][0][:ROBOT], rng.normal(size=DO - ROBOT)])
    ep["achieved_goal"][0] = rng.normal(size=DG)
    ep["desired_goal"][0] = rng.normal(size=DG)


@pytest.mark.parametrize("mode", ["repair", "drop"])
def test_stale_step0(tmp_path, capsys, mode):
    eps = human_episodes(n=4)
    clean = pickle.loads(pickle.dumps(eps))
    rng = np.random.default_rng(9)
    for e in (1, 3):
        make_stale(eps, e, rng)
    flags = [] if mode == "repair" else ["--stale_step0", "drop"]
    rc, dst = convert(tmp_path, write(tmp_path / "buf.pkl", eps), *flags)
    assert rc == 0
    out = capsys.readouterr().out
    assert ("2/4 episode(s) have a stale step 0 (desired_goal[0] != desired_goal[1]: index 0 "
            "comes from a discarded reset; episodes 1, 3)") in out
    b = load_episodes_for_env(dst, ENV)
    if mode == "drop":
        assert "dropped (--stale_step0 drop)" in out and b["o"].shape[0] == 2
        assert np.allclose(b["o"][1], np.array(eps[2]["state"]), atol=1e-6)
        return
    assert "repaired from step 1" in out and b["o"].shape[0] == 4
    for e in (1, 3):
        st = np.array(eps[e]["state"])
        assert np.allclose(b["o"][e, 0, :ROBOT], st[0, :ROBOT], atol=1e-6)  # robot part kept
        assert np.allclose(b["o"][e, 0, ROBOT:], st[1, ROBOT:], atol=1e-6)  # task part: step 1
        assert np.allclose(b["ag"][e, 0], eps[e]["achieved_goal"][1], atol=1e-6)
        assert np.allclose(b["g"][e], np.array(clean[e]["desired_goal"][:T]), atol=1e-6)
        assert np.allclose(b["o"][e, 1:], st[1:], atol=1e-6)  # the rest untouched
    assert np.allclose(b["o"][0], np.array(eps[0]["state"]), atol=1e-6)


def test_flat_layout_split_matches_episode_layout(tmp_path, capsys):
    eps = human_episodes(n=3, seed=4)
    rc, ref = convert(tmp_path, write(tmp_path / "eps.pkl", eps))
    assert rc == 0
    ref = load_episodes_for_env(ref, ENV)
    rc, dst = convert(tmp_path, write(tmp_path / "flat.pkl", flat_steps(eps)))
    assert rc == 0
    assert "flat layout, 150 steps split into 3 episodes of T=50" in capsys.readouterr().out
    got = load_episodes_for_env(dst, ENV)
    for k in ref:
        assert np.array_equal(got[k], ref[k]), k


def test_flat_layout_continuity_and_length_errors(tmp_path, capsys):
    steps = flat_steps(human_episodes(n=2))
    steps[57]["next_state"] = steps[57]["next_state"] + 0.1
    rc, dst = convert(tmp_path, write(tmp_path / "flat.pkl", steps))
    assert rc == 2 and not dst.exists()
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert ("flat layout split into episodes of T=50: step 57 (episode 1, t=7) has a "
            "'next_state' that is not the 'state' of step 58") in err
    rc, _ = convert(tmp_path, write(tmp_path / "flat.pkl", flat_steps(human_episodes(n=2))[:-3]))
    assert rc == 2
    assert "flat layout with 97 steps, not a multiple of T=50" in capsys.readouterr().err


def test_push_buffer_refused_by_real_cli(tmp_path):
    """A Push buffer recorded with a free gripper (19 / 4) does not fit PandaPush-v3 (18 / 3)."""
    src = write(tmp_path / "push.pkl", human_episodes(n=2))
    dst = tmp_path / "push.npz"
    r = subprocess.run([sys.executable, "-m", "baselines_her.demo", "convert",
                        "--from-human-buffer", src, str(dst), "--env", "PandaPush-v3"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and not dst.exists()
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1
    assert (f"{src}: the buffer has observation 19 / action 4 / goal 3, PandaPush-v3 has "
            f"observation 18 / action 3 / goal 3: they do not fit") in lines[0]
    assert "unpickling" in r.stdout


def test_human_buffer_needs_env_and_points_from_pickle_episodes(tmp_path, capsys):
    src = write(tmp_path / "buf.pkl", human_episodes(n=1))
    assert demo_cli.main(["convert", "--from-human-buffer", src, str(tmp_path / "o.npz")]) == 2
    assert "--from-human-buffer needs --env" in capsys.readouterr().err
    assert demo_cli.main(["convert", "--from-pickle-episodes", src, str(tmp_path / "o.npz")]) == 2
    assert "this is the human-buffer layout; convert it with `--from-human-buffer" in \
        capsys.readouterr().err
