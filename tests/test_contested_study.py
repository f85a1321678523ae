"""The contested-region study (hdrepro.studies.contested): its cells, what counts as a lost run
(diverged, or stuck at chance; a cell not stored is no run at all), the comparison with
SGD-HD able to return every verdict, the recommendation rule, and the report's sentences; and
MARTHE trained through hdrepro.engine.train."""
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from hdrepro.studies import contested as cs
from hdrepro.engine.data import Data, DataConfig, Split
from hdrepro.optim import MARTHE
from hdrepro.report import modern
from hdrepro.methods.registry import OptimConfig, make_optimizer
from hdrepro.engine.train import TrainConfig, train


def _frame(lost: dict[tuple[str, str], int], n: int = 12) -> pd.DataFrame:
    """n runs per (model, method), the first `lost[(model, method)]` of them lost: alternately
    diverged (NaN) and stuck at chance (test error 90%)."""
    rows = []
    for (model, method), k in lost.items():
        for i in range(n):
            diverged = i < k and i % 2 == 0
            loss = math.nan if diverged else (2.31 if i < k else 0.3 + 0.01 * i)
            error = math.nan if diverged else (0.90 if i < k else 0.05)
            rows.append({"model": model, "method": method, "alpha0": 1e-3,
                         "beta": 10.0 ** -(i % 3 + 1), "seed": i // 3 + 1, "diverged": diverged,
                         "train_loss": loss, "test_error": error,
                         "diverged_at": 5 if diverged else None})
    return pd.DataFrame(rows)


def test_the_cells_are_whole_seeds_with_an_sgd_row_and_unique_ids():
    spec = cs.ContestedSpec(seeds=(1, 2))
    cells = spec.cells()
    per_seed = len(spec.models) * (len(spec.alphas) + len(spec.methods) * len(spec.alphas)
                                   * len(spec.rates))
    assert len(cells) == 2 * per_seed and len({c.cell_id for c in cells}) == len(cells)
    assert {c.seed for c in cells[:per_seed]} == {1}
    assert {c.optim.name for c in cells} == {"sgd", *cs.METHODS}
    with pytest.raises(ValueError, match="Unknown methods"):
        cs.ContestedSpec(methods=("adam-hd",))
    with pytest.raises(ValueError, match="epochs"):
        cs.ContestedSpec(epochs=0)


def test_lost_runs_count_divergence_and_stuck_runs_and_nothing_else():
    f = _frame({("mlnn", "sgd-hd"): 5, ("mlnn", "hdm"): 0})
    table = cs.losses(f).set_index("method")
    assert table.loc["sgd-hd", "diverged"] == 3 and table.loc["sgd-hd", "stuck"] == 2
    assert table.loc["sgd-hd", "lost"].estimate == pytest.approx(5 / 12)
    assert table.loc["hdm", "lost"].estimate == 0 and table.loc["hdm", "runs"] == 12
    # a cell that never ran is not a run: dropping rows lowers n, not the lost count
    fewer = cs.losses(f.drop(index=[11])).set_index("method")
    assert fewer.loc["sgd-hd", "runs"] == 11 and fewer.loc["sgd-hd", "diverged"] == 3


@pytest.mark.parametrize("k_hd,k_new,verdict", [
    (20, 0, "fewer lost runs"), (0, 20, "more lost runs"), (5, 6, "a tie")])
def test_the_comparison_with_sgd_hd_can_return_every_verdict(k_hd, k_new, verdict):
    f = _frame({("mlnn", "sgd-hd"): k_hd, ("mlnn", "marthe"): k_new}, n=24)
    row = cs.against_hd(f).iloc[0]
    assert row.verdict == verdict and row.difference.n == 48


@pytest.mark.parametrize("lost,method,why", [
    ({("mlnn", "sgd-hd"): 20, ("mlnn", "hdm"): 0, ("mlnn", "marthe"): 10,
      ("bettercnn", "sgd-hd"): 20, ("bettercnn", "hdm"): 1, ("bettercnn", "marthe"): 0},
     "hdm", "better"),
    ({("mlnn", "sgd-hd"): 5, ("mlnn", "hdm"): 6}, None, "tie"),
    ({("mlnn", "sgd-hd"): 0, ("mlnn", "hdm"): 20}, None, "worse"),
    ({("mlnn", "sgd-hd"): 0, ("mlnn", "hdm"): 20, ("mlnn", "marthe"): 1}, None, "mixed"),
])
def test_the_recommendation_rule_can_name_a_method_or_none(lost, method, why):
    assert cs.recommendation(cs.against_hd(_frame(lost, n=24))) == (method, why)
    assert cs.recommendation(pd.DataFrame()) == (None, "untested")


def test_early_share_counts_sgd_hd_divergences_within_the_budget():
    grid = pd.DataFrame({"optimizer": ["sgd-hd"] * 3 + ["adam-hd"], "rule": "additive",
                         "gamma": 0.0, "diverged": [True, True, False, True],
                         "diverged_at": [40, 500, None, 3], "n_train": 6000,
                         "batch_size": 128})
    share = cs.early_share(grid, epochs=2)   # 2 epochs = 94 iterations
    assert (share.estimate, share.n) == (0.5, 2)


def test_the_report_states_n_the_interval_the_rule_and_a_computed_recommendation():
    f = _frame({("mlnn", "sgd-hd"): 20, ("mlnn", "hdm"): 0, ("mlnn", "marthe"): 20}, n=24)
    text = modern.contested_verdict(f, Path("."))
    assert "n = 48" in text and "fewer lost runs" in text and "a tie" in text
    assert "Newcombe" in text
    rec = modern.modern_recommendation(f, Path("/nonexistent"))
    assert "use **HDM" in rec
    rec = modern.modern_recommendation(_frame({("mlnn", "sgd-hd"): 5, ("mlnn", "hdm"): 6}),
                                       Path("/nonexistent"))
    assert "cannot yet point" in rec and "inside the noise" in rec and "at β = 0.1" in rec


def _tiny_data(n=64) -> Data:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    return Data(Split(x, y), Split(x[:32], y[:32]), {"name": "synthetic"})


def test_marthe_trains_through_the_training_loop_with_its_options():
    cfg = OptimConfig("marthe", 0.05, 1e-3, options=(("mu", 1.0),))
    opt = make_optimizer(cfg, [torch.nn.Parameter(torch.zeros(3))])
    assert isinstance(opt, MARTHE) and opt.param_groups[0]["mu"] == 1.0
    assert opt.param_groups[0]["weight_decay"] == cfg.weight_decay
    with pytest.raises(ValueError, match="Unknown MARTHE options"):
        make_optimizer(OptimConfig("marthe", 0.05, options=(("eps", 1.0),)), [])
    run = train(TrainConfig("logreg", DataConfig("mnist"), OptimConfig("marthe", 0.05, 1e-3),
                            epochs=2, batch_size=16, progress=False), _tiny_data())
    assert not run.final["diverged"] and run.final["iterations"] == 8
    alphas = [r["alpha"] for r in run.iterations]
    assert len(set(alphas)) > 1 and all(math.isfinite(a) for a in alphas)
