"""Resumable training state on disk, valid after a kill at any instant.

``<logdir>/checkpoint/`` (``checkpoint-rank{r}/`` for MPI rank r > 0) holds complete snapshots
``step-<n>/`` and a one-line file ``latest`` naming the snapshot to resume from. A snapshot is
written under a temporary name, synced, renamed, and only then does ``latest`` switch to it (an
atomic rename), so ``latest`` names a complete snapshot at every instant; older snapshots are
deleted after the switch. A snapshot holds:

- ``tf.*``: networks, target networks, optimisers, update counter, target-noise generator;
- ``arrays.npz``: replay buffer (unless ``--save_buffer=0``), normalisers, priorities, and the
  pending episodes (``pending/<key>``) if any;
- ``meta.json``: position (next epoch and cycle), counters, numpy generator states, the partial
  statistics of the current epoch, the row of the last finished epoch, and the pending episodes'
  stats (``pending``, absent without them).

Pending episodes exist after a stop with the rollout process: the episodes of the next cycle,
which ran while the stopped cycle trained; the generator states saved are those after them, and
the resumed run stores them as its first cycle's episodes instead of running rollouts.

:func:`save` and :func:`restore` gather and restore the state of every component of a
``train.Trainer``; the functions below them are the on-disk format.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

from baselines_her.atomic import atomic_write_bytes

LATEST = "latest"
_PREFIX = "step-"
_PENDING = "pending/"  # array keys of the pending episodes


def _generators(trainer) -> dict:
    generators = {"rollout": trainer.rngs.rollout, "sampler": trainer.rngs.sampler,
                  "envs": trainer.worker.env_rngs + trainer.evaluator.env_rngs}
    # Only runs with demo resets draw from it (demo_reset_prob cannot change on resume), so
    # checkpoints of runs without them need not hold it.
    if trainer.worker.demo_resets is not None:
        generators["demo_reset"] = trainer.worker.demo_resets.rng
    return generators


def save(trainer) -> str:
    """A snapshot of ``trainer`` (networks, optimisers, normalisers, buffer unless
    ``--save_buffer=0``, priorities, generators, counters) in its checkpoint folder."""
    arrays = dict(trainer.agent.normalizer_state())
    if trainer.params.save_buffer:
        arrays.update(trainer.buffer.state_dict())
        if trainer.priorities is not None:
            arrays.update(trainer.priorities.state_dict())
    meta = {"position": list(trainer.position), "best_success": trainer.best_success,
            "best_epoch": trainer.best_epoch, "env_steps": trainer.env_steps,
            "cycles_done": trainer.cycles_done, "stats": trainer.stats,
            "last_row": trainer.last_row, "has_buffer": bool(trainer.params.save_buffer),
            "rng": generator_states(_generators(trainer))}
    if trainer.pending is not None:
        episodes, info = trainer.pending
        arrays.update({f"{_PENDING}{key}": value for key, value in episodes.items()})
        meta["pending"] = info
    return write_snapshot(trainer.checkpoint_dir, trainer.agent.tf_checkpoint(), arrays, meta)


def restore(trainer, snapshot: str) -> dict:
    """Load ``snapshot`` into ``trainer``; returns its meta data."""
    meta = read_meta(snapshot)
    trainer.agent.tf_checkpoint().read(tf_prefix(snapshot)).assert_existing_objects_matched()
    arrays = read_arrays(snapshot)
    trainer.agent.load_normalizer_state(arrays)
    if meta["has_buffer"]:
        trainer.buffer.load_state_dict(arrays)
        if trainer.priorities is not None:
            trainer.priorities.load_state_dict(arrays)
    restore_generator_states(_generators(trainer), meta["rng"])
    trainer.position = tuple(meta["position"])
    trainer.best_success, trainer.best_epoch = meta["best_success"], meta["best_epoch"]
    trainer.env_steps, trainer.cycles_done = meta["env_steps"], meta["cycles_done"]
    trainer.stats, trainer.last_row = meta["stats"], meta["last_row"]
    trainer.pending = None
    if meta.get("pending") is not None:
        episodes = {key[len(_PENDING):]: value for key, value in arrays.items()
                    if key.startswith(_PENDING)}
        trainer.pending = (episodes, meta["pending"])
    return meta


def checkpoint_dir(logdir: str, rank: int) -> str:
    """``checkpoint`` for rank 0 (and one process); ``checkpoint-rank{r}`` for rank r > 0."""
    return os.path.join(logdir, "checkpoint" if rank == 0 else f"checkpoint-rank{rank}")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _snapshot_index(name: str) -> int:
    body = name.lstrip(".")[len(_PREFIX):].split(".")[0]
    return int(body) if body.isdigit() else -1


def write_snapshot(directory: str, tf_checkpoint, arrays: dict, meta: dict) -> str:
    """Write one complete snapshot into ``directory``, switch ``latest`` to it, delete the others.

    A kill between any two of the steps below leaves ``latest`` naming a complete snapshot.
    """
    os.makedirs(directory, exist_ok=True)
    existing = [_snapshot_index(n) for n in os.listdir(directory) if _PREFIX in n]
    name = f"{_PREFIX}{max(existing, default=-1) + 1}"
    tmp = os.path.join(directory, f".{name}.tmp")
    _write_files(tmp, tf_checkpoint, arrays, meta)
    _rename_complete(tmp, os.path.join(directory, name))
    _switch_latest(directory, name)
    _delete_others(directory, name)
    return os.path.join(directory, name)


def _write_files(tmp: str, tf_checkpoint, arrays: dict, meta: dict) -> None:
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tf_checkpoint.write(os.path.join(tmp, "tf"))
    np.savez(os.path.join(tmp, "arrays.npz"), **arrays)
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f)
    for entry in os.listdir(tmp):
        _fsync(os.path.join(tmp, entry))
    _fsync(tmp)


def _rename_complete(tmp: str, final: str) -> None:
    os.rename(tmp, final)
    _fsync(os.path.dirname(final))


def _switch_latest(directory: str, name: str) -> None:
    atomic_write_bytes(os.path.join(directory, LATEST), (name + "\n").encode())


def _delete_others(directory: str, keep: str) -> None:
    """Remove every snapshot but ``keep``, including unfinished ``.step-*.tmp`` folders."""
    for entry in os.listdir(directory):
        if _PREFIX in entry and entry != keep:
            shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)


def latest_snapshot(directory: str) -> str | None:
    """The snapshot that ``latest`` names, or None when there is none yet."""
    try:
        with open(os.path.join(directory, LATEST)) as f:
            name = f.read().strip()
    except FileNotFoundError:
        return None
    path = os.path.join(directory, name)
    if not name.startswith(_PREFIX) or not os.path.isfile(os.path.join(path, "meta.json")):
        raise RuntimeError(f"{directory}/{LATEST} names {name!r}, which is not a complete "
                           f"snapshot")
    return path


def read_meta(snapshot: str) -> dict:
    with open(os.path.join(snapshot, "meta.json")) as f:
        return json.load(f)


def read_arrays(snapshot: str) -> dict:
    with np.load(os.path.join(snapshot, "arrays.npz"), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def tf_prefix(snapshot: str) -> str:
    return os.path.join(snapshot, "tf")


def generator_states(generators: dict) -> dict:
    """JSON-ready states of named numpy generators (values: a generator or a list of them)."""
    def state(g):
        return [x.bit_generator.state for x in g] if isinstance(g, list) else g.bit_generator.state
    return {name: state(g) for name, g in generators.items()}


def restore_generator_states(generators: dict, states: dict) -> None:
    for name, g in generators.items():
        for one, s in zip(g if isinstance(g, list) else [g],
                          states[name] if isinstance(g, list) else [states[name]]):
            one.bit_generator.state = s
