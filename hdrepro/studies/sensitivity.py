"""How much tuning does HD remove? Every optimizer of the family (:mod:`hdrepro.methods.family`) against
its HD version (:class:`hdrepro.optim.HD` around it) at the same α₀, across α₀ over 4 decades, on
LogReg, MLNN and BetterCNN: the final training and validation loss of each.

HD runs with the additive rule and Baydin et al.'s β for the kind of direction it scales:
β = 1e-3 for SGD, momentum and Nesterov (their SGD-HD/SGDN-HD value) and β = 1e-7 for the adaptive
methods, whose direction is normalised like Adam's (their Adam-HD value). One β per kind, not
tuned per optimizer: the question is what HD gives without tuning.

Two newer hypergradient methods join SGD's row, each at its authors' untuned default rate and
α₀ (or P₀) on the same sweep: MARTHE with automatic μ at SGD-HD's β = 1e-3, and HDM (diagonal
stepsize, heavy ball) at η = 0.1 (``MODERN_RATE``).

A summary per model and optimizer (:func:`tuning`) counts the α₀ at which the final validation
loss comes within 10% of the best either variant reached anywhere on the sweep ("near-best"):
where HD's count is larger, HD made the choice of α₀ matter less. Over seeds (:func:`pair_tuning`)
the count is taken per seed and HD − base paired by seed: a pair is "wider" or "narrower" only when
the 95% t interval of that difference excludes 0, a tie otherwise, and not judged on one seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..methods import family
from . import stats
from ..config import check_fields
from ..engine.data import DataConfig
from ..engine.cells import RunCell, with_lost
from ..methods.registry import OptimConfig

NON_ADAPTIVE = ("sgd", "momentum", "nesterov")
KINDS = {"non-adaptive": NON_ADAPTIVE,
         "adaptive": tuple(name for name in family.FAMILY if name not in NON_ADAPTIVE)}
#: HD's β per kind of direction (Baydin et al.'s values; module doc)
HD_BETA = {name: 1e-3 if name in NON_ADAPTIVE else 1e-7 for name in family.FAMILY}
NEAR_BEST = 1.10   # within 10% of the best final validation loss
#: the newer methods on SGD's row (variant name = optimizer name), each at one untuned rate:
#: MARTHE's β as SGD-HD's here, HDM's η its authors' default
MODERN_RATE = {"marthe": 1e-3, "hdm": 0.1}
#: a pair is judged over seeds only with a spread to judge by
MIN_SEEDS = 2
#: judge()'s outcome, for a count where higher is better, in the words of the claim
PAIR_OUTCOME = {"better": "wider", "tie": "tie", "worse": "narrower"}


@dataclass(frozen=True)
class SensitivitySpec:
    """α₀ × family × {base, HD} × model × seed."""
    models: tuple[str, ...] = ("logreg", "mlnn", "bettercnn")
    optimizers: tuple[str, ...] = family.SLIDES
    alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    epochs: dict = field(default_factory=lambda: {"logreg": 10, "mlnn": 10, "bettercnn": 10})
    data: DataConfig = DataConfig("mnist")
    seeds: tuple[int, ...] = (1,)
    modern: tuple[str, ...] = tuple(MODERN_RATE)   # on SGD's row, if "sgd" is swept
    modern_alphas: tuple[float, ...] | None = None  # their α₀ (None: every one of alphas)

    def __post_init__(self):
        check_fields(self)
        unknown = [o for o in self.optimizers if o not in family.FAMILY]
        unknown += [m for m in self.modern if m not in MODERN_RATE]
        if unknown:
            raise ValueError(f"Unknown optimizers {unknown}; the family is {list(family.FAMILY)}"
                             f" and the newer methods {list(MODERN_RATE)}")
        missing = [m for m in self.models if m not in self.epochs]
        if missing or not self.alphas or not self.seeds:
            raise ValueError(f"Need epochs for every model (missing {missing}), some α₀ and "
                             "some seeds")

    def cells(self) -> list[RunCell]:
        # model, then optimizer, then seed: a store being filled completes one pair's seeds
        # at a time, so a run cut short leaves whole pairs to judge (pair_tuning)
        out = []
        for model in self.models:
            for name in self.optimizers:
                for seed in self.seeds:
                    out += self._pair(model, name, seed)
                    if name == "sgd":
                        out += self._modern(model, seed)
        return out

    def _pair(self, model: str, name: str, seed: int) -> list[RunCell]:
        return [RunCell("sensitivity", model, self.data, optim, self.epochs[model], seed,
                        tags=(("family", name), ("variant", variant)))
                for a in self.alphas
                for optim, variant in ((OptimConfig(name, a), "base"),
                                       (OptimConfig(f"hd-{name}", a, HD_BETA[name]), "hd"))]

    def _modern(self, model: str, seed: int) -> list[RunCell]:
        alphas = self.alphas if self.modern_alphas is None else self.modern_alphas
        return [RunCell("sensitivity", model, self.data, OptimConfig(m, a, MODERN_RATE[m]),
                        self.epochs[model], seed, tags=(("family", "sgd"), ("variant", m)))
                for m in self.modern for a in alphas]


def final_losses(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of the final training and validation loss per model, optimizer, variant
    and α₀ (NaN where a run diverged)."""
    f = frame.copy()
    f.loc[f["diverged"].astype(bool), ["train_loss", "val_loss"]] = np.nan
    return (f.groupby(["model", "family", "variant", "alpha0"], as_index=False)
             .agg(train_loss=("train_loss", "mean"), val_loss=("val_loss", "mean"),
                  diverged=("diverged", "sum"), seeds=("seed", "nunique")))


def tuning(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and optimizer: the near-best α₀ count (module doc) and the best and median
    final validation loss of each variant."""
    f = final_losses(frame)
    rows = []
    for (model, name), g in f.groupby(["model", "family"], sort=False):
        # the best of the optimizer and its HD version: a newer method on SGD's row is counted
        # against the same mark, and does not move it
        best = g[g["variant"].isin(["base", "hd"])]["val_loss"].min()
        row = {"model": model, "family": name, "alphas": g["alpha0"].nunique()}
        for variant in ("base", "hd", *MODERN_RATE):
            if variant not in ("base", "hd") and not (g["variant"] == variant).any():
                continue
            v = g[g["variant"] == variant]["val_loss"]
            row[f"{variant}_near"] = int((v <= NEAR_BEST * best).sum())
            row[f"{variant}_best"] = v.min()
            row[f"{variant}_median"] = v.fillna(np.inf).median()
        rows.append(row)
    return pd.DataFrame(rows)


def complete_seeds(frame: pd.DataFrame, variants: tuple[str, ...] = ("base", "hd")
                   ) -> pd.DataFrame:
    """The rows of each model × optimizer × seed whose sweep is whole: the optimizer and its HD
    version both ran every α₀ that either ran at any seed, and each other of `variants` that
    runs beside that optimizer (the newer methods, on SGD's) every α₀ it ran at any seed (a
    store still being filled holds part-swept seeds, which would bias a count of α₀)."""
    arms = frame[frame["variant"].isin(list(variants))]
    keep = []
    for _, g in arms.groupby(["model", "family"], sort=False):
        paired = g["variant"].isin(["base", "hd"])
        present = ["base", "hd"] + [v for v in variants if v not in ("base", "hd")
                                    and (g["variant"] == v).any()]
        sweep = {v: len(set(g[paired if v in ("base", "hd") else g["variant"] == v]["alpha0"]))
                 for v in present}
        ran = g.groupby(["seed", "variant"])["alpha0"].nunique().unstack("variant")
        ran = ran.reindex(columns=present)
        whole = ran[(ran == pd.Series(sweep)).all(axis=1)].index
        keep.append(g[g["seed"].isin(whole)])
    return pd.concat(keep) if keep else arms.iloc[:0]


def whole(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of the model × optimizer × seed sweeps that are whole for every variant
    (:func:`complete_seeds`), so that a mean over seeds is over the same seeds at every α₀."""
    return complete_seeds(frame, ("base", "hd", *MODERN_RATE))


def pair_tuning(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and optimizer, over the seeds whose sweep is whole (:func:`whole`):
    the near-best count of each variant per seed, HD − base paired by seed with its t interval
    (``near``, a :class:`hdrepro.studies.stats.Interval`; counts move in whole α₀, so a count
    that agrees on every seed is not taken as noiseless: resolution 1), and the outcome:
    "wider", "narrower", "tie" (the interval contains 0) or "one seed" (fewer than MIN_SEEDS: no
    spread to judge)."""
    runs = whole(frame)
    if runs.empty:
        return pd.DataFrame()
    per_seed = pd.concat([tuning(g).assign(seed=seed) for seed, g in runs.groupby("seed")])
    rows = []
    for (model, name), g in per_seed.groupby(["model", "family"], sort=False):
        d = stats.paired_difference(g["hd_near"], g["base_near"], resolution=1)
        outcome = (PAIR_OUTCOME[stats.judge(d, lower_is_better=False)]
                   if len(g) >= MIN_SEEDS else "one seed")
        rows.append({"model": model, "family": name, "seeds": len(g), "alphas": g["alphas"].max(),
                     "near": d, "outcome": outcome})
    return pd.DataFrame(rows)


def judged(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs of :func:`pair_tuning` with MIN_SEEDS seeds or more (the others wait)."""
    return pairs[pairs["seeds"] >= MIN_SEEDS] if not pairs.empty else pairs


def tally(pairs: pd.DataFrame) -> str:
    """Their outcomes counted: "7 wider, 5 tie, 0 narrower"."""
    return ", ".join(f"{int((pairs['outcome'] == k).sum())} {k}" for k in PAIR_OUTCOME.values())


def tuning_verdict(pairs: pd.DataFrame) -> tuple[str, stats.Interval]:
    """"HD reduces the need to tune α₀", on the share of the :func:`judged` pairs where HD
    widened the near-best range (ties and narrowed count as not wider), by
    :func:`hdrepro.studies.stats.majority`; "not tested" when no pair has MIN_SEEDS seeds."""
    j = judged(pairs)
    share = stats.proportion(int((j["outcome"] == "wider").sum()) if len(j) else 0, len(j))
    return stats.majority(share), share


def lost_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model, kind of optimizer (``KINDS``) and variant: how many runs, how many diverged
    (NaN/inf) and how many finished stuck at chance (test error ≥ STUCK_ERROR)."""
    f = with_lost(frame)
    f["kind"] = f["family"].map({name: kind for kind, names in KINDS.items() for name in names})
    return (f.groupby(["model", "kind", "variant"], as_index=False, sort=False)
             .agg(runs=("stuck", "size"), diverged=("diverged", "sum"), stuck=("stuck", "sum")))


def sgd_row(frame: pd.DataFrame) -> pd.DataFrame:
    """SGD's row with the newer methods, on the seeds whose sweeps are whole for every variant,
    compared at the α₀ they all ran (the newer methods'):
    per model and variant, the runs there, how many ended near-best (within 10% of the best
    final validation loss SGD or SGD-HD reached at any α₀ of the sweep) and how many were lost
    (diverged, or stuck at chance)."""
    f = frame[frame["family"] == "sgd"]
    # the seeds whose sweeps are whole for every variant, so that each counts the same runs
    # while a store is being filled
    f = with_lost(f.merge(whole(f)[["model", "seed"]].drop_duplicates()))
    modern = f[f["variant"].isin(list(MODERN_RATE))]
    if modern.empty:
        return pd.DataFrame()
    rows = []
    for model, g in f.groupby("model", sort=False):
        mark = g[g["variant"].isin(["base", "hd"]) & ~g["diverged"]]["val_loss"].min()
        common = g[g["alpha0"].isin(modern[modern["model"] == model]["alpha0"].unique())]
        for variant, v in common.groupby("variant", sort=False):
            near = (~v["lost"] & (v["val_loss"] <= NEAR_BEST * mark)).sum()
            rows.append({"model": model, "variant": variant, "runs": len(v),
                         "near": int(near), "lost": int(v["lost"].sum())})
    return pd.DataFrame(rows)
