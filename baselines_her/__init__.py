"""baselines_her: Hindsight Experience Replay (DDPG/TD3 + HER) in TensorFlow 2."""
import os

# Set before TensorFlow is first imported (every module that imports it imports this package
# first). On Intel CPUs TensorFlow's oneDNN custom ops print a notice on stderr that no log level
# silences, which breaks the one-line user-error contract; turning them off removes it at about 3%
# of the default (XLA) update's time (docs/architecture.md). A user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
