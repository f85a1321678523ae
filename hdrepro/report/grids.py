"""REPORT.md's grid parts (the reproducibility report's Figures 2-5): what ran, the per-grid
table, the report's findings beside ours, the grids over seeds, second-order HD and the grids'
throughput, from the results of experiments/grid_*.py and bench/bench_grid.py."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..engine.models import TITLES as MODEL_TITLES
from ..methods.registry import title
from .format import full_results, holding, md_table, percent, read_csv
from .speed import interval_verdict


# -- grids (the reproducibility report's Figures 2-5) ---------------------------------------------
GRID_NAMES = {"logreg": "LogReg (Figure 2)", "mlnn": "MLNN (Figure 3)",
              "bettercnn": "BetterCNN (Figure 4)", "gamma": "second-order SGD-HD, LogReg (Figure 5)"}


def grid_frame(results: Path, name: str):
    from ..engine.results import GridStore
    return GridStore(results / f"grid_{name}.jsonl").frame()


def grid_panels(results: Path, name: str):
    from ..studies.grids import panel_stats, panels
    frame = grid_frame(results, name)
    if frame.empty:
        return frame, []
    return frame, [(p, panel_stats(p)) for p in panels(frame, axes=grid_axes(results, name))]


def grid_axes(results: Path, name: str):
    """The axes the grid's driver recorded in ``grid_<name>_run.json`` (None if it did not), so
    that a cell never stored counts as missing even when its whole row or column is absent."""
    from ..studies.grids import GridAxes
    run = results / f"grid_{name}_run.json"
    axes = json.loads(run.read_text()).get("axes") if run.exists() else None
    return GridAxes(**{k: tuple(v) for k, v in axes.items()}) if axes else None


def grid_provenance(results: Path) -> str:
    """One line per grid: data, size, epochs, seeds, cells, device, wall time."""
    lines = []
    for name, heading in GRID_NAMES.items():
        frame = grid_frame(results, name)
        if frame.empty:
            continue
        r = frame.iloc[0]
        run = results / f"grid_{name}_run.json"
        wall, stored = "", f"{len(frame)} cells"
        if run.exists():
            info = json.loads(run.read_text())
            if info.get("wall_s") is not None:
                wall = (f"; last invocation {info['wall_s']:.0f} s for {info['cells_run']} cells "
                        f"({info['executor']}, {_cells_per_batch(info['batch'])})")
            if info.get("cells_total", 0) > len(frame):
                stored = f"{len(frame)} of {info['cells_total']} cells stored"
        lines.append(f"- **{heading}**: {r['data']} first {int(r['n_train']):,}/{int(r['n_test']):,} "
                     f"images ({r['data_source']}), {int(r['epochs'])} epochs, batch "
                     f"{int(r['batch_size'])}, seeds {sorted(frame.seed.unique().tolist())}, "
                     f"{stored} ({int(frame.diverged.sum())} diverged), α₀ ∈ "
                     f"{{{', '.join(f'{a:g}' for a in sorted(frame.alpha0.unique()))}}}, on "
                     f"{_devices(frame)}{wall}.")
    return "\n".join(lines) if lines else "_No grid results in this folder._"


def _cells_per_batch(batch) -> str:
    # named in full: beside the minibatch size, a bare "batch 256" reads as a second minibatch
    return "one cell at a time" if not batch else f"up to {batch} cells trained together"


def _devices(frame) -> str:
    """Where a store's rows ran: the device, or each device with its count of cells."""
    counts = frame["device"].value_counts()
    if len(counts) == 1:
        return str(counts.index[0])
    return ", ".join(f"{d} ({n} cells)" for d, n in counts.items())


def grid_table(results: Path) -> str:
    """Per grid panel: diverged and worse-than-baseline fractions, best HD cell vs best baseline."""
    body = []
    for name, grid_title in GRID_NAMES.items():
        _, ps = grid_panels(results, name)
        for _, st in ps:
            gamma = f", γ={st['gamma']:g}" if st["gamma"] else ""
            if st["gamma"] and st["second_order"] != "derived":
                gamma += f", {st['second_order']} sign"
            cells = st["cells"] if not st["missing"] else \
                f"{st['cells']} of {st['expected']} stored"
            body.append([grid_title.split(" (")[0], f"{title(st['optimizer'])} ({st['rule']}{gamma})",
                         cells, f"{st['diverged']} ({_pct(st['diverged_fraction'])})",
                         f"{st['worse']} ({_pct(st['worse_fraction_of_converged'])})",
                         _best(st), f"{st['best_baseline_loss']:.3g}"])
    if not body:
        return "_No grid results in this folder._"
    return md_table(["grid", "HD optimizer (rule)", "HD cells", "diverged",
                     "worse than baseline (of converged)", "best HD cell (train loss)",
                     "best baseline"], body)


def _best(st: dict) -> str:
    if not st["cells"]:
        return "none stored"
    if math.isnan(st["best_loss"]):
        return "all diverged"
    return f"{st['best_loss']:.3g} at α₀={st['best_alpha0']:g}, β={st['best_beta']:g}"


def _pct(x) -> str:
    return "–" if isinstance(x, float) and math.isnan(x) else f"{x:.0%}"


def paper_setting_ranks(results: Path) -> list[dict]:
    """LogReg, additive SGD-HD and SGDN-HD: the paper's cell α₀ = β = 1e-3 ranked among the
    converged cells by final training loss (1 = best), beside the best cell."""
    rows = []
    for p, st in grid_panels(results, "logreg")[1]:
        if p.rule != "additive" or p.optimizer == "adam-hd":
            continue
        hd = p.values.drop(index="baseline").stack().dropna().sort_values()
        if (1e-3, 1e-3) in hd.index:
            rows.append({"optimizer": title(p.optimizer), "value": hd[(1e-3, 1e-3)],
                         "rank": list(hd.index).index((1e-3, 1e-3)) + 1, "cells": len(hd),
                         "best": hd.iloc[0], "best_alpha0": hd.index[0][1],
                         "best_beta": hd.index[0][0]})
    return rows


def bettercnn_split(results: Path) -> dict | None:
    """BetterCNN, additive rule: divergence above and below β = 1e-3, and the converged cells
    worse than the baseline (the report's two BetterCNN numbers)."""
    frame, ps = grid_panels(results, "bettercnn")
    if not ps:
        return None
    hd = frame[~frame.baseline & (frame.rule == "additive")]
    conv = [st for p, st in ps if p.rule == "additive"]
    converged = sum(st["cells"] - st["diverged"] for st in conv)
    worse = sum(st["worse"] for st in conv)
    return {"large_beta": hd[hd.beta > 1e-3].diverged, "small_beta": hd[hd.beta <= 1e-3].diverged,
            "worse": worse, "converged": converged,
            "worse_fraction": worse / converged if converged else math.nan}


def grid_findings(results: Path) -> str:
    """The report's claims, each beside what our grids show."""
    out = []
    ranks = paper_setting_ranks(results)
    if ranks:
        parts = [f"{r['optimizer']} at the paper's α₀ = β = 1e-3: {r['value']:.3g}, rank "
                 f"{r['rank']} of {r['cells']} converged cells (best {r['best']:.3g} at "
                 f"α₀={r['best_alpha0']:g}, β={r['best_beta']:g})" for r in ranks]
        out.append("- *LogReg, report: the HD variants are best at the paper's settings.* Ours: "
                   + "; ".join(parts) + ".")
    _, ps = grid_panels(results, "mlnn")
    if ps:
        parts = [f"{title(p.optimizer)} {st['diverged']}/{st['cells']} diverged, "
                 f"{st['worse']} worse" for p, st in ps if p.rule == "additive"]
        out.append("- *MLNN, report: many combinations are problematic, particularly for "
                   "Adam-HD.* Ours (additive rule): " + "; ".join(parts) + ".")
    cnn = bettercnn_split(results)
    if cnn:
        out.append(f"- *BetterCNN, report: for β > 1e-3 the HD variants diverge or hit precision "
                   f"errors; 39% of the converging cells are worse than the baseline.* Ours "
                   f"(additive rule): {_frac(cnn['large_beta'])} of the β > 1e-3 cells diverged "
                   f"(β ≤ 1e-3: {_frac(cnn['small_beta'])}); {cnn['worse']} of "
                   f"{cnn['converged']} converging cells ({_pct(cnn['worse_fraction'])}) are "
                   f"worse than the baseline.")
    _, ps = grid_panels(results, "gamma")
    ps = [(p, st) for p, st in ps if p.rule == "additive" and p.second_order == "derived"]
    if ps:
        parts = [f"γ={p.gamma:g}: best {_best(st)}, {st['diverged']}/{st['cells']} diverged"
                 for p, st in ps]
        out.append("- *Second-order HD, report: the training loss converges near the optimum "
                   "for every γ, best for γ = 1e-1 to 1e-2.* Ours (SGD-HD, LogReg, additive "
                   "rule, β's update derived; the report's own variant is judged below): "
                   + "; ".join(parts) + ".")
    return "\n".join(out) if out else "_No grid results in this folder._"


def seeds_section(results: Path) -> str:
    """The contested grid regions over 10 seeds (experiments/grid_seeds_*.py): each cell's
    divergence probability with Wilson's 95% interval, or how to run them."""
    from ..studies.grids import divergence_over_seeds
    parts = [_seeds_logreg(results)]
    for name, heading in (("seeds_mlnn", "MLNN, Adam-HD"),
                        ("seeds_bettercnn", "BetterCNN, SGD-HD and SGDN-HD")):
        frame = grid_frame(results, name)
        if frame.empty:
            parts.append(f"- **{heading}**: not run yet (`hdrepro grid {name} --profile full`).")
            continue
        total = json.loads((results / f"grid_{name}_run.json").read_text()).get("cells_total") \
            if (results / f"grid_{name}_run.json").exists() else None
        rows = [[title(r.optimizer),
                 f"{r.alpha0:g}", "–" if r.baseline else f"{r.beta:g}", r.seeds,
                 f"{r.diverged} ({percent(r.p)})",
                 r.blew_up]
                for r in divergence_over_seeds(frame).itertuples()]
        stored = f"{len(frame)} of {total} runs stored" if total else f"{len(frame)} runs"
        parts.append(f"- **{heading}** ({stored}, on {', '.join(sorted(set(frame.device)))}):\n\n"
                     + md_table(["optimizer", "α₀", "β", "seeds", "diverged (95% CI)",
                                 "blew up (finite loss > ln 10)"], rows)
                     + _figure_link(results, f"grid_{name}.png", heading))
    return "\n\n".join(p for p in parts if p)


SEEDS_REGIONS = {"seeds_logreg": "LogReg SGD-HD and SGDN-HD, every cell",
                 "seeds_mlnn": "MLNN Adam-HD, β ∈ {1e-5, 1e-4} × every α₀",
                 "seeds_bettercnn": "BetterCNN SGD-HD and SGDN-HD, β ∈ {1e-4, 1e-3} × "
                                    "α₀ ∈ {1e-4, 1e-3, 1e-2}"}


def seeds_summary(results: Path) -> str:
    """One line per contested region: its runs and seeds as stored, or that it has not run."""
    parts = []
    for name, region in SEEDS_REGIONS.items():
        frame = grid_frame(results, name)
        parts.append(f"{region}: " + (f"{len(frame)} runs over {frame.seed.nunique()} seeds, "
                                      "baseline rows included" if not frame.empty else
                                      f"not run in these results (`hdrepro grid {name}`)"))
    return "; ".join(parts) + "."


def _figure_link(results: Path, name: str, title: str) -> str:
    """A figure of this results folder's profile, when it was drawn."""
    # results/<profile> sits beside figures/<profile>, and REPORT.md beside both
    if not (results.parent.parent / "figures" / results.name / name).exists():
        return ""
    return f"\n\n![{title}](figures/{results.name}/{name})"


def _seeds_logreg(results: Path) -> str:
    """LogReg's SGD-HD and SGDN-HD panels over seeds: the paper's cell against the best."""
    from ..studies import grid_verdicts as gv
    frame = grid_frame(results, "seeds_logreg")
    if frame.empty:
        return ""
    found = [r for r in (gv.paper_cell_vs_best(frame, o) for o in ("sgd-hd", "sgdn-hd")) if r]
    text = "; ".join(
        f"{title(r['optimizer'])}: the paper's cell ranks {r['rank']} of {r['cells']} by "
        f"mean final training loss, {r['outcome']} than the best cell "
        f"(α₀={r['best'][0]:g}, β={r['best'][1]:g}) by {r['difference'].estimate:+.3g} "
        f"[{r['difference'].low:+.3g}, {r['difference'].high:+.3g}]"
        for r in found if r["best"])
    return (f"- **LogReg, SGD-HD and SGDN-HD, every cell** ({len(frame)} runs, "
            f"{frame.seed.nunique()} seeds): {text} (paired by seed, 95% t interval)."
            + _figure_link(results, "grid_seeds_logreg.png", "LogReg over seeds"))


def second_order_table(results: Path) -> str:
    """The γ grid per variant (rule × β's update sign) and γ: how its cells ended."""
    from ..studies import second_order as so
    frame = grid_frame(results, "gamma")
    if frame.empty:
        return "_No γ grid results in this folder._"
    signs = {"derived": "derived (descent)", "printed": "printed (ascent)"}
    rows = [[r.rule, signs[r.sign], f"{r.gamma:g}", r.cells, r.diverged, r.blew_up,
             f"{r.converged.estimate * r.cells:.0f} [{r.converged.low:.0%}, "
             f"{r.converged.high:.0%}]", f"{r.median_loss:.3f}"]
            for r in so.table(frame).itertuples()]
    return md_table(["rule", "β's update", "γ", "cells", "diverged (NaN)", "blew up (loss > ln 10)",
                     "converged (95% CI)", "median final loss (capped at ln 10)"], rows)


def second_order_findings(results: Path) -> str:
    """What the γ grid says of the report's claim, on its variant and beside ours."""
    from ..studies import second_order as so
    frame = grid_frame(results, "gamma")
    if frame.empty:
        return "_No γ grid results in this folder._"
    verdict, d = so.verdict(frame)
    t = so.table(frame)
    ours = t[(t["rule"] == "additive") & (t["sign"] == "derived")]
    ours_text = "; ".join(f"γ = {r.gamma:g}: {r.diverged} of {r.cells} diverged, {r.blew_up} "
                          f"blew up" for r in ours.itertuples())
    text = (f"With the additive rule and the derived sign, {ours_text}. A cell that *blew up* "
            f"ended with a finite training loss above ln 10 ≈ {so.UNTRAINED:.2f}, an untrained "
            "model's: it went wrong without producing NaN.")
    if verdict == "not tested":
        return text + " The report's own variant (multiplicative rule, printed sign) has not run."
    text += (f" On the report's own variant, the multiplicative rule with β's update as "
             f"printed (gradient ascent), {_second_order_reading(d)} Verdict on the report's "
             f"claim: **{verdict}**.")
    descent, dd = so.verdict(frame, ("multiplicative", "derived"))
    if descent == "not tested":
        return text
    text += (f" The same rule with β's update as derived (descent): {_second_order_reading(dd)}"
             f" By the same rule that would be **{descent}**.")
    if descent == "reproduces" and verdict != "reproduces":
        text += (" So the printed sign does not explain the report's finding; the derived sign "
                 "on the multiplicative rule reproduces it, which is consistent with the sign "
                 "being a slip of the text rather than of the report's runs (its code was not "
                 "published, so that cannot be checked).")
    return text


def _second_order_reading(d: dict) -> str:
    judged = [j for _, j in d["pairs"].values()]
    return (f"most cells converge at every γ: **{'yes' if d['every_gamma_converges'] else 'no'}**;"
            f" the lowest median final loss is at γ = {d['best']:g}, and γ ∈ {{1e-1, 1e-2}} "
            f"paired against the other γ over the same cells is better in "
            f"{judged.count('better')}, tied in {judged.count('tie')} and worse in "
            f"{judged.count('worse')} comparisons.")


def _frac(flags) -> str:
    n = len(flags)
    return f"{int(flags.sum())}/{n} ({flags.mean():.0%})" if n else "0/0"


def bench_grid_table(results: Path, device: str) -> str:
    rows = read_csv(holding(results, f"bench_grid_{device}.csv") / f"bench_grid_{device}.csv")
    if not rows:
        return (f"_Not measured: no `bench_grid_{device}.csv` in `{results.name}/`._")
    head = (f"Device: **{rows[0]['device']}**, torch {rows[0]['torch']}; SGD-HD on "
            f"{int(rows[0]['n_train']):,} MNIST images, batch 128, {rows[0]['epochs']} epoch(s) "
            f"per entry after a warm-up; measured fp32 matmul peak "
            f"{float(rows[0]['matmul_peak_gflops']):.0f} GFLOP/s.\n\n")
    body = [[MODEL_TITLES.get(r["model"], r["model"]), r["mode"],
             f"{float(r['cell_steps_per_s']):,.0f}", f"{float(r['speedup']):.1f}×",
             f"{float(r['gflops']):.1f}", f"{100 * float(r['fraction_of_peak']):.0f}%"]
            for r in rows]
    return head + md_table(["model", "execution", "cell-steps/s", "vs one at a time",
                            "GFLOP/s (fwd+bwd)", "of matmul peak"], body)


#: bench_grid.py's row of BetterCNN trained as before its CPU work, and the suffix of its
#: rows timed on one thread (as the studies' workers run)
BEFORE_LAYOUT = "one at a time, as before (ReLU then pool, standard layout)"
ONE_THREAD = ", 1 thread"


def cpu_layout_speedup(results: Path) -> str:
    """BetterCNN one cell at a time on CPU against itself as it ran before, from bench_grid.py
    (alternated round by round in one run), on all threads and on one, each held to the 2×
    target by its 95% interval; and the fractions of the matmul peak."""
    name = "bench_grid_cpu.csv"
    rows = {(r["model"], r["mode"]): r for r in read_csv(holding(results, name) / name)}
    speed = lambda r: float(r["cell_steps_per_s"])  # noqa: E731
    peak = lambda r: f"{100 * float(r['fraction_of_peak']):.0f}%"  # noqa: E731
    parts = []
    for suffix in ("", ONE_THREAD):
        now, before = (rows.get(("bettercnn", mode + suffix)) for mode in (
            "one at a time (train)", BEFORE_LAYOUT))
        if now is None or before is None:
            continue
        ratio = speed(now) / speed(before)
        lo, hi = (float(now[k]) for k in ("speedup_lo", "speedup_hi"))
        verdict = interval_verdict([(lo, hi)], 2.0, at_most=False)
        threads = now.get("threads") or "all"
        parts.append(f"on {threads} thread{'s' if threads != '1' else ''}"
                     f"{' (as each worker of the studies runs it)' if suffix else ''}, "
                     f"**{speed(now):,.0f}** cell-steps/s against {speed(before):,.0f}: "
                     f"**{ratio:.2f}×** (95% interval {lo:.2f}–{hi:.2f}×, {now['rounds']} "
                     f"rounds), which **{verdict}** the 2× target ({peak(now)} of the matmul "
                     f"peak on as many threads; before: {peak(before)})")
    if not parts:
        return "BetterCNN's CPU layout has not been timed against the earlier one in these results."
    mlnn = rows.get(("mlnn", "one at a time (train)"))
    return ("BetterCNN one cell at a time on CPU against itself as it ran before (each ReLU "
            "before its pool, standard layout), timed alternately in the same run: "
            + "; ".join(parts) + "." + (f" The MLNN reaches {peak(mlnn)}." if mlnn else ""))


def best_speedup(results: Path, device: str, model: str) -> str:
    """The best batched speed-up over one-at-a-time for a model, as measured on the device."""
    name = f"bench_grid_{device}.csv"
    rows = [r for r in read_csv(holding(results, name) / name) if r["model"] == model]
    if not rows:
        return "not measured"
    best = max(rows, key=lambda r: float(r["speedup"]))
    return f"{float(best['speedup']):.1f}× ({best['mode']})"


def grid_full_wall(results: Path) -> str:
    """Wall time of the full-profile grids (from their run records) and the share of it that the
    report's three additive grids account for (by cell count)."""
    full = full_results(results)
    runs = {n: json.loads((full / f"grid_{n}_run.json").read_text())
            for n in ("logreg", "mlnn", "bettercnn", "gamma")
            if (full / f"grid_{n}_run.json").exists()}
    if not runs:
        return "The full-profile grids have not been run."
    gpu = {n: r for n, r in runs.items() if r.get("wall_s") is not None
           and grid_frame(full, n)["device"].str.contains("GPU|NVIDIA|H100|H200").all()}
    if not gpu:
        return "No full-profile grid ran on a GPU alone."
    wall = sum(r["wall_s"] for r in gpu.values())
    cells = sum(r["cells_run"] for r in gpu.values())
    parts = ", ".join(f"{n} {r['wall_s']:.0f} s ({r['executor']})" for n, r in gpu.items())
    text = (f"The full-profile grids that ran on the GPU alone ran {cells} cells in "
            f"{wall / 60:.1f} minutes ({parts}; every grid holds both rules).")
    three = [n for n in ("logreg", "mlnn", "bettercnn") if n in runs]
    timed = _additive_timing(results)
    if timed:
        text += " " + timed
    elif len(three) == 3:
        frames = {n: grid_frame(full, n) for n in three}
        share = sum((f.baseline | (f.rule == "additive")).sum() for f in frames.values()) / sum(
            len(f) for f in frames.values())
        est = share * sum(runs[n]["wall_s"] for n in three) / 60
        verdict = "within" if est <= 3 else "over"
        text += (f" The report's three additive grids are {share:.0%} of those three grids' "
                 f"cells, about {est:.1f} minutes by that share, **{verdict} the 3-minute "
                 f"target** (estimated, not timed alone).")
    return text


def _additive_timing(results: Path) -> str:
    """The report's three grids (additive rule and baseline row only), timed on their own in
    results/full-additive-timing, and how their cells compare with the full run's."""
    folder = results.parent / "full-additive-timing"
    names = ("logreg", "mlnn", "bettercnn")
    if not all((folder / f"grid_{n}_run.json").exists() for n in names):
        return ""
    runs = {n: json.loads((folder / f"grid_{n}_run.json").read_text()) for n in names}
    wall = sum(r["wall_s"] for r in runs.values())
    cells = sum(r["cells_run"] for r in runs.values())
    verdict = "within" if wall <= 180 else "over"
    text = (f"The report's three grids alone (additive rule plus baseline row, {cells} cells, "
            f"in-process) took **{wall:.0f} s** on the GPU, {verdict} the 3-minute target "
            f"(`results/full-additive-timing/`).")
    same = []
    for n in names:
        a = grid_frame(full_results(results), n).set_index("cell_id")
        b = grid_frame(folder, n).set_index("cell_id")
        both = a.index.intersection(b.index)
        flags = int((a.diverged[both] != b.diverged[both]).sum())
        ok = both[~a.diverged[both] & ~b.diverged[both]]
        diff = ((a.train_loss[ok] - b.train_loss[ok]).abs() / a.train_loss[ok].abs())
        same.append(f"{MODEL_TITLES[n]} {'identical' if flags == 0 and diff.max() == 0 else f'median relative difference {diff.median():.1e}, {flags} divergence flag(s) differ'}")
    return text + (" Those cells re-run against the same cells of the full run: "
                   + "; ".join(same) + ". (BetterCNN's convolutions run through cuDNN, which torch does not make "
                   "bitwise deterministic by default; the dense models reproduce bit for bit.)")


