"""REPORT.md's section on the clipping report (Tables 1-5): the builders of its tables and
sentences, from ``stacks_clipping.jsonl`` and ``stacks_trace.csv`` in a results folder
(written by experiments/stacks_clipping.py). :mod:`hdrepro.report` merges ``SECTIONS``."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import pandas as pd

from ..studies import stats
from .format import holding, md_table, percent, span
from ..engine.results import GridStore
from ..studies.stacks import (EFFECT, PUBLISHED, STAND_IN, ablation, baseline_error, comparison,
                               default_pixels, explanation, helps_share)

TITLES = {"sgd": "SGD/SGD(α)", "adam": "Adam/SGD(α)", "adagrad": "AdaGrad/SGD(α)",
          "rmsprop": "RMSProp/SGD(α)", "cnn": "Adam/SGD(α) on the CNN"}
NOT_RUN = "_No stack results in this folder._"


def _frame(results: Path) -> pd.DataFrame:
    return GridStore(results / "stacks_clipping.jsonl").frame()


def _pct(x: float, bold: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    s = f"{100 * x:.2f}%"
    return f"**{s}**" if bold else s


def provenance(results: Path) -> str:
    """What ran: per table the data, its size, epochs, trials, cells, divergences, device."""
    frame = _frame(results)
    if frame.empty:
        return NOT_RUN
    lines = []
    for table in PUBLISHED:
        f = frame[frame.table == table]
        if f.empty:
            continue
        r = f.iloc[0]
        lines.append(
            f"- **Table {PUBLISHED[table].number}, {TITLES[table]}**: {r['data']} "
            f"{int(r['n_train']):,}/{int(r['n_test']):,} images ({r['data_source']}), "
            f"{int(r['epochs'])} epochs, batch {int(r['batch_size'])}, trials (seeds) "
            f"{sorted(f.seed.unique().tolist())}, {len(f)} runs ({int(f.diverged.sum())} "
            f"diverged), networks {sorted(f.model.unique().tolist())}, on {r['device']}.")
    run = results / "stacks_clipping_run.json"
    if run.exists():
        info = json.loads(run.read_text())
        took = ("still under way" if not info.get("finished", True) or info["wall_s"] is None
                else f"{info['wall_s']:.0f} s")
        lines.append(f"- Training time summed over all {len(frame)} runs: "
                     f"{frame.seconds.sum() / 60:.0f} min. Last invocation: {took} "
                     f"for {info['cells_run']} runs ({info['executor']}, {info['workers']} "
                     f"workers), commit {info['commit']}.")
    return "\n".join(lines)


def tables(results: Path) -> str:
    """Per stack: the report's errors and ours side by side, the ≥ 1-point rows in bold, and how
    many rows' conclusions agree."""
    frame = _frame(results)
    if frame.empty:
        return NOT_RUN
    out = []
    for table, pub in PUBLISHED.items():
        comp = comparison(frame, table)
        if comp.empty:
            continue
        extras = []  # our other settings, as extra column pairs
        for label, net, pixels in (("no output tanh", "no-output-tanh", None),
                                   ("standardised inputs", "output-tanh", "standardised")):
            c = comparison(frame, table, net, pixels)
            if not c.empty and (pixels is None or pixels != default_pixels(table)):
                extras.append((label, c.set_index("alpha")))
        rows = []
        for r in comp.itertuples():
            row = [f"{r.alpha:g}", _pct(r.report_none), _pct(r.report_clip, r.report_says == "helps"),
                   _pct(r.ours_none), _pct(r.ours_clip, r.we_say == "helps")]
            for _, c in extras:
                b = c.loc[r.alpha] if r.alpha in c.index else None
                row += ["–", "–"] if b is None else [_pct(b.ours_none),
                                                     _pct(b.ours_clip, b.we_say == "helps")]
            rows.append(row + [r.report_says, r.we_say, "yes" if r.agree else "**no**",
                               str(r.trials)])
        header = ["α", "report: no clip", "report: clip", "ours: no clip", "ours: clip"]
        for label, _ in extras:
            header += [f"ours, {label}: no clip", "clip"]
        header += ["report says", "we say", "agree", "our trials"]
        base = baseline_error(frame, table)
        others = [(w, baseline_error(frame, table, n, p)) for w, n, p in (
            ("without the output tanh", "no-output-tanh", None),
            ("with standardised inputs", "output-tanh", "standardised"))
            if p != default_pixels(table)]
        data = "CIFAR-10" if pub.dataset == "cifar10" else "MNIST"
        ours_data = frame[frame.table == table].data.iloc[0]
        note = (f"Primary alone: report {pub.baseline:.2f}% ({data}), ours {_pct(base)} "
                f"({ours_data}" + "".join(f"; {_pct(v)} {w}" for w, v in others
                                          if not math.isnan(v))
                + f"). Conclusions agree on **{int(comp.agree.sum())} of {len(comp)}** rows.")
        out.append(f"**Table {pub.number}: {TITLES[table]}**, {pub.epochs} epochs.\n\n"
                   + md_table(header, rows)
                   + f"\n\n{note}")
    return "\n\n".join(out) if out else NOT_RUN


def agreement(results: Path) -> str:
    """One sentence: rows whose conclusion matches the report's, over all tables."""
    frame = _frame(results)
    comps = [comparison(frame, t) for t in PUBLISHED] if not frame.empty else []
    comps = [c for c in comps if not c.empty]
    if not comps:
        return NOT_RUN
    allc = pd.concat(comps)
    helps_theirs = int((allc.report_says == "helps").sum())
    helps_both = int(((allc.report_says == "helps") & (allc.we_say == "helps")).sum())
    hurts_ours = int((allc.we_say == "hurts").sum())
    unsure = int((allc.we_say == "inconclusive").sum())
    return (f"Over the {len(allc)} rows run here, our conclusion (helps / no effect / hurts at "
            f"{100 * EFFECT:g} point, judged on the paired trials) matches the report's on "
            f"{int(allc.agree.sum())}, and {unsure} of ours are inconclusive (the trials' spread "
            f"exceeds the difference). Clipping helped in {helps_theirs} of these rows in the "
            f"report and in {helps_both} of those for us too; it hurt in {hurts_ours} rows of "
            "ours.")


def ablation_table(results: Path) -> str:
    frame = _frame(results)
    if frame.empty:
        return NOT_RUN
    ab = ablation(frame)
    if ab.empty:
        return "_No ablation runs: clipping lowered our error by ≥ 1 point on no row._"
    rows = [[TITLES[r.table], r.net, f"{r.alpha:g}", _pct(r.none), _pct(r.clip),
             f"{_pct(r.clip_pseudo, r.pseudo_helps)} ({r.pseudo_says})",
             f"{_pct(r.half, r.half_helps)} ({r.half_says})", r.trials, _verdict(r)]
            for r in ab.itertuples()]
    return md_table(["stack", "network", "α", "no clip", "clip (code)", "clip (pseudo-code)",
                     "no clip, α/2", "trials", "reading"], rows)


def _verdict(r) -> str:
    if r.half_helps and not r.pseudo_helps:
        return "halved rate"
    if r.pseudo_helps and not r.half_helps:
        return "clipping"
    if r.pseudo_helps and r.half_helps:
        return "both"
    if "inconclusive" in (r.pseudo_says, r.half_says):
        return "inside the noise"
    return "neither alone"


def ablation_verdict(results: Path) -> str:
    """Which explanation the MNIST rows support (:func:`hdrepro.studies.stacks.explanation`, a
    paired rule over rows), beside the share of rows where each arm helps (paired by trial,
    :func:`hdrepro.studies.stacks.effect_outcome`) with Wilson's intervals. The stand-in's rows
    stay in the table and out of the count, as in the verdict table."""
    frame = _frame(results)
    ab = ablation(frame) if not frame.empty else pd.DataFrame()
    if ab.empty:
        return ""
    stand_in = int((ab.table == STAND_IN).sum())
    ab = ab[ab.table != STAND_IN]
    if ab.empty:
        return ""
    n = len(ab)
    half, pseudo, code = (helps_share(ab, arm) for arm in ("half", "pseudo", "clip"))
    winner, split = explanation(ab)
    apart = (f"Of the {split.n} rows where exactly one of the two arms helps, it is α/2 on "
             f"{_share(split)}" if split.n else
             "No row has exactly one of the two arms helping")
    unsure = int(((ab.half_says == "inconclusive") | (ab.pseudo_says == "inconclusive")).sum())
    reading = {
        "halved rate": "the halved rate: where the two arms differ, α/2 without clipping is the "
                       "one that helps (the share's interval lies above 1/2)",
        "clipping": "clipping itself: where the two arms differ, the pseudo-code's clipping, "
                    "which never halves a steady hypergradient, is the one that helps (the "
                    "share's interval lies below 1/2)",
        "neither": f"neither explanation wins (the share's interval contains 1/2, or no row "
                   f"tells them apart); on {unsure} of the {n} rows at least one arm is "
                   f"inconclusive at {span(ab.trials)} trials"}[winner]
    left = (f" (the Fashion-MNIST stand-in's {stand_in} rows are in the table, not counted)"
            if stand_in else "")
    return (f"On the {n} MNIST rows where the code's clipping lowered our mean error by ≥ 1 "
            f"point{left}, judged per row on the paired trials: the code's clipping itself helps "
            f"on {_share(code)}, α/2 without clipping on {_share(half)}, the pseudo-code's "
            f"clipping on {_share(pseudo)}. {apart}. Answer (rule: the arm that helps where "
            f"exactly one does, by the share's 95% Wilson interval against 1/2): {reading}.")


def _share(p: stats.Interval) -> str:
    return f"{p.estimate * p.n:.0f} ({percent(p)})"


def trace_summary(results: Path) -> str:
    """The mechanism in numbers, from the traced large-α run."""
    path = results / "stacks_trace.csv"
    if not path.exists():
        return ""
    tr = pd.read_csv(path)
    tr = tr[tr.hyper == "lr"]
    none, clip = tr[tr.run == "none"], tr[tr.run == "clip"]
    later = clip[clip.step >= 2]
    factor = (later.clipped / later.h.abs()).where(later.h.abs() > 0)
    first = clip[clip.h != 0].iloc[0] if (clip.h != 0).any() else None
    parts = [f"Over {int(clip.step.max())} steps the clipped run clips {float((later.h.abs() > later.theta).mean()):.0%} "
             f"of its α-hypergradients, with median factor {float(factor.median()):.2f}."]
    if first is not None:
        step = int(first.step)
        after = {run: float(tr[(tr.run == run) & (tr.step == step)].value.iloc[0])
                 for run in ("none", "clip")}
        largest_later = float(clip[clip.step > step].h.abs().max())
        parts.append(f"The first non-zero hypergradient (step {step}) has |h| = "
                     f"{abs(first.h):.3g}, the largest later one {largest_later:.3g}; it takes "
                     f"Adam's α from {float(clip.value.iloc[0]):.3g} to {after['none']:.3g} "
                     f"without clipping and to {after['clip']:.3g} with it.")
    parts.append(f"It ends at {float(none.value.iloc[-1]):.3g} without clipping and "
                 f"{float(clip.value.iloc[-1]):.3g} with it.")
    return " ".join(parts)


#: the quick stack runs as the stack computed them before §8's faster arrangement
ROUNDING_REF = "stacks_clipping_b50516f.jsonl"


def rounding_sensitivity(results: Path) -> str:
    """How far single runs move when only float rounding changes: the same cells run by the stack
    at commit b50516f and by the current one (same equations, operations in another order)."""
    folder = holding(results, ROUNDING_REF)   # the quick profile's runs, beside these
    ref, frame = folder / ROUNDING_REF, _frame(folder)
    if not ref.exists() or frame.empty:
        return ""
    keys = ["table", "net", "variant", "alpha", "seed", "pixels"]
    both = GridStore(ref).frame().merge(frame, on=keys, suffixes=("_ref", ""))
    moved = (both.test_error - both.test_error_ref).abs()
    worst = both.loc[moved.idxmax()]
    calm = (both.test_error_ref < 0.1) & (both.test_error < 0.1)
    return (f"**How much is noise.** The stack's faster arrangement (Appendix B) computes the same "
            f"equations with the operations in another order, so only float rounding differs. "
            f"Of {len(both)} {folder.name}-profile runs made both before (commit b50516f, "
            f"`{ROUNDING_REF}`) and after it, {int((moved == 0).sum())} ended identical, "
            f"{int((moved >= EFFECT).sum())} moved by at least 1 point (the bolding threshold) "
            f"and {int((moved >= 0.10).sum())} by at least 10 points. The largest move: "
            f"{TITLES[worst.table]}, α = {worst.alpha:g}, {worst.variant}, "
            f"{_pct(worst.test_error_ref)} → {_pct(worst.test_error)}. Among the runs below 10% "
            f"error both times the largest move is {_pct(moved[calm].max() if calm.any() else 0)}. "
            f"Large-α stacks are chaotic: a single run there cannot settle a 1-point difference, "
            f"which is why the full profile's 3 trials matter, and why even they leave rows "
            f"near the threshold uncertain.")


SECTIONS: dict[str, Callable[[Path], str]] = {
    "stacks_provenance": provenance,
    "stacks_tables": tables,
    "stacks_agreement": agreement,
    "stacks_ablation": ablation_table,
    "stacks_ablation_verdict": ablation_verdict,
    "stacks_trace": trace_summary,
    "stacks_rounding": rounding_sensitivity,
}
