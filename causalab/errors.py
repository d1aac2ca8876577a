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
    """A site that the target does not have (layer out of range, unknown position).

    ``part`` says which part of the site is wrong: ``"layer"``, ``"position"`` or ``"component"``
    (``None`` where the error is about the site as a whole), so a config's error names its field.
    """

    def __init__(self, message: str, part: str | None = None) -> None:
        super().__init__(message)
        self.part = part


class ArchitectureError(CausalabError, ValueError):
    """A model whose architecture a code path does not cover (no adapter, no blocks found)."""


class PartitionError(CausalabError, ValueError):
    """A partition that does not fit the alignment map's width."""


class AlignmentError(CausalabError, ValueError):
    """An alignment map was built or used wrongly."""


class NotInjectiveError(AlignmentError):
    """Two distinct inputs have the same hidden state at a site (within a tolerance): no map of that site's
    states can tell them apart, so Theorem 1's constructed map (``causalab.construct_alignment``) cannot be built."""


class DataError(CausalabError, ValueError):
    """Pairs or network inputs that cannot be used: none at all, or non-finite values (NaN, inf)."""


class SavedAlignmentError(CausalabError, ValueError):
    """A saved alignment map cannot be written or read back (missing or foreign file, shapes that disagree)."""


class FitError(CausalabError, RuntimeError):
    """Fitting an alignment map failed (non-finite loss, a network that changed)."""


class ConfigError(CausalabError, ValueError):
    """An experiment configuration names something invalid."""


class RuntimeSettingError(ConfigError):
    """A runtime setting (cache budget or dtype, compilation, threads) holds an invalid value; ``setting`` names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


class ConfigFieldError(ConfigError):
    """A config field holds an invalid value; ``field`` names it (dotted for nested fields).

    ``cause`` is the error of the piece that failed to build (a :class:`SiteError` for a
    bad layer, a :class:`RegistryError` for an unknown family), when there was one.
    """

    def __init__(self, field: str, message: str, cause: CausalabError | None = None) -> None:
        self.field = field
        self.detail = message
        self.cause = cause
        super().__init__(f"config field {field!r}: {message}")

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.field, self.detail, self.cause))


# A config field whose piece failed to build is both a ConfigFieldError and the piece's own
# error class, so ``except SiteError`` still catches a bad layer found by validation.
class AlgorithmFieldError(ConfigFieldError, AlgorithmError):
    """A config field naming an algorithm that cannot be built."""


class RegistryFieldError(ConfigFieldError, RegistryError):
    """A config field naming an unknown plug-in or knob."""


class SiteFieldError(ConfigFieldError, SiteError):
    """A config field naming a site the target does not have."""


class ArchitectureFieldError(ConfigFieldError, ArchitectureError):
    """A config field naming a model a code path does not cover."""


class PartitionFieldError(ConfigFieldError, PartitionError):
    """A config field whose blocks do not fit the map."""


class AlignmentFieldError(ConfigFieldError, AlignmentError):
    """A config field naming an alignment map that cannot be built."""


class FitSettingError(ConfigFieldError, FitError):
    """A fitting setting (``FitConfig``'s, and the same field of a run's config) holding an invalid value."""


FIELD_ERRORS: tuple[type[ConfigFieldError], ...] = (
    AlgorithmFieldError, RegistryFieldError, SiteFieldError, ArchitectureFieldError, PartitionFieldError,
    AlignmentFieldError,
)


def field_error(field: str, exc: Exception, message: str | None = None) -> ConfigFieldError:
    """A :class:`ConfigFieldError` for ``field``, also of ``exc``'s kind (a :class:`SiteError`, ...) where it has one."""
    if isinstance(exc, ConfigFieldError):
        return exc
    cause = exc if isinstance(exc, CausalabError) else None
    for cls in FIELD_ERRORS:
        if isinstance(exc, cls.__bases__[1]):
            return cls(field, message or str(exc), cause)
    return ConfigFieldError(field, message or str(exc), cause)


class ScoreError(CausalabError, ValueError):
    """A generalisation-aware score was asked for something it cannot measure (see ``causalab.scores``)."""


# --- experiments -----------------------------------------------------------------
class StoreError(CausalabError, ValueError):
    """A results file that cannot be read (a corrupt line other than a truncated last one)."""


class SweepError(CausalabError, RuntimeError):
    """A sweep could not run (an executor that is not available, a run that failed with ``stop_on_error``)."""


class ReportError(CausalabError, ValueError):
    """A report was asked for something the records do not hold (an unknown field, no records)."""
