"""Demo files (baselines_her.demo): load_episodes error paths and messages, num handling,
save/load round trip, the two pickled-format converters, the CLI's exit codes, and the module
layout (the format module is a leaf; no import cycle among the demo modules)."""

import ast
import glob
import logging
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from baselines_her import demo_cli, demo_convert
from baselines_her.demo import load_episodes, save_episodes
from baselines_her.replay_buffer import EPISODE_KEYS

ENV = "PandaReach-v3"
T, DO, DG, DU = 50, 6, 3, 3


def make_batch(n=4, T=T, do=DO, dg=DG, du=DU, seed=0):
    rng = np.random.default_rng(seed)
    return {"o": rng.normal(size=(n, T + 1, do)).astype(np.float32),
            "ag": rng.normal(size=(n, T + 1, dg)).astype(np.float32),
            "g": rng.normal(size=(n, T, dg)).astype(np.float32),
            "u": rng.uniform(-1, 1, size=(n, T, du)).astype(np.float32),
            "info_is_success": (rng.random((n, T, 1)) < 0.5).astype(np.float32)}


def load(path, **kw):
    return load_episodes(path, T, DO, DG, DU, env_name=ENV, **kw)


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


# ---------------------------------------------------------------------------------------------
# save / load


def test_save_load_round_trip(tmp_path):
    batch = make_batch()
    path = save_episodes(tmp_path / "demos", batch)  # .npz appended
    assert path == str(tmp_path / "demos.npz")
    assert os.listdir(tmp_path) == ["demos.npz"]  # no temp file left behind
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(EPISODE_KEYS)
    out = load(path)
    assert set(out) == set(EPISODE_KEYS)
    for k in EPISODE_KEYS:
        assert out[k].dtype == np.float32 and np.array_equal(out[k], batch[k]), k


def test_load_casts_float64_and_accepts_2d_success(tmp_path):
    batch = {k: v.astype(np.float64) for k, v in make_batch(n=2).items()}
    batch["info_is_success"] = batch["info_is_success"][..., 0]  # (B, T)
    out = load(write_npz(tmp_path / "d.npz", **batch, extra_key=np.zeros(3)))
    assert out["info_is_success"].shape == (2, T, 1)
    assert all(v.dtype == np.float32 for v in out.values())


def test_save_validates_and_writes_nothing_on_error(tmp_path):
    batch = make_batch(n=2)
    batch["g"][1, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"key 'g' contains 1 NaN/inf value\(s\) \(first at "
                                         r"episode 1, step 3\)"):
        save_episodes(tmp_path / "bad.npz", batch)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="missing key"):
        save_episodes(tmp_path / "bad.npz", {"o": batch["o"]})
    with pytest.raises(ValueError, match="directory .* does not exist"):
        save_episodes(tmp_path / "nodir" / "x.npz", make_batch(n=1))


def test_save_replaces_existing_file_atomically(tmp_path):
    path = save_episodes(tmp_path / "d.npz", make_batch(n=2, seed=1))
    save_episodes(path, make_batch(n=3, seed=2))
    assert load(path)["o"].shape[0] == 3
    assert os.listdir(tmp_path) == ["d.npz"]


def test_num_takes_first_episodes_or_warns(tmp_path):
    batch = make_batch(n=5)
    path = save_episodes(tmp_path / "d.npz", batch)
    out = load(path, num=3)
    assert out["u"].shape[0] == 3 and np.array_equal(out["u"], batch["u"][:3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(path, num=5)["u"].shape[0] == 5  # exactly enough: no warning
    with pytest.warns(UserWarning, match=r"d\.npz: 8 episodes requested, the file holds 5; "
                                         r"using 5"):
        out = load(path, num=8)
    assert out["u"].shape[0] == 5
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            load(path, num=bad)


# ---------------------------------------------------------------------------------------------
# load_episodes error paths: every message names the file, the key and what was expected


def _with(**changes):
    batch = make_batch(n=3)
    for k, v in changes.items():
        if v is None:
            del batch[k]
        else:
            batch[k] = v(batch[k]) if callable(v) else v
    return batch


def _nan(a):
    a = a.copy()
    a[2, 7, 1] = np.inf
    return a


BAD_BATCHES = {
    "missing key": (_with(u=None), r"missing key\(s\) 'u'; a demo file needs 'o', 'ag', 'g', "
                                   r"'u', 'info_is_success'"),
    "wrong ndim": (_with(g=lambda a: a[:, :, 0]),
                   r"key 'g' has 2 dimension\(s\) \(shape \(3, 50\)\), expected 3: "
                   r"\(episodes, 50, 3\)"),
    "obs dim": (_with(o=lambda a: np.zeros((3, T + 1, 18), np.float32)),
                r"key 'o' has observation dim 18, env PandaReach-v3 expects 6"),
    "action dim": (_with(u=lambda a: np.zeros((3, T, 4), np.float32)),
                   r"key 'u' has action dim 4, env PandaReach-v3 expects 3"),
    "horizon": (_with(u=lambda a: a[:, :40]),
                r"key 'u' holds episodes of T=40 steps \(40 per episode\), env PandaReach-v3 "
                r"horizon is 50"),
    "horizon of o": (_with(o=lambda a: a[:, :41]),
                     r"key 'o' holds episodes of T=40 steps \(41 per episode \(T\+1\)\), env "
                     r"PandaReach-v3 horizon is 50"),
    "episode counts": (_with(ag=lambda a: a[:2]),
                       r"inconsistent episode counts: 'o' has 3, 'ag' has 2, 'g' has 3"),
    "nan": (_with(u=_nan), r"key 'u' contains 1 NaN/inf value\(s\) \(first at episode 2, step 7\)"),
    "zero episodes": (_with(**{k: (lambda a: a[:0]) for k in EPISODE_KEYS}), r"holds 0 episodes"),
    "strings": (_with(info_is_success=lambda a: np.full(a.shape, "yes")),
                r"key 'info_is_success' has dtype <U3, expected numbers"),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_load_rejects_bad_batches(tmp_path, case):
    batch, pattern = BAD_BATCHES[case]
    path = write_npz(tmp_path / "bad.npz", **batch)
    with pytest.raises(ValueError, match=pattern) as e:
        load(path)
    assert str(e.value).startswith(f"demo file {path}: ")


def test_load_source_and_env_wording(tmp_path):
    path = write_npz(tmp_path / "h.npz", **_with(o=lambda a: np.zeros((3, T + 1, 7), np.float32)))
    with pytest.raises(ValueError, match=rf"^human file {path}: key 'o' has observation dim 7, "
                                         r"the env expects 6"):
        load_episodes(path, T, DO, DG, DU, source="human file")


def test_load_rejects_non_npz_files(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.npz: no such file"):
        load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=rf"{tmp_path}: not a file"):
        load(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt: not an \.npz file \(it is neither a zip "
                                         r"archive nor a \.npy array; .*convert --from-baselines"):
        load(text)
    pkl = tmp_path / "buffer.pkl"
    pkl.write_bytes(pickle.dumps([{"state": [1.0]}]))
    with pytest.raises(ValueError, match=r"buffer\.pkl: not an \.npz file \(it looks like a "
                                         r"pickle; pickled data is never loaded here\).*"
                                         r"--from-pickle-episodes"):
        load(pkl)
    npy = tmp_path / "o.npy"
    np.save(npy, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"o\.npy: a single \.npy array of shape \(2, 3\), "
                                         r"expected an \.npz with keys 'o', 'ag'"):
        load(npy)
    good = save_episodes(tmp_path / "good.npz", make_batch(n=1))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(open(good, "rb").read()[:60])
    with pytest.raises(ValueError, match=r"cut\.npz: not a readable \.npz file"):
        load(cut)


def test_load_rejects_object_arrays_with_convert_hint(tmp_path):
    path = write_baselines_file(tmp_path / "old.npz", make_batch(n=2))
    with pytest.raises(ValueError, match=r"old\.npz: keys \['acs', 'info', 'obs'\]: this looks "
                                         r"like a pickled/baselines file; convert it with "
                                         r"`python -m baselines_her.demo convert "
                                         r"--from-baselines"):
        load(path)
    batch = make_batch(n=2)
    obj = np.empty(2, dtype=object)
    obj[:] = [batch["o"][0], batch["o"][1]]
    path = write_npz(tmp_path / "mixed.npz", **{**batch, "o": obj})
    with pytest.raises(ValueError, match=r"mixed\.npz: key 'o' is an object array: this looks "
                                         r"like a pickled/baselines file; convert it with"):
        load(path)


# ---------------------------------------------------------------------------------------------
# converters


def write_baselines_file(path, batch, lengths=None, action_scale=1.0):
    """The layout of baselines' fetch_data_generation.py: np.savez_compressed(file, acs=actions,
    obs=observations, info=infos) with per-episode lists (obs: T+1 dicts, acs: T actions, info:
    T dicts)."""
    actions, observations, infos = [], [], []
    n, T_ = batch["u"].shape[:2]
    for e in range(n):
        L = T_ if lengths is None else lengths[e]
        observations.append([{"observation": batch["o"][e, t].astype(np.float64),
                              "achieved_goal": batch["ag"][e, t].astype(np.float64),
                              "desired_goal": batch["g"][e, min(t, T_ - 1)].astype(np.float64)}
                             for t in range(L + 1)])
        actions.append([list(map(float, batch["u"][e, t] * action_scale)) for t in range(L)])
        infos.append([{"is_success": np.float64(batch["info_is_success"][e, t, 0])}
                      for t in range(L)])
    if lengths is not None and len(set(lengths)) > 1:  # ragged: what old numpy made implicitly
        obj = {}
        for name, lst in (("acs", actions), ("obs", observations), ("info", infos)):
            obj[name] = np.empty(n, dtype=object)
            obj[name][:] = lst
        np.savez_compressed(path, **obj)
    else:
        obs_arr = np.empty((n, len(observations[0])), dtype=object)
        info_arr = np.empty((n, len(infos[0])), dtype=object)
        for e in range(n):
            obs_arr[e, :] = observations[e]
            info_arr[e, :] = infos[e]
        np.savez_compressed(path, acs=np.array(actions), obs=obs_arr, info=info_arr)
    return str(path)


def test_convert_baselines_round_trip(tmp_path, capsys):
    batch = make_batch(n=3)
    src = write_baselines_file(tmp_path / "data_fetch_random_3.npz", batch)
    dst = tmp_path / "native.npz"
    assert demo_cli.main(["convert", "--from-baselines", src, str(dst)]) == 0
    out = capsys.readouterr().out
    assert f"unpickling {src}" in out and "executes code" in out
    assert "converted 3 episodes of T=50 steps (do=6, dg=3, du=3" in out
    got = load(dst)
    for k in EPISODE_KEYS:
        assert np.allclose(got[k], batch[k], atol=1e-6), k


def test_convert_baselines_lengths_and_clipping(tmp_path, capsys):
    batch = make_batch(n=3, T=52)  # baselines' script can overrun T by a step or two
    src = write_baselines_file(tmp_path / "old.npz", batch, lengths=[50, 52, 50], action_scale=3)
    with pytest.raises(ValueError, match=r"episodes must all have T steps, but they have 50 to 52 "
                                         r"actions .*pass --T 50"):
        demo_convert.read_baselines_demo(src)
    got = demo_convert.read_baselines_demo(src, T=50)
    assert "action value(s) outside [-1, 1] clipped" in capsys.readouterr().out
    assert np.array_equal(got["u"], np.clip(batch["u"][:, :50] * 3, -1, 1).astype(np.float32))
    assert np.allclose(got["o"], batch["o"][:, :51]) and got["o"].shape == (3, 51, DO)
    assert np.array_equal(got["info_is_success"], batch["info_is_success"][:, :50])


def test_convert_baselines_bad_structure(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, acs=np.zeros((2, 5, 3)), obs=np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"missing key\(s\) \['info'\]"):
        demo_convert.read_baselines_demo(str(path))
    batch = make_batch(n=1, T=5)
    src = write_baselines_file(tmp_path / "y.npz", batch)
    with np.load(src, allow_pickle=True) as f:
        info = f["info"]
        obs, acs = f["obs"], f["acs"]
    info[0, 2] = {"success": 1.0}
    np.savez(path, acs=acs, obs=obs, info=info)
    with pytest.raises(ValueError, match=r"'info' episode 0 step 2: expected a dict with key "
                                         r"is_success"):
        demo_convert.read_baselines_demo(str(path))


def make_pickle_episodes(batch, lengths=None):
    episodes = []
    n, T_ = batch["u"].shape[:2]
    for e in range(n):
        L = T_ if lengths is None else lengths[e]
        episodes.append([{"state": batch["o"][e, t], "action": batch["u"][e, t],
                          "info": {"is_success": bool(batch["info_is_success"][e, t, 0])},
                          "achieved_goal": batch["ag"][e, t], "desired_goal": batch["g"][e, t],
                          "next_state": batch["o"][e, t + 1],
                          "next_achieved_goal": batch["ag"][e, t + 1]} for t in range(L)])
    return episodes


def test_convert_pickle_episodes_round_trip(tmp_path, capsys):
    batch = make_batch(n=2)
    src = tmp_path / "buffer.pkl"
    src.write_bytes(pickle.dumps(make_pickle_episodes(batch)))
    dst = tmp_path / "human.npz"
    assert demo_cli.main(["convert", "--from-pickle-episodes", str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert f"unpickling {src}" in out and "executes code" in out and "note:" not in out
    got = load(dst)
    for k in EPISODE_KEYS:
        assert np.array_equal(got[k], batch[k]), k


def test_convert_pickle_episodes_errors(tmp_path):
    batch = make_batch(n=3)
    src = tmp_path / "buffer.pkl"
    src.write_bytes(pickle.dumps(make_pickle_episodes(batch, lengths=[50, 38, 50])))
    with pytest.raises(ValueError, match=r"episodes must all have T steps, but they have 38 to "
                                         r"50 steps \(episode\(s\) \[1\] have 38\)"):
        demo_convert.read_pickle_episodes(str(src))
    with pytest.raises(ValueError, match=r"episode\(s\) \[1\] have only 38 steps, fewer than "
                                         r"T=45"):
        demo_convert.read_pickle_episodes(str(src), T=45)
    got = demo_convert.read_pickle_episodes(str(src), T=38)
    assert got["u"].shape == (3, 38, 3)
    eps = make_pickle_episodes(batch)
    del eps[2][4]["next_state"]
    src.write_bytes(pickle.dumps(eps))
    with pytest.raises(ValueError, match=r"episode 2 step 4: expected a transition dict with keys "
                                         r"state, action, info"):
        demo_convert.read_pickle_episodes(str(src))
    src.write_bytes(pickle.dumps({"episodes": []}))
    with pytest.raises(ValueError, match="expected a pickled list of episodes"):
        demo_convert.read_pickle_episodes(str(src))


# ---------------------------------------------------------------------------------------------
# command line


def test_cli_check_and_error_exit_codes(tmp_path, capsys):
    good = save_episodes(tmp_path / "good.npz", make_batch(n=2))
    assert demo_cli.main(["check", good, "--env", ENV]) == 0
    assert "2 episodes of T=50 steps for PandaReach-v3" in capsys.readouterr().out
    bad = write_npz(tmp_path / "bad.npz", **_with(o=lambda a: np.zeros((3, T + 1, 18), np.float32)))
    assert demo_cli.main(["check", bad, "--env", ENV]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: demo file {bad}: key 'o' has observation dim 18, env "
                          f"PandaReach-v3 expects 6")
    # converted data checked against the env before anything is written
    src = write_baselines_file(tmp_path / "old.npz", make_batch(n=2, do=10))
    assert demo_cli.main(["convert", "--from-baselines", src, str(tmp_path / "o.npz"), "--env",
                      ENV]) == 2
    assert "observation dim 10, env PandaReach-v3 expects 6" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()
    assert demo_cli.main(["convert", "--from-baselines", str(tmp_path / "nope.npz"),
                      str(tmp_path / "o.npz")]) == 2
    assert "nope.npz: no such file" in capsys.readouterr().err
    for argv in (["convert", src, "x.npz"],  # no format flag
                 ["convert", "--from-baselines", "--from-pickle-episodes", src, "x.npz"],
                 ["check", good],  # --env missing
                 ["frobnicate"], []):
        assert demo_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("sub", ["check", "convert"])
def test_cli_help(sub, capsys):
    with pytest.raises(SystemExit) as e:
        demo_cli.main([sub, "--help"])
    assert e.value.code == 0
    assert f"usage: python -m baselines_her.demo {sub}" in capsys.readouterr().out


def test_cli_as_module(tmp_path):
    run = [sys.executable, "-m", "baselines_her.demo"]
    r = subprocess.run(run + ["--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "convert" in r.stdout and "import-" not in r.stdout
    r = subprocess.run(run + ["convert", "--from-pickle-episodes", str(tmp_path / "no.pkl"),
                              str(tmp_path / "o.npz")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no.pkl: no such file" in r.stderr



def test_messages_go_through_the_library_logger(tmp_path, capsys):
    """Converter and check messages are INFO records of the "baselines_her" logger: printed as
    they are by default, silenced by its level, seen by a user's handler."""
    src = write_baselines_file(tmp_path / "old.npz", make_batch(n=2))
    log = logging.getLogger("baselines_her")
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append((record.levelno, record.getMessage()))

    handler, level = Collect(), log.level
    log.addHandler(handler)
    try:
        log.setLevel(logging.WARNING)
        demo_convert.convert("baselines", src, str(tmp_path / "a.npz"))
        demo_cli.check_file(str(tmp_path / "a.npz"), ENV)
        assert capsys.readouterr().out == "" and records == []
        log.setLevel(logging.INFO)
        demo_convert.convert("baselines", src, str(tmp_path / "b.npz"))
        demo_cli.check_file(str(tmp_path / "b.npz"), ENV)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    messages = [m for lv, m in records if lv == logging.INFO]
    assert len(messages) == len(records) == 3
    assert messages[0].startswith(f"unpickling {src} (baselines demo file)")
    assert messages[1].startswith("converted 2 episodes of T=50 steps")
    assert messages[2].startswith(f"{tmp_path / 'b.npz'}: 2 episodes of T=50 steps for {ENV}")
    assert capsys.readouterr().out == "".join(m + "\n" for m in messages)

# ---------------------------------------------------------------------------------------------
# module layout

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "baselines_her")
DEMO_MODULES = {"demo", "demo_cli", "demo_convert", "demo_human_buffer"}


def package_imports(path):
    """baselines_her modules a file imports anywhere (functions included), except under
    ``if __name__ == "__main__"``."""
    found = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node):
            t = node.test
            if isinstance(t, ast.Compare) and getattr(t.left, "id", None) == "__name__":
                return
            self.generic_visit(node)

        def visit_Import(self, node):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("baselines_her."))

        def visit_ImportFrom(self, node):
            if node.module == "baselines_her":
                found.update(a.name for a in node.names)
            elif node.module and node.module.startswith("baselines_her."):
                found.add(node.module.split(".")[1])

    with open(path) as fh:
        Visitor().visit(ast.parse(fh.read()))
    return found


def test_no_import_cycle_through_demo_modules():
    graph = {os.path.basename(p)[:-3]: package_imports(p)
             for p in glob.glob(os.path.join(PKG, "*.py"))}
    assert DEMO_MODULES <= set(graph)
    # the file format is a leaf: no other demo module, no command line
    assert not graph["demo"] & (DEMO_MODULES - {"demo"}), graph["demo"]

    def reaches(start, goal, seen):
        for nxt in graph.get(start, ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, goal, seen):
                    return True
        return False

    cycles = [m for m in sorted(DEMO_MODULES) if reaches(m, m, set())]
    assert not cycles, f"import cycle through {cycles}"
