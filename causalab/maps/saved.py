"""A fitted alignment map as a file: safetensors weights plus what rebuilds the map.

One ``.safetensors`` file holds the map's state (parameters and buffers: a rotation's
Cayley parameters, a RevNet's couplings, a standardisation's fitted statistics) and,
in its metadata, a small JSON record: the spec string the map was built from, its
width and dtype, optionally the partition it was fitted with and the config hash of
the run that fitted it. :func:`load_alignment` rebuilds the family from the spec,
loads the state and gives back a map whose outputs equal the saved one's to the bit.

Only tensors are read back (safetensors never unpickles code), so a map file from
anyone is safe to open; its family must be registered here (a user's own family:
import the module that registers it first, :func:`causalab.import_plugin`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from causalab.errors import RegistryError, SavedAlignmentError
from causalab.maps.alignment import AlignmentMap
from causalab.maps.intervene import Partition
from causalab.maps.spec import make_alignment
from causalab.registry import ALIGNMENTS

FORMAT = "causalab-alignment-map"
FORMAT_VERSION = 1
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class SavedAlignment:
    """A map read back by :func:`load_alignment`, with what was saved beside it."""

    map: AlignmentMap
    spec: str
    width: int
    dtype: str | None  # of the map's floating-point state; None for a map without any (identity)
    partition: Partition | None
    config_hash: str | None
    path: Path
    causalab_version: str | None = None


def _dtype_name(phi: AlignmentMap) -> str | None:
    found = {t.dtype for t in phi.state_dict().values() if t.is_floating_point()}
    if len(found) > 1:
        names = sorted(str(d).removeprefix("torch.") for d in found)
        raise SavedAlignmentError(f"{type(phi).__name__} mixes dtypes {names}; convert it to one first (phi.to(dtype))")
    if not found:
        return None
    name = str(found.pop()).removeprefix("torch.")
    if name not in _DTYPES:
        raise SavedAlignmentError(f"cannot save a map in dtype {name}; valid: {', '.join(_DTYPES)}")
    return name


def _rebuild(spec: str, width: int, dtype: str | None) -> AlignmentMap:
    """A fresh map of ``spec``, built without touching torch's global random state."""
    with torch.random.fork_rng(devices=[]):
        phi = make_alignment(spec, width)
    return phi.to(_DTYPES[dtype]) if dtype is not None else phi


def save_alignment(
    phi: AlignmentMap,
    path: str | os.PathLike,
    *,
    partition: Partition | None = None,
    config_hash: str | None = None,
    spec: str | None = None,
) -> Path:
    """Write ``phi`` to ``path``: one safetensors file with its state, and its spec in the metadata.

    Parameters
    ----------
    phi : AlignmentMap
        The map to save (any family, fitted or not).
    path : str or os.PathLike
        A ``.safetensors`` file; parent folders are created.
    partition : Partition, optional
        The blocks of ``phi``'s coordinates that the variables own; saved beside the map.
    config_hash : str, optional
        The hash of the run that fitted the map (``ExperimentConfig.hash()``).
    spec : str, optional
        Defaults to ``phi.spec`` (set when :func:`causalab.make_alignment` built the map); a map
        built by its constructor needs it given.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    SavedAlignmentError
        The spec does not rebuild ``phi`` (checked before anything is written: a map rebuilt
        from it must take ``phi``'s state and give the same outputs).
    PartitionError
        The partition does not fit the map.

    Examples
    --------
    >>> phi = make_alignment("rotation:rank=4", 16)
    >>> save_alignment(phi, "rotation.safetensors").name
    'rotation.safetensors'
    """
    if not isinstance(phi, AlignmentMap):
        raise SavedAlignmentError(f"save_alignment saves an AlignmentMap, got {type(phi).__name__}")
    spec = spec if spec is not None else phi.spec
    if spec is None:
        if not any(type(phi) is ALIGNMENTS.get(name) for name in ALIGNMENTS.names()):
            raise SavedAlignmentError(
                f"{type(phi).__name__} is not a registered alignment family, so no spec string rebuilds it; "
                "register its class with causalab.register_alignment (for a standardised map, use the family's "
                "standardize=true knob instead of wrapping it)"
            )
        raise SavedAlignmentError(
            f"{type(phi).__name__} was built by its constructor, so its spec string is unknown; build it with "
            "causalab.make_alignment or pass spec='family:knob=value,...' (see `causalab list alignments`)"
        )
    if partition is not None:
        partition.check_fits(phi)
    if config_hash is not None and not isinstance(config_hash, str):
        raise SavedAlignmentError(f"config_hash must be a string (ExperimentConfig.hash()), got {config_hash!r}")
    dtype = _dtype_name(phi)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in phi.state_dict().items()}
    _check_spec(phi, spec, dtype, state)
    info = {
        "spec": spec,
        "width": phi.width,
        "dtype": dtype,
        "partition": None if partition is None else {v: list(b) for v, b in partition.blocks.items()},
        "config_hash": config_hash,
        "causalab_version": _version(),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={"format": FORMAT, "version": str(FORMAT_VERSION), "causalab": json.dumps(info)})
    os.replace(tmp, path)
    return path


def map_folder(folder: str | os.PathLike) -> Path:
    """A folder to save maps into, created if missing (absolute, so worker processes agree on it).

    Raises :class:`SavedAlignmentError` if the path exists and is not a folder, or cannot be created.
    """
    folder = Path(folder).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise SavedAlignmentError(f"the folder for saved maps {str(folder)!r} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SavedAlignmentError(f"cannot create the folder for saved maps {str(folder)!r}: {exc}") from None
    return folder


def _check_spec(phi: AlignmentMap, spec: str, dtype: str | None, state: dict[str, torch.Tensor]) -> None:
    """The map rebuilt from ``spec`` takes ``phi``'s state and computes what ``phi`` computes."""
    try:
        ref = _rebuild(spec, phi.width, dtype)
        ref.load_state_dict(state)
    except RegistryError as exc:
        raise SavedAlignmentError(f"spec {spec!r} does not build a map: {exc}") from None
    except RuntimeError as exc:
        raise SavedAlignmentError(f"spec {spec!r} does not describe this {type(phi).__name__}: {exc}") from None
    if type(ref) is not type(phi):
        raise SavedAlignmentError(f"spec {spec!r} builds a {type(ref).__name__}, not a {type(phi).__name__}")
    device = next((t.device for t in phi.state_dict().values()), torch.device("cpu"))
    probe_dtype = _DTYPES[dtype] if dtype is not None else torch.float32
    probe = torch.randn(8, phi.width, generator=torch.Generator().manual_seed(0), dtype=probe_dtype)
    with torch.no_grad():
        same = torch.equal(ref(probe), phi(probe.to(device)).cpu())
    if not same:
        raise SavedAlignmentError(
            f"spec {spec!r} builds a map with the same parameters as this {type(phi).__name__} but different "
            "outputs: a knob that sets no parameter shape (a bound, a flag) differs; give the spec it was built with"
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("causalab")
    except PackageNotFoundError:
        return "unknown"


def read_info(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON record and the tensors of a map file, checked to be one."""
    path = Path(path)
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise SavedAlignmentError(f"no saved alignment map at {str(path)!r}: the path {why}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise SavedAlignmentError(f"{str(path)!r} is not a safetensors file: {exc}") from None
    if meta.get("format") != FORMAT or "causalab" not in meta:
        raise SavedAlignmentError(
            f"{str(path)!r} is a safetensors file but not a saved alignment map (written by causalab.save_alignment)"
        )
    if int(meta.get("version", "0")) > FORMAT_VERSION:
        raise SavedAlignmentError(
            f"{str(path)!r} has map-file format version {meta['version']}; this causalab reads up to {FORMAT_VERSION}"
        )
    try:
        info = json.loads(meta["causalab"])
        _ = info["spec"], info["width"], info["dtype"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SavedAlignmentError(f"{str(path)!r}: its map record is damaged ({exc})") from None
    return info, state


def load_alignment(path: str | os.PathLike, *, width: int | None = None, device: torch.device | str = "cpu") -> SavedAlignment:
    """Rebuild the map saved at ``path``: same family, knobs, dtype and state, so the same outputs to the bit.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_alignment`. Only tensors and text are read, never pickled code.
    width : int, optional
        The hidden width the caller will use the map at (a target's site); a map saved at
        another width fails.
    device : torch.device or str
        Where the map's state goes (``"cpu"`` by default, whatever device it was fitted on).

    Returns
    -------
    SavedAlignment
        ``.map``, ``.partition``, ``.spec``, ``.config_hash`` and the saved metadata.

    Raises
    ------
    SavedAlignmentError
        A missing or foreign file, a wrong width, a state that does not fit the spec.
    RegistryError
        The map's family is not registered here.

    Examples
    --------
    >>> path = save_alignment(make_alignment("rotation:rank=4", 16), "rotation.safetensors")
    >>> loaded = load_alignment(path, width=16)
    >>> loaded.spec, loaded.map.swappable
    ('rotation:rank=4', 4)
    """
    info, state = read_info(path)
    spec, saved_width, dtype = info["spec"], info["width"], info["dtype"]
    if width is not None and width != saved_width:
        raise SavedAlignmentError(f"{str(path)!r} holds a map of width {saved_width}; it cannot be used at width {width}")
    if dtype is not None and dtype not in _DTYPES:
        raise SavedAlignmentError(f"{str(path)!r}: unknown dtype {dtype!r}; valid: {', '.join(_DTYPES)}")
    try:
        phi = _rebuild(spec, saved_width, dtype)
    except RegistryError as exc:
        raise RegistryError(
            f"{str(path)!r} was saved from spec {spec!r}, which does not build here: {exc} (a family of your own: "
            "import the module that registers it first, causalab.import_plugin)"
        ) from None
    try:
        phi.load_state_dict(state)
    except RuntimeError as exc:
        raise SavedAlignmentError(f"{str(path)!r}: the saved state does not fit a map of spec {spec!r}: {exc}") from None
    phi = phi.to(device)
    partition = None
    if info.get("partition") is not None:
        partition = Partition(info["partition"], saved_width)
        partition.check_fits(phi)
    return SavedAlignment(
        phi, spec, saved_width, dtype, partition, info.get("config_hash"), Path(path), info.get("causalab_version")
    )
