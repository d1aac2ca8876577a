"""Nearest points in R^d, exactly enough to tell float rounding from distinct states.

:func:`find_within` answers "which stored point is this row, within a radius?" for many
rows at once through a sorted random projection (a projection never exceeds the distance,
so only points whose projection lies within the radius are compared);
:func:`closest_pair` finds the two nearest rows of a set, optionally across groups only.
Both work in float64. The constructed alignment map (``alignments/constructed.py``) and
:func:`causalab.construct_alignment` use them.
"""

from __future__ import annotations

import torch

_PROJECTION_SEED = 1234567


def _direction(width: int, device: torch.device) -> torch.Tensor:
    """A fixed unit vector (the same for every map of this width): the projection rows are sorted by."""
    u = torch.randn(width, generator=torch.Generator().manual_seed(_PROJECTION_SEED), dtype=torch.float64)
    return (u / torch.linalg.vector_norm(u)).to(device)


def find_within(points: torch.Tensor, x: torch.Tensor, radius: float,
                skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``x``, the nearest row of ``points`` within ``radius`` (Euclidean) and its distance;
    ``(-1, inf)`` where there is none. ``skip[i]`` (optional) is a point row ``i`` must not be matched to
    (itself, when ``x`` is ``points``).

    Rows are sorted by a fixed random projection; only points whose projection lies within
    ``radius`` of the row's are compared (a projection never exceeds the distance), in float64.
    """
    m = x.shape[0]
    found = torch.full((m,), -1, dtype=torch.long, device=x.device)
    best = torch.full((m,), float("inf"), dtype=torch.float64, device=x.device)
    if len(points) == 0 or m == 0:
        return found, best
    u = _direction(points.shape[-1], x.device)
    pd = points.to(x.device).double()
    keys, order = torch.sort(pd @ u)
    xs = x.double()
    xu = xs @ u
    lo = torch.searchsorted(keys, xu - radius)
    hi = torch.searchsorted(keys, xu + radius, right=True)
    for k in range(int((hi - lo).max())):
        cand = lo + k
        ok = cand < hi
        j = order[cand.clamp(max=len(points) - 1)]
        dist = torch.linalg.vector_norm(xs - pd[j], dim=-1)
        near = ok & (dist <= radius) & (dist < best)
        if skip is not None:
            near = near & (j != skip)
        found, best = torch.where(near, j, found), torch.where(near, dist, best)
    return found, best


# a sweep that needs more neighbours in projection order than this (or than a sixteenth of the rows) falls
# back to comparing every pair: an offset costs one pass over the rows, all pairs about n / 16 passes' time
_SWEEP_OFFSETS = 64


def closest_pair(x: torch.Tensor, group: torch.Tensor | None = None) -> tuple[int, int, float]:
    """The two rows of ``x`` nearest each other (Euclidean), and their distance; rows of the same ``group``
    (e.g. states of the same input) are not compared. ``(-1, -1, inf)`` when no two rows may be compared.

    Exact, in float64. Rows are sorted by the fixed random projection of :func:`find_within` and
    each is compared with its k-th successor, k = 1, 2, ..., until every successor's projection
    lies farther than the best distance found (a projection never exceeds the distance): about
    linear in the rows where states are spread out. Where that would take more offsets than
    comparing every pair costs, every pair is compared instead (``|a|^2 + |b|^2 - 2ab`` in chunks of about four
    million distances, then the exact difference for the pair found).
    """
    xd = x.detach().reshape(x.shape[0], -1).double()
    n = xd.shape[0]
    if n < 2:
        return -1, -1, float("inf")
    keys, order = torch.sort(xd @ _direction(xd.shape[1], xd.device))
    ordered = xd[order]
    same = group[order] if group is not None else None
    best, pair = float("inf"), (-1, -1)
    for k in range(1, n):
        if k > max(_SWEEP_OFFSETS, n // 16):
            return _closest_pair_dense(xd, group)
        if float((keys[k:] - keys[:-k]).min()) > best:
            break
        dist = torch.linalg.vector_norm(ordered[k:] - ordered[:-k], dim=-1)
        if same is not None:
            dist = dist.masked_fill(same[k:] == same[:-k], float("inf"))
        v, i = dist.min(0)
        if float(v) < best:
            a, b = int(order[int(i)]), int(order[int(i) + k])
            best, pair = float(v), (min(a, b), max(a, b))
    if pair[0] < 0:
        return -1, -1, float("inf")
    return pair[0], pair[1], best


def _closest_pair_dense(xd: torch.Tensor, group: torch.Tensor | None) -> tuple[int, int, float]:
    """:func:`closest_pair` by comparing every pair of rows (float64 rows)."""
    n = xd.shape[0]
    chunk = max(1, (1 << 22) // max(n, 1))
    sq = (xd * xd).sum(-1)
    best = (float("inf"), -1, -1)
    for a in range(0, n, chunk):
        d2 = sq[a:a + chunk, None] + sq[None, :] - 2 * (xd[a:a + chunk] @ xd.T)
        rows = torch.arange(a, min(a + chunk, n), device=xd.device)
        d2[torch.arange(len(rows)), rows] = float("inf")
        if group is not None:
            d2 = d2.masked_fill(group[rows, None] == group[None, :], float("inf"))
        v, j = d2.reshape(-1).min(0)
        if float(v) < best[0]:
            best = (float(v), int(rows[int(j) // n]), int(j) % n)
    if best[1] < 0:
        return -1, -1, float("inf")
    i, j = best[1], best[2]
    return i, j, float(torch.linalg.vector_norm(xd[i] - xd[j]))
