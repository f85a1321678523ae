"""hdrepro.studies.grids, hdrepro.engine.batched and BatchedHD: batched ≡ one cell at a time, resume after a
kill, torn rows, executors (in-process, processes, Dask LocalCluster), worse/NaN marking."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call

from hdrepro.engine.data import DataConfig, default_data_root
from hdrepro.studies.grids import GridSpec, panel_stats, panels, run_grid, tasks
from hdrepro.engine.executors import RunOptions
from hdrepro.optim import SGDHD, AdamHD
from hdrepro.optim.batched import BatchedHD
from hdrepro.engine.results import GridStore
from hdrepro.studies.equivalence import Problem, rel_err

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
ROOT = str(default_data_root())
TINY = DataConfig("mnist", 0.02)   # the first 1,200 / 200 MNIST images: real data, fetched by set-up
REPO = Path(__file__).resolve().parents[1]


# -- BatchedHD runs each cell's equations exactly (float64, against SGDHD / AdamHD) ------------
CELLS = [  # (α₀, β, γ): plain optimizer, first-order HD, second-order HD
    (0.05, 0.0, 0.0), (0.05, 1e-2, 0.0), (0.02, 1e-2, 1e-3)]
SINGLE = {"sgd": lambda p, a, b, g, r, s: SGDHD(p, a, weight_decay=1e-4, hypergrad_lr=b, rule=r,
                                                hyper_hypergrad_lr=g, second_order=s),
          "sgdn": lambda p, a, b, g, r, s: SGDHD(p, a, momentum=0.9, nesterov=True,
                                                 weight_decay=1e-4, hypergrad_lr=b, rule=r,
                                                 hyper_hypergrad_lr=g, second_order=s),
          "adam": lambda p, a, b, g, r, s: AdamHD(p, a / 10, weight_decay=1e-4,
                                                  hypergrad_lr=b / 1e4, rule=r,
                                                  hyper_hypergrad_lr=g, second_order=s)}


@pytest.mark.parametrize("sign", ["derived", "printed"])
@pytest.mark.parametrize("rule", ["additive", "multiplicative"])
@pytest.mark.parametrize("kind", sorted(SINGLE))
def test_batched_optimizer_equals_one_optimizer_per_cell(kind, rule, sign, float64):
    problem = Problem(model="mlp", steps=15)
    batches = problem.batches()[:15]
    # the printed (ascent) β update blows up at these γ within 15 steps: smaller ones for it
    shrink = 1.0 if sign == "derived" else 1e-6 if kind == "adam" else 0.1
    cells = [(a, b, g * shrink) for a, b, g in CELLS]
    hps = [(a / 10, b / 1e4, g) if kind == "adam" else (a, b, g) for a, b, g in cells]
    singles = []
    for a, b, g in cells:
        model = problem.make_model()
        opt = SINGLE[kind](list(model.parameters()), a, b, g, rule, sign)
        alphas = []
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            alphas.append(float(opt.param_groups[0]["lr"]))
        singles.append((torch.tensor(alphas), torch.cat([p.reshape(-1) for p in
                                                         model.parameters()]).detach()))
    model = problem.make_model()
    stacked = {n: p.detach().unsqueeze(0).repeat((len(CELLS),) + (1,) * p.dim()).requires_grad_()
               for n, p in model.named_parameters()}
    opt = BatchedHD(list(stacked.values()), kind, [h[0] for h in hps], [h[1] for h in hps],
                    [h[2] for h in hps], rule=rule, weight_decay=1e-4, second_order=sign)
    alphas = []
    for x, y in batches:
        opt.zero_grad()
        losses = torch.vmap(lambda p: torch.nn.functional.cross_entropy(
            functional_call(model, p, (x,)), y))(stacked)
        losses.sum().backward()
        opt.step()
        alphas.append(opt.lr.clone())
    alphas = torch.stack(alphas)
    for k, (a_single, p_single) in enumerate(singles):
        p_batched = torch.cat([p[k].reshape(-1) for p in stacked.values()]).detach()
        assert rel_err(a_single, alphas[:, k]) <= 1e-10
        assert rel_err(p_single, p_batched) <= 1e-10
    assert alphas[-1, 1] != alphas[0, 1] and alphas[-1, 0] == alphas[0, 0]


@pytest.mark.parametrize("bad,words", [
    (dict(kind="rmsprop"), "Invalid kind"),
    (dict(lr=[0.1, -0.1], hypergrad_lr=[0.0, 0.0]), "lr"),
    (dict(hypergrad_lr=[0.0]), "one value per cell"),
    (dict(rule="exp"), "Invalid rule"),
    (dict(betas=(0.9, 1.0)), "betas"),
])
def test_batched_optimizer_rejects_bad_input(bad, words):
    args = dict(params=[torch.zeros(2, 3)], kind="sgd", lr=[0.1, 0.1], hypergrad_lr=[0.0, 1e-3])
    args.update(bad)
    with pytest.raises(ValueError, match=words):
        BatchedHD(**args)
    with pytest.raises(ValueError, match="cell axis first"):
        BatchedHD([torch.zeros(3, 3)], "sgd", [0.1, 0.1], [0.0, 0.0])


# -- batched cells ≡ one cell at a time, on real data -------------------------------------------
@pytest.mark.slow  # trains grids
def test_batched_grid_equals_one_cell_at_a_time(tmp_path):
    """MLNN and BetterCNN (dropout): same final training losses to 1e-5 (validation losses to
    1e-4), exactly equal divergence flags and steps. The cells avoid the chaotic edge between
    converging and diverging, where float32 reordering alone changes the trajectory."""
    frames = {}
    for model, betas in (("mlnn", (1e-4, 1e-1)), ("bettercnn", (1e-6, 1e-1))):
        spec = GridSpec(model, model, ("sgdn-hd", "adam-hd"), (1e-4, 1e-3), betas,
                        epochs=1, data=TINY)
        for batch in (0, 64):
            store = GridStore(tmp_path / f"{model}_{batch}.jsonl")
            frames[model, batch] = run_grid(spec, store, RunOptions(ROOT, batch=batch,
                                                                     progress=False)).frame
    for model in ("mlnn", "bettercnn"):
        one = frames[model, 0].set_index("cell_id").sort_index()
        many = frames[model, 64].set_index("cell_id").sort_index()
        assert len(one) == len(many) == 2 * (2 + 4)
        assert (one.diverged == many.diverged).all()
        assert 0 < one.diverged.sum() < len(one), "the grid should hold both kinds of cells"
        assert (one.diverged_at.fillna(0) == many.diverged_at.fillna(0)).all()
        ok = ~one.diverged
        for metric, tol in (("train_loss", 1e-5), ("val_loss", 1e-4)):
            err = ((one[metric][ok] - many[metric][ok]).abs() / one[metric][ok].abs()).max()
            assert err <= tol, (model, metric, err)
        assert (many.cells_in_batch > 1).all() and (one.cells_in_batch == 1).all()


def test_tasks_group_cells_that_can_share_a_batch():
    spec = GridSpec("t", "logreg", ("sgd-hd", "adam-hd"), (1e-3, 1e-1), (1e-4, 1e-1), epochs=1,
                    data=TINY, rules=("additive", "multiplicative"), seeds=(1, 2))
    cells = spec.cells()
    assert len(cells) == 2 * 2 * (2 + 2 * 4)
    work = tasks(cells, batch=64)
    for task in work:
        assert len({(c.kind, c.seed) for c in task}) == 1
        assert len({c.rule for c in task if not c.baseline}) <= 1
    assert sorted(c.cell_id for t in work for c in t) == sorted(c.cell_id for c in cells)
    assert max(len(t) for t in tasks(cells, batch=3)) == 3
    assert all(len(t) == 1 for t in tasks(cells, batch=0))


# -- resumable store -----------------------------------------------------------------------------
KILL_SCRIPT = """
import sys
from hdrepro.engine.data import DataConfig
from hdrepro.engine.executors import RunOptions
from hdrepro.studies.grids import GridSpec, run_grid
from hdrepro.engine.results import GridStore
spec = GridSpec("k", "logreg", ("sgd-hd",), (1e-3, 1e-2, 1e-1), (1e-4, 1e-2), epochs=4,
                data=DataConfig("mnist", 0.02))
run_grid(spec, GridStore(sys.argv[1]), RunOptions(sys.argv[2], batch=0, progress=False))
"""


@pytest.mark.slow  # trains grids
def test_grid_resumes_after_a_kill_without_redoing_or_losing_cells(tmp_path):
    path = tmp_path / "k.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path), ROOT], cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the grid finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = path.read_text()
    n_before = before.count("\n")
    assert 2 <= n_before < 9
    subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(path), ROOT], cwd=REPO, check=True)
    after = path.read_text()
    assert after.startswith(before), "finished cells were rewritten"
    ids = [json.loads(line)["cell_id"] for line in after.splitlines()]
    assert len(ids) == len(set(ids)) == 3 + 6, "a cell was redone or lost"


def test_torn_last_row_is_ignored_and_cut_before_the_next_append(tmp_path):
    store = GridStore(tmp_path / "s.jsonl")
    store.append([{"cell_id": "a", "x": 1.0}, {"cell_id": "b", "x": float("nan")}])
    with open(store.path, "a") as f:
        f.write('{"cell_id": "c", "x"')        # killed mid-row
    assert store.finished() == {"a", "b"}
    store.append([{"cell_id": "d", "x": 2.0}])
    assert [r["cell_id"] for r in store.rows()] == ["a", "b", "d"]
    assert math.isnan(store.frame().set_index("cell_id").x["b"])


# -- executors ---------------------------------------------------------------------------------
SMOKE = GridSpec("smoke", "logreg", ("sgd-hd",), (1e-3, 1e-1), (1e-4, 1e-1), epochs=1, data=TINY)


@pytest.mark.slow  # trains grids
@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_worker_executors_match_in_process(executor, tmp_path):
    ref = run_grid(SMOKE, GridStore(tmp_path / "ref.jsonl"),
                   RunOptions(ROOT, progress=False)).frame
    got = run_grid(SMOKE, GridStore(tmp_path / f"{executor}.jsonl"),
                   RunOptions(ROOT, executor=executor, workers=2, batch=2, progress=False)).frame
    ref, got = ref.set_index("cell_id").sort_index(), got.set_index("cell_id").sort_index()
    assert list(ref.index) == list(got.index) and len(ref) == 6
    np.testing.assert_allclose(got.train_loss, ref.train_loss, rtol=1e-5)


def test_bad_grid_and_run_options_give_clear_errors():
    with pytest.raises(ValueError, match="Grid optimizers"):
        GridSpec("x", "logreg", ("rmsprop-hd",), (1e-3,), (1e-3,), epochs=1, data=TINY)
    with pytest.raises(ValueError, match="Unknown model"):
        GridSpec("x", "resnet", ("sgd-hd",), (1e-3,), (1e-3,), epochs=1, data=TINY)
    with pytest.raises(ValueError, match=r"Invalid .*β"):
        GridSpec("x", "logreg", ("sgd-hd",), (1e-3,), (-1e-3,), epochs=1, data=TINY)
    with pytest.raises(ValueError, match="Unknown executor"):
        RunOptions(ROOT, executor="slurm")
    with pytest.raises(ValueError, match="--scheduler needs --executor dask"):
        RunOptions(ROOT, scheduler="tcp://x:8786")


# -- what the heatmaps show ------------------------------------------------------------------------
def _frame(rows):
    base = dict(rule="additive", gamma=0.0, seed=1, diverged=False)
    return pd.DataFrame([{**base, **r} for r in rows])


def test_worse_than_baseline_uses_the_reports_rounding_and_nan_cells_are_masked():
    rows = [dict(optimizer="sgd", baseline=True, alpha0=a, beta=0.0, train_loss=v)
            for a, v in ((1e-3, 0.300), (1e-2, 0.200))]
    rows += [dict(optimizer="sgd-hd", baseline=False, alpha0=1e-3, beta=1e-4, train_loss=0.304),
             dict(optimizer="sgd-hd", baseline=False, alpha0=1e-3, beta=1e-2, train_loss=0.306),
             dict(optimizer="sgd-hd", baseline=False, alpha0=1e-2, beta=1e-4, train_loss=0.1),
             dict(optimizer="sgd-hd", baseline=False, alpha0=1e-2, beta=1e-2,
                  train_loss=float("nan"), diverged=True)]
    (panel,) = panels(_frame(rows))
    from hdrepro.report.plots import grid_layers, plot_grid
    values, classes, mask = grid_layers(panel)
    # rows: baseline, β=1e-4, β=1e-2; columns: α₀ = 1e-3, 1e-2
    assert mask.tolist() == [[False, False], [False, False], [False, True]]
    assert classes.tolist()[1:] == [[1, 1], [2, 1]]  # 0.304 → 0.30 ties; 0.306 → 0.31 is worse
    stats = panel_stats(panel)
    assert (stats["cells"], stats["diverged"], stats["worse"]) == (4, 1, 1)
    assert stats["worse_fraction_of_converged"] == pytest.approx(1 / 3)
    fig, ax = plt.subplots()
    plot_grid(panel, ax)
    texts = [t.get_text() for t in ax.texts]
    assert "0.306" in texts and "nan" not in " ".join(texts) and len(texts) == 5
    plt.close(fig)


def test_seed_mean_ignores_diverged_seeds_and_blanks_when_all_diverged():
    rows = [dict(optimizer="sgd", baseline=True, alpha0=1e-3, beta=0.0, train_loss=0.5, seed=s)
            for s in (1, 2)]
    rows += [dict(optimizer="sgd-hd", baseline=False, alpha0=1e-3, beta=1e-4, seed=1,
                  train_loss=0.2),
             dict(optimizer="sgd-hd", baseline=False, alpha0=1e-3, beta=1e-4, seed=2,
                  train_loss=float("nan"), diverged=True),
             dict(optimizer="sgd-hd", baseline=False, alpha0=1e-3, beta=1e-1, seed=1,
                  train_loss=float("nan"), diverged=True),
             dict(optimizer="sgd-hd", baseline=False, alpha0=1e-3, beta=1e-1, seed=2,
                  train_loss=float("nan"), diverged=True)]
    (panel,) = panels(_frame(rows))
    assert panel.values.loc[1e-4, 1e-3] == pytest.approx(0.2)
    assert math.isnan(panel.values.loc[1e-1, 1e-3])
    assert panel.diverged.loc[1e-4, 1e-3] == 0.5


@pytest.mark.slow  # trains grids
def test_grid_driver_smoke_writes_cells_and_heatmap(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "experiments/grid_logreg.py", "--profile", "smoke",
                          "--out", str(tmp_path), "--figures", str(tmp_path), "--no-progress"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "grid_logreg.png" in out.stdout
    assert len(GridStore(tmp_path / "grid_logreg.jsonl").rows()) == 6
    again = subprocess.run([sys.executable, "experiments/grid_logreg.py", "--profile", "smoke",
                            "--out", str(tmp_path), "--figures", str(tmp_path), "--plot-only"],
                           cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert "grid_logreg.png" in again.stdout


def test_stacked_forward_and_the_vmap_fallback_train_alike(monkeypatch):
    """The hand-stacked forward (shared first layer, grouped convs, one dropout draw) and the
    general torch.func.vmap path give the same cells (BetterCNN: convs, pooling, dropout)."""
    from hdrepro.engine import batched
    from hdrepro.engine.executors import worker_data
    data = worker_data(TINY, ROOT)
    cells = [batched.CellHParams(1e-3, 0.0), batched.CellHParams(1e-2, 1e-4)]
    fast = batched.train_cells("bettercnn", "sgdn", cells, data, epochs=1)
    monkeypatch.setattr(batched, "stackable", lambda model: False)
    slow = batched.train_cells("bettercnn", "sgdn", cells, data, epochs=1)
    for a, b in zip(fast, slow):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
