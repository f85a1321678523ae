"""Generate REPORT.md from saved results: ``python -m hdrepro.report --results results/quick``.

The prose lives in templates/REPORT.md.in; every number is read from the results files here, and
each ``{{name}}`` placeholder in the template is replaced by the table or sentence that
``SECTIONS[name]`` builds. Code locations in the equations table are looked up with ``inspect``,
so they follow the code.
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import re
from pathlib import Path
from typing import Callable

from .cli_help import HelpFormatter
from .results import completeness, has_results
from . import (fig1_verdicts, report_claims, report_divergence, report_extensions,
               report_overview, report_speed, report_stacks)
from .report_format import (MODEL_NAMES, full_results, full_scale_head, gpu_results, md_table,
                             not_run_at_full_scale, read_csv, run_record, sci)

ROOT = Path(__file__).resolve().parent.parent


def code_location(obj) -> str:
    obj = inspect.unwrap(obj)  # see through decorators such as torch.no_grad
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT)
    line = inspect.getsourcelines(obj)[1]
    return f"[`{path}:{line}`]({path}#L{line}) `{obj.__qualname__}`"


def equations_table(_: Path) -> str:
    from .autodiff import clip, levels, stack
    from .optim import _hypergrad as hg
    from .optim import adamhd, hd, sgdhd
    rows = [
        ("h_t = ∇f(θ_{t-1})·∇_α u_{t-1} = −g_t·d_{t-1}", "Baydin et al. Eq. (hypergradient)",
         sgdhd.SGDHD._group_step),
        ("α_t = α_{t-1} − β_t h_t (additive)", "Baydin et al. Alg. 1-3", hg.update_lr),
        ("α_t = α_{t-1}(1 − β_t h_t/(‖g_t‖‖∇_α u_{t-1}‖)) (multiplicative)",
         "Baydin et al., multiplicative rule", hg.update_lr),
        ("β_t = β_{t-1} − γ h_t ∂α_{t-1}/∂β = β_{t-1} + γ h_t h_{t-1}",
         "reproducibility report §5 (sign corrected)", hg.update_lr),
        ("SGD / SGDN direction d_t, θ_t = θ_{t-1} − α_t d_t", "Baydin et al. Alg. 1-2",
         sgdhd.SGDHD),
        ("Adam-HD: d_{t-1} = m̂_{t-1}/(√v̂_{t-1}+ε)", "Baydin et al. Alg. 3",
         adamhd.AdamHD._hypergradient),
        ("∇_α u_{t-1} = Δθ_{t-1}/α_{t-1} for any linear-in-α optimizer", "Baydin et al. §2",
         hd.HD.step),
        ("∂f(θ_{t-1})/∂α_{t-1} by reverse mode through one step", "Chandra et al. §3",
         stack.HyperStack._hypergradients),
        ("p_t = p_{t-1}.detach() − α·f(g.detach()) (one level)", "Chandra et al. §3",
         levels.SGD.update),
        ("θ_t = ((t−1)θ'_{t−1} + ‖g_t‖)/t, g'_t = g_t min(1, θ_t/‖g_t‖)",
         "clipping report §3", clip.clip_step),
    ]
    return md_table(["equation (paper symbols)", "source", "code"],
                    [[f"{eq}", src, code_location(obj)] for eq, src, obj in rows])


def equivalence_table(results: Path) -> str:
    rows = _equivalence_rows(results)
    if not rows:
        return "_No equivalence results in this results folder: run experiments/equivalence.py._"
    body = [[r["case"], r["model"], r["steps"], sci(r["alpha_rel_err"]), sci(r["params_rel_err"]),
             sci(r["beta_rel_err"]), f"{float(r['alpha_0']):g} → {float(r['alpha_T']):.4g}"]
            for r in rows]
    text = (md_table(["analytic optimizer vs autodiff stack", "model", "steps", "α rel. err",
                      "θ rel. err", "β rel. err", "α₀ → α_T"], body)
            + f"\n\nLargest relative difference over all rows: **{sci(_worst(rows))}** "
              "(tests require ≤ 1e-10 after 25 steps).")
    full = [] if full_results(results) == results else _equivalence_rows(full_results(results))
    if full:
        text += (f" The full profile runs the same {len(full)} comparisons for "
                 f"{full[0]['steps']} steps (`results/full/equivalence.csv`): largest relative "
                 f"difference **{sci(_worst(full))}** ([α_t over those steps]"
                 f"(figures/full/equivalence_alpha.png)).")
    return text


def _equivalence_rows(results: Path) -> list[dict]:
    return [r for r in read_csv(results / "equivalence.csv") if r["check"] == "analytic vs autodiff"]


def _worst(rows: list[dict]) -> float:
    return max(max(float(r["alpha_rel_err"]), float(r["params_rel_err"]),
                   0.0 if math.isnan(float(r["beta_rel_err"])) else float(r["beta_rel_err"]))
               for r in rows)


def fd_table(results: Path) -> str:
    rows = [r for r in read_csv(results / "equivalence.csv")
            if r["check"] == "analytic vs finite difference"]
    if not rows:
        return "_No finite-difference results in this results folder._"
    body = [[r["case"], r["model"], f"{float(r['h_analytic']):.8g}", f"{float(r['h_fd']):.8g}",
             sci(r["h_rel_err"])] for r in rows]
    worst = max(float(r["h_rel_err"]) for r in rows)
    return (md_table(["optimizer", "model", "analytic h", "central difference", "rel. err"], body)
            + f"\n\nLargest relative error: **{sci(worst)}** (tests require ≤ 1e-6).")


def _fig1(results: Path, kind: str = "final"):
    """One kind of Figure 1 row ("final", "iterations" or "epochs") for the finished runs."""
    from .results import RunStore
    return RunStore(results, "fig1").load(kind)


def fig1_epochs(final) -> dict[str, int]:
    """Each model's configured epochs, read from its runs' configs (not from the epochs logged:
    a run that diverged stopped early)."""
    return {MODEL_NAMES.get(m, m): max(json.loads(c)["epochs"] for c in g.config)
            for m, g in final.groupby("model", sort=False)}


PAIRS = fig1_verdicts.PAIRS


def fig1_rows(results: Path, models: list[str] | None = None) -> list[dict]:
    """Per model (all stored, or `models`) × pair × rule: mean final losses over seeds, base vs
    HD, and α_t statistics. Means are over the runs that did not diverge: NaN when all did."""
    final = _fig1(results)
    rows = []
    if final.empty:
        return rows
    iters = _fig1(results, "iterations")
    for model in final.model.unique() if models is None else models:
        for base, hd in PAIRS:
            for rule in ("additive", "multiplicative"):
                b = final[(final.model == model) & (final.optimizer == base)]
                h = final[(final.model == model) & (final.optimizer == hd) & (final.rule == rule)]
                if b.empty or h.empty:
                    continue
                it = iters[(iters.model == model) & (iters.optimizer == hd) & (iters.rule == rule)
                           & iters.run_id.isin(h.run_id[~h.diverged.astype(bool)])]
                rows.append({
                    "model": model, "base": base, "hd": hd, "rule": rule,
                    "seeds": int(h.seed.nunique()),
                    "base_train": b.train_loss.mean(), "hd_train": h.train_loss.mean(),
                    "base_val": b.val_loss.mean(), "hd_val": h.val_loss.mean(),
                    "base_err": b.test_error.mean(), "hd_err": h.test_error.mean(),
                    "hd_diverged": int(h.diverged.sum()), "base_diverged": int(b.diverged.sum()),
                    "base_runs": len(b), "hd_runs": len(h),
                    "alpha0": float(h.alpha0.iloc[0]), **_alpha_stats(it)})
    return rows


def _alpha_stats(it) -> dict:
    """α_t over the logged iterations of the HD runs that did not diverge, averaged over runs:
    its maximum and when, its final value, and its relative change over the last epoch."""
    nan = float("nan")
    if it.empty:  # every HD run diverged (or diverged before its first logged iteration)
        return {"alpha_max": nan, "iter_of_max": nan, "alpha_final": nan,
                "last_epoch_change": nan, "iterations": nan}
    # Runs logged with α's range since the previous row see every peak; older logs hold a
    # sample per row only, which misses peaks between rows.
    peak = "alpha_max" if "alpha_max" in it and it["alpha_max"].notna().all() else "alpha"
    per_run = it.groupby("run_id")
    last_epoch = it[it.epoch == it.epoch.max()].groupby("run_id").alpha
    return {"alpha_max": per_run[peak].max().mean(),
            "iter_of_max": per_run.apply(lambda r: r.iteration[r[peak].idxmax()]).mean(),
            "alpha_final": per_run.alpha.last().mean(),
            "last_epoch_change": ((last_epoch.last() - last_epoch.first()).abs()
                                  / last_epoch.first().abs()).mean(),
            "iterations": int(per_run.iteration.max().mean())}


def fig1_table(results: Path, models: list[str] | None = None) -> str:
    rows = fig1_rows(results, models)
    if not rows:
        return "_No Figure 1 results in this results folder: run experiments/fig1.py._"
    final = _fig1(results)
    paired = {(p.model, p.hd, p.rule): p for rule in ("additive", "multiplicative")
              for p in fig1_verdicts.paired(final, rule).itertuples()}
    f = lambda x: "–" if math.isnan(x) else f"{x:.3f}"  # noqa: E731
    pct = lambda x: "–" if math.isnan(x) else f"{100 * x:.2f}"  # noqa: E731
    body = []
    for r in rows:
        alpha = ("– (every HD run diverged)" if math.isnan(r["alpha_max"]) else
                 f"{r['alpha0']:g} → {r['alpha_max']:.3g} (it. {r['iter_of_max']:.0f} of "
                 f"{r['iterations']}) → {r['alpha_final']:.3g}")
        p = paired[(r["model"], r["hd"], r["rule"])]
        body.append([MODEL_NAMES.get(r["model"], r["model"]), f"{r['base']} vs {r['hd']}",
                     r["rule"], f(r["base_train"]), f(r["hd_train"]), f(r["base_val"]),
                     f(r["hd_val"]), f"{pct(r['base_err'])} / {pct(r['hd_err'])}",
                     f"{p.train_outcome} / {p.val_outcome} (n = {p.seeds}"
                     + (f", HD diverged on {p.hd_lost})" if p.hd_lost else ")"), _delta(p.train),
                     f"{r['base_diverged']}/{r['base_runs']} / {r['hd_diverged']}/{r['hd_runs']}",
                     alpha])
    return md_table(["model", "pair", "HD rule", "train loss base", "train loss HD",
                     "val. loss base", "val. loss HD", "test error % base / HD",
                     "HD vs base, train / val (paired by seed)", "HD − base, train loss [95% CI]",
                     "diverged base / HD", "HD α: α₀ → max (when) → final"],
                    body)


def _delta(d) -> str:
    if math.isnan(d.estimate):
        return "–"
    if math.isinf(d.low):
        return f"{d.estimate:+.3g} (one seed)"
    return f"{d.estimate:+.3g} [{d.low:+.3g}, {d.high:+.3g}]"


def fig1_counts(results: Path) -> dict:
    """Additive rule. Over model × optimizer pairs (paired by seed, :mod:`hdrepro.fig1_verdicts`):
    how often HD was better, tied or worse on the final training and validation loss, and in how
    many pairs every HD run diverged ("lost"). Over HD runs: how often α_t rose (by > 5%), peaked
    in the first half of training, then decayed (ended at half its peak or less)."""
    final = _fig1(results)
    pairs = fig1_verdicts.paired(final)
    runs = fig1_verdicts.alpha_runs(final, _fig1(results, "iterations"))
    out = {"n": len(pairs), "runs": len(runs),
           "seeds": (int(pairs.seeds.min()), int(pairs.seeds.max())) if len(pairs) else (0, 0),
           "lost": _all_diverged(final)}
    for what in ("train", "val"):
        for k in ("better", "tie", "worse"):
            out[f"{what}_{k}"] = int((pairs[f"{what}_outcome"] == k).sum()) if len(pairs) else 0
    for k in ("rises", "early", "decays", "diverged"):
        out[k] = int(runs[k].sum()) if len(runs) else 0
    return out


def _all_diverged(final) -> int:
    """Additive-rule HD optimizer × model pairs whose every run diverged."""
    if final.empty:
        return 0
    hd = final[final.optimizer.str.endswith("-HD") & (final.rule == "additive")]
    return int(hd.groupby(["model", "optimizer"]).diverged.apply(lambda d: d.astype(bool).all())
               .sum())


def fig1_sampling(results: Path) -> str:
    """How α_t was logged in Figure 1's runs: every step, or a sample every k steps (then peaks
    between samples are missed, unless the log holds α's range since the previous row)."""
    it = _fig1(results, "iterations")
    if it.empty:
        return "no α_t log"
    gaps = it.groupby("run_id").iteration.diff().dropna()
    if gaps.empty:
        return "α_t logged once per run"
    step = int(gaps.median())
    if step <= 1:
        return "α_t logged every step"
    if "alpha_max" in it and it["alpha_max"].notna().all():
        return f"α_t logged every {step} steps with its range between rows"
    if "alpha_max" in it and it["alpha_max"].notna().any():
        ranged = it[it["alpha_max"].notna()].run_id.nunique()
        return (f"α_t logged every {step} steps, with its range between rows in {ranged} of "
                f"{it.run_id.nunique()} runs (the others hold a sample per row, which misses a "
                "peak between rows)")
    return f"α_t sampled every {step} steps, so a peak between samples is missed"


def fig1_summary(results: Path) -> str:
    c = fig1_counts(results)
    if not c["n"]:
        return "_No Figure 1 results._"
    n, (lo, hi) = c["n"], c["seeds"]
    seeds = str(lo) if lo == hi else f"{lo}–{hi}"
    tally = lambda what: ", ".join(f"{k} in {c[f'{what}_{k}']}"  # noqa: E731
                                   for k in ("better", "tie", "worse"))
    return (f"With the additive rule, over {n} model × optimizer pairs, each judged on the "
            f"per-seed difference HD − base over {seeds} paired seeds (95% t interval; a tie "
            f"when it contains 0), HD's final training loss was {tally('train')}, and its "
            f"validation loss {tally('val')}. Over the {c['runs']} HD runs, α_t rose above α₀ "
            f"(by more than 5%) in {c['rises']}, peaked in the first half of training in "
            f"{c['early']}, and then ended at half its peak or less in {c['decays']}."
            + (f" Every HD run diverged in {c['lost']} of the {n} pairs; they count against HD "
               "in each of these numbers." if c["lost"] else ""))


def fig1_provenance(results: Path) -> str:
    final = _fig1(results)
    if final.empty:
        return "_No Figure 1 results._"
    prov = json.loads(final.provenance.iloc[0])
    conf = json.loads(final.config.iloc[0])
    ep = fig1_epochs(final)
    return (f"Data: **{prov['name']}** from {prov['source']}, {prov['n_train']:,} training and "
            f"{prov['n_test']:,} test images (fraction {prov['fraction']}, subset "
            f"'{prov['subset']}'; validation = {prov['validation']}). Epochs: "
            + ", ".join(f"{k} {v}" for k, v in ep.items())
            + f". Batch {conf['batch_size']}; {_logged_every(conf.get('log_every', 1))}; "
            f"seeds {sorted(final.seed.unique().tolist())}; "
            f"device {prov['device']}; {len(final)} runs, "
            f"{int(final.diverged.sum())} diverged.")


def _logged_every(k: int) -> str:
    """The α_t statistics of the tables are over the logged iterations only: say how often."""
    return ("α_t and the loss logged every iteration" if k == 1
            else f"α_t and the loss logged every {k:,} iterations")


def fig1_divergences(results: Path) -> str:
    """Which Figure 1 runs diverged, at which step, and whether the same (α₀, β) cell of the same
    folder's grid (§4) diverged too: the grid cross-checks Figure 1's setting on its data."""
    final = _fig1(results)
    if final.empty or not final.diverged.astype(bool).any():
        return ""
    parts = []
    for (model, opt, rule), g in final.groupby(["model", "optimizer", "rule"], sort=False):
        bad = g[g.diverged.astype(bool)]
        if bad.empty:
            continue
        parts.append(f"{MODEL_NAMES.get(model, model)} {opt} ({rule}) in {len(bad)} of {len(g)} "
                     f"runs, {_at_steps(bad)}" + _grid_cell_check(results, model, opt, rule, g))
    return "Diverged: " + "; ".join(parts) + "."


def _grid_cell_check(results: Path, model: str, opt: str, rule: str, runs) -> str:
    if not (results / f"grid_{model}.jsonl").exists():
        return ""
    grid = _grid(results, model)
    a0, beta = float(runs.alpha0.iloc[0]), float(runs.beta.iloc[0])
    same = lambda col, x: (grid[col] - x).abs() <= 1e-12 * x  # noqa: E731
    cell = grid[(grid.optimizer == opt.lower()) & (grid.rule == rule)
                & ~grid.baseline.astype(bool) & same("alpha0", a0) & same("beta", beta)]
    if cell.empty:
        return ""
    seeds = ", ".join(str(int(x)) for x in sorted(cell.seed.unique()))
    where = (f"§4's grid cell at the same α₀ = {a0:g}, β = {beta:g} "
             f"({100 * cell.fraction.iloc[0]:g}% of the data, {int(cell.epochs.iloc[0])} epochs, "
             f"seed {seeds})")
    bad = cell[cell.diverged.astype(bool)]
    if bad.empty:
        return f"; {where} did not diverge"
    return f", and {where} diverged too, {_at_steps(bad)}"


def _at_steps(diverged) -> str:
    steps = sorted(int(x) for x in diverged.diverged_at)
    return f"at step{'s' if len(steps) > 1 else ''} " + ", ".join(map(str, steps))


def fig1_full(results: Path) -> str:
    """§3 at the papers' scale (results/full). While its run is under way: how many runs each
    model has stored, and the table of the models whose runs are all stored."""
    full = full_results(results)
    final = _fig1(full)
    if final.empty:
        return not_run_at_full_scale("hdrepro run fig1 --profile full")
    head = f"{full_scale_head(results, 'fig1*.png')} {fig1_provenance(full)}"
    diverged = fig1_divergences(full)
    if diverged:
        head += " " + diverged
    info = run_record(full, "fig1_run.json")
    want, have = info.get("runs_per_model", {}), final.groupby("model").size()
    complete = [m for m, n in want.items() if have.get(m, 0) >= n]
    if len(complete) == len(want):  # every model's runs stored (or a record without the counts)
        return "\n\n".join([head, fig1_summary(full), fig1_table(full)])
    counts = ", ".join(f"{MODEL_NAMES.get(m, m)} {have.get(m, 0)} of {n}" for m, n in want.items())
    head += (f" **Partial: {len(final)} of its {info['cells_total']} runs so far** ({counts}); "
             "`hdrepro run fig1 --profile full` resumes the rest, and the summary appears here "
             "when every run is stored.")
    if not complete:
        return head
    return (f"{head} The models whose runs are all stored:\n\n"
            + fig1_table(full, complete))


# -- grids (the reproducibility report's Figures 2-5) ---------------------------------------------
GRID_NAMES = {"logreg": "LogReg (Figure 2)", "mlnn": "MLNN (Figure 3)",
              "bettercnn": "BetterCNN (Figure 4)", "gamma": "second-order SGD-HD, LogReg (Figure 5)"}
OPT_NAMES = {"sgd-hd": "SGD-HD", "sgdn-hd": "SGDN-HD", "adam-hd": "Adam-HD"}
BASE_NAMES = {"sgd": "SGD", "sgdn": "SGDN", "adam": "Adam"}


def _grid(results: Path, name: str):
    from .results import GridStore
    return GridStore(results / f"grid_{name}.jsonl").frame()


def _grid_panels(results: Path, name: str):
    from .grid import panel_stats, panels
    frame = _grid(results, name)
    if frame.empty:
        return frame, []
    return frame, [(p, panel_stats(p)) for p in panels(frame, axes=grid_axes(results, name))]


def grid_axes(results: Path, name: str):
    """The axes the grid's driver recorded in ``grid_<name>_run.json`` (None if it did not), so
    that a cell never stored counts as missing even when its whole row or column is absent."""
    from .grid import GridAxes
    run = results / f"grid_{name}_run.json"
    axes = json.loads(run.read_text()).get("axes") if run.exists() else None
    return GridAxes(**{k: tuple(v) for k, v in axes.items()}) if axes else None


def grid_provenance(results: Path) -> str:
    """One line per grid: data, size, epochs, seeds, cells, device, wall time."""
    lines = []
    for name, title in GRID_NAMES.items():
        frame = _grid(results, name)
        if frame.empty:
            continue
        r = frame.iloc[0]
        run = results / f"grid_{name}_run.json"
        wall, stored = "", f"{len(frame)} cells"
        if run.exists():
            info = json.loads(run.read_text())
            if info.get("wall_s") is not None:
                wall = (f"; last invocation {info['wall_s']:.0f} s for {info['cells_run']} cells "
                        f"({info['executor']}, batch {info['batch']})")
            if info.get("cells_total", 0) > len(frame):
                stored = f"{len(frame)} of {info['cells_total']} cells stored"
        lines.append(f"- **{title}**: {r['data']} first {int(r['n_train']):,}/{int(r['n_test']):,} "
                     f"images ({r['data_source']}), {int(r['epochs'])} epochs, batch "
                     f"{int(r['batch_size'])}, seeds {sorted(frame.seed.unique().tolist())}, "
                     f"{stored} ({int(frame.diverged.sum())} diverged), α₀ ∈ "
                     f"{{{', '.join(f'{a:g}' for a in sorted(frame.alpha0.unique()))}}}, on "
                     f"{_devices(frame)}{wall}.")
    return "\n".join(lines) if lines else "_No grid results in this folder._"


def _devices(frame) -> str:
    """Where a store's rows ran: the device, or each device with its count of cells."""
    counts = frame["device"].value_counts()
    if len(counts) == 1:
        return str(counts.index[0])
    return ", ".join(f"{d} ({n} cells)" for d, n in counts.items())


def grid_table(results: Path) -> str:
    """Per grid panel: diverged and worse-than-baseline fractions, best HD cell vs best baseline."""
    body = []
    for name, title in GRID_NAMES.items():
        _, ps = _grid_panels(results, name)
        for _, st in ps:
            gamma = f", γ={st['gamma']:g}" if st["gamma"] else ""
            if st["gamma"] and st["second_order"] != "derived":
                gamma += f", {st['second_order']} sign"
            cells = st["cells"] if not st["missing"] else \
                f"{st['cells']} of {st['expected']} stored"
            body.append([title.split(" (")[0], f"{OPT_NAMES[st['optimizer']]} ({st['rule']}{gamma})",
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
    for p, st in _grid_panels(results, "logreg")[1]:
        if p.rule != "additive" or p.optimizer == "adam-hd":
            continue
        hd = p.values.drop(index="baseline").stack().dropna().sort_values()
        if (1e-3, 1e-3) in hd.index:
            rows.append({"optimizer": OPT_NAMES[p.optimizer], "value": hd[(1e-3, 1e-3)],
                         "rank": list(hd.index).index((1e-3, 1e-3)) + 1, "cells": len(hd),
                         "best": hd.iloc[0], "best_alpha0": hd.index[0][1],
                         "best_beta": hd.index[0][0]})
    return rows


def bettercnn_split(results: Path) -> dict | None:
    """BetterCNN, additive rule: divergence above and below β = 1e-3, and the converged cells
    worse than the baseline (the report's two BetterCNN numbers)."""
    frame, ps = _grid_panels(results, "bettercnn")
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
    _, ps = _grid_panels(results, "mlnn")
    if ps:
        parts = [f"{OPT_NAMES[p.optimizer]} {st['diverged']}/{st['cells']} diverged, "
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
    _, ps = _grid_panels(results, "gamma")
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
    from .grid import divergence_over_seeds
    parts = [_seeds_logreg(results)]
    for name, title in (("seeds_mlnn", "MLNN, Adam-HD"),
                        ("seeds_bettercnn", "BetterCNN, SGD-HD and SGDN-HD")):
        frame = _grid(results, name)
        if frame.empty:
            parts.append(f"- **{title}**: not run yet (`hdrepro grid {name} --profile full`).")
            continue
        total = json.loads((results / f"grid_{name}_run.json").read_text()).get("cells_total") \
            if (results / f"grid_{name}_run.json").exists() else None
        rows = [[OPT_NAMES.get(r.optimizer, BASE_NAMES.get(r.optimizer, r.optimizer)),
                 f"{r.alpha0:g}", "–" if r.baseline else f"{r.beta:g}", r.seeds,
                 f"{r.diverged} ({r.p.estimate:.0%} [{r.p.low:.0%}, {r.p.high:.0%}])",
                 r.blew_up]
                for r in divergence_over_seeds(frame).itertuples()]
        stored = f"{len(frame)} of {total} runs stored" if total else f"{len(frame)} runs"
        parts.append(f"- **{title}** ({stored}, on {', '.join(sorted(set(frame.device)))}):\n\n"
                     + md_table(["optimizer", "α₀", "β", "seeds", "diverged (95% CI)",
                                 "blew up (finite loss > ln 10)"], rows)
                     + _figure_link(results, f"grid_{name}.png", title))
    return "\n\n".join(p for p in parts if p)


def _figure_link(results: Path, name: str, title: str) -> str:
    """A figure of this results folder's profile, when it was drawn."""
    # results/<profile> sits beside figures/<profile>, and REPORT.md beside both
    if not (results.parent.parent / "figures" / results.name / name).exists():
        return ""
    return f"\n\n![{title}](figures/{results.name}/{name})"


def _seeds_logreg(results: Path) -> str:
    """LogReg's SGD-HD and SGDN-HD panels over seeds: the paper's cell against the best."""
    from . import grid_verdicts as gv
    frame = _grid(results, "seeds_logreg")
    if frame.empty:
        return ""
    found = [r for r in (gv.paper_cell_vs_best(frame, o) for o in ("sgd-hd", "sgdn-hd")) if r]
    text = "; ".join(
        f"{OPT_NAMES[r['optimizer']]}: the paper's cell ranks {r['rank']} of {r['cells']} by "
        f"mean final training loss, {r['outcome']} than the best cell "
        f"(α₀={r['best'][0]:g}, β={r['best'][1]:g}) by {r['difference'].estimate:+.3g} "
        f"[{r['difference'].low:+.3g}, {r['difference'].high:+.3g}]"
        for r in found if r["best"])
    return (f"- **LogReg, SGD-HD and SGDN-HD, every cell** ({len(frame)} runs, "
            f"{frame.seed.nunique()} seeds): {text} (paired by seed, 95% t interval)."
            + _figure_link(results, "grid_seeds_logreg.png", "LogReg over seeds"))


def second_order_table(results: Path) -> str:
    """The γ grid per variant (rule × β's update sign) and γ: how its cells ended."""
    from . import second_order as so
    frame = _grid(results, "gamma")
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
    from . import second_order as so
    frame = _grid(results, "gamma")
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
    rows = read_csv(results / f"bench_grid_{device}.csv")
    if not rows:
        return (f"_Not measured: no `bench_grid_{device}.csv` in `{results.name}/`._")
    head = (f"Device: **{rows[0]['device']}**, torch {rows[0]['torch']}; SGD-HD on "
            f"{int(rows[0]['n_train']):,} MNIST images, batch 128, {rows[0]['epochs']} epoch(s) "
            f"per entry after a warm-up; measured fp32 matmul peak "
            f"{float(rows[0]['matmul_peak_gflops']):.0f} GFLOP/s.\n\n")
    body = [[MODEL_NAMES.get(r["model"], r["model"]), r["mode"],
             f"{float(r['cell_steps_per_s']):,.0f}", f"{float(r['speedup']):.1f}×",
             f"{float(r['gflops']):.1f}", f"{100 * float(r['fraction_of_peak']):.0f}%"]
            for r in rows]
    return head + md_table(["model", "execution", "cell-steps/s", "vs one at a time",
                            "GFLOP/s (fwd+bwd)", "of matmul peak"], body)


def best_speedup(results: Path, device: str, model: str) -> str:
    rows = [r for r in read_csv(results / f"bench_grid_{device}.csv") if r["model"] == model]
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
           and _grid(full, n)["device"].str.contains("GPU|NVIDIA|H100|H200").all()}
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
        frames = {n: _grid(full, n) for n in three}
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
        a = _grid(full_results(results), n).set_index("cell_id")
        b = _grid(folder, n).set_index("cell_id")
        both = a.index.intersection(b.index)
        flags = int((a.diverged[both] != b.diverged[both]).sum())
        ok = both[~a.diverged[both] & ~b.diverged[both]]
        diff = ((a.train_loss[ok] - b.train_loss[ok]).abs() / a.train_loss[ok].abs())
        same.append(f"{MODEL_NAMES[n]} {'identical' if flags == 0 and diff.max() == 0 else f'median relative difference {diff.median():.1e}, {flags} divergence flag(s) differ'}")
    return text + (" Those cells re-run against the same cells of the full run: "
                   + "; ".join(same) + ". (BetterCNN's convolutions run through cuDNN, which torch does not make "
                   "bitwise deterministic by default; the dense models reproduce bit for bit.)")


SECTIONS: dict[str, Callable[[Path], str]] = {
    "grid_provenance": grid_provenance,
    "grid_table": grid_table,
    "grid_findings": grid_findings,
    "grid_full_provenance": lambda r: grid_provenance(full_results(r)),
    "grid_full_table": lambda r: grid_table(full_results(r)),
    "grid_full_findings": lambda r: grid_findings(full_results(r)),
    "grid_full_wall": grid_full_wall,
    "second_order_full_table": lambda r: second_order_table(full_results(r)),
    "seeds_full": lambda r: seeds_section(full_results(r)),
    "second_order_full_findings": lambda r: second_order_findings(full_results(r)),
    "bench_grid_cpu_table": lambda r: bench_grid_table(r, "cpu"),
    "bench_grid_cuda_table": lambda r: bench_grid_table(
        gpu_results(r, "bench_grid_cuda.csv"), "cuda"),
    "grid_speedup_logreg_cpu": lambda r: best_speedup(r, "cpu", "logreg"),
    "grid_speedup_mlnn_cuda": lambda r: best_speedup(
        gpu_results(r, "bench_grid_cuda.csv"), "cuda", "mlnn"),
    "grid_speedup_bettercnn_cuda": lambda r: best_speedup(
        gpu_results(r, "bench_grid_cuda.csv"), "cuda", "bettercnn"),
    "grid_speedup_logreg_cuda": lambda r: best_speedup(
        gpu_results(r, "bench_grid_cuda.csv"), "cuda", "logreg"),
    "fig1_table": fig1_table,
    "fig1_summary": fig1_summary,
    "fig1_divergences": fig1_divergences,
    "fig1_provenance": fig1_provenance,
    "fig1_full": fig1_full,
    "equations_table": equations_table,
    "equivalence_table": equivalence_table,
    "fd_table": fd_table,
}


SECTIONS.update({"claims_table": report_claims.claims_table,
                 "bettercnn_divergence": report_divergence.section,
                 "deviations_table": report_overview.deviations,
                 "profile_timing": report_overview.profile_timing})
SECTIONS.update(report_stacks.SECTIONS)
SECTIONS.update(report_speed.SECTIONS)
SECTIONS.update(report_extensions.SECTIONS)


def render(template: str, results: Path, profile: str) -> str:
    """Fill every ``{{name}}`` from SECTIONS; ``{{figure_index}}`` last, from the filled text
    (it says where each figure is shown); then say under the title if the results are
    incomplete."""
    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name == "figure_index":
            return m.group(0)
        if name == "profile":
            return profile
        if name == "results":
            return str(results.relative_to(ROOT)) if results.is_relative_to(ROOT) else str(results)
        if name not in SECTIONS:
            raise KeyError(f"template placeholder {{{{{name}}}}} has no section in "
                           "hdrepro.report.SECTIONS")
        return SECTIONS[name](results)
    text = re.sub(r"\{\{(\w+)\}\}", fill, template)
    text = text.replace("{{figure_index}}", report_overview.figure_index(results, text))
    return with_completeness(text, results)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="hdrepro report",
                                 description="Write REPORT.md from saved results.",
                                 formatter_class=HelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "results" / "quick",
                    help="results folder to read")
    ap.add_argument("--profile", default=None, help="profile name shown in the report "
                    "(default: the results folder's name)")
    ap.add_argument("--template", type=Path, default=ROOT / "templates" / "REPORT.md.in",
                    help="the report's text, with {{name}} where a generated part goes")
    ap.add_argument("--out", type=Path, default=ROOT / "REPORT.md", help="where to write it")
    args = ap.parse_args(argv)
    results = args.results.resolve()
    if not has_results(results):
        why = "it holds no results" if results.is_dir() else "no such folder"
        ap.error(f"--results {args.results}: {why}; name a folder that a run wrote "
                 "(results/quick, results/full, or run ./run_all.sh first)")
    text = render(args.template.read_text(), results, args.profile or results.name)
    args.out.write_text(text)
    print(f"wrote {args.out}")


def with_completeness(text: str, results: Path) -> str:
    """The report with a notice under its title when a results folder it reads is incomplete:
    which stores lack runs, and how many of how many are stored."""
    folders = dict.fromkeys([results, full_results(results)])
    gaps = [f"`{folder.name}/{name}` {stored} of {expected}" for folder in folders if folder.is_dir()
            for name, stored, expected in completeness(folder) if stored < expected]
    if not gaps:
        return text
    title, rest = text.split("\n", 1)
    notice = ("> **Incomplete results.** Some experiments have not stored every run, so the "
              "tables and figures below summarise partial grids (runs stored of runs expected): "
              + "; ".join(gaps) + ". Missing runs are counted as missing, never as diverged.")
    return f"{title}\n\n{notice}\n{rest}"


if __name__ == "__main__":
    main()
