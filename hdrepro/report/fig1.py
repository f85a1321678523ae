"""REPORT.md's Figure 1 parts (Baydin et al.'s Figure 2, the reproducibility report's Figure 1):
what ran, the per-pair table judged by seed, the α statistics and the divergences, from
experiments/fig1.py's results."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..studies import fig1 as fig1_verdicts
from ..engine.models import TITLES as MODEL_TITLES
from .format import md_table
from .grids import grid_frame


def fig1_frame(results: Path, kind: str = "final"):
    """One kind of Figure 1 row ("final", "iterations" or "epochs") for the finished runs."""
    from ..engine.results import RunStore
    return RunStore(results, "fig1").load(kind)


def fig1_epochs(final) -> dict[str, int]:
    """Each model's configured epochs, read from its runs' configs (not from the epochs logged:
    a run that diverged stopped early)."""
    return {MODEL_TITLES.get(m, m): max(json.loads(c)["epochs"] for c in g.config)
            for m, g in final.groupby("model", sort=False)}


PAIRS = fig1_verdicts.PAIRS


def fig1_rows(results: Path, models: list[str] | None = None) -> list[dict]:
    """Per model (all stored, or `models`) × pair × rule: mean final losses over seeds, base vs
    HD, and α_t statistics. Means are over the runs that did not diverge: NaN when all did."""
    final = fig1_frame(results)
    rows = []
    if final.empty:
        return rows
    iters = fig1_frame(results, "iterations")
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
    final = fig1_frame(results)
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
        body.append([MODEL_TITLES.get(r["model"], r["model"]), f"{r['base']} vs {r['hd']}",
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


def fig1_brief(results: Path) -> str:
    """The additive rule's pairs in seven columns: mean losses base → HD and the per-seed
    difference HD − base with its outcome (the full table is fig1_table)."""
    final = fig1_frame(results)
    pairs = fig1_verdicts.paired(final)
    if pairs.empty:
        return "_No Figure 1 results in this results folder: run experiments/fig1.py._"
    means = {(r["model"], r["hd"]): r for r in fig1_rows(results) if r["rule"] == "additive"}
    f = lambda x: "–" if math.isnan(x) else f"{x:.3f}"  # noqa: E731
    body = []
    for p in pairs.itertuples():
        r = means[(p.model, p.hd)]
        lost = f", HD diverged in {p.hd_lost}" if p.hd_lost else ""
        body.append([MODEL_TITLES.get(p.model, p.model), f"{p.base} vs {p.hd}", p.seeds,
                     f"{f(r['base_train'])} → {f(r['hd_train'])}",
                     f"{f(r['base_val'])} → {f(r['hd_val'])}", _delta(p.val),
                     f"{p.train_outcome} / {p.val_outcome}{lost}"])
    return md_table(["model", "pair", "seeds", "train loss, base → HD", "val. loss, base → HD",
                     "HD − base, val. loss [95% CI]", "HD: train / val."], body)


def _delta(d) -> str:
    if math.isnan(d.estimate):
        return "–"
    if math.isinf(d.low):
        return f"{d.estimate:+.3g} (one seed)"
    return f"{d.estimate:+.3g} [{d.low:+.3g}, {d.high:+.3g}]"


def fig1_counts(results: Path) -> dict:
    """Additive rule. Over model × optimizer pairs (paired by seed, :mod:`hdrepro.studies.fig1`):
    how often HD was better, tied or worse on the final training and validation loss, and in how
    many pairs every HD run diverged ("lost"). Over HD runs: how often α_t rose (by > 5%), peaked
    in the first half of training, then decayed (ended at half its peak or less)."""
    final = fig1_frame(results)
    pairs = fig1_verdicts.paired(final)
    runs = fig1_verdicts.alpha_runs(final, fig1_frame(results, "iterations"))
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
    it = fig1_frame(results, "iterations")
    if it.empty:
        return "no α_t log"
    gaps = it.groupby("run_id").iteration.diff().dropna()
    if gaps.empty:
        return "α_t logged once per run"
    step = int(gaps.median())
    if step <= 1:
        return "α_t logged every step"
    hd = it[it["optimizer"].str.endswith("-HD")]   # the base optimizers' α_t is constant
    if "alpha_max" in hd and hd["alpha_max"].notna().all():
        return f"α_t logged every {step} steps with its range between rows"
    if "alpha_max" in hd and hd["alpha_max"].notna().any():
        ranged = "; ".join(f"{g[g['alpha_max'].notna()].run_id.nunique()} of "
                           f"{g.run_id.nunique()} {rule}-rule HD runs"
                           for rule, g in hd.groupby("rule"))
        return (f"α_t logged every {step} steps, with its range between rows in {ranged} (the "
                "others hold a sample per row, which misses a peak between rows)")
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
    final = fig1_frame(results)
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
            f"device {prov['device']}{_flushed(final)}; {len(final)} runs, "
            f"{int(final.diverged.sum())} diverged.")


def _flushed(final) -> str:
    """How many runs flushed subnormal floats to zero (CPU; recorded in each run's provenance).
    Flushing changes the last bits of a run, so a store that mixes the two says so."""
    flags = [json.loads(p).get("flush_denormal", False) for p in final.provenance]
    n = sum(bool(f) for f in flags)
    if n == 0:
        return ""
    if n == len(flags):
        return ", subnormals flushed to zero"
    return f", subnormals flushed to zero in {n} of {len(flags)} runs"


def _logged_every(k: int) -> str:
    """The α_t statistics of the tables are over the logged iterations only: say how often."""
    return ("α_t and the loss logged every iteration" if k == 1
            else f"α_t and the loss logged every {k:,} iterations")


def fig1_divergences(results: Path) -> str:
    """Which Figure 1 runs diverged, at which step, and whether the same (α₀, β) cell of the same
    folder's grid (§2.1) diverged too: the grid cross-checks Figure 1's setting on its data."""
    final = fig1_frame(results)
    if final.empty or not final.diverged.astype(bool).any():
        return ""
    parts = []
    for (model, opt, rule), g in final.groupby(["model", "optimizer", "rule"], sort=False):
        bad = g[g.diverged.astype(bool)]
        if bad.empty:
            continue
        parts.append(f"{MODEL_TITLES.get(model, model)} {opt} ({rule}) in {len(bad)} of {len(g)} "
                     f"runs, {_at_steps(bad)}" + _grid_cell_check(results, model, opt, rule, g))
    return "Diverged: " + "; ".join(parts) + "."


def _grid_cell_check(results: Path, model: str, opt: str, rule: str, runs) -> str:
    if not (results / f"grid_{model}.jsonl").exists():
        return ""
    grid = grid_frame(results, model)
    a0, beta = float(runs.alpha0.iloc[0]), float(runs.beta.iloc[0])
    same = lambda col, x: (grid[col] - x).abs() <= 1e-12 * x  # noqa: E731
    cell = grid[(grid.optimizer == opt.lower()) & (grid.rule == rule)
                & ~grid.baseline.astype(bool) & same("alpha0", a0) & same("beta", beta)]
    if cell.empty:
        return ""
    seeds = ", ".join(str(int(x)) for x in sorted(cell.seed.unique()))
    where = (f"§2.1's grid cell at the same α₀ = {a0:g}, β = {beta:g} "
             f"({100 * cell.fraction.iloc[0]:g}% of the data, {int(cell.epochs.iloc[0])} epochs, "
             f"seed {seeds})")
    bad = cell[cell.diverged.astype(bool)]
    if bad.empty:
        return f"; {where} did not diverge"
    return f", and {where} diverged too, {_at_steps(bad)}"


def _at_steps(diverged) -> str:
    steps = sorted(int(x) for x in diverged.diverged_at)
    return f"at step{'s' if len(steps) > 1 else ''} " + ", ".join(map(str, steps))
