"""HD against the learning-rate-free optimizers (:mod:`hdrepro.methods.rivals`): same models, same
budget, several seeds.

Methods: each rival with its defaults and with its authors' recommended setting; Adam-HD and
SGDN-HD at Baydin et al.'s settings (α₀ = 1e-3; β = 1e-7 and 1e-3); torch's Adam at its default
α = 1e-3 as the tuned-by-convention reference. Everything else as in the rest of the package
(batch 128, weight decay 1e-4 coupled, cross-entropy).

Against Adam-HD (:func:`against`): every rival setting on its own, paired by seed, with no pick
of a "better" setting (the runs hold no validation split, and a pick on the test error would be
tuning on the test set).

Sensitivity to the initial scale: each method that starts from a scale of its own is run with that
scale multiplied by 10^k, k ∈ ``scale_steps`` (Prodigy's and D-Adaptation's d₀, DoG's r_ε,
Schedule-Free's lr, and α₀ for Adam-HD and Adam), at its default setting.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import stats
from ..methods import rivals
from ..config import check_fields
from ..engine.data import DataConfig
from ..engine.cells import RunCell
from ..methods.registry import OptimConfig

#: method -> (optimizer name, α₀ or lr, β, the argument its scale sweep multiplies)
HD_METHODS = {"adam-hd": ("adam-hd", 1e-3, 1e-7, "lr"), "sgdn-hd": ("sgdn-hd", 1e-3, 1e-3, "lr"),
              "adam": ("adam", 1e-3, 0.0, "lr")}
TITLES = {**{f"{r}:{s}": f"{rivals.TITLES[r]} ({s})" for r in rivals.RIVALS
             for s in rivals.SETTINGS},
          "adam-hd": "Adam-HD", "sgdn-hd": "SGDN-HD", "adam": "Adam (α = 1e-3)"}
COLOURS = {"prodigy": "C0", "dadapt-adam": "C1", "schedulefree-adamw": "C2", "dog": "C4",
           "adam-hd": "C3", "sgdn-hd": "C5", "adam": "k"}


def method_config(method: str, scale: float = 1.0) -> OptimConfig:
    """The optimizer config of a method ("<rival>:<setting>" or an HD_METHODS key), with its
    initial scale multiplied by `scale`."""
    if method in HD_METHODS:
        name, lr, beta, _ = HD_METHODS[method]
        return OptimConfig(name, lr * scale, beta)
    rival, setting = method.split(":")
    arg, default = rivals.SCALES[rival]
    options = {"setting": setting}
    if arg == "lr":
        return OptimConfig(rival, default * scale, options=tuple(options.items()))
    if scale != 1.0:
        options[arg] = default * scale
    return OptimConfig(rival, rivals.DEFAULT_LR[rival], options=tuple(sorted(options.items())))


def in_scale_sweep(method: str) -> bool:
    """The sweep runs each method at its default setting (SGDN-HD, whose α₀ is Adam-HD's, not)."""
    return not method.endswith(":recommended") and method != "sgdn-hd"


def colour(method: str) -> str:
    return COLOURS[method.split(":")[0]]


@dataclass(frozen=True)
class RivalSpec:
    models: tuple[str, ...] = ("logreg", "mlnn", "bettercnn")
    epochs: dict = field(default_factory=lambda: {"logreg": 10, "mlnn": 10, "bettercnn": 10})
    data: DataConfig = DataConfig("mnist")
    seeds: tuple[int, ...] = (1, 2, 3)
    rivals: tuple[str, ...] = tuple(rivals.RIVALS)
    scale_model: str = "mlnn"
    scale_steps: tuple[int, ...] = (-2, -1, 1, 2)
    scale_seeds: tuple[int, ...] = (1,)

    def __post_init__(self):
        check_fields(self)

    def methods(self) -> list[str]:
        return [f"{r}:{s}" for r in self.rivals for s in rivals.SETTINGS] + list(HD_METHODS)

    def cells(self) -> list[RunCell]:
        out = []
        for seed in self.seeds:
            for model in self.models:
                for m in self.methods():
                    out.append(RunCell("rivals", model, self.data, method_config(m),
                                       self.epochs[model], seed,
                                       tags=(("method", m), ("scale", 1.0))))
        return out

    def scale_cells(self) -> list[RunCell]:
        out = []
        for seed in self.scale_seeds:
            for m in filter(in_scale_sweep, self.methods()):
                for k in self.scale_steps:
                    s = 10.0 ** k
                    out.append(RunCell("rivals", self.scale_model, self.data,
                                       method_config(m, s), self.epochs[self.scale_model], seed,
                                       tags=(("method", m), ("scale", s))))
        return out


def _mean_std(x: pd.Series) -> tuple[float, float]:
    x = x.astype(float)
    return float(x.mean()), float(x.std(ddof=1)) if x.count() > 1 else float("nan")


def comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model and method at scale 1: mean and std over seeds of the final training loss,
    validation loss and test error; diverged runs counted, their losses left out."""
    f = frame[frame["scale"] == 1.0].copy()
    f.loc[f["diverged"].astype(bool), ["train_loss", "val_loss", "test_error"]] = np.nan
    rows = []
    for (model, method), g in f.groupby(["model", "method"], sort=False):
        row = {"model": model, "method": method, "seeds": g["seed"].nunique(),
               "diverged": int(g["diverged"].astype(bool).sum())}
        for col in ("train_loss", "val_loss", "test_error"):
            row[col], row[f"{col}_std"] = _mean_std(g[col])
        rows.append(row)
    return pd.DataFrame(rows)


def against(frame: pd.DataFrame, reference: str = "adam-hd") -> pd.DataFrame:
    """Per model and rival setting (scale 1): `reference` − rival final test error, paired by
    seed (runs of one seed share initial weights and minibatch order), its 95% t interval and
    the outcome for `reference`, "better", "worse" or "tie" (:func:`stats.paired_runs`)."""
    f = frame[frame["scale"] == 1.0]
    rows = []
    for model, g in f.groupby("model", sort=False):
        ref = g[g["method"] == reference].set_index("seed")
        for method in [m for m in g["method"].unique() if ":" in m]:
            riv = g[g["method"] == method].set_index("seed")
            diff, outcome = stats.paired_runs(ref, riv, resolution=stats.error_step(g))
            rows.append({"model": model, "method": method,
                         "seeds": len(ref.index.intersection(riv.index)),
                         "difference": diff, "outcome": outcome})
    return pd.DataFrame(rows)


def scale_frame(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """The scale sweep's rows (scale 1 from the main comparison) with NaN for diverged runs."""
    f = frame[(frame["model"] == model) & frame["method"].map(in_scale_sweep)].copy()
    f.loc[f["diverged"].astype(bool), "val_loss"] = np.nan
    return f[["method", "scale", "seed", "val_loss"]]


def scale_model(frame: pd.DataFrame) -> str | None:
    """The model the scale sweep ran on (None if the frame holds no sweep)."""
    swept = frame[frame["scale"] != 1.0]
    return None if swept.empty else swept["model"].iloc[0]


def scale_spread(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """Per method: worst / best final validation loss over the sweep's scales (seed means),
    and how many scales diverged."""
    f = scale_frame(frame, model)
    m = f.groupby(["method", "scale"])["val_loss"].mean().reset_index()
    rows = []
    for method, g in m.groupby("method", sort=False):
        v = g["val_loss"]
        rows.append({"method": method, "scales": len(g), "best": v.min(), "worst": v.max(),
                     "diverged": int(v.isna().sum()), "ratio": v.max() / v.min()})
    return pd.DataFrame(rows)
