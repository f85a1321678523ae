"""A light install: `pip install hdrepro` needs only torch and numpy. The optimizers, `hdrepro
train` and `hdrepro data` work without the experiments extra; a command that needs the extra
says so in one line; and a script of one's own trains with every optimizer, dtype and scheduler
as the README says. Each runs the wheel, unpacked outside the checkout, in a Python that sees
no site-packages but torch, numpy and what they need."""
import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_needs_only_torch_and_numpy():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].strip() for d in project["dependencies"])
    assert names == ["numpy", "torch"]
    assert {"pandas", "scipy", "matplotlib"} <= {
        d.split(">")[0] for d in project["optional-dependencies"]["experiments"]}


def _requirements(name: str, seen: set) -> set:
    """`name` and every distribution it requires (extras left out), installed ones only."""
    if name not in seen:
        seen.add(name)
        for req in md.requires(name) or []:
            dep = re.split(r"[ ;<>=!~\[]", req, maxsplit=1)[0]
            if "extra ==" not in req and _installed(dep):
                _requirements(dep, seen)
    return seen


def _installed(name: str) -> bool:
    try:
        md.distribution(name)
    except md.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def light_packages(tmp_path_factory) -> Path:
    """A folder with links to torch, numpy and their requirements, and nothing else."""
    folder = tmp_path_factory.mktemp("light")
    for name in _requirements("torch", set()) | _requirements("numpy", set()):
        dist = md.distribution(name)
        for top in {f.parts[0] for f in dist.files or []
                    if not f.parts[0].endswith(".dist-info") and f.parts[0] != ".."}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


def _light(site: Path, packages: Path, tmp: Path, code: str) -> subprocess.CompletedProcess:
    """Run `code` with -S (no site-packages): the wheel, then torch and numpy only."""
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{packages}",
           "HDREPRO_DATA": os.environ.get("HDREPRO_DATA", str(ROOT / "data"))}
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=900)


def _cli(*args) -> str:
    return f"import sys; from hdrepro.cli import main; sys.exit(main({list(args)!r}))"


@pytest.mark.slow
def test_the_optimizers_and_train_work_without_the_extra(wheel_site, light_packages, tmp_path):
    proc = _light(wheel_site, light_packages, tmp_path, "import hdrepro, hdrepro.optim, "
                  "hdrepro.autodiff, hdrepro.engine.train; print(hdrepro.optim.__file__)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith(str(wheel_site))
    proc = _light(wheel_site, light_packages, tmp_path, _cli(
        "train", "--model", "logreg", "--data", "mnist", "--fraction", "0.02", "--epochs", "1",
        "--optimizer", "sgdn-hd", "--lr", "0.01", "--hypergrad-lr", "0.001", "--no-progress"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _light(wheel_site, light_packages, tmp_path, _cli("data", "info"))
    assert proc.returncode == 0 and "mnist" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.slow
def test_a_command_that_needs_the_extra_says_so_in_one_line(wheel_site, light_packages, tmp_path):
    proc = _light(wheel_site, light_packages, tmp_path, _cli("report", "--results", str(tmp_path)))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    assert "pip install 'hdrepro[experiments]'" in proc.stderr


@pytest.mark.slow
def test_ones_own_loop_runs_every_optimizer_dtype_and_scheduler_as_documented(
        wheel_site, light_packages, tmp_path):
    script = (ROOT / "examples" / "own_loop.py").read_text()
    proc = _light(wheel_site, light_packages, tmp_path, script)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "all as documented" in proc.stdout
