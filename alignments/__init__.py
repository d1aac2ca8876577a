"""Alignment-map families, one file per family. Each registers itself by name."""

from alignments.identity import IdentityMap
from alignments.rotation import RotationMap

__all__ = ["IdentityMap", "RotationMap"]
