"""Normalizing-flow alignment maps built from ``normflows``: affine coupling, neural splines, Glow.

- ``affine_flow``: RealNVP-style affine couplings (``normflows.flows.AffineCoupling``)
  whose log-scale is bounded, ``log s = b * tanh(raw / b)`` with ``b = scale_bound``.
  normflows' own ``exp`` scale is unbounded and diverged to NaN within ~100 steps
  of interchange training in a probe; its ``sigmoid`` scale is bounded on one side only.
- ``spline_flow``: rational-quadratic neural spline couplings
  (``normflows.flows.CoupledRationalQuadraticSpline``) with linear tails: identity
  outside ``[-tail_bound, tail_bound]``, so pair it with ``standardize=True`` on
  hidden states that are not already at unit scale.
- ``glow``: Glow-style stack, an invertible LU-parametrised linear layer before each
  bounded affine coupling. The LU layer is written here (:class:`LULinear`):
  normflows' ``InvertibleAffine`` stores full ``L`` and ``U`` matrices of which only
  a triangle is used, so its parameter count would double the true complexity.

Couplings alternate which half of the coordinates (first ``floor(d/2)`` or the
other ``ceil(d/2)``) conditions the update of the other. Every family takes the
``standardize`` knob (see :mod:`alignments.standardize`).
"""

from __future__ import annotations

import normflows as nf
import torch
from normflows.flows.neural_spline.coupling import PiecewiseRationalQuadraticCoupling
from normflows.nets.resnet import ResidualNet
from normflows.utils.masks import create_alternating_binary_mask
from torch import nn

from alignments.standardize import StandardizableMap
from causalab.errors import AlignmentError, FitError
from causalab.maps.knobs import coupling_width, positive_float, positive_int
from causalab.registry import register_alignment


class BoundedShiftScale(nn.Module):
    """A conditioner for ``normflows`` affine couplings with its log-scale squashed into ``[-b, b]``.

    normflows reads the conditioner's output interleaved: shift at even, log-scale at
    odd positions. The last layer starts at zero, so each coupling starts as the identity.
    """

    def __init__(self, d_in: int, d_out: int, hidden: int, depth: int, bound: float) -> None:
        super().__init__()
        self.net = nf.nets.MLP([d_in] + [hidden] * depth + [2 * d_out], init_zeros=True)
        self.bound = bound

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        shift, log_scale = out[:, 0::2], out[:, 1::2]
        log_scale = self.bound * torch.tanh(log_scale / self.bound)
        return torch.stack([shift, log_scale], dim=2).reshape(out.shape)


class HalfCoupling(nn.Module):
    """A normflows ``AffineCoupling`` on ``(n, d)`` tensors; ``flip`` swaps which half conditions."""

    def __init__(self, width: int, hidden: int, depth: int, bound: float, flip: bool) -> None:
        super().__init__()
        first = width // 2
        self.sizes = (first, width - first)
        self.flip = flip
        cond, trans = (self.sizes[1], self.sizes[0]) if flip else self.sizes
        self.coupling = nf.flows.AffineCoupling(BoundedShiftScale(cond, trans, hidden, depth, bound), scale_map="exp")

    def _run(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        a, b = torch.split(x, self.sizes, dim=1)
        cond, trans = (b, a) if self.flip else (a, b)
        step = self.coupling.inverse if inverse else self.coupling.forward
        (cond, trans), _ = step([cond, trans])
        return torch.cat([trans, cond] if self.flip else [cond, trans], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, inverse=False)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self._run(z, inverse=True)


class LULinear(nn.Module):
    """``y = x W^T`` with ``W = P L U``: ``P`` a fixed permutation, ``L`` unit lower, ``U`` upper triangular.

    Trainable: the strict triangles of ``L`` and ``U`` and ``log|diag U|`` (``d^2`` numbers).
    Initialised at the LU factors of a random orthogonal matrix (drawn from torch's global RNG).
    The inverse solves two triangular systems rather than forming ``W^-1``.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(width, width))
        p, low, up = torch.linalg.lu(q)
        diag = torch.diagonal(up)
        self.register_buffer("perm", p)
        self.register_buffer("sign", torch.sign(diag))
        self.register_buffer("lower_idx", torch.tril_indices(width, width, offset=-1))
        self.register_buffer("upper_idx", torch.triu_indices(width, width, offset=1))
        self.lower = nn.Parameter(low[self.lower_idx[0], self.lower_idx[1]].clone())
        self.upper = nn.Parameter(up[self.upper_idx[0], self.upper_idx[1]].clone())
        self.log_diag = nn.Parameter(diag.abs().log())
        self.width = width

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        eye = torch.eye(self.width, dtype=self.lower.dtype, device=self.lower.device)
        low = eye.index_put((self.lower_idx[0], self.lower_idx[1]), self.lower)
        up = torch.diag(self.sign * self.log_diag.exp()).index_put((self.upper_idx[0], self.upper_idx[1]), self.upper)
        return low, up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, up = self.factors()
        return x @ (self.perm @ low @ up).T

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        low, up = self.factors()
        a = self.perm.T @ y.T
        b = torch.linalg.solve_triangular(low, a, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(up, b, upper=True).T


class CouplingStack(StandardizableMap):
    """A sequence of invertible layers applied in order (inverse: reversed)."""

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def _inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def check_affine_knobs(family: str, width: int, layers: int, hidden: int, depth: int, scale_bound: float) -> float:
    """Validate the knobs shared by the affine-coupling families; return the scale bound."""
    coupling_width(family, width)
    for knob, value in (("layers", layers), ("hidden", hidden), ("depth", depth)):
        positive_int(family, knob, value)
    return positive_float(family, "scale_bound", scale_bound)


@register_alignment("affine_flow")
class AffineFlowMap(CouplingStack):
    """RealNVP affine couplings with a tanh-bounded log-scale. Knobs: layers, hidden, depth, scale_bound, standardize."""

    tolerance = 1e-5
    lu_mixing = False  # Glow puts an invertible LU linear layer before each coupling

    def __init__(
        self, width: int, layers: int = 4, hidden: int = 32, depth: int = 1, scale_bound: float = 1.0,
        standardize: bool = False,
    ) -> None:
        super().__init__(width, standardize)
        family = "glow" if self.lu_mixing else "affine_flow"
        bound = check_affine_knobs(family, width, layers, hidden, depth, scale_bound)
        stack: list[nn.Module] = []
        for k in range(layers):
            if self.lu_mixing:
                stack.append(LULinear(width))
            stack.append(HalfCoupling(width, hidden, depth, bound, flip=k % 2 == 1))
        self.layers = nn.ModuleList(stack)


@register_alignment("glow")
class GlowMap(AffineFlowMap):
    """Glow-style: LU-linear mixing then a bounded affine coupling, ``layers`` times. Knobs as ``affine_flow``."""

    lu_mixing = True


def min_bin_fraction(bins: int) -> float:
    """Smallest bin width/height (as a fraction of the interval) and knot derivative of a spline.

    normflows' default (1e-3) lets a bin contract by ~1000x, so the inverse amplifies
    float32 rounding by as much; ``0.5 / max(bins, 10)`` keeps slopes within ~[1/30, 30].
    """
    return 0.5 / max(bins, 10)


class BoundedConditioner(nn.Module):
    """A conditioner that sees ``bound * tanh(x / bound)``: identity near zero, bounded far out."""

    def __init__(self, bound: float, net: nn.Module) -> None:
        super().__init__()
        self.bound = bound
        self.net = net

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.bound * torch.tanh(x / self.bound), context)


class SplineCoupling(nn.Module):
    """normflows' rational-quadratic spline coupling (linear tails), adapted to the forward/inverse protocol."""

    def __init__(self, width: int, hidden: int, depth: int, bins: int, tail_bound: float, flip: bool) -> None:
        super().__init__()
        floor = min_bin_fraction(bins)

        def conditioner(d_in: int, d_out: int) -> nn.Module:
            # squash the conditioning half into the spline's interval: an outlier coordinate (common in
            # transformer states) otherwise drives the conditioner to degenerate bins and a wrong inverse
            return BoundedConditioner(
                tail_bound, ResidualNet(d_in, d_out, hidden_features=hidden, num_blocks=depth, activation=nn.ReLU())
            )

        self.coupling = PiecewiseRationalQuadraticCoupling(
            mask=create_alternating_binary_mask(width, even=flip),
            transform_net_create_fn=conditioner,
            num_bins=bins,
            tails="linear",
            tail_bound=tail_bound,
            apply_unconditional_transform=True,
            min_bin_width=floor,
            min_bin_height=floor,
            min_derivative=floor,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.coupling(x)[0]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        try:
            return self.coupling.inverse(z)[0]
        except AssertionError:  # normflows asserts a non-negative discriminant when inverting the spline
            raise FitError(
                "spline_flow: inverting a rational-quadratic spline met a negative discriminant (its bins are "
                "numerically degenerate); lower the learning rate or use float64"
            ) from None


@register_alignment("spline_flow")
class SplineFlowMap(CouplingStack):
    """Rational-quadratic neural spline couplings. Knobs: layers, hidden, depth (residual blocks), bins, tail_bound, standardize."""

    # inverting a rational-quadratic bin solves a quadratic: float32 round trips reach ~2e-5 relative
    tolerance = 1e-4

    def __init__(
        self, width: int, layers: int = 4, hidden: int = 32, depth: int = 1, bins: int = 8, tail_bound: float = 3.0,
        standardize: bool = False,
    ) -> None:
        super().__init__(width, standardize)
        coupling_width("spline_flow", width)
        positive_int("spline_flow", "layers", layers)
        positive_int("spline_flow", "hidden", hidden)
        positive_int("spline_flow", "depth", depth)
        if positive_int("spline_flow", "bins", bins) < 2:
            raise AlignmentError(f"spline_flow: knob 'bins' must be at least 2, got {bins}")
        bound = positive_float("spline_flow", "tail_bound", tail_bound)
        self.layers = nn.ModuleList(
            SplineCoupling(width, hidden, depth, bins, bound, flip=k % 2 == 1) for k in range(layers)
        )
