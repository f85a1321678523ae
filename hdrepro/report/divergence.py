"""REPORT.md's answer to "why do BetterCNN's SGD-HD and SGDN-HD diverge at α₀ = β = 1e-3?",
computed from the full profile's results: the divergence probability over seeds (10% of MNIST,
``grid_seeds_bettercnn``; all of MNIST, Figure 1), the float32/float64 twins and the α_t, ‖g_t‖
traces (``bettercnn_divergence``, :mod:`hdrepro.studies.divergence`)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..methods.registry import title
from ..studies import divergence as ds
from ..studies import stats
from ..studies.grid_verdicts import PAPER_CELL, near
from .format import full_results, k_of_n, md_table, run_record
from ..engine.results import GridStore, RunStore



def _over_seeds(full: Path) -> list[str]:
    frame = GridStore(full / "grid_seeds_bettercnn.jsonl").frame()
    if frame.empty:
        return []
    at = frame[~frame.baseline.astype(bool) & near(frame.alpha0, PAPER_CELL[0])
               & near(frame.beta, PAPER_CELL[1])]
    parts = []
    for opt, g in at.groupby("optimizer"):
        lost = g.diverged.astype(bool)
        blew = int((~lost & (g.train_loss > math.log(10))).sum())
        p = stats.proportion(int(lost.sum()), len(g))
        parts.append(f"{title(opt)} diverged in {k_of_n(p)} and blew up without NaN "
                     f"(final loss above ln 10) in {blew} more")
    return [f"*Over seeds.* Over {at.seed.nunique()} seeds of §2.1's setting (10% of MNIST, "
            f"{int(at.epochs.iloc[0])} epochs): " + "; ".join(parts) + ". One run, like the "
            "report's grid cell, is a single draw from these odds."]


def _full_data(full: Path) -> list[str]:
    final = RunStore(full, "fig1").load("final")
    if final.empty:
        return []
    cnn = final[(final.model == "bettercnn") & (final.rule == "additive")
                & final.optimizer.isin(["SGD-HD", "SGDN-HD"])]
    if cnn.empty:
        return []
    parts = [f"{opt} {k_of_n(stats.proportion(int(g.diverged.astype(bool).sum()), len(g)))}"
             for opt, g in cnn.groupby("optimizer")]
    return ["*All of MNIST* (Figure 1's full profile, 100 epochs), runs diverged: "
            + "; ".join(parts) + "."]


def _precision(study: pd.DataFrame) -> list[str]:
    pairs = ds.pairs(study)
    if pairs.empty:
        return []
    verdict, p = ds.precision_verdict(pairs)
    both = pairs[pairs.diverged32 & pairs.diverged64]
    gap = (both.at64 - both.at32).abs()
    same = int((pairs.diverged32 == pairs.diverged64).sum())
    twins = (f"Of the float32 runs that diverged, the float64 twin diverged too in "
             f"{k_of_n(p['twins'])}" if p["twins"].n else "No float32 run has diverged yet, so "
             "there is nothing for a float64 twin to confirm")
    if len(both):
        twins += (f"; where both diverged, the steps differ by {gap.median():.0f} (median; at "
                  f"most {gap.max():.0f}), and the two precisions end alike on {same} of "
                  f"{len(pairs)} seeds")
    return [f"*Precision: {verdict}.* Each seed runs in float32 and again in float64 with the "
            f"same initial weights and minibatch order, on the CPU ({int(study.epochs.iloc[0])} "
            f"epochs). float32 runs diverged: {k_of_n(p['float32'])}; float64: "
            f"{k_of_n(p['float64'])}. {twins} (rule: not the cause when that share's interval lies "
            "above 1/2, the cause when below, undecided otherwise)."]


def _devices(full: Path, study: pd.DataFrame) -> list[str]:
    """The same seeds in §2.2's 10-seed grid (its device, batched cells) against this study's
    float32 runs (one cell at a time), over the steps both ran."""
    grid = GridStore(full / "grid_seeds_bettercnn.jsonl").frame()
    mine = study[study.dtype == "float32"]
    if grid.empty or mine.empty:
        return []
    at = grid[~grid.baseline.astype(bool) & near(grid.alpha0, PAPER_CELL[0])
              & near(grid.beta, PAPER_CELL[1])].set_index(["optimizer", "seed"])
    steps = int(mine.iterations.max())   # the study's run length (or the divergence step)
    pairs = [(r, at.loc[(r.optimizer, r.seed)]) for r in mine.itertuples()
             if (r.optimizer, r.seed) in at.index]
    if not pairs:
        return []
    lost = lambda g: bool(g.diverged) and g.diverged_at <= steps  # noqa: E731
    there = sum(lost(g) for _, g in pairs)
    here = sum(bool(r.diverged) for r, _ in pairs)
    both = sum(lost(g) and bool(r.diverged) for r, g in pairs)
    device = ", ".join(sorted(set(grid.device)))
    return [f"*The device.* On the same {len(pairs)} optimizer–seed pairs, within the first "
            f"{steps} steps, §2.2's grid runs ({device}, cells batched) diverged in {there}, these one-at-a-time "
            f"CPU float32 runs in {here}, both in {both}. Where the two differ, the trajectories "
            "differ by rounding alone (the same initial weights and minibatch order); the GPU "
            "runs' convolutions may use TF32, torch's default for cuDNN convolutions, whose "
            "10-bit mantissa is coarser than float32's 23. A GPU rerun with TF32 off would "
            "separate the two."]


def _mechanism(study: pd.DataFrame) -> list[str]:
    run = ds.runaway(study)
    if run.empty:
        return []
    leads = run.lead.dropna()
    alpha0 = float(study.alpha0.iloc[0])
    lead = (f"|α_t| first exceeded 10 α₀ a median of {leads.median():.0f} steps (range "
            f"{leads.min():.0f}–{leads.max():.0f}) before the loss turned non-finite, in "
            f"{len(leads)} of {len(run)} diverged runs" if len(leads) else
            "|α_t| never exceeded 10 α₀ before the loss turned non-finite")
    return [f"*Mechanism.* {lead}; its largest finite value reached a median of "
            f"{run.alpha_max.median() / alpha0:.3g} α₀, while ‖g_t‖ peaked at a median of "
            f"{run.grad_norm_max.median():.3g}. Under the additive rule α_t moves by "
            "β g_t·u_{t−1} per step, which grows with the gradient's size and is bounded by nothing: once "
            "successive gradients align, α_t climbs, the larger steps make larger gradients, and "
            "the loop runs away (the figure below)."]


def twins_table(results: Path) -> str:
    """Per optimizer and seed, where each float32 run and its float64 twin diverged."""
    study = _study(full_results(results))
    pairs = ds.pairs(study) if not study.empty else study
    if pairs.empty:
        return "_No float32/float64 twin has run yet._"
    at = lambda d, x: f"step {x:.0f}" if d else "no"  # noqa: E731
    rows = [[title(r.optimizer), r.seed, at(r.diverged32, r.at32),
             at(r.diverged64, r.at64)] for r in pairs.itertuples()]
    return md_table(["optimizer", "seed", "float32 diverged", "float64 diverged"], rows)


def _study(full: Path) -> pd.DataFrame:
    study = GridStore(full / "bettercnn_divergence.jsonl").frame()
    return study if study.empty else study[study.cell_id.notna()]


def section(results: Path) -> str:
    full = full_results(results)
    study = _study(full)
    parts = _over_seeds(full) + _full_data(full)
    if not study.empty:
        parts += _precision(study) + _devices(full, study) + _mechanism(study)
    parts.append("*The report's code conventions.* Its dropout left active at evaluation "
                 "changes what is measured after an epoch, never a training step, so it cannot "
                 "start or stop a divergence; its minibatch order is one more draw of the order, "
                 "which the seeds above already vary.")
    total = run_record(full, "bettercnn_divergence_run.json").get("cells_total")
    if study.empty or (total and len(study) < total):
        parts.append(f"The float64 twins and the traces: {len(study)} of {total or '–'} runs "
                     "stored so far (`hdrepro run bettercnn_divergence --profile full` runs or "
                     "resumes them).")
    if not study.empty:
        parts.append("Each seed's float32 run and float64 twin, step by step: "
                     "[docs/report/grids.md](docs/report/grids.md#float32-and-float64-twins).")
    text = "\n".join(f"- {p}" for p in parts)
    figure = full.parent.parent / "figures" / "full" / "bettercnn_divergence.png"
    link = ("\n\n![BetterCNN's HD runs at α₀ = β = 1e-3, traced](figures/full/"
            "bettercnn_divergence.png)" if figure.exists() and not study.empty else "")
    return text + link
