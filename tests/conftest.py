import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def float64():
    """float64 as torch's default dtype for one test (the hypergradient checks), then restored."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="session")
def wheel_site(tmp_path_factory) -> Path:
    """hdrepro built as a wheel and unpacked into a folder outside the checkout (put it first on
    PYTHONPATH to run the installed package rather than the checkout's)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp / "wheels")], check=True,
                   timeout=300)
    wheel = next((tmp / "wheels").glob("hdrepro-*.whl"))
    zipfile.ZipFile(wheel).extractall(tmp / "site")
    return tmp / "site"
