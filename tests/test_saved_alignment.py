"""Fitted maps as files: every registered family round-trips to the bit; bad files fail by name; known rotations load."""

import doctest
import json

import pytest
import torch
from safetensors.torch import save_file

import causalab as cl
import causalab.maps.saved as saved_alignment
from alignments.rotation import ORTHOGONALITY_TOLERANCE, RotationMap
from causalab.errors import AlignmentError, PartitionError, RegistryError, SavedAlignmentError
from causalab.registry import ALIGNMENTS

torch.set_num_threads(1)
WIDTH = 12

# every registered family, with and without the knobs that change what is saved
SPECS = [
    "identity",
    "rotation",
    "rotation:rank=5",
    "revnet:blocks=2,hidden=8",
    "revnet:blocks=2,hidden=8,standardize=true",
    "affine_flow:layers=2,hidden=8,scale_bound=0.5",
    "affine_flow:layers=2,hidden=8,standardize=true",
    "glow:layers=2,hidden=8",
    "glow:layers=2,hidden=8,standardize=true",
    "spline_flow:layers=2,hidden=8,bins=4",
    "spline_flow:layers=2,hidden=8,standardize=true",
    "constructed",  # with no points; a constructed map with points: tests/test_constructed.py
    "constructed:fixed=identity",
]


def test_the_specs_cover_every_registered_family():
    assert {s.partition(":")[0] for s in SPECS} == set(ALIGNMENTS.names())


def fitted_like(spec: str, dtype: torch.dtype, seed: int = 0) -> tuple[cl.AlignmentMap, torch.Tensor]:
    """A map whose state is far from its initialisation (parameters moved, statistics fitted), and inputs for it."""
    torch.manual_seed(seed)
    phi = cl.make_alignment(spec, WIDTH).to(dtype)
    h = (torch.randn(64, WIDTH, dtype=dtype) * torch.linspace(0.5, 3, WIDTH, dtype=dtype)) + 1
    with torch.no_grad():
        for p in phi.parameters():
            p.add_(0.1 * torch.randn_like(p))
    if hasattr(phi, "fit_statistics"):
        phi.fit_statistics(h)
    return phi, h


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_is_bit_identical(tmp_path, spec, dtype):
    phi, h = fitted_like(spec, dtype)
    partition = cl.Partition({"V1": [0, 1], "V2": [3, 4]}, WIDTH)
    path = cl.save_alignment(phi, tmp_path / "maps" / "phi.safetensors", partition=partition, config_hash="abc123")
    rng = torch.get_rng_state()
    loaded = cl.load_alignment(path, width=WIDTH)
    assert torch.equal(rng, torch.get_rng_state())  # loading builds the family without drawing from torch's RNG
    psi = loaded.map
    assert type(psi) is type(phi) and psi is not phi
    assert loaded.spec == spec == psi.spec and loaded.width == WIDTH and loaded.config_hash == "abc123"
    assert loaded.dtype == (None if spec == "identity" else str(dtype).removeprefix("torch."))
    assert loaded.partition.blocks == partition.blocks
    with torch.no_grad():
        z = phi(h)
        assert torch.equal(psi(h), z)
        assert torch.equal(psi.inverse(z), phi.inverse(z))
        # and the interchange the fit used, which a rotation computes by projection
        sources = {"V1": h.flip(0), "V2": h.roll(1, 0)}
        assert torch.equal(cl.interchange(psi, h, sources, partition), cl.interchange(phi, h, sources, partition))
    assert psi.num_parameters == phi.num_parameters
    state, loaded_state = phi.state_dict(), psi.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) and state[k].dtype == loaded_state[k].dtype for k in state)


def test_a_loaded_map_fits_on(tmp_path):
    phi, h = fitted_like("revnet:blocks=2,hidden=8", torch.float32)
    psi = cl.load_alignment(cl.save_alignment(phi, tmp_path / "m.safetensors")).map
    params = [p for p in psi.parameters() if p.requires_grad]
    assert len(params) == len(list(phi.parameters()))
    psi(h).square().mean().backward()
    assert all(p.grad is not None for p in params)


def test_spec_is_recorded_and_checked(tmp_path):
    phi = cl.make_alignment("revnet:hidden=8,blocks=2", WIDTH)
    assert phi.spec == "revnet:hidden=8,blocks=2"
    assert cl.make_alignment("revnet", WIDTH, standardize=True).spec == "revnet:standardize=true"
    ctor = RotationMap(WIDTH, rank=3)
    with pytest.raises(SavedAlignmentError, match="built by its constructor.*spec="):
        cl.save_alignment(ctor, tmp_path / "a.safetensors")
    assert cl.load_alignment(cl.save_alignment(ctor, tmp_path / "a.safetensors", spec="rotation:rank=3")).spec == "rotation:rank=3"
    from alignments.standardize import Standardized

    with pytest.raises(SavedAlignmentError, match="Standardized is not a registered alignment family.*standardize=true"):
        cl.save_alignment(Standardized(RotationMap(WIDTH)), tmp_path / "s.safetensors")
    with pytest.raises(SavedAlignmentError, match="does not describe this RotationMap"):
        cl.save_alignment(ctor, tmp_path / "b.safetensors", spec="rotation")
    flow = cl.make_alignment("affine_flow:layers=2,hidden=8,scale_bound=0.5", WIDTH)
    with torch.no_grad():  # move the coupling nets off zero so the bound matters
        for p in flow.parameters():
            p.add_(torch.randn_like(p))
    with pytest.raises(SavedAlignmentError, match="different outputs"):
        cl.save_alignment(flow, tmp_path / "c.safetensors", spec="affine_flow:layers=2,hidden=8,scale_bound=2.0")
    with pytest.raises(SavedAlignmentError, match="does not build a map.*unknown alignment 'nope'"):
        cl.save_alignment(ctor, tmp_path / "d.safetensors", spec="nope")
    assert not (tmp_path / "b.safetensors").exists() and not (tmp_path / "c.safetensors").exists()
    with pytest.raises(PartitionError, match="only learns coordinates 0..2"):
        cl.save_alignment(ctor, tmp_path / "e.safetensors", spec="rotation:rank=3", partition=cl.Partition({"V": [5]}, WIDTH))


def test_loading_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(SavedAlignmentError, match="no saved alignment map at .*missing.safetensors.*does not exist"):
        cl.load_alignment(tmp_path / "missing.safetensors")
    with pytest.raises(SavedAlignmentError, match="is a directory"):
        cl.load_alignment(tmp_path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SavedAlignmentError, match="not a safetensors file"):
        cl.load_alignment(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(SavedAlignmentError, match="not a saved alignment map"):
        cl.load_alignment(tmp_path / "other.safetensors")

    phi, _ = fitted_like("rotation:rank=5", torch.float32)
    path = cl.save_alignment(phi, tmp_path / "rot.safetensors")
    with pytest.raises(SavedAlignmentError, match="holds a map of width 12; it cannot be used at width 16"):
        cl.load_alignment(path, width=16)

    def rewrite(info_change: dict, name: str):
        info, state = saved_alignment.read_info(path)
        meta = {"format": saved_alignment.FORMAT, "version": "1", "causalab": json.dumps({**info, **info_change})}
        save_file(state, str(tmp_path / name), metadata=meta)
        return tmp_path / name

    with pytest.raises(RegistryError, match="unknown alignment 'mine'.*import the module that registers it"):
        cl.load_alignment(rewrite({"spec": "mine:rank=5"}, "unknown.safetensors"))
    with pytest.raises(SavedAlignmentError, match="saved state does not fit a map of spec 'rotation:rank=5'"):
        cl.load_alignment(rewrite({"width": 10}, "wrong_width.safetensors"))


def test_rotation_loads_a_known_matrix_exactly():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    reflection = q @ torch.diag(torch.tensor([-1.0] + [1.0] * 7))  # det -1: outside the Cayley map's image
    for m in (q, reflection):
        phi = RotationMap.from_matrix(m)
        assert torch.equal(phi.matrix(), m) and phi.spec == "rotation"
        h = torch.randn(5, 8, generator=g)
        assert torch.allclose(phi(h), h @ m, atol=1e-6)
    low = RotationMap(8, rank=3).set_matrix(q[:, :3])
    assert torch.equal(low.orthonormal_columns(), q[:, :3]) and torch.equal(low.matrix()[:, :3], q[:, :3])
    full = low.matrix().double()
    assert (full.T @ full - torch.eye(8, dtype=torch.float64)).abs().max() < 1e-6  # completed to a rotation
    assert RotationMap.from_matrix(q.double()[:, :3]).matrix().dtype == torch.float64

    # fitting on from the loaded matrix keeps the map a rotation
    opt = torch.optim.Adam(low.parameters(), lr=0.1)
    low(torch.randn(4, 8, generator=g))[:, 0].sum().backward()
    opt.step()
    cols = low.orthonormal_columns().detach().double()
    assert not torch.allclose(cols, q[:, :3].double())
    assert (cols.T @ cols - torch.eye(3, dtype=torch.float64)).abs().max() < 1e-6


def test_rotation_refuses_a_matrix_that_is_not_one():
    phi = RotationMap(8)
    with pytest.raises(AlignmentError, match=r"takes an orthogonal \(width, width\) matrix, shape \(8, 8\); got shape \(8, 3\)"):
        phi.set_matrix(torch.eye(8)[:, :3])
    with pytest.raises(AlignmentError, match=r"rank 3 takes \(width, 3\) orthonormal columns"):
        RotationMap(8, rank=3).set_matrix(torch.eye(8))
    with pytest.raises(AlignmentError, match=r"not orthonormal \(largest entry of \|Q\^T Q - I\| is 1.00e-03"):
        phi.set_matrix(torch.eye(8) * (1 + 5e-4))
    assert ORTHOGONALITY_TOLERANCE < 1e-3
    with pytest.raises(AlignmentError, match="finite floating-point"):
        phi.set_matrix(torch.full((8, 8), float("nan")))
    with pytest.raises(AlignmentError, match="takes a tensor"):
        phi.set_matrix([[1.0]])
    with pytest.raises(AlignmentError, match=r"from_matrix takes a \(width, k\) matrix"):
        RotationMap.from_matrix(torch.eye(3)[:2])


def test_linear_maps_show_their_matrix_through_the_protocol():
    h = torch.randn(6, WIDTH)
    for spec in ("identity", "rotation", "rotation:rank=4"):
        phi = cl.make_alignment(spec, WIDTH)
        m = phi.matrix()
        assert m.shape == (WIDTH, WIDTH)
        assert torch.allclose(phi(h), h @ m, atol=1e-6)
    for spec in ("revnet:blocks=1", "affine_flow:layers=1", "glow:layers=1", "spline_flow:layers=1"):
        assert cl.make_alignment(spec, WIDTH).matrix() is None


def test_docstring_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(saved_alignment)
    assert result.attempted >= 4 and result.failed == 0
