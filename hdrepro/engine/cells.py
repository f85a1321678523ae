"""The cell: the one unit of work of every study, and how cells run.

A cell (the :class:`Cell` protocol) says what it is (``labels()``, the columns of its row), has
an identity (``cell_id``: :class:`Identified` gives every study's cells the same one, a digest of
their fields), and does its work (``run(device, data_root)``, the rest of its row). Any list of
cells runs on the executors of :mod:`hdrepro.engine.executors` through :func:`run_cells`, one
JSON line per cell in a :class:`hdrepro.engine.results.GridStore`, so a killed study resumes
without redoing finished cells. The grids' cells also train many at once
(:mod:`hdrepro.engine.batched`).

:class:`RunCell` is the plain training run. The extension experiments (optimizer family, learning-rate-free rivals, ASGC, Adam's ε) are lists
of :class:`RunCell`; each row keeps the run's per-epoch curves, for the summaries that need them
(time to a target accuracy, stability over the last epochs). Figure 1 keeps every run's iteration
log too (α_t, the training loss): it is a list of :class:`LoggedRun`, stored in a
:class:`hdrepro.engine.results.RunStore` by :func:`run_logged` on the same executors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Protocol

import pandas as pd

from ..config import check_fields, config_id
from .data import DataConfig
from .executors import RunOptions, provenance_columns, run_pending, worker_data, worker_device
from .results import GridStore, RunStore
from ..methods.registry import OptimConfig
from .train import TrainConfig, train

# A 10-class run whose test error stays this high learnt nothing: it collapsed to (about) one class
STUCK_ERROR = 0.85


def with_lost(frame: pd.DataFrame, error: str = "test_error") -> pd.DataFrame:
    """Result rows with ``diverged`` as a bool, ``stuck`` (finite, ``error`` ≥ STUCK_ERROR) and
    ``lost`` (either): the one rule by which every study counts a run as lost."""
    f = frame.assign(diverged=frame["diverged"].astype(bool))
    f["stuck"] = ~f["diverged"] & (f[error] >= STUCK_ERROR)
    f["lost"] = f["diverged"] | f["stuck"]
    return f


class Cell(Protocol):
    """What every study's cell is."""

    @property
    def cell_id(self) -> str: ...   # its name in a store: a rerun skips the ids stored

    def labels(self) -> dict: ...   # the columns that say what it is

    def run(self, device: str, data_root: str) -> dict: ...   # do it: the rest of its row


class Identified:
    """The identity of a cell that is a frozen dataclass: 16 hex digits of the SHA-1 of its
    fields (:func:`hdrepro.config.config_id`), the same for every study."""

    @property
    def cell_id(self) -> str:
        return config_id(self)


def final_columns(result) -> dict:
    """The columns every trained cell's row has, from a :class:`hdrepro.engine.train.RunResult`:
    diverged, diverged_at, the final losses and errors, iterations, seconds."""
    f = result.final
    return {k: f[k] for k in ("diverged", "diverged_at", "train_loss", "val_loss", "val_error",
                              "test_error", "iterations", "seconds")}


@dataclass(frozen=True)
class RunCell(Identified):
    """One run. ``tags`` are labels for the summaries (e.g. ``(("setting", "recommended"),)``);
    they are part of the cell's identity."""
    experiment: str
    model: str
    data: DataConfig
    optim: OptimConfig
    epochs: int
    seed: int = 1
    batch_size: int = 128
    tags: tuple[tuple[str, object], ...] = ()
    stop_below: float | None = None   # TrainConfig.stop_below: stop at this minibatch loss

    def __post_init__(self):
        check_fields(self)

    def train_config(self, device: str) -> TrainConfig:
        return TrainConfig(self.model, self.data, self.optim, self.epochs, self.batch_size,
                           seed=self.seed, device=device, log_every=10 ** 9, progress=False,
                           stop_below=self.stop_below)

    def labels(self) -> dict:
        o = self.optim
        return {"cell_id": self.cell_id, "experiment": self.experiment, "model": self.model,
                "data": self.data.name, "fraction": self.data.fraction,
                "validation": self.data.validation, "optimizer": o.name,
                "alpha0": o.lr, "beta": o.hypergrad_lr, "rule": o.rule,
                "options": json.dumps(dict(o.options), sort_keys=True), "epochs": self.epochs,
                "seed": self.seed, "batch_size": self.batch_size, **dict(self.tags)}


    def run(self, device: str, data_root: str) -> dict:
        """Train; the final numbers and the per-epoch curves."""
        data = worker_data(self.data, data_root)
        res = train(self.train_config(device), data)
        f = res.final
        return {**final_columns(res), "seconds_per_step": f["seconds"] / max(f["iterations"], 1),
                "curve_val_acc": [e["val_acc"] for e in res.epochs],
                "curve_train_loss": [e["train_loss"] for e in res.epochs],
                "curve_seconds": [e["seconds"] for e in res.epochs],
                **({"reached_at": f["reached_at"]} if "reached_at" in f else {}),
                **provenance_columns(device, data)}


def run_cells(cells: tuple[Cell, ...], device: str, data_root: str,
              threads: int | None = None) -> list[dict]:
    """Run the cells of one task, in any worker; one row per cell: its labels and what its run
    returned."""
    dev = worker_device(device, threads)
    return [{**cell.labels(), **cell.run(dev, data_root)} for cell in cells]


def run(cells: list[Cell], store: GridStore, options: RunOptions, desc: str) -> pd.DataFrame:
    """Run the cells not yet in `store`; return every stored row of these cells."""
    run_pending(cells, run_cells, store, options, desc)
    frame = store.frame()
    if frame.empty:
        return frame
    return frame[frame["cell_id"].isin({c.cell_id for c in cells})].reset_index(drop=True)


@dataclass(frozen=True)
class LoggedRun:
    """One run whose iteration and epoch logs are kept, stored under ``run_id`` with ``labels``
    beside each of its rows. ``config.device`` is overridden by the executor's device."""
    run_id: str
    labels: tuple[tuple[str, object], ...]
    config: TrainConfig

    def __post_init__(self):
        check_fields(self)

    @property
    def cell_id(self) -> str:  # the name hdrepro.engine.executors.run_pending skips finished work by
        return self.run_id


def train_logged(runs: tuple[LoggedRun, ...], device: str, data_root: str,
                 threads: int | None = None) -> list[tuple[str, dict, object]]:
    """Train the runs of one task; (run_id, labels, RunResult) each, for RunStore.append."""
    dev = worker_device(device, threads)
    out = []
    for r in runs:
        cfg = replace(r.config, device=dev, progress=False)
        out.append((r.run_id, dict(r.labels), train(cfg, worker_data(cfg.data, data_root))))
    return out


def run_logged(runs: list[LoggedRun], store: RunStore, options: RunOptions, desc: str,
               redo: frozenset = frozenset()) -> None:
    """Run the runs not yet in `store`, and those of `redo` again, on the executor of
    `options`, each stored as it ends (a rerun replacing its earlier rows then)."""
    run_pending(runs, train_logged, store, options, desc, redo)
