"""Exception classes. Every error names the node, variable, site or parameter at fault."""

from __future__ import annotations


class CausalabError(Exception):
    """Base class of every error causalab raises on purpose."""


# --- algorithms -----------------------------------------------------------------
class AlgorithmError(CausalabError, ValueError):
    """An algorithm (causal graph) is malformed or was used wrongly."""


class CycleError(AlgorithmError):
    """The causal graph has a cycle."""


class MechanismError(AlgorithmError):
    """A mechanism's arguments do not match its node's parents, or it is missing."""


class UnknownNodeError(AlgorithmError, KeyError):
    """A node name that the algorithm does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingInputError(AlgorithmError):
    """An input node was given no value."""


class NoOutputError(AlgorithmError):
    """The algorithm has no output node."""


class DuplicateNodeError(AlgorithmError):
    """Two nodes share a name."""


class DomainError(AlgorithmError):
    """A value lies outside a node's finite domain."""


class SamplingError(AlgorithmError):
    """Counterfactual sampling was asked for something it cannot produce."""


# --- registry and specs ---------------------------------------------------------
class RegistryError(CausalabError, ValueError):
    """An unknown plug-in name, or a bad knob in a spec string."""


# --- neural side ----------------------------------------------------------------
class SiteError(CausalabError, ValueError):
    """A site that the target does not have (layer out of range, unknown position)."""


class ArchitectureError(CausalabError, ValueError):
    """A model whose architecture a code path does not cover (no adapter, no blocks found)."""


class PartitionError(CausalabError, ValueError):
    """A partition that does not fit the alignment map's width."""


class AlignmentError(CausalabError, ValueError):
    """An alignment map was built or used wrongly."""


class FitError(CausalabError, RuntimeError):
    """Fitting an alignment map failed (non-finite loss, a network that changed)."""


class ConfigError(CausalabError, ValueError):
    """An experiment configuration names something invalid."""


class ScoreError(CausalabError, ValueError):
    """A generalisation-aware score was asked for something it cannot measure (see ``causalab.scores``)."""
