"""Networks under study: targets and their intervention sites."""

from causalab.neural.lm import LMTarget, from_pretrained, random_lm
from causalab.neural.mlp import MLPTarget, random_mlp, train_mlp, trained_mlp
from causalab.neural.target import Site, Target

__all__ = ["LMTarget", "MLPTarget", "from_pretrained", "random_lm", "Site", "Target", "random_mlp", "train_mlp", "trained_mlp"]
