"""Subnormal floats flushed for a training run on CPU, and the mode put back after."""
import torch

from hdrepro.engine.floats import flushed_denormals, flushing

TINY = 1e-40   # subnormal in float32


def _survives() -> bool:
    return float(torch.tensor([TINY]) * 2) != 0.0


def test_the_context_flushes_on_cpu_and_restores_the_mode_it_found():
    assert not flushing() and _survives()
    with flushed_denormals(torch.device("cpu")) as on:
        assert on and flushing() and not _survives()
        # an Adam-like decay of a dead unit's moment: stuck at a subnormal without the mode
        m = torch.full((4,), TINY)
        assert (m * 0.9 == 0).all()
    assert not flushing() and _survives()
    torch.set_flush_denormal(True)
    try:
        with flushed_denormals(torch.device("cpu")):
            pass
        assert flushing(), "a mode already on stays on"
    finally:
        torch.set_flush_denormal(False)


def test_the_mode_is_restored_when_the_run_raises():
    try:
        with flushed_denormals(torch.device("cpu")):
            raise RuntimeError("a run that fails")
    except RuntimeError:
        pass
    assert not flushing()


def test_without_the_mode_a_decaying_moment_stays_subnormal_for_good():
    # why the mode matters: 0.9 × the smallest subnormal rounds back to it
    smallest = torch.tensor([torch.finfo(torch.float32).tiny]) * 2.0 ** -23
    assert float(smallest) > 0 and float(smallest * 0.9) == float(smallest)


def test_a_cpu_run_records_that_it_flushed(tmp_path):
    from hdrepro.engine.data import DataConfig, default_data_root, load
    from hdrepro.engine.train import TrainConfig, train
    from hdrepro.methods.registry import OptimConfig
    data = DataConfig("mnist", 0.02)
    r = train(TrainConfig("logreg", data, OptimConfig("adam-hd", 1e-3, 1e-7), 1, progress=False),
              load(data, default_data_root()))
    assert r.provenance["flush_denormal"] is True and not flushing()
