"""Episode-major replay buffer over preallocated arrays.

``arrays`` holds ``o (N,T+1,do)``, ``ag (N,T+1,dg)``, ``g (N,T,dg)``, ``u (N,T,du)`` and
``info_is_success (N,T,1)``, float32, with ``N = buffer_size // T`` episode slots. Slots are
filled in order and, once full, the oldest episode is overwritten (FIFO).

Memory layout: ``o``, ``ag``, ``g`` and ``u`` are field views of one record array
``(N, T+1, do+2dg+du)`` holding, per step, ``[o | ag | g | u]`` side by side (``g`` and ``u`` of
the extra step ``T`` are unused padding). A training row needs ``o, ag, g, u`` of step ``t`` and
``o, ag`` of step ``t+1``: in this layout they are one contiguous span of a few cache lines,
where separate arrays put them in four places of the buffer; the native gather kernel is 3-20%
faster on a full 1e6-transition buffer (bench/sampling.py, B=256 to 2048). The views have the
shapes above and behave as ordinary arrays (they are not C-contiguous).
"""
from __future__ import annotations

import numpy as np

EPISODE_KEYS = ("o", "ag", "g", "u", "info_is_success")
RECORD_KEYS = ("o", "ag", "g", "u")  # fields of one step's record, in memory order


def episode_shapes(T: int, dim_o: int, dim_g: int, dim_u: int) -> dict:
    """Per-episode array shapes of the episode-batch contract (without the batch axis)."""
    return {"o": (T + 1, dim_o), "ag": (T + 1, dim_g), "g": (T, dim_g), "u": (T, dim_u),
            "info_is_success": (T, 1)}


class ReplayBuffer:
    def __init__(self, T: int, dim_o: int, dim_g: int, dim_u: int, size_in_transitions: int):
        self.T = int(T)
        self.capacity = max(1, int(size_in_transitions) // self.T)
        self.shapes = episode_shapes(T, dim_o, dim_g, dim_u)
        # np.zeros maps untouched pages lazily, so a 1e6-transition buffer costs only what is used.
        self.arrays = record_views(self.capacity, self.shapes)
        self.arrays["info_is_success"] = np.zeros((self.capacity, *self.shapes["info_is_success"]),
                                                  dtype=np.float32)
        self.current_size = 0  # episodes stored, <= capacity
        self.next_slot = 0
        self.n_episodes_stored = 0  # total ever stored, counts overwritten ones
        # Bumped when a slot is (re)written, so stale per-slot updates can be detected.
        self.slot_generation = np.zeros(self.capacity, dtype=np.int64)

    @property
    def n_transitions_stored(self) -> int:
        return self.current_size * self.T

    def store_episode(self, batch: dict) -> np.ndarray:
        """Store an episode batch ``{key: (B, ...)}``; returns the slot index of each episode."""
        n = check_episode_batch(batch, self.shapes, "episode batch")
        if n > self.capacity:
            raise ValueError(f"episode batch of {n} episodes exceeds buffer capacity "
                             f"{self.capacity} episodes")
        slots = (self.next_slot + np.arange(n)) % self.capacity
        for key in EPISODE_KEYS:
            self.arrays[key][slots] = batch[key]
        self.slot_generation[slots] += 1
        self.next_slot = int((self.next_slot + n) % self.capacity)
        self.current_size = min(self.capacity, self.current_size + n)
        self.n_episodes_stored += n
        return slots

    def state_dict(self) -> dict:
        """Arrays and counters for checkpointing (only the filled slots)."""
        out = {f"buffer/{k}": v[: self.current_size] for k, v in self.arrays.items()}
        out["buffer/slot_generation"] = self.slot_generation[: self.current_size]
        out["buffer/counters"] = np.array([self.current_size, self.next_slot,
                                           self.n_episodes_stored], dtype=np.int64)
        return out

    def load_state_dict(self, state: dict) -> None:
        size, next_slot, total = (int(x) for x in state["buffer/counters"])
        if size > self.capacity:
            raise ValueError(f"checkpoint buffer holds {size} episodes, capacity is {self.capacity}")
        for key in EPISODE_KEYS:
            self.arrays[key][:size] = state[f"buffer/{key}"]
        self.slot_generation[:size] = state["buffer/slot_generation"]
        self.current_size, self.next_slot, self.n_episodes_stored = size, next_slot, total


def record_views(capacity: int, shapes: dict) -> dict:
    """Views ``{o, ag, g, u}`` of shapes ``(capacity, *shapes[k])`` into one zeroed record array
    ``(capacity, T+1, sum of widths)``, fields side by side in ``RECORD_KEYS`` order."""
    steps = shapes["o"][0]
    widths = [shapes[k][1] for k in RECORD_KEYS]
    records = np.zeros((capacity, steps, sum(widths)), dtype=np.float32)
    views, start = {}, 0
    for key, width in zip(RECORD_KEYS, widths):
        views[key] = records[:, : shapes[key][0], start : start + width]
        start += width
    return views


def check_episode_batch(batch: dict, shapes: dict, source: str) -> int:
    """Validate keys, shapes and finiteness of an episode batch; return its episode count."""
    missing = [k for k in EPISODE_KEYS if k not in batch]
    if missing:
        raise ValueError(f"{source}: missing key(s) {missing}; expected {list(EPISODE_KEYS)}")
    n = None
    for key in EPISODE_KEYS:
        arr = np.asarray(batch[key])
        if arr.ndim != 3 or arr.shape[1:] != shapes[key]:
            raise ValueError(f"{source}: key {key!r} has shape {arr.shape}, expected "
                             f"(n_episodes, {', '.join(map(str, shapes[key]))})")
        if n is None:
            n = arr.shape[0]
        elif arr.shape[0] != n:
            raise ValueError(f"{source}: key {key!r} has {arr.shape[0]} episodes, "
                             f"'o' has {n}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{source}: key {key!r} contains NaN or inf")
    return int(n)
