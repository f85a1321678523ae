"""The extension experiments' runner and summaries (hdrepro.engine.cells, asgc_study, rival_study,
epsilon_study) on tiny real MNIST and on frames the tests make."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hdrepro.studies import asgc as asgc_study, rivals as rival_study
from hdrepro.engine.data import DataConfig, default_data_root
from hdrepro.studies.epsilon import EPSILONS, EpsilonSpec, record_histogram, validation
from hdrepro.engine.executors import RunOptions
from hdrepro.engine.results import GridStore
from hdrepro.engine.cells import RunCell, run
from hdrepro.methods.registry import OptimConfig

ROOT = str(default_data_root())
TINY = DataConfig("mnist", 0.01)   # the first 600/100 MNIST images


def test_cells_are_stored_with_their_curves_and_a_rerun_trains_nothing(tmp_path):
    cells = [RunCell("t", "logreg", TINY, OptimConfig(name, lr), 2, tags=(("method", name),))
             for name, lr in (("adam", 1e-3), ("hd-nadam", 1e-3), ("asgc-momentum", 0.05))]
    store = GridStore(tmp_path / "t.jsonl")
    opts = RunOptions(ROOT, progress=False)
    frame = run(cells, store, opts, "t")
    assert len(frame) == 3 and set(frame.method) == {"adam", "hd-nadam", "asgc-momentum"}
    assert all(len(c) == 2 for c in frame.curve_val_acc)
    assert all(c[0] < c[1] for c in frame.curve_seconds)
    assert (frame.n_train == 600).all() and frame.test_error.between(0, 1).all()
    run(cells, store, opts, "t")
    assert len(store.rows()) == 3


def _asgc_row(method, lr, curve, phase="tune", seed=1, options="{}", diverged=False,
              test_error=None, validation=0.1):
    return {"data": "mnist", "model": "mlnn", "method": method, "alpha0": lr, "options": options,
            "phase": phase, "seed": seed, "curve_val_acc": curve,
            "curve_seconds": [10.0 * (i + 1) for i in range(len(curve))],
            "val_error": 1 - curve[-1], "validation": validation,
            "test_error": 1 - curve[-1] if test_error is None else test_error,
            "diverged": diverged, "val_loss": 0.5, "train_loss": 0.25, "n_test": 10_000}


def _budget(rows, seed=1, drop=None):
    """`rows` made a whole tuning seed: every method filled up to BUDGET configurations with
    runs that are never chosen (or, for a method with no row of its own, runs at 0.99
    accuracy, above any target the tests time to); `drop` = a method left one short."""
    out = list(rows)
    for method in asgc_study.LRS:
        own = [r for r in rows if r["method"] == method and r["phase"] == "tune"
               and r["seed"] == seed and r["validation"] > 0]
        length = len(rows[0]["curve_val_acc"])
        acc = 0.10 if own else 0.99
        fill = asgc_study.BUDGET - len(own) - (method == drop)
        out += [_asgc_row(method, 1e-6 * (k + 1), [acc] * length, seed=seed)
                for k in range(fill)]
    return out


def test_asgc_chooses_on_the_validation_split_and_every_method_gets_the_same_budget():
    # the test set would pick 1e-4; the held-out validation split picks 1e-3, and only the
    # chosen configuration's test error is reported
    rows = _budget([_asgc_row("adam", 1e-3, [0.80, 0.90], test_error=0.12),
                    _asgc_row("adam", 1e-4, [0.70, 0.85], test_error=0.05)])
    # an older run chosen on the test set (no validation split): left out
    frame = pd.DataFrame(rows + [_asgc_row("adam", 1e-2, [0.99, 0.99],
                                           validation=float("nan"))])
    assert asgc_study.chosen(frame).set_index("method").loc["adam", "alpha0"] == 1e-3
    assert asgc_study.metrics(frame).set_index("method").loc["adam", "test_error"] == 0.12
    assert {m: len(asgc_study.tuning_configs(m)) for m in asgc_study.LRS} == \
        {m: asgc_study.BUDGET for m in asgc_study.LRS}
    spec = asgc_study.ASGCSpec(datasets=("mnist",), models=("mlnn",), seeds=(1,))
    assert all(c.data.validation == spec.validation > 0 for c in spec.tune_cells())
    with pytest.raises(ValueError, match="validation"):
        asgc_study.ASGCSpec(validation=0.0)


def test_asgc_summaries_choose_by_error_and_time_everyone_to_the_same_target():
    rows = [_asgc_row("adam", 1e-3, [0.80, 0.90, 0.92]),
            _asgc_row("adam", 1e-4, [0.50, 0.60, 0.70]),
            _asgc_row("momentum", 0.1, [0.85, 0.86, 0.88]),
            _asgc_row("asgc-momentum", 0.1, [0.89, 0.93, 0.94],
                      options='{"noise_scale": 0.1, "threshold": 3.0}'),
            _asgc_row("asgc-momentum", 0.1, [0.2, 0.2, 0.2], diverged=True,
                      options='{"noise_scale": 0.01, "threshold": 3.0}')]
    frame = pd.DataFrame(_budget(rows))
    best = asgc_study.chosen(frame).set_index("method")
    assert best.loc["adam", "alpha0"] == 1e-3
    assert best.loc["asgc-momentum", "options_dict"]["noise_scale"] == 0.1
    m = asgc_study.metrics(frame, last_epochs=2).set_index("method")
    assert m.loc["adam", "target_acc"] == pytest.approx(0.88)   # momentum's final accuracy
    assert m.loc["adam", "epochs_to_target"] == 2 and m.loc["asgc-momentum",
                                                            "epochs_to_target"] == 1
    assert m.loc["momentum", "seconds_to_target"] == 30.0
    assert m.loc["asgc-momentum", "stability"] == pytest.approx(np.std([0.93, 0.94]))
    assert m.loc["adam", "gap"] == pytest.approx(0.25)


def test_asgc_ablations_run_at_the_chosen_configuration_and_random_search_is_seeded():
    spec = asgc_study.ASGCSpec(datasets=("mnist",), models=("mlnn",), seeds=(1,),
                               random_samples=3, random_datasets=("mnist",))
    frame = pd.DataFrame(_budget([_asgc_row("asgc-momentum", 0.01, [0.9],
                                            options='{"noise_scale": 0.1, "threshold": 1.0}')]))
    abl = spec.ablation_cells(frame)
    opts = [dict(c.optim.options) for c in abl]
    assert opts == [{"noise_scale": 0.0, "threshold": 1.0},
                    {"noise_scale": 0.1, "threshold": 1.0,
                     "fixed_threshold": asgc_study.FIXED_THRESHOLD}]
    assert spec.ablation_count() == len(abl)  # the run record's total, known before tuning
    a, b = spec.random_cells(), spec.random_cells()
    assert a == b and len(a) == 3 * len(asgc_study.LRS)
    lrs = [c.optim.lr for c in a if dict(c.tags)["method"] == "adam"]
    lo, hi = asgc_study.RANDOM_LR["adam"]
    assert len(set(lrs)) == 3 and all(10 ** lo <= x <= 10 ** hi for x in lrs)


def test_asgc_chooses_only_on_seeds_where_every_method_has_its_whole_budget():
    # seed 1 is whole; on seed 2, cut short, adam has its winning run but RMSprop is one
    # configuration short: seed 2 must sway no choice and count in no summary
    seed1 = _budget([_asgc_row("adam", 1e-3, [0.80, 0.90]), _asgc_row("adam", 1e-4, [0.7, 0.85])])
    winner = [_asgc_row("adam", 1e-4, [0.99, 0.99], seed=2)]
    frame = pd.DataFrame(seed1 + _budget(winner, seed=2, drop="rmsprop"))
    assert asgc_study.whole(frame).query("phase == 'tune'").seed.unique().tolist() == [1]
    assert asgc_study.chosen(frame).set_index("method").loc["adam", "alpha0"] == 1e-3
    assert (asgc_study.metrics(frame).runs == 1).all()
    # with seed 2 made whole, it counts
    frame = pd.DataFrame(seed1 + _budget(winner, seed=2))
    assert sorted(asgc_study.whole(frame).query("phase == 'tune'").seed.unique()) == [1, 2]
    assert (asgc_study.metrics(frame).runs == 2).all()


def test_asgc_report_reads_only_pairs_tuned_on_a_whole_seed_and_says_why_it_waits(tmp_path):
    # a full profile cut short: its first pair one configuration short of a whole seed
    from hdrepro.report.extensions import _left_out, study_frame
    def stored(rows):
        return [{**r, "cell_id": "|".join(str(r[k]) for k in ("method", "alpha0", "seed", "phase",
                                                               "validation"))} for r in rows]
    full = tmp_path / "full"
    store = GridStore(full / "asgc.jsonl")
    partial = _budget([_asgc_row("adam", 1e-3, [0.8, 0.9])], drop="adagrad")
    store.append(stored(partial + [_asgc_row("momentum", 0.1, [0.5, 0.6], phase="random")]))
    assert asgc_study.reportable(store.frame()).empty and study_frame(full, "asgc").empty
    assert "under way (40 runs stored)" in _left_out(full, "asgc")
    # the same pair whole: it is read, and nothing is said to be left out
    store.append(stored([_asgc_row("adagrad", 8e-6, [0.1, 0.1])]))
    assert len(study_frame(full, "asgc")) == 41 and _left_out(full, "asgc") == ""
    # while its run record expects more runs, the section says what is still to come
    from hdrepro.report.extensions import _asgc_under_way
    (full / "asgc_run.json").write_text('{"cells_total": 50}')
    note = _asgc_under_way(study_frame(full, "asgc"), full)
    assert "under way (41 of 50 runs stored)" in note
    assert "the 41 runs of the 1 data–model pair " in note
    assert "not read yet" not in note
    # a second seed's tuning begun: its run is stored, counted apart, and not read
    store.append(stored([_asgc_row("adam", 1e-3, [0.8, 0.9], seed=2)]))
    note = _asgc_under_way(study_frame(full, "asgc"), full)
    assert "(42 of 50 runs stored)" in note and "the 41 runs of" in note
    assert "; 1 stored run, of a seed still being tuned, is not read yet;" in note
    (full / "asgc_run.json").write_text('{"cells_total": 42}')
    assert _asgc_under_way(study_frame(full, "asgc"), full) == ""
    # runs chosen on the test set only: a different reason
    old = GridStore(tmp_path / "old" / "asgc.jsonl")
    old.append(stored([_asgc_row("adam", 1e-3, [0.8, 0.9], validation=float("nan"))]))
    assert "chose their configurations on the test set" in _left_out(tmp_path / "old", "asgc")


def test_asgc_driver_draws_only_the_pairs_the_report_reads(tmp_path):
    # a full profile cut short: MLNN on MNIST whole on one seed, Fashion-MNIST one run in
    import importlib.util
    import sys
    experiments = Path(__file__).resolve().parent.parent / "experiments"
    sys.path.insert(0, str(experiments))   # the drivers import grid_common
    found = importlib.util.spec_from_file_location("asgc_driver", experiments / "asgc.py")
    driver = importlib.util.module_from_spec(found)
    found.loader.exec_module(driver)
    rows = _budget([_asgc_row("adam", 1e-3, [0.8, 0.9])])
    rows.append({**_asgc_row("adam", 1e-3, [0.7, 0.8]), "data": "fashion-mnist"})
    store = GridStore(tmp_path / "asgc.jsonl")
    store.append([{**r, "cell_id": f"{i}"} for i, r in enumerate(rows)])
    spec = asgc_study.ASGCSpec(models=("mlnn",), seeds=(1,))
    drawn = driver.draw(spec, store, tmp_path, tmp_path / "figures")
    assert [p.name for p in drawn] == ["asgc.png"]
    import matplotlib.pyplot as plt
    tune_only = plt.imread(drawn[0]).shape
    assert tune_only[1] < 800   # one column: the unfinished pair is not drawn
    # the random search's row of panels appears once it has runs, and not before
    store.append([{**_asgc_row("adam", 1e-3, [0.7, 0.8], phase="random"), "cell_id": "r"}])
    one_method = plt.imread(driver.draw(spec, store, tmp_path, tmp_path / "figures")[0]).shape
    assert one_method == tune_only   # a random search cut short is not drawn
    store.append([{**_asgc_row(m, 1e-3, [0.7, 0.8], phase="random"), "cell_id": f"r-{m}"}
                  for m in asgc_study.LRS if m != "adam"])
    with_random = plt.imread(driver.draw(spec, store, tmp_path, tmp_path / "figures")[0]).shape
    assert with_random[0] > 1.5 * tune_only[0]
    assert driver.draw(spec, GridStore(tmp_path / "none.jsonl"), tmp_path, tmp_path) == []


def test_asgc_cells_run_pair_by_pair_and_seed_by_seed():
    spec = asgc_study.ASGCSpec(seeds=(1, 2), random_samples=1)
    keys = [(c.model, c.data.name, c.seed) for c in spec.tune_cells()]
    per_seed = len(asgc_study.LRS) * asgc_study.BUDGET
    assert keys == [(m, d, s) for m, d in [("mlnn", "mnist"), ("mlnn", "fashion-mnist"),
                                           ("bettercnn", "mnist"), ("bettercnn", "fashion-mnist")]
                    for s in (1, 2) for _ in range(per_seed)]
    pair = ("fashion-mnist", "bettercnn")
    assert spec.tune_cells(pair) == [c for c in spec.tune_cells()
                                     if (c.data.name, c.model) == pair]
    assert spec.random_cells(pair) == [c for c in spec.random_cells()
                                       if (c.data.name, c.model) == pair]


def test_asgc_is_compared_with_each_method_paired_by_seed_and_every_outcome_can_come_out():
    from hdrepro.report.extensions import asgc_verdict
    rows, opts = [], '{"noise_scale": 0.1, "threshold": 3.0}'
    for seed, noise in ((1, 0.01), (2, -0.01), (3, 0.0)):
        e = 0.05 + 0.001 * seed   # seed-to-seed spread that pairing removes
        rows += _budget([_asgc_row("asgc-momentum", 0.1, [0.9, 0.95], seed=seed, options=opts,
                                   test_error=e),
                         _asgc_row("adam", 1e-3, [0.9, 0.94], seed=seed, test_error=e + 0.02),
                         _asgc_row("momentum", 0.1, [0.9, 0.93], seed=seed, test_error=e + noise),
                         _asgc_row("adagrad", 0.01, [0.9, 0.92], seed=seed, test_error=e - 0.02),
                         _asgc_row("rmsprop", 1e-3, [0.9, 0.92], seed=seed, test_error=e + 0.03)],
                        seed=seed)
        rows.append(_asgc_row("asgc-no-noise", 0.1, [0.9, 0.9], seed=seed, phase="ablation",
                              test_error=e + 0.01))
    frame = pd.DataFrame(rows)
    a = asgc_study.against(frame).set_index("method")
    assert a.outcome.to_dict() == {"adam": "better", "momentum": "tie", "adagrad": "worse",
                                   "rmsprop": "better", "asgc-no-noise": "better"}
    assert a.loc["adam", "difference"].estimate == pytest.approx(-0.02)
    assert a.loc["adam", "difference"].n == 3
    text = asgc_verdict(frame, Path("."))
    assert "beat all four baselines on **0 of 1**" in text
    assert "beat the SGD-momentum it wraps on 0 of 1" in text
    assert "lost to at least one baseline on 1 of 1" in text
    assert "the noise (ASGC against ASGC without noise, paired the same way): helped on 1" in text
    # one seed: no spread, every comparison a tie, and the text says so
    one = asgc_study.against(frame[frame.seed == 1])
    assert set(one.outcome) == {"tie"}
    assert "one seed has no spread" in asgc_verdict(frame[frame.seed == 1], Path("."))


def test_asgc_robustness_tells_diverged_runs_from_runs_stuck_at_chance():
    rows = [_asgc_row("momentum", 0.3, [0.10, 0.10], phase="random"),          # one class
            _asgc_row("momentum", 0.01, [0.90, 0.95], phase="random"),
            _asgc_row("asgc-momentum", 0.3, [0.5, float("nan")], phase="random", diverged=True),
            _asgc_row("asgc-momentum", 0.01, [0.90, 0.96], phase="random"),
            _asgc_row("adam", 1e-3, [0.9, 0.97])]                                # tuning: left out
    # a search cut short (adagrad, rmsprop and adam without their random runs) is not read yet
    assert asgc_study.robustness(pd.DataFrame(rows)).empty
    rows += [_asgc_row(m, 1e-3 * k, [0.9, 0.97], phase="random")
             for m in ("adam", "adagrad", "rmsprop") for k in (1, 2)]
    r = asgc_study.robustness(pd.DataFrame(rows)).set_index("method")
    assert list(r.index) == ["momentum", "asgc-momentum", "adam", "adagrad", "rmsprop"]
    # one method a configuration short: the pair waits again
    assert asgc_study.robustness(pd.DataFrame(rows[:-1])).empty
    assert (r.loc["momentum", ["diverged", "stuck"]] == [0, 1]).all()
    assert (r.loc["asgc-momentum", ["diverged", "stuck"]] == [1, 0]).all()
    assert r.loc["asgc-momentum", "worst"] == 0.9
    assert r.loc["momentum", "median"] == pytest.approx((0.9 + 0.05) / 2)


def test_asgc_random_configurations_are_compared_by_their_medians_and_every_outcome_can_come_out():
    from hdrepro.report.extensions import asgc_verdict
    jitter = [0.001 * k for k in range(8)]
    level = {"asgc-momentum": 0.02, "adam": 0.04, "momentum": 0.02, "rmsprop": 0.01,
             "adagrad": 0.02}
    rows = [_asgc_row(m, 1e-3 * (k + 1), [0.9, 0.9], phase="random", test_error=e + j)
            for m, e in level.items() for k, j in enumerate(jitter)]
    rows[8 * 4] = {**rows[8 * 4], "diverged": True}    # an AdaGrad run lost: counted at 90%
    r = asgc_study.robustness_against(pd.DataFrame(rows)).set_index("method")
    assert r.outcome.to_dict() == {"adam": "better", "momentum": "tie", "rmsprop": "worse",
                                   "adagrad": "tie"}
    assert r.loc["adam", "difference"].estimate == pytest.approx(-0.02)
    assert r.loc["adam", "difference"].n == 16
    assert (r.loc["adam", ["n_reference", "n_method"]] == [8, 8]).all()
    from hdrepro.report.extensions import asgc_robustness
    table = asgc_robustness(pd.DataFrame(rows), Path("."))
    assert "n = 8 + 8: ASGC beats it" in table and "n = 8 + 8: ASGC loses to it" in table
    assert "n = 16" not in table                 # two independent samples, not one pooled
    tuned = _budget([_asgc_row("adam", 1e-3, [0.9, 0.95])])   # one whole tuning seed
    text = asgc_verdict(pd.DataFrame(rows + tuned), Path("."))
    assert ("Over 8 random configurations per method, ASGC's median test error against each "
            "baseline's") in text and "lower in 1, tie in 2, higher in 1 of 4 comparisons" in text


def test_rival_comparison_leaves_diverged_runs_out_of_the_means_and_counts_them():
    rows = [{"model": "mlnn", "method": "adam-hd", "scale": 1.0, "seed": s, "diverged": d,
             "train_loss": v, "val_loss": v, "test_error": v / 10} for s, d, v in
            ((1, False, 0.2), (2, False, 0.4), (3, True, 9.0))]
    c = rival_study.comparison(pd.DataFrame(rows)).iloc[0]
    assert c.diverged == 1 and c.seeds == 3
    assert c.val_loss == pytest.approx(0.3) and c.test_error == pytest.approx(0.03)


def test_rivals_are_each_compared_with_adam_hd_paired_by_seed_and_can_be_beaten_tied_or_lost_to():
    def runs(method, errors, diverged=()):
        return [{"model": "mlnn", "method": method, "scale": 1.0, "seed": s + 1,
                 "diverged": s in diverged, "test_error": e, "n_test": 10_000}
                for s, e in enumerate(errors)]
    hd = [0.020, 0.030, 0.025]
    rows = (runs("adam-hd", hd)
            + runs("a:default", [e + 0.010 for e in hd])                 # always worse: HD beats
            + runs("a:recommended", [e - 0.005 for e in hd])             # always better
            + runs("b:default", [0.030, 0.020, 0.026])                   # inside the noise: tie
            + runs("b:recommended", [0.010, 0.010, 0.9], diverged=(2,))  # diverged alone: beaten
            + runs("adam", [0.5, 0.5, 0.5]))                             # not a rival: left out
    a = rival_study.against(pd.DataFrame(rows)).set_index("method")
    assert a.outcome.to_dict() == {"a:default": "better", "a:recommended": "worse",
                                   "b:default": "tie", "b:recommended": "better"}
    assert a.loc["a:default", "difference"].estimate == pytest.approx(-0.010)
    assert a.loc["b:recommended", "difference"].n == 2   # the diverged seed left out
    # Adam-HD diverging where the rival did not decides against Adam-HD; one seed is a tie
    rows = runs("adam-hd", hd, diverged=(0,)) + runs("a:default", [e + 0.010 for e in hd])
    assert rival_study.against(pd.DataFrame(rows)).outcome.tolist() == ["worse"]
    rows = runs("adam-hd", hd[:1]) + runs("a:default", [0.9])
    assert rival_study.against(pd.DataFrame(rows)).outcome.tolist() == ["tie"]


def test_epsilon_validation_on_real_histograms_and_a_made_sweep():
    spec = EpsilonSpec(models=("logreg",), epochs={"logreg": 1}, data=TINY, seeds=(1,),
                       hist_steps=5, every=1)
    hist = record_histogram(spec, "logreg", ROOT)
    assert sorted(hist.step.unique()) == [1, 2, 3, 4, 5]
    assert hist.groupby("step")["count"].sum().eq(7850).all()   # 784·10 + 10 elements
    loss = {e: 1.0 if e < 1e-4 else 0.9 if e == 1e-3 else 2.0 for e in EPSILONS}
    sweep = pd.DataFrame([{"model": "logreg", "eps": e, "val_loss": v, "seed": 1,
                           "diverged": False} for e, v in loss.items()])
    v = validation(sweep, hist).iloc[0]
    assert v.best_eps == 1e-3 and v.near_best == 1
    assert v.best_inside == (v.interval_lo <= 1e-3 <= v.interval_hi)
    assert v.default_decades == 10
