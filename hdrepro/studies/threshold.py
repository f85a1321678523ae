"""Baydin et al.'s own tuning experiment: an α₀ × β grid on logistic regression over all of MNIST
in which each cell counts the iterations until the training loss first reaches a threshold.

Their train.py stops at the first minibatch whose loss is at most ``lossThreshold``, and their
tuning figure uses 0.29. It is the evidence behind their claim that HD reduces the need to tune
α₀: wherever HD reaches the threshold in no more iterations than its base optimizer at the same
α₀, HD is at least as good, and they find that region large.

Setting (:class:`ThresholdSpec`): SGD-HD, SGDN-HD and Adam-HD (additive rule), α₀ and β each in
{1e-1, …, 1e-6}, batch 128, weight decay 1e-4, μ = 0.9 (their script's defaults); the baseline
row is the base optimizer at each α₀. A cell value is the iteration at which a minibatch loss
first fell to the threshold (TrainConfig.stop_below); a run that never does within
``max_epochs`` epochs is *not reached*, and a run that diverged is not reached either (its
``diverged`` flag says which).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats
from ..config import check_fields, check_range
from ..engine.data import DataConfig
from ..engine.cells import RunCell
from ..methods.registry import OptimConfig

BASE_OF = {"sgd-hd": "sgd", "sgdn-hd": "sgdn", "adam-hd": "adam"}
DECADES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
LOSS_THRESHOLD = 0.29   # Baydin et al.'s tuning figure


@dataclass(frozen=True)
class ThresholdSpec:
    """α₀ × β for some HD optimizers, with their base optimizers at each α₀, and seeds."""
    optimizers: tuple[str, ...] = tuple(BASE_OF)
    alphas: tuple[float, ...] = DECADES
    betas: tuple[float, ...] = DECADES
    threshold: float = LOSS_THRESHOLD
    max_epochs: int = 10
    data: DataConfig = DataConfig("mnist")
    seeds: tuple[int, ...] = (1,)
    model: str = "logreg"

    def __post_init__(self):
        check_fields(self)
        unknown = [o for o in self.optimizers if o not in BASE_OF]
        if unknown or not self.optimizers:
            raise ValueError(f"optimizers must be some of {sorted(BASE_OF)}, got {unknown}")
        check_range(self, "threshold", self.threshold > 0, "> 0")
        check_range(self, "max_epochs", self.max_epochs >= 1, ">= 1")
        if not (self.alphas and self.betas and self.seeds):
            raise ValueError("ThresholdSpec needs some alphas, betas and seeds")

    def _cell(self, optim: OptimConfig, hd: str, seed: int) -> RunCell:
        variant = "hd" if optim.name == hd else "base"
        return RunCell("threshold_grid", self.model, self.data, optim, self.max_epochs, seed,
                       tags=(("hd", hd), ("variant", variant)), stop_below=self.threshold)

    def cells(self) -> list[RunCell]:
        out = []
        for seed in self.seeds:
            for hd in self.optimizers:
                out += [self._cell(OptimConfig(BASE_OF[hd], a), hd, seed) for a in self.alphas]
                out += [self._cell(OptimConfig(hd, a, b), hd, seed)
                        for b in self.betas for a in self.alphas]
        return out


def iterations(frame: pd.DataFrame) -> pd.Series:
    """Per stored run: the iteration that reached the threshold, inf where it never did (or the
    run diverged)."""
    reached = pd.to_numeric(frame["reached_at"], errors="coerce")
    return reached.where(~frame["diverged"].astype(bool)).fillna(math.inf)


def iteration_table(frame: pd.DataFrame, hd: str) -> pd.DataFrame:
    """Baydin et al.'s layout for one HD optimizer: rows "baseline" then each β, columns α₀,
    values the median over seeds of the iterations to the threshold (inf: not reached in most
    seeds)."""
    f = frame[frame["hd"] == hd].assign(iters=lambda x: iterations(x))
    base = f[f["variant"] == "base"].groupby("alpha0")["iters"].median()
    grid = (f[f["variant"] == "hd"].groupby(["beta", "alpha0"])["iters"].median()
            .unstack("alpha0").sort_index(ascending=False))
    alphas = sorted(set(base.index) | set(grid.columns), reverse=True)
    top = base.reindex(alphas).to_frame("baseline").T
    return pd.concat([top, grid.reindex(columns=alphas)])


def paired(frame: pd.DataFrame, hd: str) -> pd.DataFrame:
    """Per HD cell and seed: HD's iterations beside the baseline's at the same α₀ and seed, and
    whether HD was at least as fast (a run that never reached counts as slower than any that
    did). Pairs where neither reached the threshold say nothing either way and are left out."""
    f = frame[frame["hd"] == hd].assign(iters=lambda x: iterations(x))
    base = f[f["variant"] == "base"].set_index(["alpha0", "seed"])["iters"].rename("base")
    out = f[f["variant"] == "hd"][["beta", "alpha0", "seed", "iters"]].join(
        base, on=["alpha0", "seed"])
    out = out[np.isfinite(out["iters"]) | np.isfinite(out["base"])]
    return out.assign(at_least_as_fast=out["iters"] <= out["base"])


def reach_counts(frame: pd.DataFrame, hd: str) -> dict:
    """How many α₀ reach the threshold (in the median over seeds): the baseline's, and HD's for
    its best single β (one β for every α₀: what "less tuning of α₀" asks of HD; among the β that
    reach as many α₀, the one with the fewest median iterations)."""
    table = iteration_table(frame, hd)
    values = table.to_numpy(dtype=float)
    reached = np.isfinite(values)
    per_beta = reached[1:].sum(axis=1)
    typical = [np.median(row[np.isfinite(row)]) if np.isfinite(row).any() else math.inf
               for row in values[1:]]
    best = min(range(len(per_beta)), key=lambda i: (-per_beta[i], typical[i])) \
        if len(per_beta) else 0
    return {"alphas": table.shape[1], "base_reach": int(reached[0].sum()),
            "hd_reach": int(per_beta[best]) if len(per_beta) else 0,
            "hd_beta": float(table.index[1 + best]) if len(per_beta) else math.nan}


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per HD optimizer: how many α₀ the baseline and HD (at its best single β) bring to the
    threshold, and the share of HD runs at least as fast as the baseline at the same α₀ and
    seed, with its 95% Wilson interval. ``range`` compares the two counts: wider, same or
    narrower."""
    rows = []
    for hd in dict.fromkeys(frame["hd"]):
        reach = reach_counts(frame, hd)
        fast = paired(frame, hd)["at_least_as_fast"]
        share = stats.proportion(int(fast.sum()), len(fast))
        rows.append({"hd": hd, **reach, "fast": share,
                     "seeds": int(frame.loc[frame["hd"] == hd, "seed"].nunique()),
                     "range": "wider" if reach["hd_reach"] > reach["base_reach"] else
                     "same" if reach["hd_reach"] == reach["base_reach"] else "narrower"})
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame) -> str:
    """The claim that HD reduces the need to tune α₀, judged on this grid: it reproduces when HD,
    at one β, reaches the threshold over more α₀ than the base optimizer for every HD
    optimizer; partly when for some; it does not when for none."""
    if table.empty:
        return "not tested"
    wider = table["range"].eq("wider")
    return "reproduces" if wider.all() else "partly" if wider.any() else "does not reproduce"
