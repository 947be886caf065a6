"""Progress bars (tqdm) of the data-generation scripts and play.py: on stderr when it is a
terminal, off otherwise and with --no_progress; stdout unchanged."""
import io
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiment", "data_generation"))
sys.path.insert(0, os.path.join(ROOT, "experiment"))
import generate_demos  # noqa: E402
import play  # noqa: E402
from test_play_video import write_policy  # noqa: E402

pytest.importorskip("tqdm")


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("stream, flags, shown", [
    (Terminal, [], True), (Terminal, ["--no_progress"], False), (io.StringIO, [], False)])
def test_generate_demos_bar(tmp_path, monkeypatch, capsys, stream, flags, shown):
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    out = tmp_path / "d.npz"
    argv = ["--env", "PandaReach-v3", "--episodes", "2", "--out", str(out)] + flags
    assert generate_demos.main(argv) == 0
    assert capsys.readouterr().out.strip() == f"expert success rate: 1.00 (2/2 episodes) -> {out}"
    text = err.getvalue()
    if shown:
        assert "PandaReach-v3" in text and "2/2" in text and "success 2/2" in text, text
    else:
        assert text == ""


@pytest.mark.parametrize("stream, progress, shown", [
    (Terminal, True, True), (Terminal, False, False), (io.StringIO, True, False)])
def test_play_bar(tmp_path, monkeypatch, capsys, stream, progress, shown):
    err = stream()
    monkeypatch.setattr(sys, "stderr", err)
    play.evaluate(write_policy(tmp_path / "p.pkl"), n_episodes=2, progress=progress)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("episode 1/2: ") and out[1].startswith("episode 2/2: ")
    assert ("episodes" in err.getvalue() and "2/2" in err.getvalue()) == shown, err.getvalue()
    if not shown:
        assert err.getvalue() == ""
