"""Run under ``mpiexec -n 2`` by tests/test_mpi.py: ``python tests/mpi_worker.py MODE OUT``."""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402

from baselines_her import mpi_util  # noqa: E402


def batch_for(rank, n=16, seed=0):
    rng = np.random.default_rng(seed + 100 * rank)
    return {"o": rng.normal(size=(n, 6)).astype(np.float32),
            "g": rng.normal(size=(n, 3)).astype(np.float32),
            "o_2": rng.normal(size=(n, 6)).astype(np.float32),
            "u": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
            "r": -(rng.random(n) < 0.7).astype(np.float32)}


def train_weights(out):
    from baselines_her.config import prepare_params
    from baselines_her.ddpg import DDPG
    from baselines_her.seeding import seed_everything
    params = prepare_params("PandaReach-v3", {"hidden": 16, "layers": 2, "num_threads": 1,
                                              "algo": sys.argv[3] if len(sys.argv) > 3 else "ddpg"})
    rngs = seed_everything(0, mpi_util.rank())
    agent = DDPG(6, 3, 3, params, tf_seed=rngs.tf_seed)
    agent.sync_from_root()
    for step in range(6):
        agent.train(batch_for(mpi_util.rank(), seed=step))
        agent.update_target_net()
    flat = agent.flat_weights()
    mpi_util.check_in_sync("weights", flat)
    np.save(os.path.join(out, f"weights_rank{mpi_util.rank()}.npy"), flat)


def normalizer(out):
    from baselines_her.normalizer import Normalizer
    norm = Normalizer(3, eps=1e-3)
    rng = np.random.default_rng(mpi_util.rank())
    for _ in range(3):
        norm.update(rng.normal(loc=mpi_util.rank() * 2.0, size=(50 + 30 * mpi_util.rank(), 3)))
        norm.recompute_stats()
    np.save(os.path.join(out, f"norm_rank{mpi_util.rank()}.npy"), np.stack([norm.mean, norm.std]))


def crash(out):
    def work():
        if mpi_util.rank() == 1:
            time.sleep(0.5)
            raise ValueError("deliberate failure on rank 1")
        mpi_util.comm().Barrier()  # rank 0 would wait here forever without the abort
    mpi_util.abort_on_exception(work)


if __name__ == "__main__":
    {"weights": train_weights, "normalizer": normalizer, "crash": crash}[sys.argv[1]](sys.argv[2])
