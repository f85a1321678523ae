"""hdrepro.engine.data: real MNIST/Fashion-MNIST from the set-up's cache, checksums, subsets, errors."""
import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hdrepro.engine import data as D

ROOT = D.default_data_root()


def test_mnist_is_the_full_official_split_checked_by_sha256():
    m = json.loads((ROOT / "mnist" / "manifest.json").read_text())
    assert (m["n_train"], m["n_test"]) == (60000, 10000)
    for fname, digest in D.IDX["mnist"].files.values():
        assert D.sha256((ROOT / "mnist" / "raw" / fname).read_bytes()) == digest
    d = D.load(D.DataConfig("mnist"), ROOT)
    assert int(d.test.y[0]) == 7  # test image 0 is a 7
    raw = torch.load(ROOT / "mnist" / "cache.pt", weights_only=True)
    assert float(raw["train_x"].double().mean() / 255) == pytest.approx(0.1307, abs=1e-4)


def test_fraction_one_tenth_is_the_reports_first_6000_and_1000():
    full = D.load(D.DataConfig("mnist"), ROOT)
    tenth = D.load(D.DataConfig("mnist", fraction=0.1), ROOT)
    assert (len(tenth.train), len(tenth.test)) == (6000, 1000)
    assert torch.equal(tenth.train.x, full.train.x[:6000])
    assert torch.equal(tenth.test.y, full.test.y[:1000])
    assert tenth.provenance["validation"].startswith("test set")


def test_stratified_subset_is_seeded_balanced_and_the_same_size():
    a = D.load(D.DataConfig("mnist", 0.1, "stratified", seed=3), ROOT)
    b = D.load(D.DataConfig("mnist", 0.1, "stratified", seed=3), ROOT)
    c = D.load(D.DataConfig("mnist", 0.1, "stratified", seed=4), ROOT)
    assert torch.equal(a.train.y, b.train.y) and torch.equal(a.train.x, b.train.x)
    assert not torch.equal(a.train.x, c.train.x)
    assert len(a.train) == 6000
    full_share = D.load(D.DataConfig("mnist"), ROOT).train.y.bincount().double() / 60000
    share = a.train.y.bincount().double() / 6000
    assert torch.allclose(share, full_share, atol=2e-3)


def test_fashion_mnist_from_the_set_up_has_its_own_normalisation():
    d = D.load(D.DataConfig("fashion-mnist"), ROOT)
    assert (len(d.train), len(d.test)) == (60000, 10000)
    assert d.provenance["normalisation"]["mean"][0] == pytest.approx(0.2860, abs=1e-3)
    assert float(d.train.x.mean()) == pytest.approx(0.0, abs=1e-3)


def test_missing_data_set_names_the_command_that_fetches_it(tmp_path):
    with pytest.raises(D.DataUnavailable, match="hdrepro data fetch mnist --root"):
        D.load(D.DataConfig("mnist"), tmp_path)


def test_corrupt_cache_is_refused(tmp_path):
    shutil.copytree(ROOT / "mnist", tmp_path / "mnist", ignore=shutil.ignore_patterns("raw"))
    with (tmp_path / "mnist" / "cache.pt").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00corrupt")
    with pytest.raises(D.DataUnavailable, match="checksum"):
        D.load(D.DataConfig("mnist"), tmp_path)


def test_local_idx_files_with_a_wrong_checksum_are_refused(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for fname, _ in D.IDX["mnist"].files.values():
        (folder / fname).write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 100)
    with pytest.raises(D.DataUnavailable, match="wrong SHA-256"):
        D.fetch("mnist", tmp_path, quiet=True)


def test_user_supplied_gz_files_are_accepted(tmp_path):
    import gzip
    folder = tmp_path / "mnist"
    folder.mkdir()
    for fname, _ in D.IDX["mnist"].files.values():
        (folder / (fname + ".gz")).write_bytes(
            gzip.compress((ROOT / "mnist" / "raw" / fname).read_bytes(), compresslevel=1))
    m = D.fetch("mnist", tmp_path, quiet=True)
    assert m["source"] == "local IDX files (SHA-256 verified)" and m["n_train"] == 60000


def _write_cifar_fixture(folder, n_per_batch=20, seed=0):
    """A tiny CIFAR-10 in its own python-pickle format."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n_per_batch).tolist(),
                 b"batch_label": name.encode()}
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f)


def test_cifar10_loader_reads_its_own_format(tmp_path):
    _write_cifar_fixture(tmp_path / "cifar10" / "cifar-10-batches-py")
    m = D.fetch("cifar10", tmp_path, quiet=True)
    assert (m["n_train"], m["n_test"]) == (100, 20)
    d = D.load(D.DataConfig("cifar10"), tmp_path)
    assert d.train.x.shape == (100, 3, 32, 32)
    with (tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1").open("rb") as f:
        first = pickle.load(f, encoding="bytes")
    pixel = first[b"data"][0].reshape(3, 32, 32)[1, 2, 3] / 255
    mean, std = (d.provenance["normalisation"][k][1] for k in ("mean", "std"))
    assert float(d.train.x[0, 1, 2, 3]) == pytest.approx((pixel - mean) / std, rel=1e-5)


def test_cifar10_absent_and_offline_is_a_quick_clear_error(tmp_path):
    with pytest.raises(D.DataUnavailable, match="cifar-10-python.tar.gz"):
        D.fetch("cifar10", tmp_path, timeout=1.0, quiet=True)


@pytest.mark.parametrize("bad", [dict(name="imagenet"), dict(fraction=0), dict(fraction=1.5),
                                 dict(subset="random")])
def test_bad_data_config_is_refused(bad):
    with pytest.raises(ValueError):
        D.DataConfig(**bad)


def test_batches_cover_every_example_once_and_shuffle_is_seeded():
    d = D.load(D.DataConfig("mnist", 0.1), ROOT)
    ys = torch.cat([y for _, y in D.batches(d.train, 128, generator=torch.Generator().manual_seed(1))])
    assert ys.numel() == 6000 and torch.equal(ys.sort().values, d.train.y.sort().values)
    again = torch.cat([y for _, y in D.batches(d.train, 128, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(ys, again)


def test_figure_1_adds_the_vgg_cifar10_column_when_cifar10_is_present(tmp_path):
    import importlib.util
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))  # the drivers import grid_common
    spec = importlib.util.spec_from_file_location("fig1", Path(__file__).resolve().parent.parent / "experiments" / "fig1.py")
    fig1 = importlib.util.module_from_spec(spec)
    sys.modules["fig1"] = fig1  # dataclasses look their module up there
    spec.loader.exec_module(fig1)
    shutil.copytree(ROOT / "mnist", tmp_path / "mnist", ignore=shutil.ignore_patterns("raw"))
    assert {r.config.model for r in fig1.plan("smoke", tmp_path)} == {"logreg", "mlnn",
                                                                       "bettercnn"}
    _write_cifar_fixture(tmp_path / "cifar10" / "cifar-10-batches-py")
    D.fetch("cifar10", tmp_path, quiet=True)
    runs = fig1.plan("smoke", tmp_path)
    vgg = [r.config for r in runs if r.config.model == "vgg16bn-narrow"]
    assert vgg and all(c.data.name == "cifar10" for c in vgg)
    adam_hd = [c for c in vgg if c.optim.name == "adam-hd" and c.optim.rule == "additive"]
    assert adam_hd[0].optim.hypergrad_lr == 1e-8  # Baydin et al.'s β for VGG


def test_a_validation_split_is_held_out_of_training_stratified_and_seeded():
    cfg = D.DataConfig("mnist", 0.05, validation=0.2, seed=3)
    data = D.load(cfg, ROOT)
    whole = D.load(D.DataConfig("mnist", 0.05), ROOT)
    assert (len(data.train), len(data.val), len(data.test)) == (2400, 600, 500)
    assert data.validation is data.val and whole.validation is whole.test
    # every held-out image comes from the training subset, and none is trained on
    seen = {row.numpy().tobytes() for row in data.train.x}
    pool = {row.numpy().tobytes() for row in whole.train.x}
    held = [row.numpy().tobytes() for row in data.val.x]
    assert all(h in pool for h in held) and not any(h in seen for h in held)
    share = data.val.y.bincount(minlength=10).double() / len(data.val)
    full = whole.train.y.bincount(minlength=10).double() / len(whole.train)
    assert torch.allclose(share, full, atol=0.01)               # stratified
    again = D.load(cfg, ROOT)
    assert torch.equal(again.val.y, data.val.y)                 # seeded
    assert "600 training images held out" in data.provenance["validation"]
    with pytest.raises(ValueError, match="validation"):
        D.DataConfig("mnist", validation=1.0)


def test_with_a_validation_split_curves_use_it_and_the_test_set_is_read_once():
    from hdrepro.config import config_id
    from hdrepro.methods.registry import OptimConfig
    from hdrepro.engine.train import TrainConfig, train
    cfg = D.DataConfig("mnist", 0.05, validation=0.2)
    assert config_id(D.DataConfig("mnist", 0.05)) == config_id(
        D.DataConfig("mnist", 0.05, validation=0.0))   # stored ids keep their value
    data = D.load(cfg, ROOT)
    res = train(TrainConfig("logreg", cfg, OptimConfig("sgd", 0.1), 2, device="cpu",
                            progress=False), data)
    assert res.final["val_error"] == pytest.approx(1 - res.epochs[-1]["val_acc"])
    assert res.final["test_error"] != res.final["val_error"]   # two splits, two errors
    assert 0 < res.final["test_error"] < 0.5


def test_the_default_data_folder_is_the_working_directorys_or_a_user_cache(
        monkeypatch, tmp_path):
    """Found from where the command runs, never from where the package is installed."""
    monkeypatch.delenv("HDREPRO_DATA", raising=False)
    checkout = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(checkout)
    assert D.default_data_root() == checkout / "data"       # this checkout's data/
    monkeypatch.chdir(tmp_path)                              # anywhere else
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert D.default_data_root() == tmp_path / "cache" / "hdrepro" / "data"
    monkeypatch.setenv("HDREPRO_DATA", str(tmp_path / "mine"))
    assert D.default_data_root() == tmp_path / "mine"
