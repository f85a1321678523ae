"""Baydin et al.'s tuning grid: runs stop at the first minibatch loss ≤ the threshold, cell ids of
stored studies are unchanged by the new field, and the claim's rule can return every outcome."""
import hashlib
import json
import math
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from hdrepro.engine.data import DataConfig, load
from hdrepro.engine.cells import RunCell
from hdrepro.studies.threshold import ThresholdSpec, iteration_table, paired, summary, verdict
from hdrepro.methods.registry import OptimConfig
from hdrepro.engine.train import TrainConfig, train

DATA = Path(__file__).resolve().parent.parent / "data"


def test_a_run_stops_at_the_first_minibatch_whose_loss_reaches_the_threshold():
    data = load(DataConfig("mnist", 0.05), DATA)
    seen = []
    cfg = TrainConfig("logreg", DataConfig("mnist", 0.05), OptimConfig("sgd-hd", 1e-2, 1e-3),
                      epochs=5, stop_below=0.6, progress=False)
    res = train(cfg, data, on_step=lambda it, loss, opt: seen.append(float(loss.detach())))
    at = res.final["reached_at"]
    assert at == len(seen) == res.final["iterations"] and seen[-1] <= 0.6
    assert all(v > 0.6 for v in seen[:-1])
    assert res.epochs and res.epochs[-1]["iteration"] == at     # evaluated where it stopped
    never = train(TrainConfig("logreg", DataConfig("mnist", 0.05), OptimConfig("sgd", 1e-6),
                              epochs=1, stop_below=0.01, progress=False), data)
    assert never.final["reached_at"] is None and never.final["iterations"] == 24


def test_cells_without_a_threshold_keep_the_ids_they_were_stored_under():
    cell = RunCell("x", "mlnn", DataConfig("mnist", 0.1), OptimConfig("adam", 1e-3), 2)
    old = asdict(cell)   # the fields the id was made of before stop_below, second_order, validation
    del old["stop_below"], old["optim"]["second_order"], old["data"]["validation"]
    blob = json.dumps(old, sort_keys=True, default=str)
    assert cell.cell_id == hashlib.sha1(blob.encode()).hexdigest()[:16]
    assert RunCell("x", "mlnn", DataConfig("mnist", 0.1), OptimConfig("adam", 1e-3), 2,
                   stop_below=0.29).cell_id != cell.cell_id


def _frame(base: dict, hd: dict, hd_name="sgd-hd", seed=1) -> pd.DataFrame:
    """Rows as the study stores them: base {α₀: iterations or None}, hd {(β, α₀): …}."""
    rows = [{"hd": hd_name, "variant": "base", "alpha0": a, "beta": 0.0, "seed": seed,
             "reached_at": v, "diverged": False} for a, v in base.items()]
    rows += [{"hd": hd_name, "variant": "hd", "alpha0": a, "beta": b, "seed": seed,
              "reached_at": v, "diverged": False} for (b, a), v in hd.items()]
    return pd.DataFrame(rows)


def test_iteration_table_and_pairs_follow_baydins_layout():
    f = _frame({0.1: 50, 0.01: None}, {(1e-3, 0.1): 40, (1e-3, 0.01): 300,
                                         (1e-5, 0.1): 60, (1e-5, 0.01): None})
    t = iteration_table(f, "sgd-hd")
    assert list(t.index) == ["baseline", 1e-3, 1e-5] and list(t.columns) == [0.1, 0.01]
    assert t.loc["baseline", 0.01] == math.inf and t.loc[1e-3, 0.01] == 300
    p = paired(f, "sgd-hd").set_index(["beta", "alpha0"])
    assert p.at_least_as_fast[(1e-3, 0.1)] and not p.at_least_as_fast[(1e-5, 0.1)]
    assert p.at_least_as_fast[(1e-3, 0.01)]          # reached where the base never did
    assert (1e-5, 0.01) not in p.index               # neither reached: no information


@pytest.mark.parametrize("hd_reach,want", [((2, 2), "reproduces"), ((2, 1), "partly"),
                                           ((1, 1), "does not reproduce")])
def test_the_claims_rule_can_return_every_outcome(hd_reach, want):
    frames = []
    for name, reach in zip(("sgd-hd", "adam-hd"), hd_reach):
        hd = {(1e-3, 0.1): 40, (1e-3, 0.01): 80 if reach == 2 else None}
        frames.append(_frame({0.1: 50, 0.01: None}, hd, name))
    s = summary(pd.concat(frames, ignore_index=True))
    assert verdict(s) == want
    assert verdict(s.iloc[0:0]) == "not tested"


def test_spec_cells_and_validation():
    spec = ThresholdSpec(optimizers=("sgd-hd",), alphas=(0.1, 0.01), betas=(1e-3,), seeds=(1, 2))
    cells = spec.cells()
    assert len(cells) == 2 * (2 + 2) and all(c.stop_below == 0.29 for c in cells)
    assert {dict(c.tags)["variant"] for c in cells} == {"base", "hd"}
    with pytest.raises(ValueError, match="threshold"):
        ThresholdSpec(threshold=0.0)
    with pytest.raises(ValueError, match="optimizers"):
        ThresholdSpec(optimizers=("rmsprop-hd",))
