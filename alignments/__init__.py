"""Alignment-map families, one file per family. Each registers itself by name."""

from alignments.identity import IdentityMap
from alignments.rotation import RotationMap

__all__ = ["IdentityMap", "RotationMap"]
from alignments.constructed import ConstructedMap
from alignments.flows import AffineFlowMap, GlowMap, SplineFlowMap
from alignments.revnet import RevNetMap
from alignments.standardize import Standardized
