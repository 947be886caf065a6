"""baselines_her.logger: the epoch line's elapsed time and ETA; messages through `logging`."""
import logging

import pytest

from baselines_her.logger import CONSOLE_HANDLER, LOG, Logger, warn


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def restore_logging():
    level, handlers, propagate = LOG.level, list(LOG.handlers), LOG.propagate
    yield
    LOG.setLevel(level)
    LOG.handlers[:] = handlers
    LOG.propagate = propagate


def test_epoch_line_elapsed_and_eta(tmp_path, capsys):
    clock = FakeClock()
    log = Logger(str(tmp_path), tensorboard=False, clock=clock)
    clock.now += 30.0
    log.log_epoch({"epoch": 0, "test/success_rate": 0.5}, n_epochs=5)
    clock.now += 3700.0  # mean 1865 s per epoch, 3 epochs left
    log.log_epoch({"epoch": 1, "test/success_rate": 0.75}, n_epochs=5)
    log.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["epoch   0/5 | test success 0.500 | elapsed 0:00:30, ETA 0:02:00",
                     "epoch   1/5 | test success 0.750 | elapsed 1:02:10, ETA 1:33:15"]
    assert (tmp_path / "log.txt").read_text().splitlines() == lines


def test_silence_and_redirect(tmp_path, capsys, restore_logging):
    log = Logger(str(tmp_path), tensorboard=False)
    log.info("first")
    warn("careful")
    out = capsys.readouterr()
    assert (out.out, out.err) == ("first\n", "warning: careful\n")

    logging.getLogger("baselines_her").setLevel(logging.ERROR)
    log.info("second")
    warn("ignored")
    assert capsys.readouterr() == ("", "")

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    LOG.setLevel(logging.INFO)
    LOG.removeHandler(CONSOLE_HANDLER)
    LOG.addHandler(handler)
    log.info("third")
    warn("to the user's handler")
    assert capsys.readouterr() == ("", "")
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, "third"), (logging.WARNING, "to the user's handler")]
    log.close()
    # log.txt is the run's record whatever the logging configuration.
    assert (tmp_path / "log.txt").read_text() == "first\nsecond\nthird\n"
