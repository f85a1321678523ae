"""REPORT.md's overview parts, built from the same results files as its sections:

* every deviation from the papers' setups, the scale columns read from the stored runs
  (``deviations``);
* what each profile cost to run, from the timings ``run_all.sh`` and the drivers record
  (``profile_timing``);
* the index of every figure with the profile and command that made it, read from each PNG's
  stamp (``figure_index``, see :mod:`hdrepro.figures`).

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
from .report_format import full_results, is_partial, md_table, run_record
from .results import GridStore


def _report():
    from . import report  # here, not at the top: hdrepro.report imports this module
    return report


# -- deviations from the papers' setups -----------------------------------------------------------
def _images(r) -> str:
    return f"{r['data']} {int(r['n_train']):,}/{int(r['n_test']):,}"


def _fig1_scale(folder: Path) -> str:
    final = _report()._fig1(folder)
    if final.empty:
        return "not run"
    prov = json.loads(final.provenance.iloc[0])
    ep = ", ".join(f"{m} {n}" for m, n in _report().fig1_epochs(final).items())
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
        parts.append(f"{_report().GRID_NAMES[name].split(' (')[0]}: {_images(f.iloc[0])}, "
                     f"{hd.alpha0.nunique()}×{hd.beta.nunique()} (α₀×β), {int(f.epochs.max())} "
                     f"epochs, seeds {sorted(f.seed.unique().tolist())}")
    return "; ".join(parts) or "not run"


def _stack_scale(tables: tuple[str, ...]) -> Callable[[Path], str]:
    def scale(folder: Path) -> str:
        from .stacks import PUBLISHED
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
              _stack_scale(("cnn",)), "CIFAR-10 cannot be downloaded here: the same CNN on "
              "Fashion-MNIST (1×28×28), labelled as such, never called CIFAR-10"),
    Deviation("BetterCNN", "the report's code leaves dropout on at evaluation", "dropout off "
              "at evaluation (model.eval())", "a bug in the report's code"),
    Deviation("Second-order HD", "β_t = β_{t−1} + γ ∂f/∂β as printed",
              "β_t = β_{t−1} + γ h_t h_{t−1} (descent)", "the printed sign is gradient ascent; "
              "ours matches autodiff (§2)"),
    Deviation("Multiplicative rule", "no β given for Figure 1; not gridded by the report",
              "β = 1e-2 in Figure 1; gridded beside the additive rule", "our choice, so the "
              "rule is shown at all; marked as ours"),
    Deviation("Adam-HD, ε, α storage", "Baydin et al.'s code: α bumped per parameter tensor, ε "
              "before the bias correction", "the paper's algorithm (one α update per step, ε "
              "after the bias correction)", "the paper over the code; §7.2 lists each "
              "difference"),
)


def deviations(results: Path) -> str:
    full = full_results(results)
    body = []
    for d in DEVIATIONS:
        if callable(d.ours):
            quick, at_scale = d.ours(results), d.ours(full)
        else:
            quick = at_scale = d.ours
        body.append([d.experiment, d.paper, quick, at_scale, d.why])
    return md_table(["experiment", "papers' setup", f"ours, {results.name} profile",
                     "ours, full profile", "why"], body)


# -- what each profile cost -------------------------------------------------------------------
PIECES = (  # (label, the results file that shows it ran, its run record if the driver writes one)
    ("equivalence (§2)", "equivalence.csv", None),
    ("Figure 1 (§3)", "fig1_final.csv", "fig1_run.json"),
    ("grid LogReg (§4)", "grid_logreg.jsonl", "grid_logreg_run.json"),
    ("grid MLNN (§4)", "grid_mlnn.jsonl", "grid_mlnn_run.json"),
    ("grid BetterCNN (§4)", "grid_bettercnn.jsonl", "grid_bettercnn_run.json"),
    ("grid γ (§4)", "grid_gamma.jsonl", "grid_gamma_run.json"),
    ("stacks, Tables 1–5 (§5)", "stacks_clipping.jsonl", "stacks_clipping_run.json"),
    ("optimizer family (§6.1)", "family_sensitivity.jsonl", "family_sensitivity_run.json"),
    ("rivals (§6.2)", "rivals.jsonl", "rivals_run.json"),
    ("ASGC (§6.3)", "asgc.jsonl", "asgc_run.json"),
    ("ε histograms (§6.4)", "epsilon.jsonl", "epsilon_run.json"),
)


def _runs(path: Path) -> pd.DataFrame:
    if path.suffix == ".jsonl":
        return GridStore(path).frame()
    return pd.read_csv(path)


def pieces(folder: Path) -> list[dict]:
    """Per experiment of a profile: whether it ran, its runs, their device, the summed training
    time of the runs, and the wall time of the driver invocation that ran them all (when one
    did: later invocations that only resumed do not count)."""
    out = []
    for label, name, record in PIECES:
        row = {"piece": label, "ran": (folder / name).exists(), "runs": 0, "total": None,
               "device": "", "train_s": math.nan, "wall_s": math.nan}
        if row["ran"]:
            runs = _runs(folder / name)
            row["runs"] = len(runs)
            if "seconds" in runs:
                row["train_s"] = float(runs.seconds.sum())
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
    from .stacks import ABLATIONS, StackSpec
    done = int(((stacks.table == "cnn") & ~stacks.variant.isin(ABLATIONS)).sum())
    want = len(StackSpec(("cnn",)).cells())
    if done == 0:
        return ["stacks Table 5"]
    return [f"stacks Table 5 ({done} of its {want} table runs so far)"] if done < want else []


def profile_timing(results: Path) -> str:
    """The whole run_all.sh of this profile, step by step, and the full profile's pieces."""
    parts = []
    steps, start = _run_all_timing(results)
    if steps:
        total = sum(float(r["seconds"]) for r in steps)
        r0 = steps[0]
        how = ("from empty results" if start == "fresh" else
               "resuming stored results, so not the from-scratch time")
        parts.append(
            f"**Profile {r0['profile']}, the whole `./run_all.sh`** ({how}; {r0['machine']}, "
            f"commit {r0['commit']}): **{total / 60:.1f} minutes**{_against_target(r0['profile'], total)}.\n\n"
            + md_table(["step", "minutes", "share"],
                       [[r["step"], _minutes(float(r["seconds"])),
                         f"{float(r['seconds']) / total:.0%}"] for r in steps]))
    else:
        parts.append(f"_`run_all.sh` has not recorded a timing in `{results.name}/`._")
    full_folder = full_results(results)
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
            f"{' so far' if missing else ''}, from the run records in `results/full/`:\n\n"
            + md_table(["piece", "runs", "device", "minutes", "measured as"], body)
            + f"\n\nWall time of the pieces timed in one invocation: **{on_gpu / 60:.1f} "
              "minutes** on the GPU"
            + (f" and **{on_cpu / 60:.1f} minutes** on the 2-core CPU." if on_cpu else "."))
    text += (" Not run at full scale yet: " + ", ".join(missing) + "." if missing else
             " Every piece of the full profile has run.")
    parts.append(text)
    return "\n\n".join(parts)


# -- the figures --------------------------------------------------------------------------------
def _sections_showing(text: str) -> dict[str, list[str]]:
    """figure path (as linked) -> the numbered sections of ``text`` that show or link it."""
    shown: dict[str, list[str]] = {}
    section = "top"
    for line in text.splitlines():
        heading = re.match(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if heading:
            section = f"§{heading.group(1)}"
        for path in re.findall(r"\((figures/[\w/.-]+\.png)\)", line):
            if section not in shown.setdefault(path, []):
                shown[path].append(section)
    return shown


def figure_index(results: Path, text: str) -> str:
    """Every figure in the figures folder beside these results: the profile and results it was
    drawn from and the command that redraws it (from its stamp), and where the report shows it."""
    folder = results.parent.parent / "figures"
    pngs = sorted(folder.rglob("*.png"))
    if not pngs:
        return "_No figures in this folder._"
    shown = _sections_showing(text)
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
