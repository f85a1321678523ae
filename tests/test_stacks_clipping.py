"""hdrepro.studies.stacks: the clipping report's experiment on tiny real data, its summaries and ablations."""
import math

import pandas as pd
import pytest

from hdrepro.studies import stats
from hdrepro.engine.data import DataConfig, default_data_root, load
from hdrepro.engine.executors import RunOptions
from hdrepro.engine.results import GridStore
from hdrepro.studies.stacks import (PUBLISHED, StackCell, StackSpec, ablation, comparison,
                                    conclusion, helped_rows, nan_network_error, run, trace)

ROOT = str(default_data_root())
TINY = DataConfig("mnist", 0.01)   # the first 600/100 MNIST images
OPTIONS = RunOptions(ROOT, progress=False)


def _spec(**kw):
    base = dict(tables=("adam",), seeds=(1,), nets=("output-tanh",), alphas={"adam": (1e-2,)},
                mnist=TINY, epochs={"adam": 1})
    return StackSpec(**{**base, **kw})


def test_variants_build_the_stacks_they_name():
    cell = StackCell("rmsprop", "output-tanh", "half", 0.05, 1, 5, TINY)
    cfg = cell.optim_config()
    assert (cfg.name, cfg.hypergrad_lr, cfg.clip, cfg.conventions) == (
        "stack:rmsprop/sgd", 0.025, "none", "chandra")
    assert cell.model == "tanh-mlp"
    assert StackCell("adam", "output-tanh", "clip", 1e-3, 1, 5, TINY).optim_config().clip == "code"
    assert StackCell("adam", "output-tanh", "clip-pseudo", 1e-3, 1, 5,
                     TINY).optim_config().clip == "pseudo"
    base = StackCell("sgd", "no-output-tanh", "baseline", 0.0, 1, 30, TINY)
    assert base.optim_config().name == "stack:sgd" and base.model == "tanh-mlp-no-output-tanh"
    assert StackCell("cnn", "output-tanh", "clip", 1e-5, 1, 5,
                     DataConfig("fashion-mnist")).model == "clip-cnn-28"
    with pytest.raises(ValueError, match="variant"):
        StackCell("adam", "output-tanh", "clipped", 1e-3, 1, 5, TINY)
    with pytest.raises(ValueError, match="No network"):
        _ = StackCell("cnn", "no-output-tanh", "none", 1e-3, 1, 5, DataConfig("fashion-mnist")).model
    with pytest.raises(ValueError, match="Unknown tables"):
        StackSpec(("table9",))


def test_the_published_tables_are_complete():
    assert [p.number for p in PUBLISHED.values()] == [1, 2, 3, 4, 5]
    assert [len(p.rows) for p in PUBLISHED.values()] == [13, 10, 11, 12, 10]
    # the report's bold rule on its own numbers: Table 1 at α = 50, 75, 100 and 1000
    t1 = [a for a, n, c in PUBLISHED["sgd"].rows if conclusion(n / 100, c / 100) == "helps"]
    assert t1 == [50, 75, 100, 1000]


def test_conclusions_use_one_point_both_ways():
    assert conclusion(0.10, 0.09) == "helps"
    assert conclusion(0.10, 0.0905) == "no effect"
    assert conclusion(0.09, 0.10) == "hurts"
    assert conclusion(math.nan, 0.1) == "n/a"


def _row(table, net, variant, alpha, seed, error):
    cell = StackCell(table, net, variant, alpha, seed, 1, TINY)
    return {**cell.labels(), "test_error": error, "diverged": False, "n_test": 10_000}


def test_summaries_average_trials_and_find_the_rows_where_clipping_helped():
    rows = [_row("adam", "output-tanh", v, a, s, e) for v, a, s, e in [
        ("baseline", 0.0, 1, 0.05), ("none", 1e-2, 1, 0.80), ("none", 1e-2, 2, 0.60),
        ("none", 1e-2, 3, 0.70), ("clip", 1e-2, 1, 0.20), ("clip", 1e-2, 2, 0.30),
        ("clip", 1e-2, 3, 0.25), ("none", 1e-4, 1, 0.03), ("clip", 1e-4, 1, 0.031),
        ("clip-pseudo", 1e-2, 1, 0.797), ("clip-pseudo", 1e-2, 2, 0.603),
        ("clip-pseudo", 1e-2, 3, 0.70), ("half", 1e-2, 1, 0.21), ("half", 1e-2, 2, 0.29),
        ("half", 1e-2, 3, 0.26)]]
    frame = pd.DataFrame(rows)
    comp = comparison(frame, "adam").set_index("alpha")
    assert comp.loc[1e-2, "ours_none"] == pytest.approx(0.70)   # mean of three trials
    assert comp.loc[1e-2, "report_none"] == pytest.approx(0.7957)
    # per-seed effects 0.60, 0.30, 0.45: t interval [0.08, 0.82], above 0 and ≥ 1 point
    assert comp.loc[1e-2, "we_say"] == "helps" and comp.loc[1e-2, "agree"]
    assert comp.loc[1e-2, "effect"].low == pytest.approx(0.0774, abs=1e-3)
    # one trial has no spread: inconclusive, never "no effect"
    assert comp.loc[1e-4, "we_say"] == "inconclusive" and comp.loc[1e-4, "report_says"] == "no effect"
    assert helped_rows(frame) == [("adam", "output-tanh", 1e-2)]
    ab = ablation(frame).iloc[0]
    assert ab.half_helps and ab.half_matches and not ab.pseudo_helps and ab.trials == 3
    assert ab.pseudo_says == "no effect"   # effects ±0.003, 0: interval inside ±1 point


def test_a_row_is_inconclusive_when_its_spread_exceeds_its_difference():
    """Table 1's α = 100 with clipping in one run: 3.83%, 3.71%, 84.35% (no clipping ~10%)."""
    from hdrepro.studies.stacks import effect_outcome, paired_effect
    rows = pd.DataFrame([_row("sgd", "output-tanh", v, 100.0, s, e) for v, s, e in [
        ("none", 1, 0.10), ("none", 2, 0.11), ("none", 3, 0.10),
        ("clip", 1, 0.0383), ("clip", 2, 0.0371), ("clip", 3, 0.8435)]])
    effect = paired_effect(rows)
    assert effect.n == 3 and effect.low < 0 < effect.high
    assert effect_outcome(effect) == "inconclusive"
    tight = stats.Interval(-0.002, -0.004, 0.001, 5)
    assert effect_outcome(tight) == "no effect"
    assert effect_outcome(stats.Interval(-0.05, -0.08, -0.02, 5)) == "hurts"
    assert effect_outcome(stats.Interval(0.05, 0.02, 0.08, 5)) == "helps"
    assert effect_outcome(stats.Interval(0.005, 0.002, 0.008, 5)) == "no effect"  # real, < 1 pt


def test_ablations_run_only_where_clipping_helped_and_a_rerun_redoes_nothing(tmp_path):
    """Rows stored as if clipping had helped at α = 1e-2 (not at 1e-3): the run trains only the
    pseudo-code and halved-rate cells of that row, for real, and a second run trains nothing."""
    spec = _spec(alphas={"adam": (1e-3, 1e-2)})
    store = GridStore(tmp_path / "s.jsonl")
    fake = {("none", 1e-2): 0.8, ("clip", 1e-2): 0.2, ("none", 1e-3): 0.1, ("clip", 1e-3): 0.1}
    store.append([{**c.labels(), "test_error": fake.get((c.variant, c.alpha), 0.1),
                   "diverged": False, "n_test": 10_000} for c in spec.cells()])
    frame = run(spec, store, OPTIONS)
    new = frame[frame.variant.isin(["clip-pseudo", "half"])]
    assert sorted(new.variant) == ["clip-pseudo", "half"] and set(new.alpha) == {1e-2}
    assert new.test_error.between(0, 1).all() and (new.iterations == 3).all()
    lines = store.path.read_text().count("\n")
    run(spec, store, OPTIONS)
    assert store.path.read_text().count("\n") == lines


def test_a_diverged_run_is_stored_with_the_nan_networks_error(tmp_path):
    # α beyond float32's range: α_t·h_t overflows and the weights turn NaN within a few steps
    spec = _spec(tables=("sgd",), alphas={"sgd": (1e39,)}, epochs={"sgd": 1})
    frame = run(spec, GridStore(tmp_path / "d.jsonl"), OPTIONS)
    bad = frame[frame.variant == "none"].iloc[0]
    assert bad.diverged and bad.diverged_at >= 2
    test_y = load(TINY, default_data_root()).test.y
    assert bad.test_error == pytest.approx(nan_network_error(test_y))
    assert not frame[frame.variant == "baseline"].iloc[0].diverged


def test_mnist_is_fed_in_unit_range_and_the_cnn_standardised():
    spec = _spec(tables=("adam", "cnn"), image=DataConfig("fashion-mnist", 0.01))
    cells = {c.table: c for c in spec.cells()}
    assert cells["adam"].pixels == "unit" and cells["cnn"].pixels == "standardised"
    unit = cells["adam"].load(ROOT)
    assert float(unit.train.x.min()) == 0 and float(unit.train.x.max()) == 1
    raw = load(TINY, default_data_root())
    assert float((unit.train.x - (raw.train.x * 0.3081 + 0.1307)).abs().max()) < 1e-6
    assert float(cells["cnn"].load(ROOT).train.x.min()) < 0
    extra = _spec(standardised=("adam",)).cells()
    std = [c for c in extra if c.pixels == "standardised"]
    assert sorted(c.variant for c in std) == ["baseline", "clip", "none"]
    assert len(extra) == len(_spec().cells()) + 3


def test_summaries_keep_the_standardised_runs_apart():
    rows = [_row("adam", "output-tanh", "none", 1e-2, 1, 0.8), _row("adam", "output-tanh", "clip",
                                                                    1e-2, 1, 0.2)]
    std = [StackCell("adam", "output-tanh", v, 1e-2, 1, 1, TINY, pixels="standardised")
           for v in ("none", "clip")]
    frame = pd.DataFrame(rows + [{**c.labels(), "test_error": e, "diverged": False,
                                  "n_test": 10_000} for c, e in zip(std, (0.5, 0.45))])
    assert comparison(frame, "adam").ours_none.tolist() == [0.8]
    std_comp = comparison(frame, "adam", pixels="standardised")
    assert std_comp.ours_none.tolist() == [0.5] and std_comp.ours_clip.tolist() == [0.45]
    # a row counts once both sides have run
    assert comparison(frame.iloc[:1], "adam").empty


def test_trace_records_the_threshold_and_the_clipped_norm():
    cell = StackCell("adam", "output-tanh", "clip", 1e-2, 1, 1, TINY)
    tr = trace(cell, ROOT)  # one epoch of 600 images: 3 steps
    lr = tr[tr.hyper == "lr"]
    assert list(lr.step) == [1, 2, 3] and set(tr.hyper) == {"lr", "beta1", "beta2"}
    assert lr.h.iloc[0] == 0 and lr.theta.iloc[0] == 0        # nothing has moved at step 1
    assert lr.theta.iloc[1] == pytest.approx(abs(lr.h.iloc[1]) / 2)  # the counted zero halves it
    assert (lr.clipped <= lr.h.abs() + 1e-12).all() and (lr.clipped <= lr.theta + 1e-12).all()
    plain = trace(cell.__class__(**{**cell.__dict__, "variant": "none"}), ROOT)
    assert "theta" not in plain.columns and len(plain) == len(tr)


def test_decisive_seeds_go_to_the_rows_a_verdict_reads_and_the_ablation_arms_only():
    """Table 2 (Adam/SGD): the report's clipping helps at α = 1e-2 (79.57% -> 23.2%), has no
    effect at 1e-4 (3.05% -> 3.06%) and hurts at 1e-1 (76.17% -> 86.44%), a row no claim reads."""
    spec = StackSpec(("adam", "cnn"), seeds=(1,), decisive_seeds=(4,), nets=("output-tanh",),
                     alphas={"adam": (1e-4, 1e-2, 1e-1), "cnn": (1e-4,)})
    assert spec.judged("adam") == (1e-4, 1e-2)
    extra = [c for c in spec.cells() if c.seed == 4]
    assert {(c.table, c.variant, c.alpha) for c in extra} == \
        {("adam", v, a) for v in ("none", "clip") for a in (1e-4, 1e-2)}   # no stand-in cells
    frame = pd.DataFrame([_row("adam", "output-tanh", v, a, 1, e) for v, a, e in [
        ("none", 1e-2, 0.8), ("clip", 1e-2, 0.2), ("none", 1e-4, 0.1), ("clip", 1e-4, 0.1)]])
    arms = [(c.variant, c.seed) for c in spec.ablation_cells(frame)]
    assert set(arms) == {("clip-pseudo", 1), ("half", 1), ("clip-pseudo", 4), ("half", 4),
                         ("none", 4), ("clip", 4)} and len(arms) == 6
    # seeds outermost: a run cut short leaves every row with the same trials
    two = pd.concat([frame, pd.DataFrame([_row("adam", "output-tanh", v, 5e-3, 1, e)
                                          for v, e in [("none", 0.7), ("clip", 0.1)]])])
    cells = spec.ablation_cells(two)
    assert {c.alpha for c in cells} == {1e-2, 5e-3}
    assert [c.seed for c in cells] == sorted(c.seed for c in cells)


def test_the_explanation_rule_pairs_the_arms_by_row_and_returns_every_outcome():
    from hdrepro.studies.stacks import explanation

    def rows(half_only, pseudo_only, both=0, neither=0):
        flags = ([(True, False)] * half_only + [(False, True)] * pseudo_only
                 + [(True, True)] * both + [(False, False)] * neither)
        return pd.DataFrame(flags, columns=["half_helps", "pseudo_helps"])
    assert explanation(rows(9, 0))[0] == "halved rate"
    assert explanation(rows(0, 9))[0] == "clipping"
    assert explanation(rows(5, 4))[0] == "neither"        # a split inside the noise is a tie
    # rows where both arms help, or neither, cannot tell them apart, however many there are
    winner, split = explanation(rows(0, 0, both=20, neither=10))
    assert winner == "neither" and split.n == 0
    assert explanation(rows(7, 0, both=3, neither=23))[1].n == 7
