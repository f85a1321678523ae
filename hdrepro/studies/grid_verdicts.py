"""The reproducibility report's grid claims (its §4.1-4.3) judged with their uncertainty.

- LogReg, "the HD variants are best at the paper's setting α₀ = β = 1e-3": over seeds, the
  paper's cell against the best other cell of its panel (lowest mean final training loss among
  the cells that never diverged), by the per-seed difference d_s = loss_paper(s) − loss_best(s)
  and its 95% t interval. The paper's cell counts as best when that interval contains 0 (a tie,
  inside the seed noise) or lies below it. Choosing the best cell by its mean favours it, so a
  tie is the most this test can give the paper's cell; it never favours it.
- MLNN, "for many combinations HD is problematic (worse than the baseline, or NaN),
  particularly for Adam-HD": "many" is read as at least a quarter of the cells, judged on the
  Wilson interval of the share over every HD cell; "particularly Adam-HD" as Adam-HD's share
  above each other optimizer's, by Newcombe's interval on the difference of the two shares.
- BetterCNN, "for β > 1e-3 HD does not converge; of the converging cells 39% are worse than
  the baseline": most β > 1e-3 cells diverge (Wilson interval above 1/2), and the interval on
  the share of converged cells worse than the baseline contains 39%.

Each claim has two parts; the verdict is "reproduces" when both hold, "partly" when one does,
"does not reproduce" when neither does (:func:`two_parts`).
"""
from __future__ import annotations

import math

import pandas as pd

from . import stats

PAPER_CELL = (1e-3, 1e-3)   # (α₀, β)
MANY = 0.25                 # "many" combinations: at least a quarter of the cells
REPORTED_WORSE = 0.39       # the report's share of converging BetterCNN cells worse than baseline


def two_parts(first: bool, second: bool) -> str:
    return ("reproduces" if first and second else "partly" if first or second
            else "does not reproduce")


def near(a: pd.Series, x: float) -> pd.Series:
    return (a - x).abs() <= 1e-9 * x


def paper_cell_vs_best(frame: pd.DataFrame, optimizer: str) -> dict | None:
    """`frame`: a grid store's rows over several seeds (additive rule). The paper's cell of
    `optimizer` against the best other cell, paired by seed; None when the paper's cell is not
    in the frame."""
    hd = frame[(frame.optimizer == optimizer) & (frame.rule == "additive")
               & ~frame.baseline.astype(bool)]
    loss = hd.assign(loss=hd.train_loss.where(~hd.diverged.astype(bool))) \
        .pivot_table(index="seed", columns=["alpha0", "beta"], values="loss", dropna=False)
    paper = [c for c in loss.columns if math.isclose(c[0], PAPER_CELL[0])
             and math.isclose(c[1], PAPER_CELL[1])]
    if not paper:
        return None
    paper = paper[0]
    stable = loss.drop(columns=[paper]).dropna(axis=1)   # cells that never diverged
    means = loss.mean().dropna().sort_values()
    out = {"optimizer": optimizer, "seeds": len(loss), "cells": loss.shape[1],
           "paper_diverged": int(loss[paper].isna().sum()),
           "rank": int(list(means.index).index(paper)) + 1 if paper in means.index else None}
    if stable.empty or out["paper_diverged"]:
        return {**out, "best": None, "difference": stats.Interval(math.nan, math.nan, math.nan,
                                                                   len(loss)),
                "outcome": "worse" if out["paper_diverged"] else "tie"}
    best = stable.mean().idxmin()
    d = stats.paired_difference(loss[paper], loss[best])
    return {**out, "best": best, "difference": d, "outcome": stats.judge(d)}


def paper_cell_verdict(rows: list[dict]) -> str:
    """Both optimizers' paper cells best (or tied with the best): reproduces; one: partly;
    none: does not; no rows: not tested."""
    if not rows:
        return "not tested"
    best = sum(r["outcome"] in ("better", "tie") for r in rows)
    return ("reproduces" if best == len(rows) else "partly" if best else "does not reproduce")


def problematic(stats_by_optimizer: dict[str, dict]) -> dict:
    """MLNN: per HD optimizer the share of its cells diverged or worse than the baseline, the
    pooled share ("many"), and Adam-HD's share minus each other's ("particularly")."""
    shares = {o: stats.proportion(st["diverged"] + st["worse"], st["cells"])
              for o, st in stats_by_optimizer.items()}
    k = sum(st["diverged"] + st["worse"] for st in stats_by_optimizer.values())
    n = sum(st["cells"] for st in stats_by_optimizer.values())
    pooled = stats.proportion(k, n)
    adam = stats_by_optimizer.get("adam-hd")
    gaps = {} if adam is None else {
        o: stats.proportion_difference(adam["diverged"] + adam["worse"], adam["cells"],
                                       st["diverged"] + st["worse"], st["cells"])
        for o, st in stats_by_optimizer.items() if o != "adam-hd"}
    many = pooled.n > 0 and pooled.low >= MANY
    particularly = bool(gaps) and all(g.low > 0 for g in gaps.values())
    return {"shares": shares, "pooled": pooled, "gaps": gaps, "parts": (many, particularly),
            "verdict": "not tested" if pooled.n == 0 else two_parts(many, particularly)}


def bettercnn(large_beta_diverged: pd.Series, worse: int, converged: int) -> dict:
    """BetterCNN: share of β > 1e-3 cells diverged, share of converged cells worse."""
    big = stats.proportion(int(large_beta_diverged.astype(bool).sum()), len(large_beta_diverged))
    worse_share = stats.proportion(worse, converged)
    most = big.n > 0 and big.low > 0.5
    close = worse_share.n > 0 and worse_share.contains(REPORTED_WORSE)
    verdict = ("not tested" if big.n == 0 and worse_share.n == 0
               else two_parts(most, close))
    return {"diverged": big, "worse": worse_share, "parts": (most, close), "verdict": verdict}


def divergence_at(frame: pd.DataFrame, optimizers: tuple[str, ...],
                  cell: tuple[float, float] = PAPER_CELL) -> stats.Interval:
    """Pooled over `optimizers` (additive rule): the share of seeds that diverged at `cell`."""
    at = frame[frame.optimizer.isin(optimizers) & (frame.rule == "additive")
               & ~frame.baseline.astype(bool) & near(frame.alpha0, cell[0])
               & near(frame.beta, cell[1])]
    return stats.proportion(int(at.diverged.astype(bool).sum()), len(at))


def mostly_trains(p: stats.Interval) -> str:
    """"HD trains at this setting" from its divergence probability: reproduces when the
    interval lies below 1/2, does not when above, partly when it contains 1/2."""
    if p.n == 0:
        return "not tested"
    return ("reproduces" if p.high < 0.5 else "does not reproduce" if p.low > 0.5 else "partly")
