"""The policies shipped in ``policies/`` load and run through ``experiment/play.py`` from a clone,
name the env they are filed under, stay small, and the headline one still solves its task."""
import glob
import os
import sys

import pytest

from baselines_her.policy_file import load_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiment"))
import play  # noqa: E402

SHIPPED = sorted(glob.glob(os.path.join(ROOT, "policies", "*.pkl")))
# The five panda-gym tasks of docs/results.md and the four Fetch tasks.
EXPECTED = {f"Panda{t}-v3" for t in ("Reach", "Push", "PickAndPlace", "Slide", "Stack")} | {
    f"Fetch{t}-v4" for t in ("Reach", "Push", "PickAndPlace", "Slide")}


def test_every_task_has_a_policy():
    assert {os.path.basename(p)[:-len(".pkl")] for p in SHIPPED} == EXPECTED


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_policy_loads_and_plays_one_episode(path):
    env_id = os.path.basename(path)[:-len(".pkl")]
    assert os.path.getsize(path) < 1_000_000  # actor, critics and normalisers only
    state = load_policy(path)
    assert state["env_name"] == env_id
    if env_id.startswith("Fetch"):
        pytest.importorskip("gymnasium_robotics")
    result = play.evaluate(path, n_episodes=1, seed=0, verbose=False, progress=False)
    assert result["env"] == env_id and result["success_rate"] in (0.0, 1.0)


def test_shipped_push_policy_solves_push():
    # docs/results.md: 0.98 over 100 episodes at seed 0; the first 10 of them.
    result = play.evaluate(os.path.join(ROOT, "policies", "PandaPush-v3.pkl"), n_episodes=10,
                           seed=0, verbose=False, progress=False)
    assert result["env"] == "PandaPush-v3" and result["success_rate"] >= 0.9
