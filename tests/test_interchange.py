"""Partition validation and the distributed interchange's invariants (identity and rotation maps)."""

import pytest
import torch

from causalab import Partition, interchange, make_alignment
from causalab.errors import AlignmentError, PartitionError, RegistryError

torch.manual_seed(0)


@pytest.fixture(params=["identity", "rotation", "rotation:rank=6"])
def phi(request):
    torch.manual_seed(1)
    return make_alignment(request.param, 16).double()


def hs(seed, n=32, width=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, width, generator=g, dtype=torch.float64) * 3


def test_round_trip(phi):
    h = hs(0)
    assert torch.allclose(phi.inverse(phi(h)), h, atol=1e-10)


def test_source_equal_to_base_changes_nothing(phi):
    h = hs(1)
    p = Partition({"V1": [0, 1, 2]}, 16)
    assert torch.allclose(interchange(phi, h, {"V1": h}, p), h, atol=1e-10)


def test_empty_block_changes_nothing(phi):
    h, s = hs(2), hs(3)
    p = Partition({"V1": []}, 16)
    assert torch.equal(interchange(phi, h, {"V1": s}, p), h)


def test_full_swap_returns_the_source():
    torch.manual_seed(0)
    phi = make_alignment("rotation", 16).double()
    h, s = hs(4), hs(5)
    p = Partition({"V1": range(16)}, 16)
    assert torch.allclose(interchange(phi, h, {"V1": s}, p), s, atol=1e-10)


def test_disjoint_blocks_commute_and_repeat_is_idempotent(phi):
    h, s1, s2 = hs(6), hs(7), hs(8)
    p = Partition({"A": [0, 1], "B": [2, 3, 4]}, 16)
    pa, pb = Partition({"A": [0, 1]}, 16), Partition({"B": [2, 3, 4]}, 16)
    ab = interchange(phi, interchange(phi, h, {"A": s1}, pa), {"B": s2}, pb)
    ba = interchange(phi, interchange(phi, h, {"B": s2}, pb), {"A": s1}, pa)
    both = interchange(phi, h, {"A": s1, "B": s2}, p)
    assert torch.allclose(ab, ba, atol=1e-10) and torch.allclose(ab, both, atol=1e-10)
    once = interchange(phi, h, {"A": s1}, pa)
    assert torch.allclose(interchange(phi, once, {"A": s1}, pa), once, atol=1e-10)


def test_coordinates_outside_the_blocks_keep_the_base(phi):
    h, s = hs(9), hs(10)
    p = Partition({"A": [1, 5]}, 16)
    z_new, z_base, z_src = phi(interchange(phi, h, {"A": s}, p)), phi(h), phi(s)
    keep = torch.ones(16, dtype=torch.bool)
    keep[[1, 5]] = False
    assert torch.allclose(z_new[:, keep], z_base[:, keep], atol=1e-10)
    assert torch.allclose(z_new[:, ~keep], z_src[:, ~keep], atol=1e-10)


def test_rotation_is_orthogonal_and_counts_parameters():
    torch.manual_seed(0)
    full, low = make_alignment("rotation", 16), make_alignment("rotation:rank=4", 16)
    for m in (full, low):
        q = m.matrix().detach().double()
        assert torch.allclose(q.T @ q, torch.eye(16, dtype=torch.float64), atol=1e-5)
    assert low.swappable == 4 and full.swappable == 16
    assert make_alignment("identity", 16).num_parameters == 0
    assert low.num_parameters < full.num_parameters


def test_low_rank_gradients_flow():
    torch.manual_seed(0)
    phi = make_alignment("rotation:rank=4", 8)
    h, s = torch.randn(5, 8), torch.randn(5, 8)
    out = interchange(phi, h, {"A": s}, Partition({"A": [0, 1]}, 8))
    out.pow(2).sum().backward()
    grads = [p.grad for p in phi.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)


# --- validation ------------------------------------------------------------------
def test_partition_errors_name_the_problem():
    with pytest.raises(PartitionError, match="'V1'.*\\[16\\]"):
        Partition({"V1": [15, 16]}, 16)
    with pytest.raises(PartitionError, match="coordinate 3.*'A'.*'B'"):
        Partition({"A": [3], "B": [3]}, 16)
    with pytest.raises(PartitionError, match="need 24 coordinates"):
        Partition.contiguous(["V1", "V2", "V3"], 8, 16)
    with pytest.raises(PartitionError, match="rank"):
        Partition({"A": [0, 9]}, 16).check_fits(make_alignment("rotation:rank=8", 16))


def test_bad_alignment_specs():
    with pytest.raises(RegistryError, match="unknown alignment 'spin'.*rotation"):
        make_alignment("spin", 16)
    with pytest.raises(RegistryError, match="knob.*'rnk'.*rank"):
        make_alignment("rotation:rnk=2", 16)
    with pytest.raises(RegistryError, match="'two' as int"):
        make_alignment("rotation:rank=two", 16)
    with pytest.raises(AlignmentError, match="rank"):
        make_alignment("rotation:rank=40", 16)
    with pytest.raises(AlignmentError, match="width 16.*width 8"):
        make_alignment("rotation", 16)(torch.zeros(2, 8))


def naive_interchange(phi, h_base, h_sources, partition, rows):
    """The definition, row by row: phi on every base and source, mask, invert."""
    z = phi(h_base)
    for var, h_src in h_sources.items():
        swap = partition.mask(var)[None, :] & rows[var][:, None]
        z = torch.where(swap, phi(h_src), z)
    return phi.inverse(z)


@pytest.mark.parametrize("spec", ["rotation", "rotation:rank=6", "revnet:blocks=2,hidden=8", "affine_flow"])
@pytest.mark.parametrize("cover", [True, False])
@pytest.mark.parametrize("elsewhere", ["base", "noise"])
def test_fast_paths_match_the_definition_in_values_and_gradients(spec, cover, elsewhere):
    """Projection (orthogonal maps) and the row-skipping single pass (every other map) compute
    the same interchange, and the same gradients, as running phi on every row."""
    torch.manual_seed(0)
    width, n = 12, 40
    phi = make_alignment(spec, width)
    size = 6 if cover and ":rank" not in spec else 3
    part = Partition.contiguous(["A", "B"], size, width)
    g = torch.Generator().manual_seed(1)
    h_base = torch.randn(n, width, generator=g)
    rows = {"A": torch.rand(n, generator=g) < 0.6, "B": torch.rand(n, generator=g) < 0.6}
    rows["A"][:5] = rows["B"][:5] = True  # some rows swap both blocks (every coordinate when cover)
    rows["A"][5:10] = rows["B"][5:10] = False  # and some swap nothing
    # outside its rows a source is the base (as counterfactual data has it), or noise that must be ignored
    rest = h_base if elsewhere == "base" else torch.randn(n, width, generator=g)
    h_sources = {v: torch.where(r[:, None], torch.randn(n, width, generator=g), rest) for v, r in rows.items()}

    fast = interchange(phi, h_base, h_sources, part, rows)
    fast_idx = interchange(phi, h_base, h_sources, part, {v: r.nonzero().squeeze(1) for v, r in rows.items()})
    slow = naive_interchange(phi, h_base, h_sources, part, rows)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_idx, slow, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast[5:10], h_base[5:10], atol=1e-5, rtol=1e-5)

    w = torch.randn(n, width, generator=g)
    grads = []
    for out in (lambda: interchange(phi, h_base, h_sources, part, rows),
                lambda: naive_interchange(phi, h_base, h_sources, part, rows)):
        phi.zero_grad()
        (out() * w).sum().backward()
        grads.append([p.grad.clone() for p in phi.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_projection_without_rows_swaps_every_row():
    torch.manual_seed(0)
    phi = make_alignment("rotation", 8)
    part = Partition.contiguous(["A"], 4, 8)
    h_base, h_src = torch.randn(10, 8), torch.randn(10, 8)
    expected = phi.inverse(torch.where(part.mask("A"), phi(h_src), phi(h_base)))
    torch.testing.assert_close(interchange(phi, h_base, {"A": h_src}, part), expected, atol=1e-5, rtol=1e-5)
    assert phi.orthonormal_columns().shape == (8, 8)
    assert make_alignment("revnet", 8).orthonormal_columns() is None
