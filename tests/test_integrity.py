"""Results that cannot silently lie: a missing cell is never a diverged one, one writer per store,
a killed command leaves no process behind, commands that fail say so, one divergence record for
both training paths, specs checked at construction, and README examples that run as pasted."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from hdrepro import report
from hdrepro.engine.batched import CellHParams, train_cells
from hdrepro.engine.data import DataConfig, fetch, load, verify
from hdrepro.errors import ConfigError, StoreLocked
from hdrepro.studies.grids import Cell, GridAxes, GridSpec, _one_cell, panel_stats, panels
from hdrepro.engine.executors import RunOptions
from hdrepro.report.plots import grid_layers
from hdrepro.engine.results import GridStore, RunStore, completeness
from hdrepro.methods.registry import OptimConfig
from hdrepro.engine.train import TrainConfig
from test_grid import KILL_SCRIPT

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
QUICK = REPO / "results" / "quick"
TINY = DataConfig("mnist", 0.01)


# -- a missing cell is missing, not diverged -------------------------------------------------------
def _mlnn_quick():
    return GridStore(QUICK / "grid_mlnn.jsonl").frame()


def _stats(frame, axes=None):
    return {(s["optimizer"], s["rule"]): s for s in map(panel_stats, panels(frame, axes=axes))}


def test_a_dropped_converged_cell_is_missing_and_not_diverged():
    frame = _mlnn_quick()
    before = _stats(frame)
    hd = frame[~frame.baseline.astype(bool) & ~frame.diverged.astype(bool)]
    gone = hd.iloc[0]
    after = _stats(frame.drop(hd.index[0]))
    key = (gone.optimizer, gone.rule)
    assert after[key]["diverged"] == before[key]["diverged"]
    assert (after[key]["missing"], after[key]["cells"]) == (1, before[key]["cells"] - 1)
    assert after[key]["expected"] == before[key]["expected"] == 9
    assert all(after[k] == before[k] for k in before if k != key)


def _synthetic_grid(n_stored: int, diverged_ids=()) -> tuple[pd.DataFrame, GridSpec]:
    """A 3 × 3 SGD-HD grid (plus its 3-cell baseline row) of which only the first n cells were
    stored, as a grid killed early leaves it; none diverged unless named."""
    spec = GridSpec("s", "logreg", ("sgd-hd",), (1e-3, 1e-2, 1e-1), (1e-5, 1e-4, 1e-3), epochs=1,
                    data=TINY)
    rows = []
    for i, c in enumerate(spec.cells()[:n_stored]):
        bad = i in diverged_ids
        rows.append({**c.labels(), "diverged": bad, "diverged_at": 5 if bad else None,
                     "train_loss": math.nan if bad else 0.3 + 0.01 * i})
    return pd.DataFrame(rows), spec


def test_a_grid_killed_early_counts_no_divergence_and_says_what_is_stored():
    frame, spec = _synthetic_grid(5)     # the 3 baseline cells and 2 of the 9 HD cells
    st = panel_stats(panels(frame, axes=spec.axes())[0])
    assert (st["cells"], st["expected"], st["missing"], st["diverged"]) == (2, 9, 7, 0)
    assert st["diverged_fraction"] == 0
    # without the spec's axes, whole missing rows are invisible, but nothing counts as diverged
    assert panel_stats(panels(frame)[0])["diverged"] == 0


def test_diverged_and_missing_cells_are_told_apart_in_counts_and_heatmap():
    frame, spec = _synthetic_grid(8, diverged_ids={4})
    panel = panels(frame, axes=spec.axes())[0]
    st = panel_stats(panel)
    assert (st["cells"], st["diverged"], st["missing"]) == (5, 1, 4)
    values, classes, mask = grid_layers(panel)
    assert int(mask.sum()) == 1                      # the diverged cell: blank
    assert int((classes == 3).sum()) == 4            # the missing cells: their own class
    assert not (mask & (classes == 3)).any()


def test_report_tables_say_k_of_n_stored_and_the_top_says_incomplete(tmp_path):
    res = tmp_path / "results" / "quick"
    res.mkdir(parents=True)
    src = (QUICK / "grid_mlnn.jsonl").read_text().splitlines(keepends=True)
    converged = next(i for i, line in enumerate(src)
                     if '"baseline": false' in line and '"diverged": false' in line)
    (res / "grid_mlnn.jsonl").write_text("".join(src[:converged] + src[converged + 1:]))
    shutil.copy(QUICK / "grid_mlnn_run.json", res / "grid_mlnn_run.json")
    table = report.grids.grid_table(res)
    assert "8 of 9 stored" in table and "| 9 |" in table
    assert "1 (11%)" not in table.split("8 of 9 stored")[1].split("\n")[0]
    assert completeness(res) == [("grid_mlnn", 62, 63)]
    text = report.with_completeness("# Title\n\nbody\n", res)
    assert text.startswith("# Title\n\n> **Incomplete results.**") and "grid_mlnn` 62 of 63" in text
    whole = tmp_path / "whole" / "quick"
    whole.mkdir(parents=True)
    for name in ("grid_mlnn.jsonl", "grid_mlnn_run.json"):
        shutil.copy(QUICK / name, whole / name)
    assert report.with_completeness("# Title\n\nbody\n", whole) == "# Title\n\nbody\n"


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_report_refuses_a_missing_or_empty_results_folder(folder, tmp_path, capsys):
    target = tmp_path / folder
    if folder == "empty":
        target.mkdir()
    out = tmp_path / "REPORT.md"
    with pytest.raises(SystemExit) as e:
        report.main(["--results", str(target), "--out", str(out)])
    assert e.value.code == 2 and not out.exists()
    assert str(target) in capsys.readouterr().err
    assert not (tmp_path / "missing").exists(), "reading a results folder must not create it"


# -- one writer per store ----------------------------------------------------------------------
WRITER = """
import sys, time
from hdrepro.errors import StoreLocked
from hdrepro.engine.results import GridStore
path, me, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = GridStore(path)
rows = [{"cell_id": f"{me}-{i}", "x": i} for i in range(n)]
if mode == "session":          # one lock for the whole run, as run_grid holds it
    try:
        with store.writing():
            print("locked", flush=True)
            for r in rows:
                store.append([r])
    except StoreLocked as e:
        print("refused:", e, flush=True)
else:                          # a lock per append, retried while the other writer holds it
    for r in rows:
        while True:
            try:
                store.append([r])
                break
            except StoreLocked:
                time.sleep(0.0005)
"""


def _writers(path: Path, mode: str, n: int) -> list[str]:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(n), mode],
                              stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return outs


@pytest.mark.slow  # separate processes
def test_two_writers_appending_row_by_row_lose_and_duplicate_nothing(tmp_path):
    path = tmp_path / "s.jsonl"
    _writers(path, "append", 1500)
    ids = [json.loads(line)["cell_id"] for line in path.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 3000
    assert path.read_text().endswith("\n")


@pytest.mark.slow  # separate processes
def test_a_second_writer_session_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "s.jsonl"
    outs = _writers(path, "session", 3000)
    refused = [o for o in outs if "refused:" in o]
    ids = [json.loads(line)["cell_id"] for line in path.read_text().splitlines()]
    assert len(ids) == len(set(ids))              # nothing duplicated ...
    assert len(ids) == 3000 * (2 - len(refused))  # ... and every row of each admitted writer
    for o in refused:
        assert re.search(r"being written by pid \d+", o) and "wait for that run" in o


def test_the_lock_is_held_for_the_run_and_refuses_another_in_the_same_process(tmp_path):
    a, b = GridStore(tmp_path / "s.jsonl"), GridStore(tmp_path / "s.jsonl")
    with a.writing():
        a.append([{"cell_id": "x"}])              # re-entrant for its holder
        with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
            b.append([{"cell_id": "y"}])
    b.append([{"cell_id": "y"}])                   # free again once released
    assert b.finished() == {"x", "y"}
    runs = RunStore(tmp_path, "runs")
    with runs.writing(), pytest.raises(StoreLocked):
        RunStore(tmp_path, "runs").writing().__enter__()


@pytest.mark.slow  # separate processes
def test_a_lock_left_by_a_killed_writer_is_taken_over(tmp_path):
    path = tmp_path / "s.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "a", "10000000",
                               "session"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(StoreLocked, match=f"pid {holder.pid}"):
        GridStore(path).append([{"cell_id": "late"}])
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "s.jsonl.lock").exists()   # the file stays; the dead holder's lock does not
    GridStore(path).append([{"cell_id": "late"}])
    assert "late" in GridStore(path).finished()


GRID = KILL_SCRIPT.replace("epochs=4,", "epochs=400,")  # 9 LogReg cells, minutes: killed early


@pytest.mark.slow  # separate processes
def test_two_grids_on_one_store_the_second_is_refused(tmp_path):
    path = tmp_path / "k.jsonl"
    first = subprocess.Popen([sys.executable, "-c", GRID, str(path), str(DATA)])
    try:
        _wait_for(lambda: (tmp_path / "k.jsonl.lock").exists() and path.exists(), 120)
        second = subprocess.run([sys.executable, "-c", GRID, str(path), str(DATA)],
                                capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first grid finished too soon; make it longer"
        assert second.returncode != 0 and "StoreLocked" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()
    ids = [json.loads(line)["cell_id"] for line in path.read_text().splitlines()]
    assert len(ids) == len(set(ids))


# -- kill means stop ---------------------------------------------------------------------------
def _wait_for(condition, timeout: float, poll: float = 0.05) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(poll)
    raise AssertionError("timed out waiting")


def _session(sid: int) -> list[int]:
    """The live processes of session `sid` (zombies excluded)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(d.name))
    return pids


@pytest.mark.slow  # separate processes
@pytest.mark.parametrize("executor", ["inprocess", "processes"])
def test_killing_hdrepro_grid_stops_the_driver_and_its_workers(executor, tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "hdrepro", "grid", "logreg", "--profile", "quick", "--batch",
           "0", "--out", str(out), "--figures", str(tmp_path / "fig"), "--data", str(DATA),
           "--executor", executor, "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    want = 1 if executor == "inprocess" else 3        # the driver and its two workers
    try:
        _wait_for(lambda: len(_session(proc.pid)) >= want
                  and (out / "grid_logreg.jsonl").exists(), 180)
    finally:
        os.kill(proc.pid, signal.SIGKILL)             # the pid the user started
        proc.wait()
    _wait_for(lambda: not _session(proc.pid), 20)     # nothing of it is left
    rows = (out / "grid_logreg.jsonl").read_text()
    time.sleep(1.0)
    assert (out / "grid_logreg.jsonl").read_text() == rows, "something still writes the store"


# -- commands that fail loudly -----------------------------------------------------------------
def test_fetch_rebuilds_a_corrupted_cache_and_verify_then_passes(tmp_path, capsys):
    shutil.copytree(DATA / "mnist", tmp_path / "mnist")
    with (tmp_path / "mnist" / "cache.pt").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00corrupt")
    assert verify(tmp_path / "mnist") == ["cache.pt"]
    fetch("mnist", tmp_path, quiet=True)
    assert "fail their SHA-256" in capsys.readouterr().err
    assert verify(tmp_path / "mnist") == []
    assert len(load(DataConfig("mnist", 0.01), tmp_path).train) == 600


def _data_command(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hdrepro", "data", *args], capture_output=True,
                          text=True, cwd=REPO)


@pytest.mark.slow  # separate processes
def test_data_verify_checks_something_or_fails(tmp_path):
    r = _data_command("verify", "--root", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no data folder" in r.stderr and "Traceback" not in r.stderr
    r = _data_command("verify", "--root", str(tmp_path))
    assert r.returncode == 2 and "no data set is cached" in r.stderr
    r = _data_command("verify", "mnist", "--root", str(tmp_path))
    assert r.returncode != 0 and f"--root {tmp_path}" in r.stdout   # the advice keeps --root
    r = _data_command("verify", "mnist", "--root", str(DATA))
    assert r.returncode == 0 and "checksums ok" in r.stdout


# -- one divergence record ---------------------------------------------------------------------
def test_both_training_paths_store_a_diverged_cell_alike():
    data = load(TINY, DATA)
    cell = Cell("mlnn", "sgd-hd", 0.1, 1.0, 0.0, "additive", 1, 2, 128, TINY)
    one = _one_cell(cell, data, "cpu")
    many = train_cells("mlnn", "sgd", [CellHParams(0.1, 1.0), CellHParams(1e-3, 1e-4)], data,
                       epochs=2, seed=1)
    batched, healthy = many
    assert one["diverged"] and batched["diverged"] and not healthy["diverged"]
    assert one["diverged_at"] == batched["diverged_at"]
    for row in (one, batched):
        assert row["iterations"] == row["diverged_at"]
        for key in ("train_loss", "val_loss", "test_error", "final_alpha", "final_beta"):
            assert math.isnan(row[key]), key
        assert math.isfinite(row["last_finite_alpha"])
    # the last finite steps blow up, so float reordering between the paths shows in their values
    assert (batched["last_finite_alpha"] < 0) == (one["last_finite_alpha"] < 0)
    assert set(one) == set(batched)
    assert math.isfinite(healthy["final_alpha"]) and healthy["iterations"] == 2 * 5


# -- specs checked at construction -------------------------------------------------------------
def _spec(**kw):
    base = dict(name="x", model="logreg", optimizers=("sgd-hd",), alphas=(1e-3,),
                betas=(1e-3,), epochs=1, data=TINY)
    return GridSpec(**{**base, **kw})


@pytest.mark.parametrize("make,words", [
    (lambda: _spec(alphas=1e-3),
     "GridSpec.alphas must be a tuple of numbers.*alphas=\\(0.001,\\)"),
    (lambda: _spec(data="mnist"), "GridSpec.data must be a DataConfig.*DataConfig\\('mnist'\\)"),
    (lambda: _spec(seeds=(1.5,)), "GridSpec.seeds must be a tuple of integers"),
    (lambda: _spec(epochs="3"), "GridSpec.epochs must be an integer.*without quotes"),
    (lambda: DataConfig(fraction="0.1"), "DataConfig.fraction must be a number.*without quotes"),
    (lambda: DataConfig(fraction=True), "DataConfig.fraction must be a number"),
    (lambda: OptimConfig("adam", math.nan), "OptimConfig.lr = nan is out of range"),
    (lambda: OptimConfig("sgdn", 1e-3, momentum=1.5), "OptimConfig.momentum"),
    (lambda: TrainConfig("mlnn", TINY, OptimConfig("adam", 1e-3), epochs=2.0),
     "TrainConfig.epochs"),
    (lambda: RunOptions(str(DATA), workers="2"), "RunOptions.workers must be an integer"),
    (lambda: CellHParams(1e-3, -1.0), "CellHParams.hypergrad_lr"),
])
def test_bad_specs_fail_at_construction_naming_the_field(make, words):
    with pytest.raises(ConfigError, match=words):
        make()


def test_lists_are_taken_as_tuples_and_ids_do_not_change():
    assert _spec(alphas=[1e-3, 1e-2]).alphas == (1e-3, 1e-2)
    assert _spec().cells()[0].cell_id == _spec(seeds=[1]).cells()[0].cell_id
    assert GridAxes(("sgd-hd",), ("additive",), (0.0,), (1e-3,), (1e-3,), (1,)).seeds == (1,)
    with pytest.raises(ConfigError, match="GridAxes.seeds"):
        GridAxes(("sgd-hd",), ("additive",), (0.0,), (1e-3,), (1e-3,), ("1",))


# -- README examples run as pasted -------------------------------------------------------------
def _readme_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_the_readme_has_examples():
    assert len(_readme_examples()) >= 6


@pytest.mark.slow  # separate processes
@pytest.mark.parametrize("index", range(len(_readme_examples())))
def test_readme_example_runs_as_pasted(index, tmp_path):
    script = tmp_path / f"example_{index}.py"
    script.write_text(_readme_examples()[index])
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "HDREPRO_DATA": str(DATA)})
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow  # separate processes
def test_kills_at_random_points_then_a_resume_leave_every_cell_exactly_once(tmp_path):
    """Fault injection: the grid driver (with worker processes) is SIGKILLed at random moments,
    three times, then run to the end; every cell is stored once and no process is left."""
    import random
    rng = random.Random(0)
    path = tmp_path / "k.jsonl"
    script = KILL_SCRIPT.replace("epochs=4,", "epochs=3,").replace(
        "batch=0, progress=False", "batch=0, executor='processes', workers=2, progress=False")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(DATA)],
                                start_new_session=True)
        time.sleep(rng.uniform(3.0, 12.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait_for(lambda: not _session(proc.pid), 20)
    subprocess.run([sys.executable, "-c", script, str(path), str(DATA)], check=True, timeout=600)
    ids = [json.loads(line)["cell_id"] for line in path.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 3 + 6


def test_divergence_over_seeds_counts_each_cells_seeds_with_an_interval():
    from hdrepro.studies.grids import divergence_over_seeds
    rows = [{"optimizer": "adam-hd", "rule": "additive", "alpha0": 1e-3, "beta": 1e-4,
             "baseline": False, "seed": s, "diverged": s <= 3,
             "train_loss": math.nan if s <= 3 else (9.0 if s == 4 else 0.1)} for s in range(1, 11)]
    d = divergence_over_seeds(pd.DataFrame(rows)).iloc[0]
    assert (d.seeds, d.diverged, d.blew_up) == (10, 3, 1)
    assert d.p.estimate == 0.3 and d.p.low == pytest.approx(0.1078, abs=1e-3)


def test_provenance_commit_is_the_one_the_caller_names(monkeypatch):
    from hdrepro.engine.executors import git_commit
    monkeypatch.delenv("HDREPRO_COMMIT", raising=False)
    from_git = git_commit()
    assert from_git and from_git != "abc1234"
    monkeypatch.setenv("HDREPRO_COMMIT", "abc1234")  # a tree sent to a GPU machine says which it is
    assert git_commit() == "abc1234"


def test_a_column_added_later_widens_the_store_instead_of_vanishing(tmp_path):
    from types import SimpleNamespace
    store = RunStore(tmp_path, "runs")

    def run(iteration_rows):
        return SimpleNamespace(final={"train_loss": 0.5, "diverged": False}, epochs=[],
                               iterations=iteration_rows, provenance={}, config={})
    store.append([("old", {"seed": 1}, run([{"iteration": 100, "alpha": 0.1}]))])
    # a later version logs α's range between rows: the old header must not drop it
    store.append([("new", {"seed": 2},
                   run([{"iteration": 100, "alpha": 0.2, "alpha_min": 0.1, "alpha_max": 0.3}]))])
    it = store.load("iterations").set_index("run_id")
    assert it.loc["new", "alpha_max"] == 0.3 and it.loc["new", "alpha_min"] == 0.1
    assert math.isnan(it.loc["old", "alpha_max"]) and it.loc["old", "alpha"] == 0.1
    assert not list(tmp_path.glob("*.rewrite"))


def test_a_rerun_replaces_every_row_of_the_stored_run_and_a_dropped_run_is_unfinished(tmp_path):
    from types import SimpleNamespace
    store = RunStore(tmp_path, "runs")

    def run(alpha, rows):
        return SimpleNamespace(final={"train_loss": alpha, "diverged": False},
                               epochs=[{"epoch": 1, "train_loss": alpha}], provenance={},
                               config={}, iterations=[{"iteration": 100 * (i + 1), "alpha": alpha}
                                                      for i in range(rows)])
    store.append([("a", {"seed": 1}, run(0.1, 3)), ("b", {"seed": 2}, run(0.2, 2))])
    # the rerun logs fewer rows: none of the old run's rows may survive beside them
    store.append([("a", {"seed": 1}, run(0.3, 1))])
    it = store.load("iterations")
    assert it[it.run_id == "a"].alpha.tolist() == [0.3]
    assert it[it.run_id == "b"].alpha.tolist() == [0.2, 0.2]
    assert store.load("final").set_index("run_id").train_loss.to_dict() == {"a": 0.3, "b": 0.2}
    assert len(store.load("epochs")) == 2
    store.drop({"a"})
    assert store.finished() == {"b"} and set(store.load("iterations").run_id) == {"b"}
    assert not list(tmp_path.glob("*.rewrite"))
