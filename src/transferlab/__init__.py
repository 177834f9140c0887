"""transferlab: when something is learned on A, how much of it holds on B?

Train a learner (a LoRA adapter, later a probe) on a source, evaluate it on every
target, normalise against baseline and oracle, and show the transfer matrix.
"""

__version__ = "0.1.0"
