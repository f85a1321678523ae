"""How the report accounts for a piece that was cut off (the drivers record an invocation before
it runs, begin_run_info, and the report counts stored runs against it), for each piece's own
store, and for a study the full profile has not run."""
import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from hdrepro.report.extensions import SECTIONS
from hdrepro.report.grids import grid_provenance
from hdrepro.report.overview import pieces, profile_timing
from hdrepro.engine.results import GridStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from grid_common import begin_run_info, write_run_info  # noqa: E402


class Cell:
    def __init__(self, cell_id):
        self.cell_id = cell_id


def store_runs(store: GridStore, ids) -> None:
    store.append([{"cell_id": i, "seconds": 1.0, "device": "cpu (1 threads)"} for i in ids])


def test_a_cut_off_invocation_is_reported_as_partial(tmp_path):
    full = tmp_path / "results" / "full"
    full.mkdir(parents=True)
    (tmp_path / "results" / "quick").mkdir()
    store = GridStore(full / "rivals.jsonl")
    store_runs(store, ["a"])  # a cell from an earlier invocation
    args = Namespace(executor="processes", workers=2, device="cpu")
    cells = [Cell(c) for c in "abcde"]
    t0, todo = begin_run_info(full / "rivals_run.json", cells, store, args)
    assert todo == 4
    store_runs(store, ["b"])  # ... and the invocation is killed here
    info = json.loads((full / "rivals_run.json").read_text())
    assert info["finished"] is False and info["wall_s"] is None and info["cells_total"] == 5
    row = next(p for p in pieces(full) if p["piece"].startswith("rivals"))
    assert (row["runs"], row["total"]) == (2, 5) and row["wall_s"] != row["wall_s"]  # NaN
    timing = profile_timing(tmp_path / "results" / "quick")
    assert "| rivals (A.2) | 2 of 5 |" in timing
    assert "rivals (A.2) (2 of its 5 runs so far)" in timing

    store_runs(store, ["c", "d", "e"])  # a later invocation finishes the rest
    write_run_info(full / "rivals_run.json", t0, len(cells), args, cells_run=3)
    row = next(p for p in pieces(full) if p["piece"].startswith("rivals"))
    assert row["runs"] == row["total"] == 5
    assert row["wall_s"] != row["wall_s"], "a resumed invocation's wall time is not the piece's"
    assert "runs so far" not in profile_timing(tmp_path / "results" / "quick").split("|")[-1]


def test_each_grid_over_seeds_is_its_own_piece_with_its_own_runs(tmp_path):
    """Three stores, three rows: one row read the MLNN store alone and showed its count for all
    three grids."""
    for name, n in (("logreg", 3), ("mlnn", 1), ("bettercnn", 2)):
        store_runs(GridStore(tmp_path / f"grid_seeds_{name}.jsonl"),
                   [f"{name}{i}" for i in range(n)])
    rows = {p["piece"]: p["runs"] for p in pieces(tmp_path) if "over seeds" in p["piece"]}
    assert rows == {"grid LogReg over seeds (§2.2)": 3, "grid MLNN over seeds (§2.2)": 1,
                    "grid BetterCNN over seeds (§2.2)": 2}


def test_a_piece_counts_a_batch_of_cells_once(tmp_path):
    """Each cell of a batch records the whole batch's time: summed as they stand, a 128-cell
    batch would count 128 times (the γ grid read 366 minutes for 3.4)."""
    GridStore(tmp_path / "grid_gamma.jsonl").append(
        [{"cell_id": f"b{i}", "seconds": 30.0, "cells_in_batch": 3, "device": "cpu"}
         for i in range(3)] + [{"cell_id": "alone", "seconds": 5.0, "device": "cpu"}])
    row = next(p for p in pieces(tmp_path) if p["piece"].startswith("grid γ"))
    assert row["runs"] == 4 and row["train_s"] == 35.0


def test_cells_added_later_count_in_the_total_and_in_those_still_to_run(tmp_path):
    store = GridStore(tmp_path / "asgc.jsonl")
    store_runs(store, ["tune1", "abl1"])  # a tuning cell and one of two ablations, then cut off
    args = Namespace(executor="processes", workers=2, device="cpu")
    cells = [Cell(c) for c in ("tune1", "tune2", "rnd1")]
    _, todo = begin_run_info(tmp_path / "asgc_run.json", cells, store, args, later=2)
    assert todo == 3  # tune2, rnd1 and the ablation not yet run
    assert json.loads((tmp_path / "asgc_run.json").read_text())["cells_total"] == 5


def test_a_study_not_run_at_full_scale_says_so_or_reads_the_quick_profile(tmp_path):
    quick, full = tmp_path / "results" / "quick", tmp_path / "results" / "full"
    full.mkdir(parents=True)
    assert SECTIONS["epsilon_provenance"](full).startswith("_Not run in this results folder")
    quick.mkdir()
    GridStore(quick / "epsilon.jsonl").append([{
        "cell_id": "a", "data": "mnist", "n_train": 100, "n_test": 10, "data_source": "test",
        "model": "mlnn", "epochs": 1, "seed": 1, "batch_size": 128, "diverged": False,
        "device": "cpu (1 threads)", "seconds": 1.0}])
    text = SECTIONS["epsilon_provenance"](full)
    assert text.startswith("**From the quick profile** (`results/quick/`). This profile has not "
                           "run the study.") and "mnist 100/10 images" in text


@pytest.mark.slow
def test_figure_1_cut_off_at_full_scale_is_reported_as_partial(tmp_path):
    from collections import Counter

    import fig1
    from hdrepro.engine.data import default_data_root
    from hdrepro.engine.executors import RunOptions
    from hdrepro.report import with_completeness
    from hdrepro.report.claims import _prefer_full
    from hdrepro.report.fig1 import fig1_table
    from hdrepro.engine.results import RunStore
    from hdrepro.engine.cells import run_logged
    quick, full = tmp_path / "results" / "quick", tmp_path / "results" / "full"
    quick.mkdir(parents=True)
    runs, store = fig1.plan("smoke", default_data_root()), RunStore(full, "fig1")
    per_model = dict(Counter(r.config.model for r in runs))
    args = Namespace(executor="inprocess", workers=1, device="cpu")
    t0, _ = begin_run_info(full / "fig1_run.json", runs, store, args, runs_per_model=per_model)
    options = RunOptions(str(default_data_root()), progress=False)
    mlnn = [r for r in runs if r.config.model == "mlnn"]
    run_logged([r for r in runs if r.config.model == "logreg"] + mlnn[:2], store, options, "t")
    # ... and the invocation is killed here: the report says what is missing
    assert "`full/fig1` 11 of 27" in with_completeness("# Title\n\nbody\n", full)
    assert "| LogReg | SGD vs SGD-HD |" in fig1_table(full)
    assert _prefer_full(quick, "fig1_final.csv", "fig1_run.json") == (quick, "quick"), \
        "claims wait for all runs"

    run_logged(runs, store, options, "t")  # a later invocation finishes the rest
    write_run_info(full / "fig1_run.json", t0, len(runs), args, cells_run=16,
                   runs_per_model=per_model)
    assert with_completeness("# Title\n\nbody\n", full) == "# Title\n\nbody\n"
    assert "| BetterCNN |" in fig1_table(full)
    assert _prefer_full(quick, "fig1_final.csv", "fig1_run.json") == (full, "full")


def test_relogging_alpha_range_reruns_only_the_unranged_hd_runs_in_place(tmp_path):
    import fig1
    from hdrepro.engine.cells import run_logged
    from hdrepro.engine.data import default_data_root
    from hdrepro.engine.executors import RunOptions
    from hdrepro.engine.results import RunStore
    runs = [r for r in fig1.plan("smoke", default_data_root()) if r.config.model == "logreg"]
    store, options = RunStore(tmp_path, "fig1"), RunOptions(str(default_data_root()),
                                                          progress=False)
    run_logged(runs, store, options, "t")
    before = store.load("final").set_index("run_id")
    # an HD run logged before α's range was: its rows hold a sample only
    old = next(r.run_id for r in runs if r.config.optim.name == "sgd-hd")
    it = store.load("iterations")
    it.loc[it.run_id == old, ["alpha_min", "alpha_max"]] = float("nan")
    store._rewrite(store.path("iterations"), list(it.columns), it.to_dict("records"))
    redo = fig1.unranged(store, runs, ["logreg"])
    assert redo == {old} and fig1.unranged(store, runs, ["mlnn"]) == set()
    run_logged(runs, store, options, "t", frozenset(redo))
    assert fig1.unranged(store, runs, ["logreg"]) == set()
    after = store.load("final").set_index("run_id")
    assert list(after.index) == list(before.drop(old).index) + [old]   # the others untouched
    assert after.loc[old, "train_loss"] == pytest.approx(before.loc[old, "train_loss"], rel=1e-6)


def test_figure_1_epochs_are_the_configured_ones_even_when_a_run_stopped_early():
    import pandas as pd

    from hdrepro.report.fig1 import fig1_epochs
    final = pd.DataFrame({"model": ["logreg", "bettercnn"], "diverged": [False, True],
                          "config": [json.dumps({"epochs": 20}), json.dumps({"epochs": 100})]})
    assert fig1_epochs(final) == {"LogReg": 20, "BetterCNN": 100}


def test_figure_1_says_how_often_alpha_was_logged():
    from hdrepro.report.fig1 import _logged_every
    assert _logged_every(1) == "α_t and the loss logged every iteration"
    assert _logged_every(100) == "α_t and the loss logged every 100 iterations"


def test_figure_1_table_survives_a_pair_whose_hd_runs_all_diverged(tmp_path):
    """BetterCNN at full scale: every SGD-HD run diverges at α₀ = β = 1e-3. The table and the
    summary must say so (and count it against HD), not crash on the missing α_t log."""
    import pandas as pd

    from hdrepro.report.fig1 import fig1_counts, fig1_summary, fig1_table
    from hdrepro.report.claims import _figure1
    meta = dict(model="bettercnn", rule="additive", alpha0=1e-3)
    final = pd.DataFrame([
        {**meta, "run_id": "sgd", "optimizer": "SGD", "seed": 1, "diverged": False,
         "train_loss": 0.09, "val_loss": 0.06, "test_error": 0.016},
        {**meta, "run_id": "hd", "optimizer": "SGD-HD", "seed": 1, "diverged": True,
         "train_loss": float("nan"), "val_loss": float("nan"), "test_error": float("nan")}])
    iters = pd.DataFrame([{**meta, "run_id": "sgd", "optimizer": "SGD", "iteration": 100,
                           "epoch": 1, "loss": 2.0, "alpha": 1e-3}])
    epochs = pd.DataFrame([{"run_id": "sgd", "model": "bettercnn", "epoch": 1}])
    for kind, frame in (("final", final), ("iterations", iters), ("epochs", epochs)):
        frame.to_csv(tmp_path / f"fig1_{kind}.csv", index=False)
    table = fig1_table(tmp_path)
    assert ("| BetterCNN | SGD vs SGD-HD | additive | 0.090 | – | 0.060 | – | 1.60 / – | "
            "worse / worse (n = 1, HD diverged on 1) | – | 0/1 / 1/1 | – (every HD run diverged) |") in table
    c = fig1_counts(tmp_path)
    assert (c["n"], c["lost"], c["train_better"], c["train_worse"], c["rises"]) == (1, 1, 0, 1, 0)
    assert "Every HD run diverged in 1 of the 1 pairs" in fig1_summary(tmp_path)
    claim = _figure1(tmp_path)[0]  # no results/full beside tmp_path: judged on these runs
    assert claim.verdict == "partly"   # 0 of 1 pair: Wilson's interval [0, 0.79] contains 1/2
    assert "HD diverged where its base did not in 1" in claim.evidence


def test_figure_1_divergences_are_listed_beside_the_same_grid_cell(tmp_path):
    import pandas as pd

    from hdrepro.report.fig1 import fig1_divergences
    runs = [{"run_id": f"hd{s}", "model": "bettercnn", "optimizer": "SGD-HD", "rule": "additive",
             "seed": s, "alpha0": 1e-3, "beta": 1e-3, "diverged": s < 3,
             "diverged_at": 517 if s == 1 else 81 if s == 2 else float("nan")} for s in (1, 2, 3)]
    pd.DataFrame(runs).to_csv(tmp_path / "fig1_final.csv", index=False)
    assert fig1_divergences(tmp_path) == \
        "Diverged: BetterCNN SGD-HD (additive) in 2 of 3 runs, at steps 81, 517."
    cell = {"model": "bettercnn", "optimizer": "sgd-hd", "rule": "additive", "baseline": False,
            "alpha0": 1e-3, "beta": 1e-3, "fraction": 0.1, "epochs": 100, "seed": 1}
    other = {**cell, "cell_id": "b", "beta": 1e-2, "diverged": False, "diverged_at": None}
    cells = [{**cell, "cell_id": "a", "diverged": True, "diverged_at": 558}, other]
    (tmp_path / "grid_bettercnn.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    assert fig1_divergences(tmp_path).endswith(
        "at steps 81, 517, and §2.1's grid cell at the same α₀ = 0.001, β = 0.001 (10% of the data, "
        "100 epochs, seed 1) diverged too, at step 558.")


def test_claim_rules_can_return_every_outcome_and_errata_stand_apart():
    from hdrepro.studies import stats
    from hdrepro.report.claims import claims_table, cost_verdict, majority
    assert [majority(stats.proportion(k, 36)) for k in (30, 18, 6)] == \
        ["reproduces", "partly", "does not reproduce"]
    assert majority(stats.proportion(1, 36)) == "does not reproduce"   # one pair is not "partly"
    assert majority(stats.proportion(0, 0)) == "not tested"
    assert [cost_verdict(stats.Interval(r, r - 0.02, r + 0.02, 30)) for r in (1.01, 1.3, 2.0)] \
        == ["reproduces", "partly", "does not reproduce"]
    # an interval that straddles a bound is not decided by its middle
    assert cost_verdict(stats.Interval(1.05, 0.98, 1.2, 30)) == "partly"
    text = claims_table(Path(__file__).resolve().parent.parent / "results" / "quick")
    table, errata = text.split("Errata in the sources")
    assert "erratum" not in table and "**erratum confirmed**" in errata
    assert "β_t = β_{t−1} + γ ∂f/∂β" in errata


def test_alpha_sampling_counts_the_hd_runs_logged_with_alpha_range_per_rule(tmp_path):
    from types import SimpleNamespace

    from hdrepro.engine.results import RunStore
    from hdrepro.report.fig1 import fig1_sampling
    store = RunStore(tmp_path, "fig1")

    def run(optimizer, rule, ranged):
        rows = [{"iteration": 100 * i, "alpha": 0.1,
                 **({"alpha_min": 0.1, "alpha_max": 0.2} if ranged else {})} for i in (1, 2)]
        return ({"optimizer": optimizer, "rule": rule},
                SimpleNamespace(final={"diverged": False}, epochs=[], iterations=rows,
                                provenance={}, config={}))
    for run_id, (optimizer, rule, ranged) in {
            "a": ("SGD", "additive", False),            # a base run: α_t is constant
            "b": ("SGD-HD", "additive", True), "c": ("SGD-HD", "multiplicative", True),
            "d": ("SGD-HD", "multiplicative", False)}.items():
        store.append([(run_id, *run(optimizer, rule, ranged))])
    assert fig1_sampling(tmp_path) == (
        "α_t logged every 100 steps, with its range between rows in 1 of 1 additive-rule HD runs; "
        "1 of 2 multiplicative-rule HD runs (the others hold a sample per row, which misses a "
        "peak between rows)")


def test_grid_provenance_names_cells_per_batch_apart_from_the_minibatch(tmp_path):
    """"batch 256" beside "batch 128" read as a second minibatch size; the cells trained together
    are named as such, and a grid run one cell at a time says so."""
    full = Path(__file__).resolve().parent.parent / "results" / "full"
    (tmp_path / "grid_logreg.jsonl").write_bytes((full / "grid_logreg.jsonl").read_bytes())
    info = json.loads((full / "grid_logreg_run.json").read_text())
    for batch, said in ((256, "up to 256 cells trained together"), (0, "one cell at a time")):
        (tmp_path / "grid_logreg_run.json").write_text(json.dumps({**info, "batch": batch}))
        line = grid_provenance(tmp_path)
        assert said in line and line.count("batch ") == 1, line


def test_figure_1_says_how_many_runs_flushed_subnormals():
    import pandas as pd
    from hdrepro.report.fig1 import _flushed

    def frame(flags):
        return pd.DataFrame({"provenance": [json.dumps({} if f is None else {"flush_denormal": f})
                                            for f in flags]})

    assert _flushed(frame([None, False])) == ""
    assert _flushed(frame([True, True])) == ", subnormals flushed to zero"
    assert _flushed(frame([True, None, False])) == ", subnormals flushed to zero in 1 of 3 runs"
