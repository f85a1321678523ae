"""Grid searches over α₀ × β (× γ) of the HD optimizers beside their base optimizers, as in the
reproducibility report's Figures 2-5: the cells, how they are grouped into tasks (run on the
executors of :mod:`hdrepro.engine.executors`, resumably), and the grids' summaries.

A grid (``GridSpec``) expands into cells (``Cell``): one per HD optimizer × rule × α₀ × β × γ ×
seed, plus the baseline row, the base optimizer at each α₀ and seed. Cells of the same model,
base optimizer, rule and seed can be trained together (``batch`` > 0) by
:func:`hdrepro.engine.batched.train_cells`; ``batch=0`` trains each through :func:`hdrepro.engine.train.train`.
Every finished cell is appended to a :class:`~hdrepro.engine.results.GridStore` as soon as its task
returns; running the same grid again skips the cells already there. A diverged cell (NaN/inf
loss) is a result like any other, stored alike by both training paths: ``diverged_at`` and
``iterations`` are the step it diverged at, the final losses, error, α and β are NaN, and
``last_finite_alpha`` is α after its last finite step. A cell that was never stored is missing,
which the summaries below count apart from diverged cells.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import pandas as pd

from ..config import check_fields, finite_nonneg
from ..engine import models
from ..engine.cells import Identified
from ..engine.batched import CellHParams, train_cells
from ..engine.data import DataConfig
from ..engine.executors import (RunOptions, provenance_columns, run_work, worker_data,
                                worker_device, worker_threads)
from ..engine.results import GridStore
from ..engine.train import TrainConfig, resolve_device, train
from ..methods.registry import OptimConfig
from ..optim import RULES, SECOND_ORDER
from . import stats

#: The base optimizer of each HD optimizer: the grid's top (baseline) row.
BASE_OF = {"sgd-hd": "sgd", "sgdn-hd": "sgdn", "adam-hd": "adam"}


@dataclass(frozen=True)
class Cell(Identified):
    """One grid cell: one training run. β = γ = 0 for the baseline optimizers."""
    model: str
    optimizer: str
    alpha0: float
    beta: float
    gamma: float
    rule: str
    seed: int
    epochs: int
    batch_size: int
    data: DataConfig
    second_order: str = "derived"   # β's update when γ > 0 (hdrepro.optim._hypergrad)

    def __post_init__(self):
        check_fields(self)

    @property
    def baseline(self) -> bool:
        return self.optimizer in BASE_OF.values()

    @property
    def kind(self) -> str:
        """The base optimizer ("sgd", "sgdn", "adam")."""
        return BASE_OF.get(self.optimizer, self.optimizer)

    def train_config(self, device: str) -> TrainConfig:
        optim = OptimConfig(self.optimizer, self.alpha0, self.beta, self.gamma, rule=self.rule,
                            second_order=self.second_order)
        return TrainConfig(self.model, self.data, optim, self.epochs, self.batch_size,
                           seed=self.seed, device=device, log_every=10 ** 9, progress=False)

    def labels(self) -> dict:
        d = asdict(self)
        d["data"] = self.data.name
        d["fraction"] = self.data.fraction
        d["subset"] = self.data.subset
        return {"cell_id": self.cell_id, "baseline": self.baseline, **d}


@dataclass(frozen=True)
class GridSpec:
    """α₀ × β (× γ) for some HD optimizers on one model, with the base optimizers' row."""
    name: str
    model: str
    optimizers: tuple[str, ...]
    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    epochs: int
    data: DataConfig
    gammas: tuple[float, ...] = (0.0,)
    rules: tuple[str, ...] = ("additive",)
    seeds: tuple[int, ...] = (1,)
    batch_size: int = 128
    #: β's update where γ > 0: "derived" (descent) and/or "printed" (the report's ascent)
    second_orders: tuple[str, ...] = ("derived",)

    def __post_init__(self):
        check_fields(self)
        if self.model not in models.MODELS:
            raise ValueError(f"Unknown model {self.model!r}; choose one of {sorted(models.MODELS)}")
        unknown = [o for o in self.optimizers if o not in BASE_OF]
        if unknown or not self.optimizers:
            raise ValueError(f"Grid optimizers must be some of {sorted(BASE_OF)}, got "
                             f"{list(self.optimizers)}")
        for rule in self.rules:
            if rule not in RULES:
                raise ValueError(f"Invalid rule: {rule!r}; choose from {RULES}")
        bad = [s for s in self.second_orders if s not in SECOND_ORDER]
        if bad or not self.second_orders:
            raise ValueError(f"Invalid second_orders {self.second_orders}; choose some of "
                             f"{SECOND_ORDER}")
        for name, values in (("α₀ (alphas)", self.alphas), ("β (betas)", self.betas),
                             ("γ (gammas)", self.gammas)):
            if not values:
                raise ValueError(f"The grid needs at least one {name}")
            for v in values:
                if not finite_nonneg(v):
                    raise ValueError(f"Invalid {name}: {v} (must be finite and >= 0)")
        if self.epochs < 1 or self.batch_size < 1 or not self.seeds:
            raise ValueError(f"epochs and batch_size must be >= 1 and seeds non-empty (got "
                             f"{self.epochs}, {self.batch_size}, {self.seeds})")

    def axes(self) -> "GridAxes":
        """The grid's axes, for summaries that count missing cells."""
        return GridAxes(self.optimizers, self.rules, self.gammas, self.alphas, self.betas,
                        self.seeds, self.second_orders)

    def cells(self) -> list[Cell]:
        common = dict(model=self.model, epochs=self.epochs, batch_size=self.batch_size,
                      data=self.data)
        out = []
        for seed in self.seeds:
            for hd in self.optimizers:
                for a in self.alphas:
                    out.append(Cell(optimizer=BASE_OF[hd], alpha0=a, beta=0.0, gamma=0.0,
                                    rule="additive", seed=seed, **common))
                for rule in self.rules:
                    for g in self.gammas:
                        for so in self._second_orders(g):
                            out += [Cell(optimizer=hd, alpha0=a, beta=b, gamma=g, rule=rule,
                                         seed=seed, second_order=so, **common)
                                    for b in self.betas for a in self.alphas]
        return out

    def _second_orders(self, gamma: float) -> tuple[str, ...]:
        # β's update rule matters only where β is learned
        return self.second_orders if gamma else ("derived",)




def auto_batch(model: str, device: str) -> int:
    """Cells per batched run when the user does not say. On a GPU batching wins on every model;
    on CPU it wins only where the one-cell step is overhead-bound (LogReg), while the MLNN and
    BetterCNN steps are compute- and memory-bound and run slower per cell batched, so they run
    one cell at a time there (measured ratios: bench/bench_grid.py, REPORT.md §8)."""
    if resolve_device(device).type == "cuda":
        return 256
    return 128 if model == "logreg" else 0


def tasks(cells: Iterable[Cell], batch: int) -> list[tuple[Cell, ...]]:
    """Group cells that can share one batched run (same model, base optimizer, rule, β's update,
    seed, epochs, batch size and data), in chunks of at most `batch`; one cell per task if batch=0."""
    cells = list(cells)
    if batch == 0:
        return [(c,) for c in cells]
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        rule = "additive" if c.baseline else c.rule  # baseline cells ride with the additive ones
        key = (c.model, c.kind, rule, c.second_order, c.seed, c.epochs, c.batch_size, c.data)
        groups.setdefault(key, []).append(c)
    out = []
    for group in groups.values():
        out += [tuple(group[i:i + batch]) for i in range(0, len(group), batch)]
    return out




def run_task(cells: tuple[Cell, ...], batched: bool, device: str, data_root: str,
             threads: int | None = None) -> list[dict]:
    """Train the cells of one task; return one result row per cell. Runs in any worker."""
    dev = worker_device(device, threads)
    data = worker_data(cells[0].data, data_root)
    if batched:
        c0 = cells[0]
        rule = next((c.rule for c in cells if not c.baseline), "additive")
        hps = [CellHParams(c.alpha0, c.beta, c.gamma) for c in cells]
        results = train_cells(c0.model, c0.kind, hps, data, epochs=c0.epochs,
                              batch_size=c0.batch_size, seed=c0.seed, rule=rule, device=dev,
                              second_order=c0.second_order)
    else:
        results = [_one_cell(c, data, dev) for c in cells]
    extra = provenance_columns(dev, data)
    return [{**c.labels(), **r, **extra} for c, r in zip(cells, results)]






def _one_cell(cell: Cell, data, device: str) -> dict:
    res = train(cell.train_config(device), data)
    f = res.final
    alpha, beta = (res.iterations[-1]["alpha"], res.iterations[-1]["beta"]) \
        if res.iterations and not f["diverged"] else (math.nan, math.nan)
    return {"diverged": f["diverged"], "diverged_at": f["diverged_at"],
            "train_loss": f["train_loss"], "val_loss": f["val_loss"],
            "test_error": f["test_error"], "final_alpha": alpha, "final_beta": beta,
            "last_finite_alpha": f["last_finite_alpha"], "iterations": f["iterations"],
            "seconds": f["seconds"], "cells_in_batch": 1}










@dataclass(frozen=True)
class GridRun:
    """What :func:`run_grid` found and did: the grid's cell count, the cells it ran (those not
    stored before), the cells per batched run, and every stored row afterwards (None in the
    plan it hands to ``before``)."""
    cells: int
    ran: int
    batch: int
    frame: pd.DataFrame | None = None


def run_grid(spec: GridSpec, store: GridStore, options: RunOptions,
             before: Callable[[GridRun], None] | None = None) -> GridRun:
    """Run every cell of `spec` not yet in `store`, appending each finished cell. ``before``,
    if given, sees the plan first (a driver records it, so that a run cut off still says what it
    expected). The store's writer lock is held throughout: a second grid on the same store is
    refused (:class:`hdrepro.engine.results.StoreLocked`) instead of computing the same cells."""
    cells = spec.cells()
    batch = auto_batch(spec.model, options.device) if options.batch is None else options.batch
    with store.writing():
        done = store.finished()
        todo = [c for c in cells if c.cell_id not in done]
        plan = GridRun(len(cells), len(todo), batch)
        if before is not None:
            before(plan)
        if todo:
            submit = functools.partial(run_task, batched=batch > 0, device=options.device,
                                       data_root=options.data_root,
                                       threads=worker_threads(options))
            run_work(tasks(todo, batch), submit, store, options, len(cells), f"grid {spec.name}")
        return GridRun(plan.cells, plan.ran, batch, store.frame())










# -- summaries: what the heatmaps and REPORT.md show ---------------------------------------------
@dataclass(frozen=True)
class GridAxes:
    """The cells a grid should hold, by axis: what a summary measures completeness against.
    ``GridSpec.axes()`` gives them; without one, :func:`panels` takes the values seen in the
    stored rows (then a row or column missing from every panel goes unseen)."""
    optimizers: tuple[str, ...]
    rules: tuple[str, ...]
    gammas: tuple[float, ...]
    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    seeds: tuple[int, ...]
    second_orders: tuple[str, ...] = ("derived",)

    def __post_init__(self):
        check_fields(self)

    @classmethod
    def seen_in(cls, frame: pd.DataFrame) -> "GridAxes":
        hd = with_second_order(frame[~frame.baseline.astype(bool)])
        return cls(tuple(dict.fromkeys(hd.optimizer)), tuple(dict.fromkeys(hd.rule)),
                   tuple(sorted(set(hd.gamma))), tuple(sorted(set(frame.alpha0))),
                   tuple(sorted(set(hd.beta))), tuple(sorted(set(frame.seed))),
                   tuple(dict.fromkeys(hd.second_order)) or ("derived",))


def with_second_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows stored before β's update had a choice were all "derived"."""
    if "second_order" not in frame:
        return frame.assign(second_order="derived")
    return frame.assign(second_order=frame["second_order"].fillna("derived"))


@dataclass
class Panel:
    """One heatmap: rows = the baseline then each β, columns = α₀, values = final-epoch mean
    training loss over the converged stored seeds. A NaN value is either a cell whose stored
    seeds all diverged or a cell with nothing stored: ``stored`` tells them apart."""
    optimizer: str
    rule: str
    gamma: float
    values: pd.DataFrame    # index: "baseline" then β; columns: α₀
    worse: pd.DataFrame     # True where round(HD, 2) > round(baseline at that α₀, 2)
    diverged: pd.DataFrame  # fraction of the stored seeds diverged (NaN: nothing stored)
    stored: pd.DataFrame    # seeds stored per cell (0: the cell is missing)
    seeds: int = 1          # seeds expected per cell
    second_order: str = "derived"   # β's update where γ > 0

    @property
    def missing(self) -> pd.DataFrame:
        """True where no seed of the cell is stored."""
        return self.stored.eq(0)


def seed_means(frame: pd.DataFrame, metric: str = "train_loss") -> pd.DataFrame:
    """Per cell (over seeds): the metric's mean over converged seeds, the diverged fraction and
    the number of seeds stored."""
    keys = ["optimizer", "rule", "second_order", "alpha0", "beta", "gamma", "baseline"]
    g = with_second_order(frame).assign(diverged=frame.diverged.astype(bool)).groupby(
        keys, dropna=False)
    out = g[metric].mean().to_frame(metric)
    out["diverged_fraction"] = g["diverged"].mean()
    out["seeds"] = g["seed"].nunique()
    return out.reset_index()


def panels(frame: pd.DataFrame, metric: str = "train_loss",
           axes: GridAxes | None = None) -> list[Panel]:
    """One Panel per HD optimizer × rule × γ of the grid, every expected cell present (those
    with nothing stored marked missing). `axes` says which cells are expected (default: the
    values seen in `frame`)."""
    if frame.empty and axes is None:
        return []
    axes = axes or GridAxes.seen_in(frame)
    means = seed_means(frame, metric) if not frame.empty else pd.DataFrame(
        columns=["optimizer", "rule", "second_order", "alpha0", "beta", "gamma", "baseline",
                 metric, "diverged_fraction", "seeds"])
    base = means[means.baseline.astype(bool)]
    hd = means[~means.baseline.astype(bool)]
    alphas, betas = sorted(axes.alphas), sorted(axes.betas)
    out = []
    for opt in axes.optimizers:
        b = base[base.optimizer == BASE_OF[opt]].set_index("alpha0").reindex(alphas)
        for rule in axes.rules:
            for gamma in axes.gammas:
                for so in axes.second_orders if gamma else ("derived",):
                    cells = hd[(hd.optimizer == opt) & (hd.rule == rule) & (hd.gamma == gamma)
                               & (hd.second_order == so)]
                    out.append(_panel(opt, rule, gamma, cells, b, alphas, betas, metric,
                                      len(axes.seeds), so))
    order = list(BASE_OF)
    return sorted(out, key=lambda p: (p.rule != "additive", p.second_order != "derived",
                                      p.gamma, order.index(p.optimizer)))


def _panel(opt, rule, gamma, cells, base, alphas, betas, metric, seeds, second_order) -> Panel:
    def wide(column: str) -> pd.DataFrame:
        grid = cells.pivot(index="beta", columns="alpha0", values=column) if len(cells) else \
            pd.DataFrame()
        grid = grid.reindex(index=betas, columns=alphas).astype(float)
        top = base[column].reindex(alphas).astype(float).to_frame("baseline").T
        return pd.concat([top, grid])

    values = wide(metric)
    worse = values.drop(index="baseline").round(2).gt(values.loc["baseline"].round(2), axis=1)
    worse = pd.concat([pd.DataFrame(False, index=["baseline"], columns=alphas), worse])
    stored = wide("seeds").fillna(0).astype(int)
    return Panel(opt, rule, gamma, values, worse, wide("diverged_fraction"), stored, seeds,
                 second_order)


def panel_stats(panel: Panel) -> dict:
    """Fractions the report quotes, over the HD cells stored: cells diverged in every stored
    seed, and converged cells worse than the baseline at the same α₀. ``expected`` and
    ``missing`` count the cells the grid should have and those with nothing stored; a missing
    cell is never counted as diverged."""
    hd_vals = panel.values.drop(index="baseline")
    stored = panel.stored.drop(index="baseline") > 0
    expected = hd_vals.size
    n = int(stored.to_numpy().sum())
    diverged = int((panel.diverged.drop(index="baseline").eq(1) & stored).to_numpy().sum())
    converged = n - diverged
    worse = int(panel.worse.drop(index="baseline").to_numpy().sum())
    best = hd_vals.stack().dropna()
    best_cell = best.idxmin() if len(best) else (math.nan, math.nan)
    runs = int(panel.stored.to_numpy().sum())
    return {"optimizer": panel.optimizer, "rule": panel.rule, "gamma": panel.gamma,
            "second_order": panel.second_order,
            "cells": n, "expected": expected, "missing": expected - n,
            "runs": runs, "runs_expected": panel.seeds * panel.stored.size,
            "diverged": diverged, "worse": worse,
            "diverged_fraction": diverged / n if n else math.nan,
            "worse_fraction_of_converged": worse / converged if converged else math.nan,
            "best_beta": float(best_cell[0]), "best_alpha0": float(best_cell[1]),
            "best_loss": float(best.min()) if len(best) else math.nan,
            "best_baseline_loss": float(panel.values.loc["baseline"].min())}


def divergence_over_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell (optimizer, rule, α₀, β; the baseline rows included): seeds stored, seeds
    diverged (NaN/inf), the divergence probability with Wilson's 95% interval, and the seeds
    that blew up without NaN (a finite final training loss above ln 10, an untrained model's)."""
    keys = ["optimizer", "rule", "alpha0", "beta"]
    rows = []
    for key, g in frame.groupby(keys, sort=True):
        diverged = g["diverged"].astype(bool)
        k, n = int(diverged.sum()), int(g["seed"].nunique())
        blew = int((~diverged & (g["train_loss"] > math.log(10))).sum())
        rows.append({**dict(zip(keys, key)), "baseline": bool(g["baseline"].iloc[0]),
                     "seeds": n, "diverged": k, "p": stats.proportion(k, n), "blew_up": blew})
    return pd.DataFrame(rows)


