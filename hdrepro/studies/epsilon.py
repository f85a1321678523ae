"""Does the gradient-magnitude histogram find Adam's ε? The validation of
:func:`hdrepro.methods.histograms.epsilon_interval`.

For each model: one Adam run at its defaults (α = 1e-3, ε = 1e-8) records |g| histograms over its
first ``hist_steps`` steps; the interval comes from them. Separately, Adam runs at every ε of
:data:`EPSILONS` (10 decades). The best ε is the one with the lowest mean final validation loss;
ε values within ``NEAR`` of that loss are "near-best" (below the interval they all behave alike,
which is the interval's point). Reported: the interval, its width in decades against the usual
10, whether the best ε lies inside, and whether the interval holds a near-best ε.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import torch

from ..methods.histograms import DEFAULT_RANGE, GradientHistogram, decades, epsilon_interval
from ..config import check_fields
from ..engine.data import DataConfig
from ..engine.executors import worker_data
from ..engine.cells import RunCell
from ..methods.registry import OptimConfig
from ..engine.train import train

EPSILONS = tuple(10.0 ** k for k in range(-10, 1))   # 1e-10 … 1: the 10 decades usually searched
NEAR = 0.01   # near-best: final validation loss within 1% of the best


@dataclass(frozen=True)
class EpsilonSpec:
    models: tuple[str, ...] = ("mlnn", "bettercnn")
    epochs: dict = field(default_factory=lambda: {"mlnn": 10, "bettercnn": 10})
    data: DataConfig = DataConfig("mnist")
    seeds: tuple[int, ...] = (1, 2, 3)
    lr: float = 1e-3
    hist_steps: int = 100
    every: int = 5

    def __post_init__(self):
        check_fields(self)

    def cells(self) -> list[RunCell]:
        return [RunCell("epsilon", model, self.data, OptimConfig("adam", self.lr,
                                                                 options=(("eps", eps),)),
                        self.epochs[model], seed, tags=(("eps", eps),))
                for seed in self.seeds for model in self.models for eps in EPSILONS]


def record_histogram(spec: EpsilonSpec, model: str, data_root: str,
                     device: str = "cpu") -> pd.DataFrame:
    """|g| histograms of Adam at its defaults over the first hist_steps steps (at least one
    epoch's worth is run; recording stops at hist_steps)."""
    data = worker_data(spec.data, data_root)
    per_epoch = math.ceil(len(data.train) / RunCell.batch_size)
    epochs = max(1, math.ceil(spec.hist_steps / per_epoch))
    holder: dict = {}

    def on_step(it: int, loss, opt) -> None:
        if "hist" not in holder:
            holder["hist"] = GradientHistogram.of_optimizer(opt, every=spec.every)
        if it <= spec.hist_steps:
            holder["hist"].record(it)

    cell = RunCell("epsilon", model, spec.data, OptimConfig("adam", spec.lr), epochs)
    torch.manual_seed(0)
    train(cell.train_config(device), data, on_step=on_step)
    return holder["hist"].frame().assign(model=model)


def validation(frame: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """Per model: the interval, the best ε, and whether the interval holds it (module doc)."""
    f = frame.copy()
    f.loc[f["diverged"].astype(bool), "val_loss"] = float("nan")
    rows = []
    for model, g in f.groupby("model", sort=False):
        m = g.groupby("eps")["val_loss"].mean()
        best_eps, best = float(m.idxmin()), float(m.min())
        near = [float(e) for e, v in m.items() if v <= best * (1 + NEAR)]
        lo, hi = epsilon_interval(hist[hist["model"] == model])
        rows.append({"model": model, "interval_lo": lo, "interval_hi": hi,
                     "decades": decades((lo, hi)), "default_decades": decades(DEFAULT_RANGE),
                     "best_eps": best_eps, "best_val_loss": best,
                     "best_inside": lo <= best_eps <= hi,
                     "near_best": len(near),
                     "near_inside": sum(lo <= e <= hi for e in near),
                     "worst_val_loss": float(m.max()), "seeds": g["seed"].nunique()})
    return pd.DataFrame(rows)
