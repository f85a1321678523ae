"""hdrepro.engine.train and hdrepro.engine.results: one loop for all optimizers, divergence, determinism, resume."""
import dataclasses
import math
import subprocess
import sys

import pytest
import torch

from hdrepro.engine.data import DataConfig, default_data_root, load
from hdrepro.engine.results import RunStore
from hdrepro.methods.registry import OptimConfig, make_optimizer
from hdrepro.engine.train import TrainConfig, train

DATA = DataConfig("mnist", fraction=0.01)


@pytest.fixture(scope="module")
def data():
    return load(DATA, default_data_root())


def _cfg(opt, model="logreg", epochs=1, seed=1):
    return TrainConfig(model, DATA, opt, epochs=epochs, seed=seed, progress=False)


@pytest.mark.parametrize("opt", [OptimConfig("sgd", 0.01), OptimConfig("sgdn-hd", 0.01, 1e-3),
                                 OptimConfig("adam-hd", 1e-3, 1e-7, rule="multiplicative"),
                                 OptimConfig("hd-rmsprop", 1e-3, 1e-6),
                                 OptimConfig("stack:adam/sgd", 1e-3, 1e-7, clip="code"),
                                 OptimConfig("stack:rmsprop/sgd", 1e-2, 1e-5, clip="pseudo",
                                             conventions="chandra")],
                         ids=lambda o: o.name)
def test_one_loop_trains_every_kind_of_optimizer(opt, data):
    r = train(_cfg(opt, epochs=2), data)
    assert not r.final["diverged"]
    assert len(r.epochs) == 2 and len(r.iterations) == r.final["iterations"] == 10
    assert r.epochs[-1]["train_loss"] < math.log(10)
    assert 0 <= r.final["test_error"] < 0.9
    assert r.provenance["n_train"] == 600 and r.provenance["source"]


def test_runs_are_deterministic_given_the_seed(data):
    a = train(_cfg(OptimConfig("adam-hd", 1e-3, 1e-7), model="bettercnn"), data)
    b = train(_cfg(OptimConfig("adam-hd", 1e-3, 1e-7), model="bettercnn"), data)
    c = train(_cfg(OptimConfig("adam-hd", 1e-3, 1e-7), model="bettercnn", seed=2), data)
    assert a.iterations == b.iterations
    assert a.iterations != c.iterations


def test_a_thinned_log_records_the_mean_loss_since_the_previous_row(data):
    every = train(_cfg(OptimConfig("sgd-hd", 0.01, 1e-3), epochs=2), data)
    thin = train(dataclasses.replace(_cfg(OptimConfig("sgd-hd", 0.01, 1e-3), epochs=2),
                                     log_every=4), data)
    assert [r["iteration"] for r in thin.iterations] == [4, 8, 10]  # and always the last
    losses = [r["loss"] for r in every.iterations]
    assert [r["loss"] for r in thin.iterations] == pytest.approx(
        [sum(losses[0:4]) / 4, sum(losses[4:8]) / 4, sum(losses[8:10]) / 2], rel=1e-12)
    assert [r["alpha"] for r in thin.iterations] == [every.iterations[i - 1]["alpha"]
                                                     for i in (4, 8, 10)]
    assert [e["iteration"] for e in thin.epochs] == [5, 10]  # where each epoch ends
    alphas = [r["alpha"] for r in every.iterations]    # α's range since the previous row
    for row, (lo, hi) in zip(thin.iterations, ((0, 4), (4, 8), (8, 10))):
        assert (row["alpha_min"], row["alpha_max"]) == (min(alphas[lo:hi]), max(alphas[lo:hi]))


def test_a_diverging_run_is_recorded_and_stops_without_raising(data):
    r = train(_cfg(OptimConfig("sgd", 1e30), epochs=3), data)
    assert r.final["diverged"] and r.final["diverged_at"] <= 3
    assert math.isnan(r.final["test_error"])
    assert r.final["iterations"] == r.final["diverged_at"] < 15


def test_unknown_optimizer_names_the_choices():
    with pytest.raises(ValueError, match="choose one of .*adam-hd"):
        make_optimizer(OptimConfig("adamw-hd", 1e-3), [torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="stack:<primary>/<secondary>"):
        make_optimizer(OptimConfig("stack:adam/lbfgs", 1e-3), [torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="choose one of .*pseudo"):
        OptimConfig("stack:adam/sgd", 1e-3, clip="yes")
    with pytest.raises(ValueError, match="OptimConfig.clip must be a string, got True"):
        OptimConfig("stack:adam/sgd", 1e-3, clip=True)
    with pytest.raises(ValueError, match="SGD secondary only"):
        make_optimizer(OptimConfig("stack:adam/adam", 1e-3, clip="code"),
                       [torch.nn.Parameter(torch.zeros(1))])


def test_store_skips_finished_runs_and_ignores_a_crashed_runs_rows(data, tmp_path):
    store = RunStore(tmp_path, "t")
    r = train(_cfg(OptimConfig("sgd-hd", 0.01, 1e-3)), data)
    store.append([("a", {"model": "logreg"}, r)])
    # A crash after the iteration rows of run "b" but before its final row:
    store._append_rows("iterations", [{"run_id": "b", "model": "logreg", **row}
                                      for row in r.iterations])
    assert store.finished() == {"a"}
    assert set(store.load("iterations").run_id) == {"a"}
    store.append([("b", {"model": "logreg"}, r)])  # the rerun writes b again, in full
    its = store.load("iterations")
    assert store.finished() == {"a", "b"} and len(its[its.run_id == "b"]) == len(r.iterations)


def test_store_never_reads_a_torn_line_and_cuts_it_before_the_next_append(data, tmp_path):
    store = RunStore(tmp_path, "t")
    r = train(_cfg(OptimConfig("sgd", 0.01)), data)
    store.append([("a", {"model": "logreg"}, r)])
    with store.path("final").open("a") as f:  # a kill inside the write of run b's final row
        f.write("b,logreg,TOR")
    assert store.finished() == {"a"} and set(store.load("final").run_id) == {"a"}
    store.append([("c", {"model": "logreg"}, r)])
    assert store.finished() == {"a", "c"}
    assert "TOR" not in store.path("final").read_text()


FAULTS_OF_REUSE = """
import resource, sys, torch
from hdrepro.engine.memory import keep_large_blocks
kept = keep_large_blocks() if sys.argv[1] == "keep" else None
for _ in range(3):   # 68 MB, BetterCNN's evaluation batch: allocated, freed, until the heap
    torch.ones(17_000_000).sum()   # has room for it beside what else was allocated meanwhile
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    torch.ones(17_000_000).sum()   # and again, as each evaluation does
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.slow   # starts two interpreters
def test_the_workers_reuse_large_blocks_without_page_faults():
    """glibc unmaps a freed 68 MB block and faults its 16,600 pages in again at each reuse; with
    keep_large_blocks (which the studies' workers call), once the heap has grown to hold it, the
    block is reused as it is."""
    def faults(mode):
        out = subprocess.run([sys.executable, "-c", FAULTS_OF_REUSE, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], int(out[1])

    (_, plain), (kept, reused) = faults("plain"), faults("keep")
    assert kept == "True"
    assert plain > 3 * 16_000 and reused < 1_000, (plain, reused)


def test_a_worker_keeps_large_blocks(monkeypatch):
    from hdrepro.engine import executors
    calls = []
    monkeypatch.setattr(executors, "keep_large_blocks", lambda: calls.append(1))
    assert executors.worker_device("cpu", None) == "cpu" and calls == [1]
