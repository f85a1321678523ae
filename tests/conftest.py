import pytest
import torch


@pytest.fixture(autouse=True)
def _float64_and_seed():
    """Every test runs in float64 from a fixed seed, and restores the default dtype after."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(old)
