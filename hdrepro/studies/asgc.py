"""Does ASGC (:mod:`hdrepro.methods.asgc`) help? The proposal's evaluation at our scale: MNIST and
Fashion-MNIST, MLNN and BetterCNN, ASGC around SGD with momentum (μ = 0.9) against Adam,
SGD-momentum, AdaGrad and RMSprop.

- **Tuning, on an equal budget.** Every method gets BUDGET = 8 configurations: ASGC two
  learning rates × noise scale η ∈ {0.01, 0.1} × threshold width κ ∈ {1, 3} (the small grid
  search that stands in for the proposal's meta-learning); each baseline 8 learning rates,
  log-spaced over the same two decades around its usual default. Each method's configuration
  is chosen by its mean final error on a validation split held out of the training set
  (``validation``, seeded and stratified, recorded with every run), never on the test set; the
  test error is reported for the chosen configurations only.
- **Metrics** of each chosen configuration: test error; time (and epochs) to a target accuracy,
  the highest final validation accuracy that *every* tuned method reaches, so all are timed to
  the same bar; stability, the standard deviation of validation accuracy over the last
  ``last_epochs`` epochs; the generalisation gap, final validation loss minus final training
  loss.
- **Ablations** at ASGC's chosen configuration: clipping without noise (η = 0) and noise with a
  fixed threshold (τ = ``FIXED_THRESHOLD`` for every layer).
- **Robustness.** ``random_samples`` configurations per method drawn at random (learning rate
  log-uniform over two decades around the default; for ASGC also η log-uniform in [1e-3, 1] and
  κ uniform in [0.5, 5]): the distribution of their final test errors.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from . import stats
from ..methods.histograms import GradientHistogram
from ..config import check_fields
from ..engine.data import DataConfig
from ..engine.executors import worker_data
from ..engine.cells import RunCell, with_lost
from ..methods.registry import OptimConfig
from ..engine.train import train

#: method -> its two anchor learning rates; ASGC wraps SGD with momentum
LRS = {"adam": (1e-4, 1e-3), "momentum": (1e-2, 1e-1), "adagrad": (1e-2, 1e-1),
       "rmsprop": (1e-4, 1e-3), "asgc-momentum": (1e-2, 1e-1)}
BUDGET = 8   # tuning configurations per method (ASGC: 2 learning rates × 2 η × 2 κ)
NOISE = (0.01, 0.1)
KAPPA = (1.0, 3.0)
FIXED_THRESHOLD = 1.0
DIVERGED_ERROR = 0.9   # a diverged run counts as chance-level error on 10 classes
#: random search: (log10 lr low, high) per method; η and κ ranges for ASGC
RANDOM_LR = {m: (math.log10(lo) - 0.5, math.log10(hi) + 0.5) for m, (lo, hi) in LRS.items()}
RANDOM_NOISE = (-3.0, 0.0)
RANDOM_KAPPA = (0.5, 5.0)
TITLES = {"adam": "Adam", "momentum": "SGD momentum", "adagrad": "AdaGrad", "rmsprop": "RMSprop",
          "asgc-momentum": "ASGC (momentum)", "asgc-no-noise": "ASGC, no noise",
          "asgc-fixed": "ASGC, fixed threshold"}
COLOURS = {"adam": "C2", "momentum": "C1", "adagrad": "C4", "rmsprop": "C5",
           "asgc-momentum": "C0", "asgc-no-noise": "C9", "asgc-fixed": "C7"}


def asgc_config(lr: float, noise: float, kappa: float, fixed: float | None = None
                ) -> OptimConfig:
    opts = {"noise_scale": noise, "threshold": kappa}
    if fixed is not None:
        opts["fixed_threshold"] = fixed
    return OptimConfig("asgc-momentum", lr, options=tuple(sorted(opts.items())))


@dataclass(frozen=True)
class ASGCSpec:
    datasets: tuple[str, ...] = ("mnist", "fashion-mnist")
    models: tuple[str, ...] = ("mlnn", "bettercnn")
    fraction: float = 1.0
    epochs: dict = field(default_factory=lambda: {"mlnn": 10, "bettercnn": 10})
    seeds: tuple[int, ...] = (1, 2, 3)
    random_samples: int = 10
    random_datasets: tuple[str, ...] = ("mnist", "fashion-mnist")
    last_epochs: int = 3
    validation: float = 0.1   # share of the training set held out to choose configurations

    def __post_init__(self):
        check_fields(self)
        if not 0 < self.validation < 1:
            raise ValueError(f"validation={self.validation}: configurations are chosen on a "
                             "held-out share of the training set; use 0 < validation < 1")

    def _cell(self, data: str, model: str, optim: OptimConfig, seed: int, method: str,
              phase: str) -> RunCell:
        return RunCell("asgc", model, DataConfig(data, self.fraction, validation=self.validation),
                       optim, self.epochs[model], seed, tags=(("method", method), ("phase", phase)))

    def pairs(self) -> list[tuple[str, str]]:
        """(data, model) in the order they run: the cheaper model's pairs first."""
        return [(d, m) for m in self.models for d in self.datasets]

    def tune_cells(self, pair: tuple[str, str] | None = None) -> list[RunCell]:
        """Every method's BUDGET configurations, seed by seed, for `pair` (default: all pairs,
        one after the other), so that a run cut short leaves whole seeds behind (:func:`whole`)."""
        return [self._cell(data, model, optim, seed, method, "tune")
                for data, model in ([pair] if pair else self.pairs()) for seed in self.seeds
                for method in LRS for optim in tuning_configs(method)]

    def ablation_count(self) -> int:
        """How many cells `ablation_cells` gives once ASGC is tuned on every pair (two
        ablations per pair and seed); known before the tuning runs."""
        return 2 * len(self.pairs()) * len(self.seeds)

    def ablation_cells(self, frame: pd.DataFrame, pair: tuple[str, str] | None = None
                       ) -> list[RunCell]:
        """η = 0, and a fixed threshold, at ASGC's chosen configuration per data and model
        (for `pair` only, when given)."""
        best = chosen(frame)
        out = []
        for data, model in ([pair] if pair else self.pairs()):
            row = best[(best.data == data) & (best.model == model)
                       & (best.method == "asgc-momentum")]
            if row.empty:
                continue
            lr, opts = float(row.alpha0.iloc[0]), row.options_dict.iloc[0]
            for seed in self.seeds:
                out.append(self._cell(data, model, asgc_config(lr, 0.0, opts["threshold"]),
                                      seed, "asgc-no-noise", "ablation"))
                out.append(self._cell(data, model, asgc_config(
                    lr, opts["noise_scale"], opts["threshold"], FIXED_THRESHOLD), seed,
                    "asgc-fixed", "ablation"))
        return out

    def random_cells(self, pair: tuple[str, str] | None = None) -> list[RunCell]:
        """`random_samples` seeded random configurations per method, for the pairs whose data
        set is among `random_datasets` (`pair` only, when given)."""
        return [self._cell(data, model, optim, self.seeds[0], method, "random")
                for data, model in ([pair] if pair else self.pairs())
                if data in self.random_datasets
                for method in LRS for optim in self._random_configs(data, model, method)]

    def _random_configs(self, data: str, model: str, method: str) -> list[OptimConfig]:
        rng = np.random.default_rng([len(method), sum(map(ord, method + data + model))])
        out = []
        for _ in range(self.random_samples):
            lr = 10 ** rng.uniform(*RANDOM_LR[method])
            out.append(asgc_config(lr, round(10 ** rng.uniform(*RANDOM_NOISE), 6),
                                   round(rng.uniform(*RANDOM_KAPPA), 3))
                       if method == "asgc-momentum" else OptimConfig(method, lr))
        return out


def tuning_configs(method: str) -> list[OptimConfig]:
    """A method's BUDGET configurations: ASGC's 2 × 2 × 2 grid; for a baseline, BUDGET learning
    rates log-spaced over the two decades around its anchors (half a decade beyond each)."""
    if method == "asgc-momentum":
        return [asgc_config(lr, noise, kappa) for lr in LRS[method] for noise in NOISE
                for kappa in KAPPA]
    lo, hi = (math.log10(x) for x in LRS[method])
    return [OptimConfig(method, float(f"{10 ** e:.3g}"))
            for e in np.linspace(lo - 0.5, hi + 0.5, BUDGET)]


def validated(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs trained with a held-out validation split (older runs chose on the test set and
    are left out of every summary)."""
    if frame.empty or "validation" not in frame:
        return frame.iloc[0:0]
    return frame[frame["validation"].fillna(0) > 0]


def whole(frame: pd.DataFrame) -> pd.DataFrame:
    """The validated runs, tuning runs kept only at a (data, model, seed) where every method has
    its BUDGET configurations: a run cut short, or a run that failed, must not leave one method
    chosen from fewer configurations or seeds than another."""
    f = validated(frame)
    if f.empty:
        return f
    tune = f["phase"] == "tune"
    return f[~tune | _seed_keys(f).isin(_whole_seeds(f[tune]))]


def reportable(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`whole`'s runs of the (data, model) pairs with at least one whole tuning seed; empty
    while the study has not tuned a pair on one seed."""
    f = whole(frame)
    if f.empty:
        return f
    done = {key.rsplit("|", 1)[0] for key in _whole_seeds(f[f["phase"] == "tune"])}
    return f[_pair_keys(f).isin(done)]


def _pair_keys(f: pd.DataFrame) -> pd.Series:
    """"data|model" per run."""
    return f["data"] + "|" + f["model"]


def _seed_keys(f: pd.DataFrame) -> pd.Series:
    return _pair_keys(f) + "|" + f["seed"].astype(str)


def _whole_seeds(tune: pd.DataFrame) -> set[str]:
    """The "data|model|seed" keys at which every method ran BUDGET distinct configurations."""
    if tune.empty:
        return set()
    configs = (_with_options(tune).assign(key=_seed_keys(tune))
               .groupby(["key", "method"])["config"].nunique().unstack("method")
               .reindex(columns=list(LRS)))
    return set(configs.index[(configs >= BUDGET).all(axis=1)])


def _with_options(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f["options_dict"] = f["options"].map(json.loads)
    f["config"] = f["alpha0"].map("{:g}".format) + " " + f["options"]
    return f


def _errors(f: pd.DataFrame, column: str = "test_error") -> pd.Series:
    """Each run's error (`column`), DIVERGED_ERROR where it diverged."""
    return f[column].where(~f["diverged"].astype(bool), DIVERGED_ERROR).fillna(DIVERGED_ERROR)


def chosen(frame: pd.DataFrame) -> pd.DataFrame:
    """Each method's chosen tuning configuration per data and model (lowest mean error on the
    held-out validation split, diverged runs counted at DIVERGED_ERROR), one row per
    configuration with its mean validation error."""
    return _choose(whole(frame))


def _choose(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`chosen` on runs already filtered by :func:`whole`."""
    f = _with_options(runs[runs["phase"] == "tune"])
    f["err"] = _errors(f, "val_error")
    m = (f.groupby(["data", "model", "method", "config"], as_index=False)
          .agg(err=("err", "mean"), alpha0=("alpha0", "first"),
               options_dict=("options_dict", "first")))
    idx = m.groupby(["data", "model", "method"])["err"].idxmin()
    return m.loc[idx].reset_index(drop=True)


def final_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of each method's chosen configuration at its whole seeds, plus the ablations'
    runs."""
    frame = whole(frame)
    f = _with_options(frame)
    best = _choose(frame)
    keep = f.merge(best[["data", "model", "method", "config"]], on=["data", "model", "method",
                                                                     "config"])
    keep = keep[keep["phase"] == "tune"]
    return pd.concat([keep, f[f["phase"] == "ablation"]], ignore_index=True)


def _first_reaching(curve: list, target: float) -> int | None:
    for i, acc in enumerate(curve):
        if acc >= target - 1e-12:
            return i
    return None


def metrics(frame: pd.DataFrame, last_epochs: int = 3) -> pd.DataFrame:
    """Per data, model and method (chosen configurations and ablations): test error, epochs and
    seconds to the common target accuracy, stability and generalisation gap (module doc)."""
    runs = final_runs(frame)
    rows = []
    for (data, model), g in runs.groupby(["data", "model"], sort=False):
        tuned = g[g["phase"] == "tune"]
        finals = tuned.groupby("method")["curve_val_acc"].apply(
            lambda cs: np.mean([c[-1] if len(c) else 0.0 for c in cs]))
        target = float(finals.min())
        for method, r in g.groupby("method", sort=False):
            reach = [_first_reaching(c, target) for c in r["curve_val_acc"]]
            ok = [(i, s) for i, s in zip(reach, r["curve_seconds"]) if i is not None]
            err = r["test_error"].where(~r["diverged"].astype(bool), np.nan)
            rows.append({
                "data": data, "model": model, "method": method, "runs": len(r),
                "config": r["config"].iloc[0], "test_error": err.mean(),
                "test_error_std": err.std(ddof=1) if len(r) > 1 else np.nan,
                "target_acc": target, "reached": len(ok),
                "epochs_to_target": np.mean([i + 1 for i, _ in ok]) if ok else np.nan,
                "seconds_to_target": np.mean([s[i] for i, s in ok]) if ok else np.nan,
                "stability": np.mean([np.std(c[-last_epochs:]) for c in r["curve_val_acc"]
                                      if len(c)]),
                "gap": (r["val_loss"] - r["train_loss"]).mean()})
    return pd.DataFrame(rows)


def against(frame: pd.DataFrame) -> pd.DataFrame:
    """Per data and model: ASGC − each other method (the baselines and the ablations, each at
    its chosen configuration), final test error paired by seed over the whole seeds, its 95% t
    interval and the outcome for ASGC, "better", "worse" or "tie" (:func:`stats.paired_runs`;
    against an ablation, "better" means the part it removes helps)."""
    runs = final_runs(frame)
    rows = []
    for (data, model), g in runs.groupby(["data", "model"], sort=False):
        asgc = g[g["method"] == "asgc-momentum"].set_index("seed")
        if asgc.empty:
            continue
        for method in [m for m in g["method"].unique() if m != "asgc-momentum"]:
            other = g[g["method"] == method].set_index("seed")
            diff, outcome = stats.paired_runs(asgc, other, resolution=stats.error_step(g))
            rows.append({"data": data, "model": model, "method": method,
                         "difference": diff, "outcome": outcome})
    return pd.DataFrame(rows, columns=["data", "model", "method", "difference", "outcome"])


def random_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The validated random-search runs of the (data, model) pairs where every method has as
    many random configurations as the others: the search runs method by method, so a search
    cut short (some methods short or missing) is left out until it is whole."""
    f = validated(frame)
    r = f[f["phase"] == "random"] if not f.empty else f
    if r.empty:
        return r
    counts = (r.groupby(["data", "model", "method"]).size().unstack("method")
              .reindex(columns=list(LRS)))
    done = {f"{d}|{m}" for d, m in counts.index[counts.notna().all(axis=1)
                                                  & (counts.nunique(axis=1) == 1)]}
    return r[_pair_keys(r).isin(done)]


def _random_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """The whole random searches' runs (:func:`random_runs`), each error in ``err``."""
    f = random_runs(frame).copy()
    f["err"] = _errors(f)
    return f


def robustness(frame: pd.DataFrame) -> pd.DataFrame:
    """Per data, model and method: the random configurations' test errors (a diverged run at
    DIVERGED_ERROR), how many diverged (NaN/inf), and how many finished stuck at chance
    (error ≥ STUCK_ERROR); whole searches only (:func:`random_runs`)."""
    f = with_lost(_random_errors(frame), error="err")
    return (f.groupby(["data", "model", "method"], as_index=False, sort=False)
             .agg(samples=("err", "size"), median=("err", "median"),
                  best=("err", "min"), worst=("err", "max"),
                  diverged=("diverged", "sum"), stuck=("stuck", "sum")))


def robustness_against(frame: pd.DataFrame, reference: str = "asgc-momentum") -> pd.DataFrame:
    """Per data, model and method: `reference`'s median test error over its random
    configurations − the method's (errors as in :func:`robustness`), with a 95% bootstrap
    interval (the configurations are independent draws, not pairs), the two sample sizes the
    interval rests on (``n_reference``, ``n_method``), and the outcome for `reference`
    (:func:`stats.judge`)."""
    f = _random_errors(frame)
    rows = []
    for (data, model), g in f.groupby(["data", "model"], sort=False):
        ref = g.loc[g["method"] == reference, "err"]
        for method in [m for m in g["method"].unique() if m != reference]:
            other = g.loc[g["method"] == method, "err"]
            d = stats.median_difference(ref, other)
            rows.append({"data": data, "model": model, "method": method, "difference": d,
                         "n_reference": len(ref), "n_method": len(other),
                         "outcome": stats.judge(d)})
    return pd.DataFrame(rows, columns=["data", "model", "method", "difference", "n_reference",
                                       "n_method", "outcome"])


def gradient_histograms(cell: RunCell, data_root: str, every: int = 5,
                        device: str = "cpu") -> pd.DataFrame:
    """Train `cell` and record |g| histograms per layer: before and after ASGC's clipping for an
    ASGC cell, the raw gradients otherwise (tag = the cell's method)."""
    data = worker_data(cell.data, data_root)
    state: dict = {}

    def on_step(it: int, loss, opt) -> None:
        if "hist" not in state:
            state["hist"] = GradientHistogram.of_optimizer(opt, every=every)
            if hasattr(opt, "on_clip"):  # ASGC: from step 2 on, g_t before and after clipping
                opt.on_clip = lambda raw, clipped: (
                    state["hist"].record_tensors(opt.steps + 1, raw, "before"),
                    state["hist"].record_tensors(opt.steps + 1, clipped, "after"))
                return
        if not hasattr(opt, "on_clip"):
            state["hist"].record_tensors(it, [p.grad for p in state["hist"].params], "before")

    torch.manual_seed(cell.seed)
    train(cell.train_config(device), data, on_step=on_step)
    method = dict(cell.tags)["method"]
    return state["hist"].frame().assign(method=method)
