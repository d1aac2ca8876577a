import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Trained networks are cached per test session, never in the user's home."""
    monkeypatch.setenv("CAUSALAB_CACHE", str(tmp_path_factory.getbasetemp() / "causalab-cache"))
