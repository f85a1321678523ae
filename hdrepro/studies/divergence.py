"""Why BetterCNN's SGD-HD and SGDN-HD diverge at the papers' α₀ = β = 1e-3.

The reproducibility report found BetterCNN's results at the original hyperparameters similar to
the paper's; our grid cell and Figure 1's runs there diverge. Three explanations are tested,
each on the same seeds, so that the runs pair (same initial weights, same minibatch order):

- *Chance.* Divergence at large β is chaotic, so one run says little. The probability over
  seeds, with Wilson's interval, comes from ``grid_seeds_bettercnn.py``; here the traces.
- *Precision.* Every run is repeated in float64 (``TrainConfig.dtype``). If float32 rounding
  caused the blow-up, the float64 twin of a diverged run would survive.
- *Device.* The same seeds ran in §4's 10-seed grid on a GPU, cells batched; where those runs
  and these one-at-a-time CPU runs part, rounding alone separates them (the GPU's convolutions
  may run in TF32, torch's default for cuDNN).
- *Mechanism.* Each run records, step by step, α_t, the gradient norm ‖g_t‖ and the
  hypergradient h_t = −g_t·u_{t−1}, where the additive rule is α_t = α_{t−1} − β h_t. With
  aligned successive gradients, −h_t ≈ ‖g‖² > 0, so α_t grows by about β‖g‖² per step; the trace
  shows whether α_t runs away before the loss does.

The report's own code conventions are not run: its dropout left active at evaluation changes
evaluation only, never a training step (so it cannot start or stop a divergence), and its data
order is one more draw of the minibatch order, which the seeds already vary.

A trace keeps every 10th step and each of the last 100 steps (where a run diverges), so that a
run of 4,700 steps stays a few hundred numbers per series.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import torch

from . import stats
from ..config import check_fields
from ..engine.cells import Identified
from ..engine.data import DataConfig
from ..engine.executors import provenance_columns, worker_data
from ..methods.registry import OptimConfig
from ..engine.train import TrainConfig, train


@dataclass(frozen=True)
class DivergenceCell(Identified):
    optimizer: str
    dtype: str
    seed: int
    epochs: int
    data: DataConfig
    alpha0: float = 1e-3
    beta: float = 1e-3

    def __post_init__(self):
        check_fields(self)

    def train_config(self, device: str) -> TrainConfig:
        return TrainConfig("bettercnn", self.data, OptimConfig(self.optimizer, self.alpha0,
                                                               self.beta),
                           self.epochs, seed=self.seed, device=device, log_every=10 ** 9,
                           progress=False, dtype=self.dtype)

    def labels(self) -> dict:
        return {"cell_id": self.cell_id, "optimizer": self.optimizer, "dtype": self.dtype,
                "seed": self.seed, "epochs": self.epochs, "data": self.data.name,
                "fraction": self.data.fraction, "alpha0": self.alpha0, "beta": self.beta}

    def run(self, device: str, data_root: str) -> dict:
        """Train with a tracer; the final numbers and the thinned trace."""
        data = worker_data(self.data, data_root)
        tracer = Tracer()
        f = train(self.train_config(device), data, on_step=tracer).final
        finite = [r for r in tracer.rows if all(map(math.isfinite, r[1:]))]
        return {"diverged": f["diverged"], "diverged_at": f["diverged_at"],
                "train_loss": f["train_loss"], "iterations": f["iterations"],
                "seconds": f["seconds"], "last_finite_alpha": f["last_finite_alpha"],
                "alpha_max": max((r[1] for r in finite), default=math.nan),
                "grad_norm_max": max((r[2] for r in finite), default=math.nan),
                "trace": tracer.thinned(EVERY, TAIL), **provenance_columns(device, data)}


@dataclass(frozen=True)
class DivergenceSpec:
    optimizers: tuple[str, ...] = ("sgd-hd", "sgdn-hd")
    dtypes: tuple[str, ...] = ("float32", "float64")
    seeds: tuple[int, ...] = tuple(range(1, 11))
    epochs: int = 20
    data: DataConfig = field(default_factory=lambda: DataConfig("mnist", 0.1))

    def __post_init__(self):
        check_fields(self)
        if not self.seeds or not self.optimizers or not self.dtypes:
            raise ValueError("a divergence study needs seeds, optimizers and dtypes (got "
                             f"{self.seeds}, {self.optimizers}, {self.dtypes})")

    def cells(self) -> list[DivergenceCell]:
        """Seeds outermost, so that a run cut off part way holds whole float32/float64 pairs."""
        return [DivergenceCell(o, d, s, self.epochs, self.data)
                for s in self.seeds for o in self.optimizers for d in self.dtypes]


class Tracer:
    """``train``'s on_step hook: α_t, ‖g_t‖, h_t and the minibatch loss after every step."""

    def __init__(self):
        self.rows: list[tuple[int, float, float, float, float]] = []

    def __call__(self, it: int, loss: torch.Tensor, opt) -> None:
        group = opt.param_groups[0]
        grads = [p.grad for p in group["params"] if p.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads]))) if grads else math.nan
        self.rows.append((it, float(group["lr"]), norm, float(group.get("hd_h", math.nan)),
                          float(loss.detach())))

    def thinned(self, every: int, tail: int) -> dict[str, list]:
        last = self.rows[-1][0] if self.rows else 0
        keep = [r for r in self.rows if r[0] % every == 0 or r[0] > last - tail or r[0] == 1]
        cols = ("iteration", "alpha", "grad_norm", "h", "loss")
        return {c: [r[i] for r in keep] for i, c in enumerate(cols)}


EVERY, TAIL = 10, 100   # a trace keeps every 10th step and each of the last 100


def pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """float32 against float64, seed by seed: whether each diverged and where."""
    if frame.empty:
        return pd.DataFrame()
    wide = frame.set_index(["optimizer", "seed", "dtype"])[["diverged", "diverged_at"]] \
        .unstack("dtype")
    if ("diverged", "float64") not in wide or ("diverged", "float32") not in wide:
        return pd.DataFrame()
    wide = wide.dropna(subset=[("diverged", "float32"), ("diverged", "float64")])
    return pd.DataFrame({
        "diverged32": wide[("diverged", "float32")].astype(bool),
        "diverged64": wide[("diverged", "float64")].astype(bool),
        "at32": wide[("diverged_at", "float32")],
        "at64": wide[("diverged_at", "float64")]}).reset_index()


def precision_verdict(p: pd.DataFrame) -> tuple[str, dict]:
    """Is float32 rounding the cause? Among the seeds whose float32 run diverged, the share whose
    float64 twin also diverged (Wilson's interval): "not the cause" when it lies above 1/2, "the
    cause" when below, "undecided" when it contains 1/2 or no float32 run diverged."""
    d32 = p[p.diverged32] if len(p) else p
    share = stats.proportion(int(d32.diverged64.sum()), len(d32)) if len(d32) else \
        stats.proportion(0, 0)
    both = {"float32": stats.proportion(int(p.diverged32.sum()), len(p)),
            "float64": stats.proportion(int(p.diverged64.sum()), len(p)), "twins": share}
    if share.n == 0:
        return "undecided", both
    return ("not the cause" if share.low > 0.5 else "the cause" if share.high < 0.5
            else "undecided"), both


def runaway(frame: pd.DataFrame, factor: float = 10.0) -> pd.DataFrame:
    """Per diverged run: α_t's largest finite value against α₀, and how many steps before the
    loss turned non-finite α_t first exceeded `factor`·α₀ (None when it never did)."""
    rows = []
    for r in frame[frame.diverged.astype(bool)].itertuples():
        t = r.trace
        above = [i for i, a in zip(t["iteration"], t["alpha"])
                 if math.isfinite(a) and a > factor * r.alpha0]
        rows.append({"optimizer": r.optimizer, "dtype": r.dtype, "seed": r.seed,
                     "diverged_at": r.diverged_at, "alpha_max": r.alpha_max,
                     "grad_norm_max": r.grad_norm_max,
                     "lead": (r.diverged_at - above[0]) if above else None})
    return pd.DataFrame(rows)
