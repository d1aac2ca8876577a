"""Alignment maps: the layer above the network (``neural/``), below fitting (``fit/``).

- ``alignment.py``: :class:`AlignmentMap`, the contract every map family implements;
- ``intervene.py``: :class:`Partition` and :func:`interchange`, the distributed interchange;
- ``nearest.py``: nearest stored points, the geometry of the constructed map;
- ``saved.py``: a fitted map as a spec string plus safetensors;
- ``pyvene_export.py``: any fitted map as a pyvene intervention, placed at a causalab site.

Map families themselves are plug-ins in the top-level ``alignments`` package, found by
name through :mod:`causalab.registry`.
"""
