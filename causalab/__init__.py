"""causalab: align symbolic algorithms to neural networks and measure interchange-intervention accuracy."""

from causalab.alignment import AlignmentMap
from causalab.causal import Algorithm, CounterfactualDataset, Task, sample_counterfactuals
from causalab.errors import CausalabError
from causalab.experiments import ExperimentConfig, ExperimentResult, run_experiment
from causalab.intervene import Partition, interchange
from causalab.measure import Measurement, MeasureSettings, measure
from causalab.metrics import IIAResult, wilson_interval
from causalab.neural import LMTarget, MLPTarget, Site, Target, random_mlp, train_mlp, trained_mlp
from causalab.neural.build import build_target
from causalab.registry import (
    AlignmentSpec,
    import_plugin,
    make_alignment,
    make_task,
    register_algorithm,
    register_alignment,
)
from causalab.train import FitConfig, evaluate, fit_alignment, prepare

__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "AlignmentMap",
    "AlignmentSpec",
    "CausalabError",
    "CounterfactualDataset",
    "ExperimentConfig",
    "ExperimentResult",
    "FitConfig",
    "IIAResult",
    "LMTarget",
    "MLPTarget",
    "MeasureSettings",
    "Measurement",
    "Partition",
    "Site",
    "Target",
    "Task",
    "build_target",
    "evaluate",
    "fit_alignment",
    "import_plugin",
    "interchange",
    "make_alignment",
    "make_task",
    "measure",
    "prepare",
    "random_mlp",
    "register_algorithm",
    "register_alignment",
    "run_experiment",
    "sample_counterfactuals",
    "train_mlp",
    "trained_mlp",
    "wilson_interval",
]
