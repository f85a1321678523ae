"""REPORT.md's overview parts, built from the same results files as its sections:

* every deviation from the papers' setups, the scale columns read from the stored runs
  (``deviations``);
* what each profile cost to run, from the timings ``run_all.sh`` and the drivers record
  (``profile_timing``);
* the index of every figure with the profile and command that made it, read from each PNG's
  stamp (``figure_index``, see :mod:`hdrepro.report.figures`).

The papers' claims and their verdicts are in :mod:`hdrepro.report_claims`.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from .figures import origin
from . import fig1, grids
from .claims import NOT_TESTED, claims
from .format import full_results, holding, is_partial, md_table, read_csv, run_record
from ..engine.results import GridStore
from ..studies.stacks import ABLATIONS, PUBLISHED, STAND_IN, StackSpec



# -- deviations from the papers' setups -----------------------------------------------------------
def _images(r) -> str:
    return f"{r['data']} {int(r['n_train']):,}/{int(r['n_test']):,}"


def _fig1_scale(folder: Path) -> str:
    final = fig1.fig1_frame(folder)
    if final.empty:
        return "not run"
    prov = json.loads(final.provenance.iloc[0])
    ep = ", ".join(f"{m} {n}" for m, n in fig1.fig1_epochs(final).items())
    total = run_record(folder, "fig1_run.json").get("cells_total")
    so_far = f" (partial: {len(final)} of {total} runs so far)" if is_partial(len(final), total) \
        else ""
    return (f"{prov['name']} {prov['n_train']:,}/{prov['n_test']:,}; epochs {ep}; seeds "
            f"{sorted(final.seed.unique().tolist())}{so_far}")


def _grid_scale(folder: Path) -> str:
    parts = []
    for name in ("logreg", "mlnn", "bettercnn", "gamma"):
        f = GridStore(folder / f"grid_{name}.jsonl").frame()
        if f.empty:
            continue
        hd = f[~f.baseline]
        parts.append(f"{grids.GRID_NAMES[name].split(' (')[0]}: {_images(f.iloc[0])}, "
                     f"{hd.alpha0.nunique()}×{hd.beta.nunique()} (α₀×β), {int(f.epochs.max())} "
                     f"epochs, seeds {sorted(f.seed.unique().tolist())}")
    return "; ".join(parts) or "not run"


def _stack_scale(tables: tuple[str, ...]) -> Callable[[Path], str]:
    def scale(folder: Path) -> str:
        f = GridStore(folder / "stacks_clipping.jsonl").frame()
        f = f[f.table.isin(tables)] if not f.empty else f
        if f.empty:
            return "not run"
        runs = f[f.variant.isin(["none", "clip"]) & (f.net == f.net.iloc[0])]
        rows = sum(len(PUBLISHED[t].rows) for t in tables)
        epochs = ", ".join(f"{t} {int(g.epochs.max())}" for t, g in f.groupby("table", sort=False))
        done = len(runs[["table", "alpha"]].drop_duplicates())
        return (f"{_images(f.iloc[0])}; epochs {epochs}; {done} of the {rows} "
                f"α rows; trials {sorted(f.seed.unique().tolist())}")
    return scale


@dataclass(frozen=True)
class Deviation:
    experiment: str
    paper: str
    ours: str | Callable[[Path], str]  # fixed text, or the scale read from a results folder
    why: str


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("Figure 1 (Baydin et al. Fig. 2)", "all of MNIST (60,000/10,000); LogReg 20 "
              "epochs (code: 10), MLP 100; VGG-16 on CIFAR-10, 200 epochs; one seed",
              _fig1_scale, "cost: the quick profile covers early training on 2 CPU cores; "
              "CIFAR-10 is not on our machines, so no VGG-16 column"),
    Deviation("Grids (reproducibility report Figs. 2–5)", "first 6,000/1,000 MNIST images; "
              "6×6 α₀×β; LogReg 50 epochs, MLP and BetterCNN 100; one seed",
              _grid_scale, "cost: 3×3 grids and 2–10 epochs fit the quick profile; the full "
              "profile is the report's scale"),
    Deviation("Stacks, Tables 1–4 (clipping report)", "MNIST 60,000/10,000; SGD and AdaGrad "
              "30 epochs, Adam and RMSProp 5; every α of the tables; 3 trials",
              _stack_scale(("sgd", "adam", "adagrad", "rmsprop")),
              "cost: the quick profile runs the α rows where clipping matters, 1 trial"),
    Deviation("Stacks, Table 5 (clipping report)", "CIFAR-10, a small CNN, 5 epochs, 3 trials",
              _stack_scale((STAND_IN,)), "CIFAR-10 cannot be downloaded here: the same CNN on "
              "Fashion-MNIST (1×28×28), labelled as such, never called CIFAR-10"),
    Deviation("BetterCNN", "the report's code leaves dropout on at evaluation", "dropout off "
              "at evaluation (model.eval())", "a bug in the report's code"),
    Deviation("Second-order HD", "β_t = β_{t−1} + γ ∂f/∂β as printed",
              "β_t = β_{t−1} + γ h_t h_{t−1} (descent)", "the printed sign is gradient ascent; "
              "ours matches autodiff (§1.1)"),
    Deviation("Multiplicative rule", "no β given for Figure 1; not gridded by the report",
              "β = 1e-2 in Figure 1; gridded beside the additive rule", "our choice, so the "
              "rule is shown at all; marked as ours"),
    Deviation("Adam-HD, ε, α storage", "Baydin et al.'s code: α bumped per parameter tensor, ε "
              "before the bias correction", "the paper's algorithm (one α update per step, ε "
              "after the bias correction)", "the paper over the code; the setups page lists "
              "each difference"),
)


def deviations(results: Path) -> str:
    body = [[d.experiment, d.paper, d.ours(results) if callable(d.ours) else d.ours, d.why]
            for d in DEVIATIONS]
    return md_table(["experiment", "papers' setup", f"ours, {results.name} profile", "why"], body)


# -- what each profile cost -------------------------------------------------------------------
PIECES = (  # label, the results file that shows it ran, its run record if the driver writes
    # one, and the command that runs it
    ("equivalence (§1.1)", "equivalence.csv", None, "hdrepro run equivalence"),
    ("Figure 1 (§1.2)", "fig1_final.csv", "fig1_run.json", "hdrepro run fig1"),
    ("tuning grid (§1.3)", "threshold_grid.jsonl", "threshold_grid_run.json",
     "hdrepro run threshold_grid"),
    ("grid LogReg (§2.1)", "grid_logreg.jsonl", "grid_logreg_run.json", "hdrepro grid logreg"),
    ("grid MLNN (§2.1)", "grid_mlnn.jsonl", "grid_mlnn_run.json", "hdrepro grid mlnn"),
    ("grid BetterCNN (§2.1)", "grid_bettercnn.jsonl", "grid_bettercnn_run.json",
     "hdrepro grid bettercnn"),
    # one row per grid over seeds: each has its own store, run record and device
    *((f"grid {title} over seeds (§2.2)", f"grid_seeds_{name}.jsonl",
       f"grid_seeds_{name}_run.json", f"hdrepro grid seeds_{name}")
      for name, title in (("logreg", "LogReg"), ("mlnn", "MLNN"), ("bettercnn", "BetterCNN"))),
    ("BetterCNN divergence (§2.3)", "bettercnn_divergence.jsonl",
     "bettercnn_divergence_run.json", "hdrepro run bettercnn_divergence"),
    ("grid γ (§2.4)", "grid_gamma.jsonl", "grid_gamma_run.json", "hdrepro grid gamma"),
    ("stacks, Tables 1–5 (§3)", "stacks_clipping.jsonl", "stacks_clipping_run.json",
     "hdrepro stacks"),
    ("optimizer family (A.1)", "family_sensitivity.jsonl", "family_sensitivity_run.json",
     "hdrepro run family_sensitivity"),
    ("rivals (A.2)", "rivals.jsonl", "rivals_run.json", "hdrepro run rivals"),
    ("ASGC (A.3)", "asgc.jsonl", "asgc_run.json", "hdrepro run asgc"),
    ("ε histograms (A.4)", "epsilon.jsonl", "epsilon_run.json", "hdrepro run epsilon"),
    ("HDM-Best against L-BFGS (A.5)", "convex_hdm.jsonl", "convex_hdm_run.json",
     "hdrepro run convex_hdm"),
    ("MARTHE and HDM, contested region (A.5)", "contested.jsonl", "contested_run.json",
     "hdrepro run contested"),
)


def _runs(path: Path) -> pd.DataFrame:
    if path.suffix == ".jsonl":
        return GridStore(path).frame()
    return pd.read_csv(path)


def _own_seconds(runs: pd.DataFrame) -> pd.Series:
    """Each run's training time, a batch's time shared among the cells trained in it (each cell
    of a batch records the whole batch's time), so that a sum counts a batch once."""
    share = runs["cells_in_batch"].fillna(1) if "cells_in_batch" in runs else 1
    return runs["seconds"] / share


def pieces(folder: Path) -> list[dict]:
    """Per experiment of a profile: whether it ran, its runs, their device, the summed training
    time of the runs, and the wall time of the driver invocation that ran them all (when one
    did: later invocations that only resumed do not count)."""
    out = []
    for label, name, record, _ in PIECES:
        row = {"piece": label, "ran": (folder / name).exists(), "runs": 0, "total": None,
               "device": "", "train_s": math.nan, "wall_s": math.nan}
        if row["ran"]:
            runs = _runs(folder / name)
            row["runs"] = len(runs)
            if "seconds" in runs:
                row["train_s"] = float(_own_seconds(runs).sum())
            if "device" in runs:
                row["device"] = ", ".join(sorted(runs.device.astype(str).unique()))
            elif "provenance" in runs:
                row["device"] = json.loads(runs.provenance.iloc[0])["device"]
            info = run_record(folder, record)
            row["total"] = info.get("cells_total")
            if info.get("finished", True) and info.get("cells_run", info.get(
                    "cells_total")) == info.get("cells_total", -1):
                row["wall_s"] = float(info["wall_s"])
        out.append(row)
    return out


def partial(row: dict) -> bool:
    """Whether a piece has fewer stored runs than its profile has cells."""
    return is_partial(row["runs"], row.get("total"))


def _measured_as(piece: dict) -> str:
    """How a piece's minutes were measured (the pieces table's last column)."""
    if not math.isnan(piece["wall_s"]):
        return "wall clock, one invocation"
    if math.isnan(piece["train_s"]):
        return "not timed (its driver writes no times)"
    if partial(piece):
        return "runs' own times summed so far (not finished, 2 workers)"
    return "runs' own times summed (resumed over several invocations, 2 workers)"


def _minutes(s: float) -> str:
    return "–" if math.isnan(s) else f"{s / 60:.1f}"


def _run_all_timing(folder: Path) -> tuple[list[dict], str]:
    for start in ("fresh", "resumed"):
        path = folder / f"run_all_timing_{start}.csv"
        if path.exists():
            with path.open() as f:
                return list(csv.DictReader(f)), start
    return [], ""


TARGET_MINUTES = {"smoke": 2, "quick": 30}  # the profiles' promises on 2 CPU cores (README)


def _against_target(profile: str, seconds: float) -> str:
    if profile not in TARGET_MINUTES:
        return ""
    target = TARGET_MINUTES[profile]
    return f", {'within' if seconds <= 60 * target else 'over'} the {target}-minute target"


def _table5_gap(stacks) -> list[str]:
    """Table 5 at full scale: missing, or how many of its table runs (every α, every trial,
    ablations aside) are stored."""
    done = int(((stacks.table == STAND_IN) & ~stacks.variant.isin(ABLATIONS)).sum())
    want = len(StackSpec((STAND_IN,)).cells())
    if done == 0:
        return ["stacks Table 5"]
    return [f"stacks Table 5 ({done} of its {want} table runs so far)"] if done < want else []


def _timing_table(steps: list[dict], start: str) -> str:
    total = sum(float(r["seconds"]) for r in steps)
    r0 = steps[0]
    how = ("from empty results" if start == "fresh" else
           "resuming stored results, so not the from-scratch time")
    return (f"**Profile {r0['profile']}, the whole `./run_all.sh`** ({how}; {r0['machine']}, "
            f"commit {r0['commit']}): **{total / 60:.1f} minutes**"
            f"{_against_target(r0['profile'], total)}.\n\n"
            + md_table(["step", "minutes", "share"],
                       [[r["step"], _minutes(float(r["seconds"])),
                         f"{float(r['seconds']) / total:.0%}"] for r in steps]))


def profile_timing(results: Path) -> str:
    """Each profile's whole run_all.sh, step by step (this folder's and the quick profile's
    beside it), and the full profile's pieces."""
    parts = []
    for folder in dict.fromkeys([results.parent / "smoke", results.parent / "quick", results]):
        steps, start = _run_all_timing(folder)
        if steps:
            parts.append(_timing_table(steps, start))
    if not parts:
        parts.append(f"_`run_all.sh` has not recorded a timing in `{results.name}/`._")
    full_folder = full_results(results)
    if not full_folder.is_dir():
        return "\n\n".join(parts)
    full = pieces(full_folder)
    ran = [p for p in full if p["ran"]]
    missing = [p["piece"] if not p["ran"] else
               f"{p['piece']} ({p['runs']} of its {p['total']} runs so far)"
               for p in full if not p["ran"] or partial(p)]
    stacks = GridStore(full_folder / "stacks_clipping.jsonl").frame()
    if not stacks.empty:
        missing += _table5_gap(stacks)
    body = [[p["piece"], f"{p['runs']} of {p['total']}" if partial(p) else p["runs"],
             p["device"] or "–",
             _minutes(p["wall_s"]) if not math.isnan(p["wall_s"]) else _minutes(p["train_s"]),
             _measured_as(p)] for p in ran]
    timed = [p for p in ran if not math.isnan(p["wall_s"])]
    on_gpu = sum(p["wall_s"] for p in timed if not p["device"].lower().startswith("cpu"))
    on_cpu = sum(p["wall_s"] for p in timed if p["device"].lower().startswith("cpu"))
    text = ("**The full profile** has not been run end to end: its pieces ran separately, on "
            "a GPU or on a 2-core CPU, as the device column records. What ran"
            f"{' so far' if missing else ''}, from the run records in `results/full/` (where "
            "the runs' own times are summed, cells trained together in one batch count the "
            "batch's time once):\n\n"
            + md_table(["piece", "runs", "device", "minutes", "measured as"], body)
            + f"\n\nWall time of the pieces timed in one invocation: **{on_gpu / 60:.1f} "
              "minutes** on the GPU"
            + (f" and **{on_cpu / 60:.1f} minutes** on the 2-core CPU." if on_cpu else "."))
    text += (" Not run at full scale yet: " + ", ".join(missing) + "." if missing else
             " Every piece of the full profile has run.")
    parts.append(text)
    return "\n\n".join(parts)


# -- the figures --------------------------------------------------------------------------------
#: a link to a figure, as the report's parts write it (relative to the results' root)
FIGURE_LINK = re.compile(r"\((figures/[\w/.-]+\.png)\)")


def _sections_showing(text: str) -> dict[str, list[str]]:
    """figure path (as linked) -> the numbered sections of ``text`` that show or link it."""
    shown: dict[str, list[str]] = {}
    section = "top"
    for line in text.splitlines():
        heading = re.match(r"^#{2,3} (?:Appendix )?(\d+(?:\.\d+)?|[A-Z](?:\.\d+)?)\.? ", line)
        if heading:
            name = heading.group(1)
            section = f"§{name}" if name[0].isdigit() else f"App. {name}"
        for path in FIGURE_LINK.findall(line):
            if section not in shown.setdefault(path, []):
                shown[path].append(section)
    return shown


def figure_index(results: Path, text: str, pages: dict[str, str] | None = None) -> str:
    """Every figure in the figures folder beside these results: the profile and results it was
    drawn from and the command that redraws it (from its stamp), and where the report (`text`)
    or one of its pages (name -> text) shows it."""
    folder = results.parent.parent / "figures"
    pngs = sorted(folder.rglob("*.png"))
    if not pngs:
        return "_No figures in this folder._"
    shown = _sections_showing(text)
    for page, page_text in (pages or {}).items():
        for path in FIGURE_LINK.findall(page_text):
            where = f"[{page}](docs/report/{page}.md)"
            if where not in shown.setdefault(path, []):
                shown[path].append(where)
    body = []
    for png in pngs:
        link = f"figures/{png.relative_to(folder).as_posix()}"
        made = origin(png)
        where = ", ".join(shown.get(link, [])) or "not shown in this report"
        if made is None:
            body.append([f"[{link}]({link})", "unknown (no stamp)", "–", "–", where])
        else:
            body.append([f"[{link}]({link})", f"**{made.profile}**", f"`{made.results}/`",
                         f"`{made.command}`", where])
    return md_table(["figure", "profile", "drawn from", "redraw with", "shown in"], body)


# -- the abstract -------------------------------------------------------------------------------
def training_time(folder: Path) -> dict[str, float]:
    """Hours of training per kind of device ("GPU" or "CPU") over every stored run of a folder;
    cells trained together in one batch share their time, so it is counted once per batch."""
    hours = {"GPU": 0.0, "CPU": 0.0}
    for path in sorted(folder.glob("*.jsonl")):
        runs = GridStore(path).frame()
        if runs.empty or "seconds" not in runs or "device" not in runs:
            continue
        seconds = _own_seconds(runs)
        cpu = runs.device.astype(str).str.lower().str.startswith("cpu")
        hours["CPU"] += float(seconds[cpu].sum()) / 3600
        hours["GPU"] += float(seconds[~cpu].sum()) / 3600
    fig1 = folder / "fig1_final.csv"
    if fig1.exists():
        runs = pd.read_csv(fig1)
        cpu = runs.provenance.map(lambda p: json.loads(p)["device"]).str.startswith("cpu")
        hours["CPU"] += float(runs.seconds[cpu].sum()) / 3600
        hours["GPU"] += float(runs.seconds[~cpu].sum()) / 3600
    return hours


def devices(folder: Path) -> list[str]:
    """The devices named by the stored runs and benchmarks of a folder, GPUs first."""
    found: set[str] = set()
    for path in folder.glob("*.jsonl"):
        runs = GridStore(path).frame()
        if "device" in runs:
            found |= set(runs.device.astype(str))
    for path in folder.glob("bench_*.csv"):
        found |= {r["device"] for r in read_csv(path) if r.get("device")}
    cpu = sorted(d for d in found if d.lower().startswith("cpu"))
    gpus = sorted(d for d in found if d not in cpu)
    return gpus + (["CPU (1–2 threads per run, 2 cores)"] if cpu else [])


def abstract(results: Path) -> str:
    """The half-page summary: what reproduced, what did not, what could not be run and why,
    and the hardware and its cost, all from the verdict table's claims and the stored runs."""
    found = claims(results)
    rows = [c for c in found if not c.erratum and not c.stand_in]
    numbered = list(enumerate(rows, 1))
    def named(verdict: str) -> str:
        picked = [f"#{i}" for i, c in numbered if c.verdict.startswith(verdict)]
        return ", ".join(picked) if picked else "none"
    count = lambda v: sum(c.verdict.startswith(v) for c in rows)  # noqa: E731
    hours = training_time(results)
    cost = " and ".join(f"{h:.1f} {kind}-hours" for kind, h in hours.items() if h > 0.05)
    untested = [c for c in rows if c.verdict == NOT_TESTED] + [c for c in found if c.stand_in]
    missing = [f"{c.source}: {c.evidence}" for c in untested[:3]]
    final = fig1.fig1_frame(results)
    if not final.empty and not final.model.str.startswith("vgg").any():
        missing.append("Baydin et al.'s Figure 2 on VGG-16 and CIFAR-10: not run, CIFAR-10 "
                       "cannot be downloaded on our machines")
    why = "; ".join(missing)
    errata = [c for c in found if c.erratum]
    return (
        f"We re-ran the experiments of Baydin et al. (ICLR 2018), of a reproducibility report "
        f"of that paper, and of a report that adds hypergradient clipping to Chandra et al.'s "
        f"(NeurIPS 2022) hyperoptimizer stacks, with our own implementation, checked against "
        f"autodiff and finite differences in float64. Of the {len(rows)} claims in the verdict "
        f"table, **{count('reproduces')} reproduce** ({named('reproduces')}), "
        f"**{count('partly')} partly** ({named('partly')}), **{count('does not reproduce')} "
        f"{'does' if count('does not reproduce') == 1 else 'do'} not** "
        f"({named('does not reproduce')}), and {count(NOT_TESTED)} could not be "
        f"tested. Each verdict states its n, a 95% interval and the rule that decided it; a "
        f"difference inside the noise is a tie."
        + (f" {len(errata)} erratum in the sources (a printed sign) is confirmed and listed "
           "apart." if len(errata) == 1 else
           f" {len(errata)} errata in the sources are confirmed and listed apart." if errata
           else "")
        + (f"\n\nWhat could not be run as published: {why}." if missing else "")
        + f"\n\nHardware: {', '.join(devices(results)) or 'none recorded'}. The stored runs "
        f"account for {cost or 'no recorded time'} of training (per-run times summed; cells "
        f"trained in one batch counted once). Appendix B gives each profile's cost and the "
        f"speed of the optimizers; Appendix C the commands, seeds, data and software.")


# -- the reproducibility appendix ---------------------------------------------------------------
def _seeds(path: Path) -> str:
    runs = _runs(path)
    column = "seed" if "seed" in runs else "trial" if "trial" in runs else None
    if column is None or runs.empty:
        return "–"
    seeds = sorted(int(s) for s in runs[column].dropna().unique())
    return (f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1))
            and len(seeds) > 2 else ", ".join(map(str, seeds)))


def _data_used(folder: Path) -> list[str]:
    """Each data set the stored runs name, with its source label as recorded."""
    seen: dict[str, set[str]] = {}
    for path in folder.glob("*.jsonl"):
        runs = GridStore(path).frame()
        if {"data", "data_source"} <= set(runs.columns):
            for (name, source), _ in runs.groupby(["data", "data_source"]):
                seen.setdefault(str(name), set()).add(str(source))
    return [f"{name} ({'; '.join(sorted(sources))})" for name, sources in sorted(seen.items())]


def _software(folder: Path) -> list[str]:
    """The torch version per device, as the benchmarks recorded it."""
    found = set()
    for name in ("bench_step_cpu.csv", "bench_step_cuda.csv", "bench_grid_cuda.csv"):
        found |= {(r["device"], r["torch"]) for r in read_csv(holding(folder, name) / name)
                  if r.get("torch")}
    return [f"torch {v} on {d}" for d, v in sorted(found)]


def reproducibility(results: Path) -> str:
    """Commands and seeds per piece, the data as recorded with its checksums, the software."""
    from ..engine.data import IDX
    rows = [[label, f"`{command} --profile {results.name}`", _seeds(results / store)]
            for label, store, _, command in PIECES if (results / store).exists()]
    digests = "; ".join(f"{name}: " + ", ".join(f"{file} {digest[:12]}…"
                                                for file, digest in spec.files.values())
                        for name, spec in IDX.items())
    data = _data_used(results)
    software = _software(results)
    return "\n\n".join([
        md_table(["piece", "command", "seeds (or trials)"], rows),
        "**Data.** " + ("; ".join(data) if data else "none recorded") + ". Every IDX file is "
        "checked against its SHA-256 digest before use (`hdrepro data verify`): " + digests
        + ". Subsets are the first images of each set (the reproducibility report's 10%) or "
        "the whole set, as each section's provenance line says.",
        "**Software.** " + ("; ".join(software) + ". " if software else "")
        + "The set-up (`scripts/setup_env.sh`) pins torch for CPU machines and installs the "
        "package with the versions `pyproject.toml` requires; each run records the commit "
        "that made it in its run record (`results/<profile>/*_run.json`)."])
