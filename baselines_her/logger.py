"""Run outputs: console line per epoch, ``log.txt``, ``progress.csv``, TensorBoard, ``params.json``.

Only the writing rank (rank 0 under MPI) creates files; other ranks' loggers print nothing.
"""
from __future__ import annotations

import csv
import math
import os
import sys

CONSOLE_KEYS = (("test/success_rate", "test success {:.3f}"), ("train/success_rate", "train {:.3f}"),
                ("test/mean_Q", "Q {:.2f}"), ("loss/critic", "critic {:.4f}"),
                ("loss/actor", "actor {:.3f}"), ("perf/env_steps_per_s", "{:.0f} steps/s"),
                ("time/epoch_s", "{:.1f}s"))


class Logger:
    def __init__(self, logdir: str, enabled: bool = True, tensorboard: bool = True):
        self.logdir, self.enabled = logdir, enabled
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
            import tensorflow as tf
            self._tb = tf.summary.create_file_writer(os.path.join(logdir, "tb"))

    def info(self, msg: str) -> None:
        if not self.enabled:
            return
        print(msg, flush=True)
        self._text.write(msg + "\n")

    def write_params(self, params) -> None:
        if self.enabled:
            with open(os.path.join(self.logdir, "params.json"), "w") as f:
                f.write(params.to_json() + "\n")

    def log_epoch(self, row: dict, n_epochs: int) -> None:
        if not self.enabled:
            return
        if self._csv_keys is None:
            self._csv_keys = list(row)
            csv.writer(self._csv).writerow(self._csv_keys)
        csv.writer(self._csv).writerow([_fmt(row.get(k, "")) for k in self._csv_keys])
        self._csv.flush()
        if self._tb is not None:
            import tensorflow as tf
            with self._tb.as_default(step=int(row["epoch"])):
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                        tf.summary.scalar(key, value)
            self._tb.flush()
        parts = [f"epoch {int(row['epoch']):>3}/{n_epochs}"]
        parts += [fmt.format(row[k]) for k, fmt in CONSOLE_KEYS if k in row]
        self.info(" | ".join(parts))

    def close(self) -> None:
        if self.enabled:
            self._text.close()
            self._csv.close()
            if self._tb is not None:
                self._tb.close()


def _fmt(value):
    return repr(value) if isinstance(value, float) else value


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)
