"""Each verdict rule on small synthetic tables: every outcome is reachable, and a difference
inside the noise is a tie."""
import pandas as pd
import pytest

from hdrepro import fig1_verdicts as fv
from hdrepro import stats


def _final(hd_losses, base_losses, hd_diverged=()):
    rows = []
    for seed, (h, b) in enumerate(zip(hd_losses, base_losses), start=1):
        rows.append({"run_id": f"b{seed}", "model": "logreg", "optimizer": "SGD",
                     "rule": "additive", "seed": seed, "alpha0": 1e-3, "diverged": False,
                     "train_loss": b, "val_loss": b})
        lost = seed in hd_diverged
        rows.append({"run_id": f"h{seed}", "model": "logreg", "optimizer": "SGD-HD",
                     "rule": "additive", "seed": seed, "alpha0": 1e-3, "diverged": lost,
                     "train_loss": float("nan") if lost else h,
                     "val_loss": float("nan") if lost else h})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("hd, base, outcome", [
    ((0.20, 0.21, 0.19, 0.20, 0.22), (0.30, 0.31, 0.29, 0.30, 0.32), "better"),
    ((0.40, 0.41, 0.39, 0.40, 0.42), (0.30, 0.31, 0.29, 0.30, 0.32), "worse"),
    # mean difference −0.01, but the seeds disagree in sign: inside the noise
    ((0.20, 0.35, 0.25, 0.28, 0.22), (0.30, 0.31, 0.29, 0.30, 0.25), "tie"),
])
def test_a_pair_is_judged_on_its_paired_interval(hd, base, outcome):
    pair = fv.paired(_final(hd, base)).iloc[0]
    assert pair.seeds == 5 and pair.train_outcome == outcome == pair.val_outcome


def test_an_hd_run_that_diverged_where_the_base_did_not_makes_the_pair_worse():
    pair = fv.paired(_final((0.2, 0.2, 0.2), (0.3, 0.3, 0.3), hd_diverged=(2,))).iloc[0]
    assert (pair.hd_lost, pair.train_outcome) == (1, "worse")


def test_the_loss_rule_returns_every_outcome_and_counts_a_tie_as_not_better():
    def pairs(outcomes):
        return pd.DataFrame({"train_outcome": outcomes, "val_outcome": outcomes})
    assert fv.loss_verdict(pairs(["better"] * 9))[0] == "reproduces"
    assert fv.loss_verdict(pairs(["better"] * 5 + ["worse"] * 4))[0] == "partly"
    assert fv.loss_verdict(pairs(["tie"] * 9))[0] == "does not reproduce"
    assert fv.loss_verdict(pairs([]))[0] == "not tested"


def test_alpha_rule_sees_a_peak_between_logged_rows_and_counts_divergence_against():
    final = pd.DataFrame([
        {"run_id": "a", "model": "m", "optimizer": "SGD-HD", "rule": "additive", "seed": 1,
         "alpha0": 1e-3, "diverged": False},
        {"run_id": "b", "model": "m", "optimizer": "SGD-HD", "rule": "additive", "seed": 2,
         "alpha0": 1e-3, "diverged": True}])
    # the samples never rise above α₀, but the range logged between rows does, early
    it = pd.DataFrame({"run_id": "a", "iteration": [100, 200, 300, 400],
                       "alpha": [1e-3, 8e-4, 5e-4, 2e-4],
                       "alpha_max": [5e-3, 9e-4, 6e-4, 3e-4]})
    runs = fv.alpha_runs(final, it).set_index("run_id")
    assert runs.loc["a", ["rises", "early", "decays"]].tolist() == [True, True, True]
    assert runs.loc["b", ["rises", "decays"]].tolist() == [False, False]
    sampled = fv.alpha_runs(final, it.drop(columns="alpha_max")).set_index("run_id")
    assert not sampled.loc["a", "rises"]


def test_majority_returns_every_outcome():
    assert [stats.majority(stats.proportion(k, 20)) for k in (18, 10, 2, 0)] == \
        ["reproduces", "partly", "does not reproduce", "does not reproduce"]
    assert stats.majority(stats.proportion(0, 0)) == "not tested"
