"""experiment/plot.py: grouping, mean/band computation, PNG output, errors."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiment"))
import plot  # noqa: E402


def write_run(folder, successes):
    folder.mkdir(parents=True)
    lines = ["epoch,test/success_rate,total/env_steps"]
    lines += [f"{i},{s},{(i + 1) * 100}" for i, s in enumerate(successes)]
    (folder / "progress.csv").write_text("\n".join(lines) + "\n")
    return str(folder)


def test_groups_mean_and_band(tmp_path):
    a = write_run(tmp_path / "ddpg-seed0", [0.0, 0.5, 1.0])
    b = write_run(tmp_path / "ddpg-seed1", [0.2, 0.7])
    c = write_run(tmp_path / "td3-seed0", [0.1, 0.1, 0.1])
    groups = plot.group_runs([a, b, c], ["DDPG=*ddpg*", "TD3=*td3*"])
    assert groups == {"DDPG": [a, b], "TD3": [c]}
    x, mean, lo, hi = plot.curve([plot.read_run(a), plot.read_run(b)], "total/env_steps",
                                 "test/success_rate")
    np.testing.assert_allclose(x, [100, 200])  # truncated to the shortest run
    np.testing.assert_allclose(mean, [0.1, 0.6])
    np.testing.assert_allclose(lo, [0.0, 0.5])
    np.testing.assert_allclose(hi, [0.2, 0.7])


def test_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    a = write_run(tmp_path / "r0", [0.0, 0.5, 1.0])
    out = tmp_path / "curves.png"
    assert plot.main([a, "--out", str(out), "--x", "epoch"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors(tmp_path, capsys):
    assert plot.main([str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2
    assert "no progress.csv" in capsys.readouterr().err
    a = write_run(tmp_path / "r1", [0.5])
    assert plot.main([a, "--out", str(tmp_path / "x.png"), "--key", "nope"]) == 2
    assert "column 'nope' missing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="NAME=GLOB"):
        plot.group_runs([a], ["bad"])


def test_table_first_reach_and_max_epochs(tmp_path, capsys):
    a = write_run(tmp_path / "ddpg-seed0", [0.0, 0.95, 0.5, 1.0])
    b = write_run(tmp_path / "ddpg-seed1", [0.1, 0.2, 0.9, 0.8])
    c = write_run(tmp_path / "td3-seed0", [0.0, 0.0, 0.0, 0.95])
    assert plot.main([a, b, c, "--label", "DDPG=*ddpg*", "--label", "TD3=*td3*", "--table",
                      "--max_epochs", "3"]) == 0
    rows = {ln.split("|")[2].strip(): [x.strip() for x in ln.split("|")[1:-1]]
            for ln in capsys.readouterr().out.splitlines()[2:]}
    assert rows["ddpg-seed0"][2:] == ["3", "300", "1 / 200", "0.50", "0.95", "0.48"]
    assert rows["ddpg-seed1"][4:6] == ["2 / 300", "0.90"]
    assert rows["td3-seed0"][2:5] == ["3", "300", "not reached"]  # epoch 3 (0.95) cut by --max_epochs
    assert rows["mean of 2"][4] == "2/2 runs, mean 250 steps"


def test_table_needs_out_or_table(tmp_path):
    a = write_run(tmp_path / "r0", [0.5])
    with pytest.raises(SystemExit):
        plot.main([a])


def test_first_reach_accepts_float32_rates(tmp_path):
    # 9/10 successes logged as float32 read back as 0.8999999761581421: that is 0.9.
    run = plot.read_run(write_run(tmp_path / "r", [0.5, 0.8999999761581421, 0.89]))
    assert plot.first_reach(run, "test/success_rate", 0.9) == (1, 200)
    run = plot.read_run(write_run(tmp_path / "s", [0.5, 0.8999, 0.89]))
    assert plot.first_reach(run, "test/success_rate", 0.9) is None
