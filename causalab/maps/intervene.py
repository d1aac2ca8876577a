"""The distributed interchange intervention, written once for every alignment family.

``z = phi(h_base)``; for each variable ``v``, ``z[block_v] = phi(h_source_v)[block_v]``;
the result is ``phi^-1(z)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from causalab.causal.task import Task
from causalab.errors import PartitionError, PartitionFieldError
from causalab.maps.alignment import AlignmentMap


class Partition:
    """Assigns each variable a block of the alignment map's coordinates.

    Blocks are lists of coordinate indices (not necessarily contiguous), pairwise
    disjoint, inside ``[0, width)``. An empty block is allowed and swaps nothing.
    """

    def __init__(self, blocks: Mapping[str, Sequence[int]], width: int) -> None:
        if not isinstance(width, int) or width < 1:
            raise PartitionError(f"partition width must be a positive integer, got {width!r}")
        self.width = width
        self.blocks: dict[str, tuple[int, ...]] = {}
        owner: dict[int, str] = {}
        for var, block in blocks.items():
            idx = tuple(int(i) for i in block)
            if len(set(idx)) != len(idx):
                raise PartitionError(f"block of variable {var!r} repeats coordinates: {list(idx)}")
            bad = [i for i in idx if not 0 <= i < width]
            if bad:
                raise PartitionError(
                    f"block of variable {var!r} has coordinates {bad} outside the hidden width {width} (valid: 0..{width - 1})"
                )
            for i in idx:
                if i in owner:
                    raise PartitionError(f"coordinate {i} is in the blocks of both {owner[i]!r} and {var!r}")
                owner[i] = var
            self.blocks[var] = idx
        self._masks: dict[tuple[str, torch.device], torch.Tensor] = {}

    @classmethod
    def contiguous(cls, variables: Sequence[str], size: int, width: int, start: int = 0) -> Partition:
        """Consecutive blocks of ``size`` coordinates, one per variable, from ``start``."""
        if size < 0:
            raise PartitionError(f"intervention size must be non-negative, got {size}")
        need = start + size * len(variables)
        if need > width:
            raise PartitionError(
                f"{len(variables)} variable(s) x intervention size {size} (from coordinate {start}) need "
                f"{need} coordinates, but the hidden width is {width}"
            )
        return cls({v: range(start + k * size, start + (k + 1) * size) for k, v in enumerate(variables)}, width)

    @property
    def variables(self) -> list[str]:
        return list(self.blocks)

    def __getitem__(self, var: str) -> tuple[int, ...]:
        if var not in self.blocks:
            raise PartitionError(f"the partition has no block for variable {var!r} (it has: {self.variables})")
        return self.blocks[var]

    def mask(self, var: str, device: torch.device | str = "cpu") -> torch.Tensor:
        device = torch.device(device)
        key = (var, device)
        if key not in self._masks:
            m = torch.zeros(self.width, dtype=torch.bool)
            m[list(self[var])] = True
            self._masks[key] = m.to(device)
        return self._masks[key]

    def check_fits(self, phi: AlignmentMap) -> None:
        """The partition must match the map's width and stay within its swappable coordinates."""
        if phi.width != self.width:
            raise PartitionError(f"partition is for width {self.width} but the alignment map has width {phi.width}")
        limit = phi.swappable
        for var, idx in self.blocks.items():
            if idx and max(idx) >= limit:
                raise PartitionError(
                    f"block of variable {var!r} reaches coordinate {max(idx)}, but {type(phi).__name__} only "
                    f"learns coordinates 0..{limit - 1} (raise its rank or shrink the blocks)"
                )

    def __repr__(self) -> str:
        return f"Partition(width={self.width}, blocks={ {v: list(b) for v, b in self.blocks.items()} })"


def _row_mask(var: str, r: torch.Tensor, n: int) -> torch.Tensor:
    """``rows`` entry as a boolean mask over the first dimension (checked)."""
    if r.dtype == torch.bool:
        if r.shape != (n,):
            raise PartitionError(f"rows of {var!r} must be a mask of shape {(n,)}, got {tuple(r.shape)}")
        return r
    return torch.zeros(n, dtype=torch.bool, device=r.device).index_fill(0, r.reshape(-1), True)


def interchange(
    phi: AlignmentMap,
    h_base: torch.Tensor,
    h_sources: Mapping[str, torch.Tensor],
    partition: Partition,
    rows: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Distributed interchange: swap each variable's block of ``phi`` coordinates from its source.

    ``h_base`` is ``(..., width)``; each ``h_sources[v]`` has the same shape. If no
    coordinate is swapped, ``h_base`` is returned unchanged.

    ``rows`` (optional) names, per variable, the rows whose source differs from the
    base (a boolean mask or row indices along the first dimension). Other rows'
    sources *are* their bases, so their swap is a no-op and ``phi`` is not run on them.

    Two ways to compute the same thing:

    - a map that is an orthogonal matrix (``phi.orthonormal_columns()`` is not None)
      swaps by projection, ``h_base + sum_v (h_v - h_base) Q_v Q_v^T`` with ``Q_v``
      the block's columns: two thin matrix products per variable instead of three
      passes of the full map;
    - any other map runs once, row by row, on the bases and the sources' intervened
      rows together (bases whose every coordinate is swapped are left out), then
      its inverse on the mixed coordinates.

    Parameters
    ----------
    phi : AlignmentMap
        The map from hidden states to the coordinates the variables own.
    h_base : torch.Tensor
        The bases' hidden states, ``(..., width)``.
    h_sources : mapping of str to torch.Tensor
        Per variable, its source's hidden states, shaped as ``h_base``.
    partition : Partition
        Which coordinates of ``phi(h)`` each variable owns.
    rows : mapping of str to torch.Tensor, optional
        Per variable, the rows whose source differs from the base.

    Returns
    -------
    torch.Tensor
        ``phi^-1(swap(phi(h_base), phi(h_source), blocks))``, shaped as ``h_base``.

    Raises
    ------
    PartitionError
        A source shaped unlike the base, or a partition wider than the map.

    Examples
    --------
    >>> import torch, causalab as cl
    >>> phi = cl.make_alignment("identity", 4)
    >>> partition = cl.Partition({"V": [0, 1]}, 4)
    >>> cl.interchange(phi, torch.zeros(1, 4), {"V": torch.ones(1, 4)}, partition)
    tensor([[1., 1., 0., 0.]])
    """
    for var, h_src in h_sources.items():
        if h_src.shape != h_base.shape:
            raise PartitionError(
                f"source hidden state for {var!r} has shape {tuple(h_src.shape)}, base has {tuple(h_base.shape)}"
            )
    active = [v for v in h_sources if len(partition[v]) > 0]
    if not active:
        return h_base
    n = h_base.shape[0] if h_base.dim() else 0
    picked: dict[str, torch.Tensor | None] = {}  # variable -> its rows (mask), None = every row
    for var in active:
        r = None if rows is None else rows.get(var)
        if r is not None:
            r = _row_mask(var, r, n)
            if not bool(r.any()):
                continue
        picked[var] = r
    if not picked:
        return phi.inverse(phi(h_base))

    columns = phi.orthonormal_columns()
    if columns is not None and max(max(partition[v]) for v in picked) < columns.shape[-1]:
        return _project(columns.to(h_base.dtype), h_base, h_sources, partition, picked)

    # bases whose every coordinate comes from a source need no phi(base)
    covered = None
    if len(set().union(*(partition[v] for v in picked))) == phi.width:
        covered = torch.ones(n, dtype=torch.bool, device=h_base.device)
        for r in picked.values():
            if r is not None:
                covered = covered & r
    base_rows = None if covered is None or not bool(covered.any()) else (~covered).nonzero().squeeze(1)
    parts = [h_base if base_rows is None else h_base[base_rows]]
    src_rows = {v: None if r is None else r.nonzero().squeeze(1) for v, r in picked.items()}
    parts += [h_sources[v] if r is None else h_sources[v][r] for v, r in src_rows.items()]
    out = phi(torch.cat(parts)) if len(parts) > 1 else phi(parts[0])
    offset = parts[0].shape[0]
    z = out[:offset] if base_rows is None else out.new_zeros(h_base.shape).index_put((base_rows,), out[:offset])
    for (var, r), part in zip(src_rows.items(), parts[1:]):
        zs = out[offset : offset + part.shape[0]]
        offset += part.shape[0]
        mask = partition.mask(var, z.device)
        z = torch.where(mask, zs, z) if r is None else z.index_put((r,), torch.where(mask, zs, z[r]))
    return phi.inverse(z)


def _project(
    columns: torch.Tensor,
    h_base: torch.Tensor,
    h_sources: Mapping[str, torch.Tensor],
    partition: Partition,
    picked: Mapping[str, torch.Tensor | None],
) -> torch.Tensor:
    """Interchange through an orthogonal ``phi(h) = h @ Q``: ``h_base + sum_v (h_v - h_base) Q_v Q_v^T``."""
    h = h_base
    for var, r in picked.items():
        q = columns[:, list(partition[var])]
        delta = ((h_sources[var] - h_base) @ q) @ q.T
        if r is not None:
            delta = delta * r.reshape(-1, *([1] * (h_base.dim() - 1))).to(delta.dtype)
        h = h + delta
    return h


def default_partition(task: Task, width: int, size: int) -> Partition:
    """Consecutive blocks of ``size`` coordinates, one per intervened variable.

    Raises :class:`~causalab.errors.PartitionFieldError` for ``intervention_size`` naming the
    valid sizes, ``1..width // (number of variables)``, when ``size`` is outside them.
    """
    n = len(task.variables)
    valid = f"valid: 1..{width // max(n, 1)} ({n} variable(s) at hidden width {width}), or an explicit partition"
    if isinstance(size, int) and size == 0:
        raise PartitionFieldError("intervention_size", f"0 gives every variable of {task.name!r} an empty block, so "
                                                       f"no interchange changes anything and there is nothing to fit; {valid}")
    try:
        return Partition.contiguous(task.variables, size, width)
    except PartitionError as exc:
        raise PartitionFieldError("intervention_size", f"task {task.name!r}: {exc}; {valid}") from None


def task_partition(task: Task, width: int, size: int, blocks: Mapping[str, Sequence[int]] | None = None) -> Partition:
    """The partition of a run: ``blocks`` (one list of coordinates per intervened variable of ``task``)
    where given, else :func:`default_partition`'s ``size`` consecutive coordinates per variable.

    Raises :class:`~causalab.errors.PartitionError` for blocks that miss a variable or name one the
    task does not have, and for blocks that are all empty.

    >>> from causalab.registry import make_task
    >>> task_partition(make_task("both_equality_relations"), 16, 4).blocks
    {'V1': (0, 1, 2, 3), 'V2': (4, 5, 6, 7)}
    >>> task_partition(make_task("both_equality_relations"), 16, 4, {"V1": [0]})
    Traceback (most recent call last):
    ...
    causalab.errors.PartitionError: no block for variable(s) ['V2'] of 'both_equality_relations' (variables: ['V1', 'V2'])
    """
    if blocks is None:
        return default_partition(task, width, size)
    missing = [v for v in task.variables if v not in blocks]
    if missing:
        raise PartitionError(f"no block for variable(s) {missing} of {task.name!r} (variables: {task.variables})")
    extra = [v for v in blocks if v not in task.variables]
    if extra:
        raise PartitionError(f"{task.name!r} has no variable(s) {extra} (variables: {task.variables})")
    return check_not_empty(Partition(blocks, width))


def check_not_empty(partition: Partition) -> Partition:
    """Refuse a partition whose every block is empty: no interchange would change anything, nothing could be fitted."""
    if partition.blocks and not any(partition.blocks.values()):
        raise PartitionFieldError("partition", f"every block is empty ({partition.blocks}); give each intervened "
                                               f"variable coordinates in 0..{partition.width - 1}")
    return partition
