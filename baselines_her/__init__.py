"""baselines_her: Hindsight Experience Replay (DDPG/TD3 + HER) in TensorFlow 2."""

__version__ = "0.1.0"
