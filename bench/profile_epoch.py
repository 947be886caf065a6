"""Where one training epoch's wall time goes: env.step, the compiled update, test, saving, overhead.

    python bench/profile_epoch.py [--env PandaPush-v3] [--n_cycles 50] [--epochs 2]
        [--param KEY=VALUE ...] [--out FILE]

Runs real epochs through ``baselines_her.train.Trainer`` (params from ``config.prepare_params``
with the env's defaults; ``--n_cycles`` shortens the epoch, ``--param`` sets any other key) and
times them by wrapping methods on the live objects (no library file is changed). The training envs
step in the learner's process (``rollout_process=0`` unless ``--param`` sets it): with the rollout
process they step in another process, where nothing here can time them. Rows:

env.step        every training env's ``step``, at the level the rollout worker calls it
env.reset       every training env's ``reset``
compiled update every ``tf.function`` found on the agent (instance attributes, dicts of them and
                tf.function methods of its class), when called outside rollouts and test: the
                train step(s) and the target update, with any tracing/XLA compilation
test rollouts   ``Trainer._test``: test episodes, their env.step/reset and actor, mean Q
policy files    ``save_policy`` as the training loop calls it, and ``agent.policy_state``
checkpoint      ``Trainer.save_checkpoint``: networks, optimisers, replay buffer, generators
overhead        the epoch's wall time less the rows above: action selection, exploration noise,
                storing, HER sampling, normalising, batch assembly, conversions, logging

Times are exclusive (a row never counts time already in another). Overhead is split further
where the calls are found (act, explore, store, sample, preprocess; "rest" is what is left).
A second, wider count, "overhead beyond env time and the compiled update", is everything but env
time (training and test) and the compiled update, so test rollouts less their env time, policy
files and checkpoint are in it too: printed as its own line. The target for both counts is <= 10%
of the epoch's wall time.
An epoch runs from its first training rollout to the next epoch's first training rollout (the
last one to the end of ``run``): its cycles, test, logging, policy files and checkpoint. The
first epoch includes tracing/compilation; the last is the one to read.
Prints a markdown table and writes JSON (default bench/results/profile_epoch-<date>.json).
A call site that moved (no compiled function called, no ``_test``, ...) stops the script with one
line naming it, exit 1; a bad flag exits 2.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys

from baselines_her.errors import UserError, run_cli
from baselines_her.quiet_tensorflow import import_tensorflow
import tempfile
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_sb3 import machine  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TARGET_OVERHEAD = 0.10
# (key, label): the rows of the table, in order; "overhead" is the rest of the epoch.
ROWS = [("env_step", "env.step (training rollouts)"),
        ("env_reset", "env.reset (training rollouts)"), ("update", "compiled update"),
        ("test", "test rollouts"), ("save", "policy files"), ("checkpoint", "checkpoint")]
OVERHEAD_PARTS = [("act", "action selection"), ("explore", "exploration noise"),
                  ("store", "store + normaliser update"), ("sample", "batch sampling (HER)"),
                  ("preprocess", "normalise + batch assembly")]


ABSORBED = "@absorbed"  # call counts of calls made inside test or saving (time not split out)


class NotFound(Exception):
    """A call site this profiler wraps is missing from the trainer."""


class Profiler:
    """Exclusive wall time per category; "absorbing" calls (test) own everything inside them.

    Epochs are cut at the first training rollout after a test (and at the end of ``run``), so an
    epoch is: its cycles, its test, and whatever the loop does before the next epoch's first
    rollout (logging, policy files, checkpoint)."""

    def __init__(self, snapshot):
        self.snapshot = snapshot  # () -> dict of counters read at each epoch boundary
        self.stack: list[list[float]] = []
        self.absorbing = 0
        self.in_rollout = 0
        self.tested = False
        self.epochs: list[dict] = []
        self.compiled_names: dict[str, dict] = {}
        self.epoch_start: float | None = None
        self.time: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, fn, category, absorbing: bool = False, force: bool = False, after=None):
        """``category``: a name, or a function of the profiler returning one at call time.
        ``force``: record even inside an absorbing call. ``after``: called once fn returns."""
        def timed(*args, **kwargs):
            cat = category(self) if callable(category) else category
            if self.absorbing and not force:
                self.calls[cat + ABSORBED] += 1
                return fn(*args, **kwargs)
            self.calls[cat] += 1
            frame = [0.0]
            self.stack.append(frame)
            self.absorbing += absorbing
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.absorbing -= absorbing
                self.stack.pop()
                self.time[cat] += dt - frame[0]
                if self.stack:
                    self.stack[-1][0] += dt
                if after is not None:
                    after()
        timed.__wrapped__ = fn
        return timed

    def mark_tested(self) -> None:
        self.tested = True

    def rollout_marker(self, fn, training: bool):
        """Marks calls as rollouts (a compiled call inside one is action selection); the first
        training rollout after a test starts a new epoch."""
        def marked(*args, **kwargs):
            if training and (self.epoch_start is None or self.tested):
                self.cut()
            self.in_rollout += 1
            try:
                return fn(*args, **kwargs)
            finally:
                self.in_rollout -= 1
        return marked

    def cut(self) -> None:
        """Close the running epoch (if any) now and start the next one."""
        now = time.perf_counter()
        if self.epoch_start is not None:
            self.epochs.append({"wall_s": now - self.epoch_start, "time": dict(self.time),
                                "calls": dict(self.calls), **self.snapshot()})
        self.time, self.calls = defaultdict(float), defaultdict(int)
        self.tested, self.epoch_start = False, time.perf_counter()


def compiled_category(name: str):
    return lambda prof: f"act:{name}" if prof.in_rollout else f"update:{name}"


def find_compiled(agent) -> list[tuple[str, object, object]]:
    """(name, owner, key) for every tf.function reachable on the agent: instance attributes,
    values of dict attributes, and tf.function methods defined on its class."""
    tf = import_tensorflow()
    kinds = tuple({t for t in (getattr(tf.types.experimental, "PolymorphicFunction", None),
                               getattr(tf.types.experimental, "GenericFunction", None)) if t})
    found, seen = [], set()
    for name, value in list(vars(agent).items()):
        if isinstance(value, kinds):
            found.append((name, agent, name))
            seen.add(name)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, kinds):
                    found.append((f"{name}[{key!r}]", value, key))
    for klass in type(agent).__mro__:
        for name, value in vars(klass).items():
            if name not in seen and isinstance(value, kinds):
                found.append((name, agent, name))  # bound on the instance, shadows the class's
                seen.add(name)
    return found


def instrument(trainer, prof: Profiler) -> dict:
    """Wrap the trainer's call sites; raises NotFound naming what is missing."""
    import baselines_her.train as train_mod
    agent, restore = trainer.agent, []

    def need(obj, attr: str, what: str):
        if not callable(getattr(obj, attr, None)):
            raise NotFound(f"{type(obj).__name__}.{attr} ({what}) not found")
        return getattr(obj, attr)

    for worker_name, suffix in (("worker", ""), ("evaluator", "_test")):
        worker = getattr(trainer, worker_name, None)
        envs = getattr(worker, "envs", None)
        if not envs:
            raise NotFound(f"Trainer.{worker_name}.envs (the envs the rollouts step) not found")
        for env in envs:  # test envs: recorded inside the test row (force), as its env part
            env.step = prof.wrap(need(env, "step", "env step"), "env_step" + suffix,
                                 force=bool(suffix))
            env.reset = prof.wrap(need(env, "reset", "env reset"), "env_reset" + suffix,
                                  force=bool(suffix))
        worker.generate_rollouts = prof.rollout_marker(
            need(worker, "generate_rollouts", "rollouts"), training=worker_name == "worker")

    compiled = find_compiled(agent)
    if not compiled:
        raise NotFound("no tf.function on the agent (the compiled update)")
    for name, owner, key in compiled:
        fn = owner[key] if isinstance(owner, dict) else getattr(owner, key)
        wrapped = prof.wrap(fn, compiled_category(name))
        if isinstance(owner, dict):
            owner[key] = wrapped
        else:
            setattr(owner, key, wrapped)
        prof.compiled_names[name] = {"jit_compile": getattr(fn, "_jit_compile", None)}

    trainer._test = prof.wrap(need(trainer, "_test", "test rollouts"), "test", absorbing=True,
                              after=prof.mark_tested)
    trainer.save_checkpoint = prof.wrap(need(trainer, "save_checkpoint", "checkpoint"),
                                        "checkpoint", force=True)
    original = need(train_mod, "save_policy", "policy files, called from the epoch loop")
    train_mod.save_policy = prof.wrap(original, "save", force=True)
    restore.append((train_mod, "save_policy", original))
    if callable(getattr(agent, "policy_state", None)):
        agent.policy_state = prof.wrap(agent.policy_state, "save", force=True)

    # Parts of the overhead, where found (informational; their absence is no error).
    found_parts = []
    if callable(getattr(agent, "numpy_actor", None)):
        make_actor = agent.numpy_actor

        class TimedActor:
            def __init__(self, actor):
                self._actor, self._call = actor, prof.wrap(actor, "act")

            def __call__(self, *args, **kwargs):
                return self._call(*args, **kwargs)

            def __getattr__(self, name):
                return getattr(self._actor, name)
        agent.numpy_actor = lambda *a, **k: TimedActor(make_actor(*a, **k))
        found_parts.append("act")
    for obj, attr, cat in ((trainer.worker, "_explore", "explore"), (trainer, "_store", "store"),
                           (agent, "preprocess", "preprocess")):
        if callable(getattr(obj, attr, None)):
            setattr(obj, attr, prof.wrap(getattr(obj, attr), cat))
            found_parts.append(cat)
    if callable(getattr(train_mod, "sample_mixed", None)):
        original = train_mod.sample_mixed
        train_mod.sample_mixed = prof.wrap(original, "sample")
        restore.append((train_mod, "sample_mixed", original))
        found_parts.append("sample")
    return {"compiled": list(prof.compiled_names), "overhead_parts": found_parts,
            "restore": restore}


def summarize(epoch: dict) -> dict:
    t, calls = epoch["time"], epoch["calls"]
    test_env = t.get("env_step_test", 0.0) + t.get("env_reset_test", 0.0)
    rows = {"env_step": t.get("env_step", 0.0), "env_reset": t.get("env_reset", 0.0),
            "update": sum(v for k, v in t.items() if k.startswith("update:")),
            "test": t.get("test", 0.0) + test_env, "save": t.get("save", 0.0),
            "checkpoint": t.get("checkpoint", 0.0)}
    wall = epoch["wall_s"]
    overhead = wall - sum(rows.values())
    # The wider count: everything but env time (training and test) and the compiled update.
    overhead_wide = wall - rows["env_step"] - rows["env_reset"] - test_env - rows["update"]
    parts = {"act": t.get("act", 0.0) + sum(v for k, v in t.items() if k.startswith("act:")),
             "explore": t.get("explore", 0.0), "store": t.get("store", 0.0),
             "sample": t.get("sample", 0.0), "preprocess": t.get("preprocess", 0.0)}
    parts["rest"] = overhead - sum(parts.values())
    compiled = [k for k in calls if k.startswith("update:") and not k.endswith(ABSORBED)]
    return {"wall_s": wall, "rows_s": rows, "test_env_s": test_env,
            "overhead_s": overhead, "overhead_frac": overhead / wall,
            "overhead_beyond_env_and_update_s": overhead_wide,
            "overhead_beyond_env_and_update_frac": overhead_wide / wall,
            "overhead_parts_s": parts,
            "env_steps_train": calls.get("env_step", 0),
            "env_steps_test": calls.get("env_step_test", 0),
            "compiled_calls": {k.split(":", 1)[1]: calls[k] for k in compiled},
            "compiled_s": {k.split(":", 1)[1]: t.get(k, 0.0) for k in compiled},
            "n_updates_total": epoch.get("n_updates_total"),
            "env_steps_total": epoch.get("env_steps_total")}


def print_table(epochs: list[dict], title: str) -> None:
    heads = ["warm-up epoch" if i == 0 and len(epochs) > 1 else f"epoch {i}"
             for i in range(len(epochs))]
    if len(epochs) > 1:
        heads[-1] = f"timed epoch ({len(epochs) - 1})"
    print(f"\n{title}\n")
    print("| part | " + " | ".join(f"{h} s | %" for h in heads) + " |")
    print("|---|" + "---|---|" * len(epochs))

    def line(label, values):
        cells = [f"{v:.2f} | {100 * v / e['wall_s']:.1f}" for v, e in zip(values, epochs)]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for key, label in ROWS:
        line(label, [e["rows_s"][key] for e in epochs])
        if key == "test":
            line("&nbsp;&nbsp;of which env.step + env.reset", [e["test_env_s"] for e in epochs])
    line("**overhead** (the rest)", [e["overhead_s"] for e in epochs])
    for key, label in OVERHEAD_PARTS + [("rest", "rest (logging, conversions, loop)")]:
        line(f"&nbsp;&nbsp;of which {label}", [e["overhead_parts_s"][key] for e in epochs])
    line("**epoch wall time**", [e["wall_s"] for e in epochs])
    line("overhead beyond env time and the compiled update",
         [e["overhead_beyond_env_and_update_s"] for e in epochs])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--env", default="PandaPush-v3")
    ap.add_argument("--n_cycles", type=int, default=None,
                    help="cycles per epoch (default: the env's default, 50 for Push)")
    ap.add_argument("--epochs", type=int, default=2,
                    help="epochs to run; the first is the warm-up (compilation), the last is timed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num_threads", type=int, default=None,
                    help="TensorFlow threads (default: the library's default)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="any other training parameter, e.g. --param jit_compile=0 (repeatable)")
    ap.add_argument("--out", default=None,
                    help="JSON path (default bench/results/profile_epoch-<date>.json)")
    args = ap.parse_args(argv)
    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    if args.n_cycles is not None and args.n_cycles < 1:
        raise UserError(f"--n_cycles must be >= 1, got {args.n_cycles}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from baselines_her.config import prepare_params
    from baselines_her.train import Trainer

    overrides = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param takes KEY=VALUE, got {item!r}")
        overrides[key] = value
    overrides.setdefault("rollout_process", 0)  # env steps in this process, to be timed
    overrides.update({"n_epochs": args.epochs, "seed": args.seed})
    if args.n_cycles is not None:
        overrides["n_cycles"] = args.n_cycles
    if args.num_threads is not None:
        overrides["num_threads"] = args.num_threads
    params = prepare_params(args.env, overrides)  # a bad env id or value: a UserError
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    logdir = tempfile.mkdtemp(prefix="profile_epoch-")
    now = datetime.datetime.now(datetime.timezone.utc)
    out_path = args.out or os.path.join(RESULTS, f"profile_epoch-{now.strftime('%Y%m%d-%H%M%S')}"
                                                 ".json")
    try:
        trainer = Trainer(params, logdir)
        n_updates = getattr(trainer.agent, "n_updates", None)
        prof = Profiler(lambda: {
            "n_updates_total": int(n_updates.numpy()) if n_updates is not None else None,
            "env_steps_total": getattr(trainer, "env_steps", None)})
        found = instrument(trainer, prof)
        try:
            trainer.run()
            prof.cut()
        finally:
            for module, attr, original in found["restore"]:
                setattr(module, attr, original)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)

    if len(prof.epochs) != args.epochs:
        raise NotFound(f"found {len(prof.epochs)} epochs for {args.epochs} (an epoch is cut at the "
                       f"first training rollout after Trainer._test)")
    epochs = [summarize(e) for e in prof.epochs]
    for i, e in enumerate(epochs):
        if not e["compiled_calls"]:
            raise NotFound(f"epoch {i}: no compiled function of the agent was called outside "
                           f"rollouts/test/saving (looked at {found['compiled']})")
        if e["env_steps_train"] == 0:
            raise NotFound(f"epoch {i}: no training env.step was seen")
    prev = [0] + [e["n_updates_total"] or 0 for e in epochs[:-1]]
    for e, p in zip(epochs, prev):
        e["updates"] = (e["n_updates_total"] - p) if e["n_updates_total"] is not None else None

    tf = import_tensorflow()
    m, last = {**machine(), "load_avg_at_start": load_at_start}, epochs[-1]
    result = {
        "benchmark": "profile_epoch", "date_utc": now.strftime("%Y-%m-%d %H:%M"), "machine": m,
        "env": args.env, "n_cycles": params.n_cycles, "rollout_batch_size":
        params.rollout_batch_size, "n_batches": params.n_batches, "batch_size": params.batch_size,
        "n_test_rollouts": params.n_test_rollouts, "seed": args.seed, "params": overrides,
        "tensorflow": tf.__version__,
        "tf_threads": {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
                       "inter": tf.config.threading.get_inter_op_parallelism_threads()},
        "compiled_functions": prof.compiled_names, "overhead_parts_found": found["overhead_parts"],
        "epochs": epochs, "target_overhead_frac": TARGET_OVERHEAD,
        "meets_target": {"overhead": last["overhead_frac"] <= TARGET_OVERHEAD,
                         "overhead_beyond_env_and_update":
                         last["overhead_beyond_env_and_update_frac"] <= TARGET_OVERHEAD},
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)

    calls = ", ".join(f"{k} x{v}" for k, v in last["compiled_calls"].items())
    print_table(epochs, f"{args.env}, {params.n_cycles} cycles x {params.rollout_batch_size} "
                        f"episodes x {params.T} steps = {last['env_steps_train']} env steps, "
                        f"{last['updates']} updates ({calls}), {params.n_test_rollouts} test "
                        f"episodes per epoch; {m['cpu']}, {m['cores']} cores, TF {tf.__version__}, "
                        f"{result['date_utc']} UTC, load average {load_at_start[0]} at start, "
                        f"{m['load_avg_1_5_15'][0]} at end; library at {m['git_commit']}"
                        f"{' + uncommitted changes' if m['library_modified'] else ''}")
    step_ms = 1e3 * last["rows_s"]["env_step"] / max(last["env_steps_train"], 1)
    upd_ms = 1e3 * last["rows_s"]["update"] / max(last["updates"] or 1, 1)
    print(f"\nlast epoch: env.step {step_ms:.2f} ms/step, compiled update {upd_ms:.2f} ms/update; "
          f"overhead {100 * last['overhead_frac']:.1f}% of wall time, "
          f"{100 * last['overhead_beyond_env_and_update_frac']:.1f}% beyond env time and the "
          f"compiled update (also test less its env time, policy files, checkpoint); "
          f"target <= {100 * TARGET_OVERHEAD:.0f}%: "
          + ", ".join("met" if v else "not met" for v in result["meets_target"].values()))
    print(f"JSON: {out_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(run_cli(main))  # a bad flag: one line, exit 2
    except NotFound as exc:
        print(f"error: cannot profile: {exc}; bench/profile_epoch.py does not match the "
              f"trainer", file=sys.stderr)
        sys.exit(1)
