"""Sampling hot path benchmark: numpy reference vs the compiled kernel (baselines_her._native).

    python bench/sampling.py [--json out.json] [--quick] [--no_progress]

Times are wall clock: median (and best) of rounds, interleaved across rows and implementations
(InterleavedTimer), so every number sees the same mix of the machine's fast and slow phases; on a
busy machine compare the best column. A full 1e6-transition buffer with PandaPickAndPlace-v3
shapes (T=50, o 19, g 3, u 4, so N=20000 episodes of random float32), stored as the replay buffer
stores it (interleaved per-step records, replay_buffer.record_views; one row compares separate
C-contiguous arrays), and a 1e6-leaf sum tree. Each row is the median over rounds of the mean
time of one call, in microseconds. Comparisons, when importable: cpprb's PrioritizedReplayBuffer
(`pip install cpprb`, not a dependency of the project) and a pure-Python sum tree over a list, in
the style of baselines' SegmentTree. A progress bar over the rounds goes to stderr when it is a
terminal (``--no_progress`` turns it off). Never run by CI.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no idle BLAS threads spinning on a small box

import numpy as np  # noqa: E402

from baselines_her import sampling_kernels as sk  # noqa: E402
from baselines_her.replay_buffer import RECORD_KEYS, episode_shapes, record_views  # noqa: E402
from progress_bar import add_flag, bar  # noqa: E402  (bench/progress_bar.py)

T, DIM_O, DIM_G, DIM_U = 50, 19, 3, 4
N_EPISODES = 20_000  # x T = 1e6 transitions
CAPACITY = N_EPISODES * T
FUTURE_P = 0.8  # replay_k = 4
THRESHOLD = 0.05
BETA = 0.4
TARGETS_US = {
    ("HER batch as her_sampler draws it (fused)", 256): 50,
    ("HER batch as her_sampler draws it (fused)", 2048): 300,
    ("prioritized sample: query + IS weights + gather", 256): 60,
    ("priority update (set)", 256): 6,
}


class InterleavedTimer:
    """Times callables in interleaved rounds: round r of every callable runs before round r+1 of
    any. A 2-core VM's speed drifts (by up to 1.5x, for seconds at a time), so timing one row's
    rounds back to back gives that row one phase of the machine; interleaved, every row and every
    implementation of a row sees the same mix of phases, and a median is the typical speed."""

    def __init__(self, repeats: int, min_round_s: float) -> None:
        self.repeats, self.min_round_s = repeats, min_round_s
        self.fns: list = []
        self.rounds: list[list[float]] = []

    def add(self, fn, repeats: int | None = None) -> int:
        """Registers fn for `repeats` rounds (default: all); returns its handle."""
        self.fns.append((fn, self.repeats if repeats is None else repeats))
        self.rounds.append([])
        return len(self.fns) - 1

    def run(self, on_round=None) -> None:
        """Calibrates, then times the rounds; ``on_round()`` (if given) is called after each."""
        calls = []
        for fn, _ in self.fns:  # calls per round: >= min_round_s of them (doubling)
            fn()
            n = 1
            while True:
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                if time.perf_counter() - t0 >= self.min_round_s or n >= 1 << 16:
                    break
                n *= 2
            calls.append(n)
        for r in range(self.repeats):
            for h, ((fn, repeats), n) in enumerate(zip(self.fns, calls)):
                if r >= repeats:
                    continue
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                self.rounds[h].append((time.perf_counter() - t0) / n)
            if on_round is not None:
                on_round()

    def median_us(self, h: int) -> float:
        return statistics.median(self.rounds[h]) * 1e6

    def best_us(self, h: int) -> float:
        return min(self.rounds[h]) * 1e6


class PySumTree:
    """Sum and min trees in Python lists, binary, power-of-two capacity (baselines style)."""

    def __init__(self, priorities: np.ndarray) -> None:
        size = 1
        while size < len(priorities):
            size *= 2
        self.size = size
        self.sum = [0.0] * (2 * size)
        self.min = [float("inf")] * (2 * size)
        self.sum[size : size + len(priorities)] = priorities.tolist()
        self.min[size : size + len(priorities)] = priorities.tolist()
        for i in range(size - 1, 0, -1):
            self.sum[i] = self.sum[2 * i] + self.sum[2 * i + 1]
            self.min[i] = min(self.min[2 * i], self.min[2 * i + 1])

    def set(self, indices, priorities) -> None:
        s, m = self.sum, self.min
        for i, p in zip(indices.tolist(), priorities.tolist()):
            i += self.size
            s[i] = m[i] = p
            i //= 2
            while i >= 1:
                s[i] = s[2 * i] + s[2 * i + 1]
                m[i] = min(m[2 * i], m[2 * i + 1])
                i //= 2

    def query(self, targets) -> np.ndarray:
        s, size = self.sum, self.size
        out = []
        for x in targets.tolist():
            i = 1
            while i < size:
                if x < s[2 * i]:
                    i = 2 * i
                else:
                    x -= s[2 * i]
                    i = 2 * i + 1
            out.append(i - size)
        return np.array(out, dtype=np.int64)

    def query_weighted(self, targets, beta):
        idx = self.query(targets)
        lo = self.min[1]
        w = np.array([(self.sum[self.size + i] / lo) ** -beta for i in idx.tolist()], np.float32)
        return idx, w

    def total(self) -> float:
        return self.sum[1]


def load_line() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        mem = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{os.cpu_count()}-core {platform.machine()} ({cpu}){mem}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    add_flag(ap)
    args = ap.parse_args()
    repeats, min_round = (5, 0.002) if args.quick else (15, 0.01)
    if not sk.NATIVE_AVAILABLE:
        print("baselines_her._native is not built: run `pip install -e .` first", file=sys.stderr)
        return 1
    nat = sk._native

    rng = np.random.default_rng(0)
    print(f"filling a {CAPACITY:.0e}-transition buffer (N={N_EPISODES}, T={T}) ...", flush=True)
    o = rng.standard_normal((N_EPISODES, T + 1, DIM_O), dtype=np.float32)
    ag = rng.standard_normal((N_EPISODES, T + 1, DIM_G), dtype=np.float32) * np.float32(0.05)
    g = rng.standard_normal((N_EPISODES, T, DIM_G), dtype=np.float32) * np.float32(0.05)
    u = rng.uniform(-1, 1, (N_EPISODES, T, DIM_U)).astype(np.float32)
    separate = (o, ag, g, u)
    views = record_views(N_EPISODES, episode_shapes(T, DIM_O, DIM_G, DIM_U))
    for key, a in zip(RECORD_KEYS, separate):
        views[key][...] = a
    buf = tuple(views[k] for k in RECORD_KEYS)  # the replay buffer's layout
    init_p = rng.random(CAPACITY) + 0.01
    trees = {"numpy": sk.SumTreeNumpy(CAPACITY), "native": nat.SumTree(CAPACITY)}
    for tree in trees.values():
        tree.set(np.arange(CAPACITY), init_p)
    kernels = {
        "numpy": (sk.her_future_t_numpy, sk.her_future_indices_numpy, sk.gather_transitions_numpy),
        "native": (nat.her_future_t, nat.her_future_indices, nat.gather_transitions),
    }
    future_sample = {"numpy": sk.her_future_sample_numpy, "native": nat.her_future_sample}

    def her_batch(impl, B):
        """The first, unfused `future` draw: rng.integers x2, rng.random x2, numpy where."""
        future, _, gather = kernels[impl]

        def run():
            ep = rng.integers(0, N_EPISODES, size=B, dtype=np.int64)
            t = rng.integers(0, T, size=B, dtype=np.int64)
            relabel = rng.random(B) < FUTURE_P
            fut = future(t, rng.random(B), T)
            goal_t = np.where(relabel, fut, -1)
            return gather(*buf, ep, t, ep.copy(), goal_t, THRESHOLD)

        return run

    def her_batch_slots(impl, B):
        """One rng.integers slot draw and one (2, B) uniform draw, then her_future_indices +
        gather (the two-call draw, for comparison with the fused one)."""
        _, indices, gather = kernels[impl]

        def run():
            slots = rng.integers(0, CAPACITY, size=B, dtype=np.int64)
            ep, t, goal_t = indices(slots, rng.random((2, B)), T, FUTURE_P)
            return gather(*buf, ep, t, ep, goal_t, THRESHOLD)

        return run

    def her_batch_fused(impl, B):
        """As her_sampler draws it: one (3, B) uniform draw, her_future_sample, gather."""
        sample, gather = future_sample[impl], kernels[impl][2]

        def run():
            ep, t, goal_t = sample(rng.random((3, B)), CAPACITY, T, FUTURE_P)
            return gather(*buf, ep, t, ep, goal_t, THRESHOLD)

        return run

    def draw_rows(B):
        """(ep, t, goal_t) of B uniform `future` rows, drawn outside the timed call."""
        ep = rng.integers(0, N_EPISODES, B)
        t = rng.integers(0, T, B)
        return ep, t, np.where(rng.random(B) < FUTURE_P, sk.her_future_t_numpy(t, rng.random(B), T), -1)

    def gather_only(impl, B):
        gather = kernels[impl][2]
        ep, t, goal_t = draw_rows(B)
        return lambda: gather(*buf, ep, t, ep, goal_t, THRESHOLD)

    def gather_fresh(impl, B, arrays=buf):
        """Pre-drawn indices, cycling through ~256k rows (> the L3 cache), so every call reads
        rows that are not cached: the memory-latency floor under the HER-batch rows."""
        gather = kernels[impl][2]
        pool = [draw_rows(B) for _ in range(max(262_144 // B, 8))]
        state = {"i": 0}

        def run():
            ep, t, gt = pool[state["i"] % len(pool)]
            state["i"] += 1
            return gather(*arrays, ep, t, ep, gt, THRESHOLD)

        return run

    def tree_query(tree, B):
        pool = [rng.random(B) for _ in range(64)]
        state = {"i": 0}

        def run():
            state["i"] = (state["i"] + 1) % len(pool)
            return tree.query(pool[state["i"]] * tree.total())

        return run

    def tree_set(tree, B):
        pool = [(rng.integers(0, CAPACITY, B), rng.random(B) + 0.01) for _ in range(64)]
        state = {"i": 0}

        def run():
            state["i"] = (state["i"] + 1) % len(pool)
            tree.set(*pool[state["i"]])

        return run

    def tree_query_set(tree, B):
        query = tree_query(tree, B)
        new_p = rng.random(B) + 0.01
        return lambda: tree.set(query(), new_p)

    def prioritized(impl, tree, B):
        _, indices, gather = kernels["native" if impl == "native" else "numpy"]

        def run():
            idx, w = tree.query_weighted(rng.random(B) * tree.total(), BETA)
            ep, t, goal_t = indices(idx, rng.random((2, B)), T, FUTURE_P)
            batch = gather(*buf, ep, t, ep, goal_t, THRESHOLD)
            batch["w"] = w
            return batch

        return run

    # optional comparisons
    extra_status = {}
    print("building the pure-Python list sum tree ...", flush=True)
    py_tree = PySumTree(init_p)
    cpprb_buf = None
    try:
        import cpprb

        cpprb_buf = cpprb.PrioritizedReplayBuffer(
            CAPACITY,
            {
                "obs": {"shape": DIM_O}, "next_obs": {"shape": DIM_O}, "act": {"shape": DIM_U},
                "ag": {"shape": DIM_G}, "next_ag": {"shape": DIM_G}, "g": {"shape": DIM_G},
                "rew": {},
            },
            alpha=0.6,
        )
        print("filling cpprb's PrioritizedReplayBuffer ...", flush=True)
        chunk = 100_000
        for s0 in range(0, CAPACITY, chunk):
            e0, e1 = s0 // T, (s0 + chunk) // T
            cpprb_buf.add(
                obs=o[e0:e1, :-1].reshape(-1, DIM_O), next_obs=o[e0:e1, 1:].reshape(-1, DIM_O),
                act=u[e0:e1].reshape(-1, DIM_U), ag=ag[e0:e1, :-1].reshape(-1, DIM_G),
                next_ag=ag[e0:e1, 1:].reshape(-1, DIM_G), g=g[e0:e1].reshape(-1, DIM_G),
                rew=np.zeros(e1 * T - e0 * T, np.float32),
                priorities=init_p[s0 : s0 + chunk],
            )
        extra_status["cpprb"] = f"cpprb {getattr(cpprb, '__version__', '')}".strip()
    except ImportError as exc:
        extra_status["cpprb"] = f"not installed ({exc})"

    timer = InterleavedTimer(repeats, min_round)
    rows = []

    def row(name, B, numpy_fn, native_fn, cpprb_fn=None, py_fn=None):
        """Registers a row; its times are filled in after timer.run()."""
        handles = {
            "numpy_us": timer.add(numpy_fn) if numpy_fn else None,
            "native_us": timer.add(native_fn),
            "cpprb_us": timer.add(cpprb_fn) if cpprb_fn else None,
            "python_tree_us": timer.add(py_fn, max(3, repeats // 3)) if py_fn else None,
        }
        rows.append(({"operation": name, "B": B}, handles))

    def finish_row(r, handles):
        for key, h in handles.items():
            r[key] = None if h is None else timer.median_us(h)
        r["native_best_us"] = timer.best_us(handles["native_us"])
        r["target_us"] = TARGETS_US.get((r["operation"], r["B"]))
        r["meets_target"] = None if r["target_us"] is None else r["native_us"] <= r["target_us"]
        print(f"  {r['operation']} B={r['B']}: native {r['native_us']:.1f} us", flush=True)
        return r

    load_before = load_line()
    print(f"timing (load average {load_before}) ...", flush=True)
    for B in (256, 2048):
        row("HER batch, unfused draw (4 generator calls)", B, her_batch("numpy", B), her_batch("native", B))
        row("HER batch, rng.integers slots + her_future_indices", B, her_batch_slots("numpy", B),
            her_batch_slots("native", B))
        row("HER batch as her_sampler draws it (fused)", B, her_batch_fused("numpy", B),
            her_batch_fused("native", B))
    for B in (256, 2048):
        row("gather + reward only (same rows each call)", B, gather_only("numpy", B), gather_only("native", B))
        row("gather + reward only, uncached rows (indices pre-drawn)", B, gather_fresh("numpy", B),
            gather_fresh("native", B))
        row("the same from separate C-contiguous o/ag/g/u arrays", B,
            gather_fresh("numpy", B, separate), gather_fresh("native", B, separate))
    for B in (256, 2048):
        row("sum tree query", B, tree_query(trees["numpy"], B), tree_query(trees["native"], B),
            py_fn=tree_query(py_tree, B))
        row("sum tree set", B, tree_set(trees["numpy"], B), tree_set(trees["native"], B),
            py_fn=tree_set(py_tree, B))
        row("sum tree query + set", B, tree_query_set(trees["numpy"], B),
            tree_query_set(trees["native"], B), py_fn=tree_query_set(py_tree, B))
    cpprb_sample = cpprb_update = None
    if cpprb_buf is not None:
        upd_idx = rng.integers(0, CAPACITY, 256)
        upd_p = rng.random(256) + 0.01
        cpprb_sample = lambda: cpprb_buf.sample(256, beta=BETA)  # noqa: E731
        cpprb_update = lambda: cpprb_buf.update_priorities(upd_idx, upd_p)  # noqa: E731
    row("prioritized sample: query + IS weights + gather", 256,
        prioritized("numpy", trees["numpy"], 256), prioritized("native", trees["native"], 256),
        cpprb_fn=cpprb_sample, py_fn=prioritized("python", py_tree, 256))
    row("priority update (set)", 256, tree_set(trees["numpy"], 256), tree_set(trees["native"], 256),
        cpprb_fn=cpprb_update, py_fn=tree_set(py_tree, 256))
    with bar(repeats, "rounds", "round", enabled=not args.no_progress) as progress:
        timer.run(on_round=lambda: progress.update(1))
    rows = [finish_row(r, handles) for r, handles in rows]

    meta = {
        "date": _dt.date.today().isoformat(),
        "machine": machine_line(),
        "load_average": f"{load_before} before, {load_line()} after",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "native_build": dict(nat.BUILD_INFO),
        "buffer": f"N={N_EPISODES} episodes x T={T} = {CAPACITY} transitions, o {DIM_O}, g {DIM_G}, u {DIM_U}",
        "cpprb": extra_status["cpprb"],
        "timing": f"median of {repeats} interleaved rounds (every row's round r before any "
                  f"round r+1), each the mean of >= {min_round * 1e3:.0f} ms of calls",
    }

    def cell(v):
        return "-" if v is None else f"{v:,.1f}"

    print()
    for k, v in meta.items():
        print(f"{k}: {v}")
    header = ["operation", "B", "numpy ref (us)", "native (us)", "native best (us)", "speedup",
              "target (us)", "cpprb (us)", "Python-list tree (us)"]
    lines = [header]
    for r in rows:
        speed = f"{r['numpy_us'] / r['native_us']:.0f}x" if r["numpy_us"] else "-"
        target = "-" if r["target_us"] is None else f"<= {r['target_us']} {'ok' if r['meets_target'] else 'MISSED'}"
        cp = cell(r["cpprb_us"])
        if cpprb_buf is None and r["operation"].startswith(("prioritized", "priority")):
            cp = "not installed"
        lines.append([r["operation"], str(r["B"]), cell(r["numpy_us"]), cell(r["native_us"]),
                      cell(r["native_best_us"]), speed, target, cp, cell(r["python_tree_us"])])
    print()
    print("| " + " | ".join(lines[0]) + " |")
    print("|" + "|".join("---" for _ in lines[0]) + "|")
    for line in lines[1:]:
        print("| " + " | ".join(line) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
