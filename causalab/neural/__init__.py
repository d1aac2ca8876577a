"""Networks under study: targets and their intervention sites."""

from causalab.neural.mlp import MLPTarget, random_mlp, train_mlp, trained_mlp
from causalab.neural.target import Site, Target

__all__ = ["MLPTarget", "Site", "Target", "random_mlp", "train_mlp", "trained_mlp"]
