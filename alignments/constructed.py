"""The map of the paper's Theorem 1 (Sutter et al. 2025): constructed from the pairs it is scored on, not fitted.

``phi = S . R``: a fixed invertible map ``R`` (knob ``fixed``: a random rotation drawn
from a fixed seed, the default, or the identity), then ``S``, a swap of finitely many
stored point pairs in ``R``'s coordinates: each intervention-made code ``p_i`` (a base's
coordinates with a source's block swapped in, reached by no input) with ``r_i = R(q_i)``,
where ``q_i`` is a *target state*, reached by no input either, whose output under the
rest of the network is the counterfactual label. ``S`` is an involution, so
``phi^-1 = R^-1 . S`` and ``phi`` is a bijection of ``R^d``:

- on every state the map was not built on (in particular every reachable state, so the
  network's own behaviour is untouched), ``phi = R``: on new inputs the map is its fixed
  rotation (or the identity) and carries no alignment at all;
- ``phi^-1(p_i) = q_i``, so the interchange ``phi^-1(mix(phi(h_base), phi(h_source)))``
  returns ``q_i`` and the network answers the counterfactual label.

Why a rotation by default: with the identity, a source whose block of neurons equals the
base's (ReLU units that are off in both) makes a code that *is* the base's own state,
which no map can move; a generic rotation mixes every neuron into every block, so that
happens only when source and base are the same input.

Matching rule: a row ``x`` of ``R``'s coordinates is the stored point ``s`` when
``||x - s||_2 <= atol`` (the absolute tolerance set at construction,
:attr:`ConstructedMap.atol`); stored points are kept more than ``2 * atol`` apart from
each other and from every reachable state's coordinates, so a row matches at most one
point. Rows are looked up through a sorted random projection (:mod:`causalab.maps.nearest`),
not a dense distance matrix.

Build one with :func:`causalab.construct_alignment` (or ``alignment = "constructed"`` in
a config, where :func:`causalab.measure` constructs it instead of fitting); the knobs set
the fixed map and how target states are searched for. Its complexity is what it stores:
:attr:`ConstructedMap.num_parameters` counts the stored values (``2 n d`` for the points,
plus ``d^2`` for a rotation), :attr:`ConstructedMap.nbytes` their bytes.
"""

from __future__ import annotations

import torch

from causalab.errors import AlignmentError
from causalab.maps.alignment import AlignmentMap
from causalab.maps.knobs import int_at_least, positive_float
from causalab.maps.nearest import find_within
from causalab.registry import register_alignment

FIXED = ("rotation", "identity")
_ROTATION_SEED = 7


@register_alignment("constructed")
class ConstructedMap(AlignmentMap):
    """A fixed rotation (or identity) plus a swap of finitely many point pairs; see the module docstring.

    Knobs: ``fixed``, the map on every state it was not built on (``"rotation"`` or
    ``"identity"``). How :func:`causalab.construct_alignment` searches for target states:
    ``steps``, the most gradient steps per target state; ``lr``, Adam's step size as a
    fraction of the states' root-mean-square coordinate; ``margin_steps``, steps taken on
    after the counterfactual label first wins (a margin against float rounding);
    ``match_tol``, the matching tolerance as a fraction of the states' mean norm; ``batch``,
    target states searched together.
    """

    constructed = True

    def __init__(self, width: int, fixed: str = "rotation", steps: int = 300, lr: float = 0.05,
                 margin_steps: int = 3, match_tol: float = 1e-5, batch: int = 1024) -> None:
        super().__init__(width)
        if fixed not in FIXED:
            raise AlignmentError(f"constructed: fixed must be one of {FIXED}, got {fixed!r}")
        self.fixed = fixed
        self.steps = int_at_least("constructed", "steps", steps, 1)
        self.margin_steps = int_at_least("constructed", "margin_steps", margin_steps, 0)
        self.batch = int_at_least("constructed", "batch", batch, 1)
        self.lr = positive_float("constructed", "lr", lr)
        self.match_tol = positive_float("constructed", "match_tol", match_tol)
        # a rotation round-trips to float rounding; the identity and the swap exactly
        self.tolerance = 1e-5 if fixed == "rotation" else 0.0
        if fixed == "rotation":
            gen = torch.Generator().manual_seed(_ROTATION_SEED)
            q, r = torch.linalg.qr(torch.randn(width, width, generator=gen, dtype=torch.float64))
            self.register_buffer("rotation", (q * torch.sign(torch.diagonal(r))).float())
        self.register_buffer("codes", torch.zeros(0, width))
        self.register_buffer("targets", torch.zeros(0, width))
        self.register_buffer("atol", torch.zeros(()))
        # what construct_alignment measured while building (a causalab.fit.construct.Construction); not saved
        self.construction = None

    # --- the fixed map --------------------------------------------------------------
    def fixed_map(self, h: torch.Tensor) -> torch.Tensor:
        """``R(h)``: the map on every state it was not built on."""
        return h if self.fixed == "identity" else h @ self.rotation.to(h.dtype)

    def fixed_inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``R^-1(z)``."""
        return z if self.fixed == "identity" else z @ self.rotation.to(z.dtype).T

    # --- the points -------------------------------------------------------------------
    @property
    def points(self) -> int:
        """How many points the swap moves: ``2 n`` (each code and its target state)."""
        return 2 * self.codes.shape[0]

    @property
    def num_parameters(self) -> int:
        """The values the map stores: ``2 n d`` for its points, plus ``d^2`` for a rotation. It has no
        trainable parameters; this is its complexity on the IIA-vs-complexity frontier, counted in
        the units of the learnt maps' parameter counts (one number per stored value)."""
        return sum(t.numel() for name, t in self.named_buffers() if name != "atol")

    @property
    def nbytes(self) -> int:
        """Bytes of the stored values."""
        return sum(t.numel() * t.element_size() for name, t in self.named_buffers() if name != "atol")

    @torch.no_grad()
    def set_points(self, codes: torch.Tensor, targets: torch.Tensor, atol: float) -> None:
        """Store the exchanged pairs ``codes[i] <-> targets[i]`` (both in ``R``'s coordinates) and the
        matching tolerance ``atol``.

        Raises :class:`AlignmentError` unless the ``2 n`` points are finite and more than
        ``2 * atol`` apart from each other (so the swap is a well-defined involution).
        """
        if codes.shape != targets.shape or codes.dim() != 2 or codes.shape[1] != self.width:
            raise AlignmentError(f"constructed: codes {tuple(codes.shape)} and targets {tuple(targets.shape)} "
                                 f"must both be (n, {self.width})")
        if isinstance(atol, bool) or not isinstance(atol, (int, float)) or not atol >= 0:
            raise AlignmentError(f"constructed: atol must be a non-negative number, got {atol!r}")
        points = torch.cat([codes, targets])
        if not bool(torch.isfinite(points).all()):
            raise AlignmentError("constructed: the points to exchange contain NaN or inf")
        if len(points) > 1:  # only whether two lie within 2 atol: a radius query, not the closest pair
            near, dist = find_within(points, points, 2 * atol, skip=torch.arange(len(points), device=points.device))
            if bool((near >= 0).any()):
                i = int((near >= 0).nonzero()[0])
                j = int(near[i])
                raise AlignmentError(f"constructed: stored points {min(i, j)} and {max(i, j)} are {float(dist[i]):.3g} "
                                     f"apart, within 2 x atol = {2 * atol:.3g}; the swap would not be a bijection")
        dtype, device = self.codes.dtype, self.codes.device
        self.codes = codes.detach().to(device=device, dtype=dtype).clone()
        self.targets = targets.detach().to(device=device, dtype=dtype).clone()
        self.atol = torch.tensor(float(atol), dtype=dtype, device=device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - torch's signature
        # a saved map holds as many points as it was built with: take their shape before loading them
        for name in ("codes", "targets"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != self._buffers[name].shape:
                old = self._buffers[name]
                self._buffers[name] = torch.empty(saved.shape, dtype=old.dtype, device=old.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- the map ----------------------------------------------------------------------
    def swap(self, z: torch.Tensor) -> torch.Tensor:
        """``S``: stored codes and target points exchanged (``||row - point|| <= atol``), every other row unchanged."""
        self.check_width(z)
        if self.codes.shape[0] == 0:
            return z
        flat = z.reshape(-1, self.width)
        points = torch.cat([self.codes, self.targets]).to(z.device)
        idx = find_within(points, flat, float(self.atol))[0]
        hit = idx >= 0
        if not bool(hit.any()):
            return z
        partners = torch.cat([self.targets, self.codes]).to(device=z.device, dtype=z.dtype)
        return torch.where(hit.unsqueeze(-1), partners[idx.clamp(min=0)], flat).reshape(z.shape)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.check_width(h)
        return self.swap(self.fixed_map(h))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.fixed_inverse(self.swap(z))

    @torch.no_grad()
    def check_bijective(self) -> None:
        """On every stored point: ``forward(inverse(z)) == z`` (to the bit for the identity; a rotation's
        round trip within ``atol`` brings back the same stored point), each code goes to its own
        target, and ``inverse(forward(h)) == h`` on the target states; else :class:`AlignmentError`."""
        points = torch.cat([self.codes, self.targets])
        partners = torch.cat([self.targets, self.codes])
        if not torch.equal(self.swap(points), partners):
            bad = int((self.swap(points) != partners).any(-1).nonzero()[0])
            raise AlignmentError(f"constructed: stored point {bad} is not sent to its partner")
        h = self.inverse(points)  # the states the interchange returns for codes, and the codes' own preimages
        if not torch.equal(self.forward(h), points):
            raise AlignmentError("constructed: forward(inverse(z)) differs from z on a stored point; the fixed map's "
                                 "round trip moved it farther than the matching tolerance")
        if not torch.equal(self.inverse(self.forward(h)), h):
            raise AlignmentError("constructed: inverse(forward(h)) differs from h on a state the map moves")

    def describe(self) -> str:
        return (f"ConstructedMap(width={self.width}, fixed={self.fixed}, points={self.points}, "
                f"stored values={self.num_parameters})")
