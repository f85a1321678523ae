"""Each verdict rule on small synthetic tables: every outcome is reachable, and a difference
inside the noise is a tie."""
import pandas as pd
import pytest

from hdrepro.studies import fig1 as fv
from hdrepro.studies import stats


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


# -- the grid claims (hdrepro.studies.grid_verdicts) ---------------------------------------------------
from hdrepro.studies import grid_verdicts as gv  # noqa: E402


def _grid(paper, best, seeds=5, paper_diverges=False):
    """A LogReg panel: the paper's cell, a better cell and a poor one, over seeds."""
    rows = []
    for s in range(1, seeds + 1):
        for (a, b), loss in (((1e-3, 1e-3), paper[s - 1]), ((1e-1, 1e-6), best[s - 1]),
                             ((1e-6, 1e-6), 2.0)):
            lost = paper_diverges and (a, b) == (1e-3, 1e-3)
            rows.append({"optimizer": "sgd-hd", "rule": "additive", "baseline": False,
                         "alpha0": a, "beta": b, "seed": s, "diverged": lost,
                         "train_loss": float("nan") if lost else loss})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("paper, best, outcome", [
    ((0.20, 0.21, 0.22, 0.20, 0.21), (0.30, 0.31, 0.32, 0.30, 0.31), "better"),
    ((0.30, 0.31, 0.32, 0.30, 0.31), (0.20, 0.21, 0.22, 0.20, 0.21), "worse"),
    ((0.20, 0.31, 0.22, 0.30, 0.21), (0.30, 0.21, 0.32, 0.20, 0.21), "tie"),
])
def test_the_papers_cell_is_judged_against_the_best_other_cell_over_seeds(paper, best, outcome):
    r = gv.paper_cell_vs_best(_grid(paper, best), "sgd-hd")
    assert r["outcome"] == outcome and r["seeds"] == 5 and r["best"] == (1e-1, 1e-6)


def test_a_papers_cell_that_diverged_on_a_seed_is_worse():
    r = gv.paper_cell_vs_best(_grid((0.2,) * 5, (0.3,) * 5, paper_diverges=True), "sgd-hd")
    assert r["outcome"] == "worse" and r["paper_diverged"] == 5


def test_paper_cell_verdict_returns_every_outcome():
    row = lambda o: {"outcome": o}  # noqa: E731
    assert gv.paper_cell_verdict([row("tie"), row("better")]) == "reproduces"
    assert gv.paper_cell_verdict([row("tie"), row("worse")]) == "partly"
    assert gv.paper_cell_verdict([row("worse"), row("worse")]) == "does not reproduce"
    assert gv.paper_cell_verdict([]) == "not tested"


def _panel(bad, cells=36):
    return {"cells": cells, "diverged": bad // 2, "worse": bad - bad // 2}


def test_mlnn_rule_returns_every_outcome():
    many_adam = {"sgd-hd": _panel(10), "sgdn-hd": _panel(12), "adam-hd": _panel(30)}
    assert gv.problematic(many_adam)["verdict"] == "reproduces"
    # Adam-HD no worse than the others (the difference is inside the noise), but many bad
    level = {"sgd-hd": _panel(20), "sgdn-hd": _panel(22), "adam-hd": _panel(24)}
    assert gv.problematic(level)["verdict"] == "partly"
    assert gv.problematic(level)["parts"] == (True, False)   # the report names the part that held
    few = {"sgd-hd": _panel(1), "sgdn-hd": _panel(2), "adam-hd": _panel(2)}
    assert gv.problematic(few)["verdict"] == "does not reproduce"
    assert gv.problematic({})["verdict"] == "not tested"


def test_bettercnn_rule_returns_every_outcome():
    most, some = pd.Series([True] * 30 + [False] * 6), pd.Series([True] * 6 + [False] * 30)
    assert gv.bettercnn(most, 23, 60)["verdict"] == "reproduces"
    assert gv.bettercnn(most, 5, 60)["verdict"] == "partly"       # 8%: far from 39%
    assert gv.bettercnn(most, 5, 60)["parts"] == (True, False)
    assert gv.bettercnn(some, 5, 60)["verdict"] == "does not reproduce"
    assert gv.bettercnn(pd.Series([], dtype=bool), 0, 0)["verdict"] == "not tested"


def test_mostly_trains_returns_every_outcome():
    assert gv.mostly_trains(stats.proportion(1, 20)) == "reproduces"
    assert gv.mostly_trains(stats.proportion(12, 20)) == "partly"
    assert gv.mostly_trains(stats.proportion(19, 20)) == "does not reproduce"


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), method 10: 56/70 − 48/80 = 0.2, 95% CI [0.0524, 0.3339]
    d = stats.proportion_difference(56, 70, 48, 80)
    assert d.estimate == pytest.approx(0.2)
    assert (d.low, d.high) == (pytest.approx(0.0524, abs=1e-4), pytest.approx(0.3339, abs=1e-4))


# -- the divergence study (hdrepro.studies.divergence) -------------------------------------------
from hdrepro.studies import divergence as ds  # noqa: E402


def _twins(d32, d64):
    rows = []
    for s, (a, b) in enumerate(zip(d32, d64), start=1):
        rows += [{"optimizer": "sgd-hd", "seed": s, "dtype": "float32", "diverged": a,
                  "diverged_at": 500 if a else None},
                 {"optimizer": "sgd-hd", "seed": s, "dtype": "float64", "diverged": b,
                  "diverged_at": 510 if b else None}]
    return ds.pairs(pd.DataFrame(rows))


def test_precision_rule_returns_every_outcome():
    assert ds.precision_verdict(_twins([True] * 8 + [False] * 2, [True] * 8 + [False] * 2))[0] \
        == "not the cause"
    assert ds.precision_verdict(_twins([True] * 8 + [False] * 2, [False] * 10))[0] == "the cause"
    assert ds.precision_verdict(_twins([True, True, False], [True, False, False]))[0] == \
        "undecided"
    assert ds.precision_verdict(_twins([False] * 3, [False] * 3))[0] == "undecided"


from hdrepro.report.speed import interval_verdict  # noqa: E402


@pytest.mark.parametrize("intervals, outcome", [
    ([(1.02, 1.10), (1.05, 1.15)], "meets"),
    ([(1.02, 1.10), (1.16, 1.25)], "misses"),
    ([(1.02, 1.10), (1.12, 1.19)], "is within the timing's noise of")])
def test_floor_rule_returns_every_outcome_and_an_interval_across_the_target_is_a_tie(
        intervals, outcome):
    assert interval_verdict(intervals, 1.15) == outcome


@pytest.mark.parametrize("lo, hi, outcome", [(2.0, 2.3, "meets"), (1.5, 1.99, "misses"),
                                             (1.8, 2.2, "is within the timing's noise of"),
                                             (1.7, 1.7, "misses"), (2.1, 2.1, "meets"),
                                             (1.996, 2.2, "meets")])   # 2.00 as printed
def test_speedup_rule_returns_every_outcome_and_an_interval_across_the_target_is_a_tie(
        lo, hi, outcome):
    """BetterCNN's 2× speed-up: higher is better, so the rule runs the other way."""
    assert interval_verdict([(lo, hi)], 2.0, at_most=False) == outcome


from hdrepro.report.speed import one_buffer_cuda  # noqa: E402


def _gpu_results(folder, ratios, kernels):
    """bench_step_cuda.csv and profile_step_cuda.csv holding the one-buffer rows."""
    import csv
    steps = ("Adam-HD (ours, one buffer)", "SGDN-HD (ours, one buffer)")
    with (folder / "bench_step_cuda.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["params", "ours", "baseline", "ratio", "ratio_lo", "ratio_hi"])
        for step, base, (x, lo, hi) in zip(steps, ("Adam (fused)", "SGDN (fused)"), ratios):
            w.writerow(["resnet-like 160 tensors", step, base, x, lo, hi])
    with (folder / "profile_step_cuda.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["params", "step", "kernels_per_step"])
        for step, n in zip(steps, kernels):
            w.writerow(["resnet-like 160 tensors", step, n])


@pytest.mark.parametrize("ratios, kernels, timed, launches", [
    ([(1.5, 1.4, 1.6), (1.2, 1.1, 1.3)], (12, 8), "meets", "meets"),
    ([(2.5, 2.3, 2.7), (1.2, 1.1, 1.3)], (12, 8), "misses", "meets"),
    ([(1.9, 1.8, 2.1), (1.2, 1.1, 1.3)], (17, 8), "is within the timing's noise of", "misses")])
def test_one_buffer_gpu_rule_returns_every_outcome_on_both_targets(
        tmp_path, ratios, kernels, timed, launches):
    _gpu_results(tmp_path, ratios, kernels)
    text = one_buffer_cuda(tmp_path)
    assert f"**{timed}** the 2× target and **{launches}** the 16-launch one" in text


def test_one_buffer_gpu_rule_says_when_nothing_is_measured(tmp_path):
    assert "not measured yet" in one_buffer_cuda(tmp_path)


def test_two_part_evidence_says_which_part_held():
    from hdrepro.report.claims import _parts
    assert _parts(zip(("most diverge", "near 39%"), (True, False))) == \
        "parts: most diverge (held), near 39% (did not hold)"
