"""causalab: align symbolic algorithms to neural networks and measure interchange-intervention accuracy."""

import sys as _sys

# the built-in plug-ins register their tasks and map families; the registry itself imports none
import algorithms as _algorithms  # noqa: E402, F401
import alignments as _alignments  # noqa: E402, F401
from causalab.causal import Algorithm, CounterfactualDataset, Task, sample_counterfactuals
from causalab.errors import CausalabError
from causalab.experiments import BuildSettings, ExperimentConfig, ExperimentResult, run_experiment
from causalab.fit.construct import Construction, construct_alignment
from causalab.fit.fitting import FitConfig, evaluate, fit_alignment, prepare
from causalab.fit.measure import Measurement, MeasureSettings, Run, measure, measure_run
from causalab.fit.metrics import IIAResult, wilson_interval
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition, interchange
from causalab.maps.saved import SavedAlignment, load_alignment, save_alignment
from causalab.maps.spec import AlignmentSpec, make_alignment
from causalab.neural import LMTarget, MLPTarget, Site, Target, random_mlp, train_mlp, trained_mlp
from causalab.neural.build import build_target
from causalab.registry import import_plugin, make_task, register_algorithm, register_alignment
from causalab.runtime import RuntimeSettings

# Kept for old imports: the modules that lived loose in causalab/ before the folders showed the layers
# answer at their old paths too, as the same module objects (``causalab.train is causalab.fit.fitting``),
# and stay attributes of the package as submodules were. Registered here rather than as shim files, so that
# ``import causalab.measure`` cannot rebind ``causalab.measure``, the function, to a module. Nothing inside the
# project imports an old path (tests/test_layers.py checks).
_OLD_PATHS = {
    "alignment": "causalab.maps.alignment",
    "intervene": "causalab.maps.intervene",
    "nearest": "causalab.maps.nearest",
    "saved_alignment": "causalab.maps.saved",
    "construct": "causalab.fit.construct",
    "measure": "causalab.fit.measure",
    "metrics": "causalab.fit.metrics",
    "neuron_search": "causalab.fit.neuron_search",
    "schedule": "causalab.fit.schedule",
    "train": "causalab.fit.fitting",
    "fit.train": "causalab.fit.fitting",  # fitting a map is "fit"; "train" names training a network
}
for _old, _new in _OLD_PATHS.items():
    _sys.modules.setdefault(f"{__name__}.{_old}", _sys.modules[_new])
    _parent, _, _name = f"{__name__}.{_old}".rpartition(".")
    if _parent == __name__:
        globals().setdefault(_name, _sys.modules[_new])  # as before: ``causalab.measure`` stays the function
    else:
        setattr(_sys.modules[_parent], _name, _sys.modules[_new])
del _old, _new, _parent, _name

# the pyvene export imports pyvene (and transformers) on first use: seconds that `import causalab` does not pay;
# `causalab.pyvene` is pyvene itself, imported without the notice it prints on import
_PYVENE_EXPORTS = ("to_pyvene", "pyvene_module", "pyvene_representation", "pyvene_unit_locations", "pyvene")


def __getattr__(name: str):
    if name in _PYVENE_EXPORTS:
        from causalab.maps import pyvene_export

        value = globals()[name] = getattr(pyvene_export, name)  # looked up once
        return value
    raise AttributeError(f"module 'causalab' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "Algorithm",
    "AlignmentMap",
    "AlignmentSpec",
    "BuildSettings",
    "CausalabError",
    "Construction",
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
    "Run",
    "RuntimeSettings",
    "SavedAlignment",
    "Site",
    "Target",
    "Task",
    "build_target",
    "construct_alignment",
    "evaluate",
    "fit_alignment",
    "import_plugin",
    "interchange",
    "load_alignment",
    "make_alignment",
    "make_task",
    "measure",
    "measure_run",
    "prepare",
    "pyvene",
    "pyvene_module",
    "pyvene_representation",
    "pyvene_unit_locations",
    "random_mlp",
    "register_algorithm",
    "register_alignment",
    "run_experiment",
    "sample_counterfactuals",
    "save_alignment",
    "to_pyvene",
    "train_mlp",
    "trained_mlp",
    "wilson_interval",
]
