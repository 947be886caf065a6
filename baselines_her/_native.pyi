"""Type stub of the compiled sampling kernel (csrc/bindings.cpp). Every function checks dtypes,
shapes and value ranges and raises ValueError naming the argument."""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]

BUILD_INFO: dict[str, str | bool]
"""``build_type`` (CMake configuration), ``compiler`` and ``ndebug``."""

def her_future_t(t: Int64Array, u: Float64Array, T: int) -> Int64Array:
    """``t + 1 + floor(u * (T - t))`` in ``[t + 1, T]``; ``t`` in ``[0, T)``, ``u`` in ``[0, 1)``."""

def her_future_indices(slots: Int64Array, u: Float64Array, T: int,
                       future_p: float) -> tuple[Int64Array, Int64Array, Int64Array]:
    """``(ep_idx, t, goal_t)`` from slots and a (2, B) uniform array; ``goal_t`` is -1 where
    the goal is not relabelled."""

def her_future_sample(u: Float64Array, n_slots: int, T: int,
                      future_p: float) -> tuple[Int64Array, Int64Array, Int64Array]:
    """``(ep_idx, t, goal_t)`` of a uniform-replay ``future`` draw from a (3, B) uniform array."""

def gather_transitions(o: Float32Array, ag: Float32Array, g: Float32Array, u: Float32Array,
                       ep_idx: Int64Array, t: Int64Array, goal_ep: Int64Array,
                       goal_t: Int64Array,
                       distance_threshold: float | None = None) -> dict[str, np.ndarray]:
    """The training batch: ``o, o_2, ag, ag_2, g, u`` (float32, (B, dim)), ``slot`` (int64) and,
    with a threshold, the sparse reward ``r`` (float32)."""

class SumTree:
    """Float64 sum tree with a min tree; any capacity >= 1; picklable."""

    def __init__(self, capacity: int) -> None: ...
    @property
    def capacity(self) -> int: ...
    def __len__(self) -> int: ...
    def set(self, indices: Int64Array, priorities: Float64Array | Float32Array) -> None: ...
    def get(self, indices: Int64Array) -> Float64Array: ...
    def total(self) -> float: ...
    def min(self) -> float: ...
    def query(self, targets: Float64Array) -> Int64Array: ...
    def query_weighted(self, targets: Float64Array,
                       beta: float) -> tuple[Int64Array, Float32Array]: ...
