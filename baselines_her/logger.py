"""Run outputs: console line per epoch, ``log.txt``, ``progress.csv``, TensorBoard, ``params.json``.

Only the writing rank (rank 0 under MPI) creates files; other ranks' loggers print nothing.

Console messages go through the standard ``logging`` module, logger ``"baselines_her"``: by
default its own handler prints INFO messages to stdout as they are and warnings to stderr as
``warning: ...``; it does not propagate to the root logger. A library user silences them with
``logging.getLogger("baselines_her").setLevel(logging.WARNING)`` (or ``ERROR``), or routes them
to their own handlers by removing :data:`CONSOLE_HANDLER` and setting ``propagate = True``.
``log.txt`` in the run folder is written whatever the logging configuration.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time

from baselines_her.quiet_tensorflow import import_tensorflow

CONSOLE_KEYS = (("test/success_rate", "test success {:.3f}"), ("train/success_rate", "train {:.3f}"),
                ("test/mean_Q", "Q {:.2f}"), ("loss/critic", "critic {:.4f}"),
                ("loss/actor", "actor {:.3f}"), ("perf/env_steps_per_s", "{:.0f} steps/s"),
                ("time/epoch_s", "{:.1f}s"))


LOG = logging.getLogger("baselines_her")


class ConsoleHandler(logging.Handler):
    """Below WARNING: the bare message on stdout; WARNING and above: ``warning: ...`` /
    ``error: ...`` on stderr. The streams are looked up at each message, so redirected or
    captured ``sys.stdout``/``sys.stderr`` are honoured."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.levelno >= logging.WARNING:
                prefix = "warning" if record.levelno < logging.ERROR else "error"
                stream, msg = sys.stderr, f"{prefix}: {msg}"
            else:
                stream = sys.stdout
            stream.write(msg + "\n")
            stream.flush()
        except Exception:  # a broken stream must not kill training; logging reports it
            self.handleError(record)


CONSOLE_HANDLER = ConsoleHandler()
if not LOG.handlers:
    LOG.addHandler(CONSOLE_HANDLER)
    LOG.propagate = False
if LOG.level == logging.NOTSET:
    LOG.setLevel(logging.INFO)


def _hms(seconds: float) -> str:
    seconds = int(round(max(seconds, 0.0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Logger:
    def __init__(self, logdir: str, enabled: bool = True, tensorboard: bool = True,
                 clock=time.monotonic):
        self.logdir, self.enabled = logdir, enabled
        self._clock = clock
        self._start = clock()
        self._epochs_logged = 0
        self._csv_keys = None
        self._tb = None
        if not enabled:
            return
        os.makedirs(logdir, exist_ok=True)
        self._text = open(os.path.join(logdir, "log.txt"), "a", buffering=1)
        csv_path = os.path.join(logdir, "progress.csv")
        if os.path.exists(csv_path) and os.path.getsize(csv_path) > 0:
            with open(csv_path, newline="") as f:
                self._csv_keys = next(csv.reader(f))
        self._csv = open(csv_path, "a", newline="", buffering=1)
        if tensorboard:
            tf = import_tensorflow()
            self._tb = tf.summary.create_file_writer(os.path.join(logdir, "tb"))

    def info(self, msg: str) -> None:
        if not self.enabled:
            return
        LOG.info(msg)
        self._text.write(msg + "\n")

    def write_params(self, params) -> None:
        if self.enabled:
            with open(os.path.join(self.logdir, "params.json"), "w") as f:
                f.write(params.to_json() + "\n")

    def log_epoch(self, row: dict, n_epochs: int) -> None:
        """The epoch's progress.csv row and console line, then its TensorBoard point. The row
        marks the epoch as published: a resume re-publishes an epoch whose row is missing and
        adds only the TensorBoard point when the row is there and the point is not
        (:func:`last_tensorboard_epoch`), so each epoch appears once in both."""
        self.write_row(row, n_epochs)
        self.write_tensorboard(row)

    def write_row(self, row: dict, n_epochs: int) -> None:
        if not self.enabled:
            return
        if self._csv_keys is None:
            self._csv_keys = list(row)
            csv.writer(self._csv).writerow(self._csv_keys)
        csv.writer(self._csv).writerow([_fmt(row.get(k, "")) for k in self._csv_keys])
        self._csv.flush()
        parts = [f"epoch {int(row['epoch']):>3}/{n_epochs}"]
        parts += [fmt.format(row[k]) for k, fmt in CONSOLE_KEYS if k in row]
        parts.append(self._timing(int(row["epoch"]), n_epochs))
        self.info(" | ".join(parts))

    def write_tensorboard(self, row: dict) -> None:
        if not self.enabled or self._tb is None:
            return
        tf = import_tensorflow()
        with self._tb.as_default(step=int(row["epoch"])):
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    tf.summary.scalar(key, value)
        self._tb.flush()

    @property
    def tensorboard(self) -> bool:
        return self.enabled and self._tb is not None

    def _timing(self, epoch: int, n_epochs: int) -> str:
        """``elapsed H:MM:SS, ETA H:MM:SS``: time since this logger started, and the remaining
        epochs at this process's mean time per epoch (a resumed run counts from its restart)."""
        self._epochs_logged += 1
        elapsed = self._clock() - self._start
        remaining = max(n_epochs - (epoch + 1), 0)
        eta = elapsed / self._epochs_logged * remaining
        return f"elapsed {_hms(elapsed)}, ETA {_hms(eta)}"

    def close(self) -> None:
        if self.enabled:
            self._text.close()
            self._csv.close()
            if self._tb is not None:
                self._tb.close()


def _fmt(value):
    return repr(value) if isinstance(value, float) else value


def warn(msg: str) -> None:
    """A warning through the ``baselines_her`` logger (console: ``warning: msg`` on stderr)."""
    LOG.warning(msg)


def last_logged_epoch(logdir: str) -> int:
    """The highest epoch in ``logdir/progress.csv`` (-1 when there is none)."""
    path = os.path.join(logdir, "progress.csv")
    if not os.path.exists(path):
        return -1
    with open(path, newline="") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f) if row.get("epoch", "").isdigit()]
    return max(epochs, default=-1)


def last_tensorboard_epoch(logdir: str) -> int:
    """The highest step with a summary in ``logdir/tb`` (-1 when there is none). A record cut
    off by a kill ends its file's reading; the points before it count."""
    tf = import_tensorflow()
    folder = os.path.join(logdir, "tb")
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                   if n.startswith("events.")) if os.path.isdir(folder) else []
    last = -1
    for path in files:
        try:
            for record in tf.data.TFRecordDataset(path):
                event = tf.compat.v1.Event.FromString(record.numpy())
                if event.HasField("summary") and event.summary.value:
                    last = max(last, int(event.step))
        except tf.errors.DataLossError:
            continue
    return last


def keep_progress_before(logdir: str, epoch: int) -> None:
    """Drop progress.csv rows of epochs >= ``epoch`` and a partly written last line (resume)."""
    from baselines_her.atomic import atomic_open
    path = os.path.join(logdir, "progress.csv")
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    if not lines:
        return
    header = next(csv.reader(lines[:1]))
    kept = [lines[0]]
    for line in lines[1:]:
        fields = next(csv.reader([line]), [])
        if (line.endswith("\n") and len(fields) == len(header) and fields[0].isdigit()
                and int(fields[0]) < epoch):
            kept.append(line)
    with atomic_open(path, "w", newline="") as f:
        f.writelines(kept)
