"""HDM's headline claim on a deterministic convex problem: that HDM with heavy-ball momentum often
matches L-BFGS (Chu et al., ICML 2025).

Problem: full-batch multinomial logistic regression (784 → 10, weights and biases, L2 λ = 1e-4
on the weights) on a seeded subset of the MNIST training images, in float64, from zero weights.
Methods, each with a budget of gradient evaluations (one evaluation = f and ∇f on the whole
subset):

- ``gd``: gradient descent at 1/L, with L = ‖X‖²/(2n) + λ, a bound on the gradient's Lipschitz
  constant (‖X‖ by power iteration);
- ``hd``: SGD-HD run full-batch from α₀ = 1/L, at each β of the spec (the best β per seed, by
  evaluations to the tolerance, is taken: a choice on the objective itself, which favours HD);
- ``hdm-best``: :class:`hdrepro.optim.HDMBest` as its authors run it, told L and ``convex``;
- ``lbfgs``: torch.optim.LBFGS, history 10, strong-Wolfe line search;
- ``optimum``: L-BFGS with four times the budget, which fixes f* (the least f any run of the
  seed reaches).

Per run, the evaluations until f − f* ≤ tol·(f(0) − f*) are counted (not reached: censored at
the budget). Verdict: the ratio of HDM-Best's evaluations to L-BFGS's, per seed, as a geometric
mean with a 95% t interval on the log ratios; HDM-Best **matches** L-BFGS when the interval lies
within [1/2, 2], is **slower** or **faster** when it lies entirely above or below 1 outside that
band, and the comparison is **inconclusive** otherwise.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from . import stats
from ..config import check_fields
from ..engine.cells import Identified
from ..engine.data import DataConfig
from ..engine.executors import provenance_columns, worker_data
from ..optim import SGDHD, HDMBest

METHODS = ("gd", "hd", "hdm-best", "lbfgs", "optimum")
NAMES = {"gd": "GD (1/L)", "hd": "SGD-HD (full batch)", "hdm-best": "HDM-Best",
         "lbfgs": "L-BFGS", "optimum": "L-BFGS, 4× budget (f*)"}
LAMBDA = 1e-4
BAND = 2.0   # "matches" means within a factor of 2


@dataclass(frozen=True)
class ConvexCell(Identified):
    """One method on one seed's subset."""
    method: str
    seed: int
    size: int
    budget: int
    beta: float = 0.0     # SGD-HD's β; 0 for the others
    data: DataConfig = field(default_factory=lambda: DataConfig("mnist"))

    def __post_init__(self):
        check_fields(self)
        if self.method not in METHODS:
            raise ValueError(f"Invalid method {self.method!r}; choose one of {METHODS}")

    def labels(self) -> dict:
        return {"cell_id": self.cell_id, "method": self.method, "seed": self.seed,
                "size": self.size, "budget": self.budget, "beta": self.beta,
                "data": self.data.name}

    def run(self, device: str, data_root: str) -> dict:
        """Its curve of least f against evaluations (thinned) and its last f; float64 on the CPU
        whatever the device (the worker's threads are what matter)."""
        data = worker_data(self.data, data_root)
        problem = Problem(*subset(data, self))
        t0 = time.perf_counter()
        curve = run_method(self, problem)
        seconds = time.perf_counter() - t0
        every = max(1, len(curve) // THIN)
        kept = sorted(set(range(0, len(curve), every)) | {len(curve) - 1})
        return {"evals": [k + 1 for k in kept], "best_f": [curve[k] for k in kept],
                "final_f": curve[-1], "diverged": not math.isfinite(problem.values[-1]),
                "seconds": seconds, **provenance_columns("cpu", data)}


@dataclass(frozen=True)
class ConvexSpec:
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    size: int = 5000
    budget: int = 500
    hd_betas: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
    tol: float = 1e-4
    data: DataConfig = field(default_factory=lambda: DataConfig("mnist"))

    def __post_init__(self):
        check_fields(self)
        if not self.seeds or self.size < 10 or self.budget < 2:
            raise ValueError(f"a convex study needs seeds, size >= 10 and budget >= 2 (got "
                             f"{self.seeds}, {self.size}, {self.budget})")

    def cells(self) -> list[ConvexCell]:
        out = []
        for seed in self.seeds:
            cell = lambda m, b=0.0, budget=self.budget: ConvexCell(  # noqa: E731
                m, seed, self.size, budget, b, self.data)
            out += [cell("optimum", budget=4 * self.budget), cell("lbfgs"), cell("hdm-best"),
                    cell("gd")] + [cell("hd", b) for b in self.hd_betas]
        return out


class Problem:
    """f(W, b) = mean cross-entropy of softmax(XW + b) + λ/2 ‖W‖², recording every evaluation."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self.values: list[float] = []     # f at each evaluation, in order
        self.params = [torch.zeros(x.shape[1], 10, dtype=x.dtype, requires_grad=True),
                       torch.zeros(10, dtype=x.dtype, requires_grad=True)]

    def closure(self) -> torch.Tensor:
        """f at the current parameters, with their gradients (the closure protocol)."""
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
            w, b = self.params
            loss = torch.nn.functional.cross_entropy(self.x @ w + b, self.y) \
                + 0.5 * LAMBDA * (w * w).sum()
            loss.backward()
        self.values.append(float(loss.detach()))
        return loss.detach()

    def lipschitz(self) -> float:
        """‖[X, 1]‖²/(2n) + λ, the norm (largest singular value) by power iteration."""
        a = torch.cat([self.x, torch.ones(len(self.x), 1, dtype=self.x.dtype)], 1)
        v = torch.ones(a.shape[1], dtype=a.dtype)
        for _ in range(100):
            v = a.T @ (a @ v)
            v = v / v.norm()
        return float((a @ v).norm() ** 2) / (2 * len(a)) + LAMBDA


def subset(data, cell: ConvexCell) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's `size` training images (flattened, float64) and labels."""
    gen = torch.Generator().manual_seed(cell.seed)
    idx = torch.randperm(len(data.train), generator=gen)[:cell.size]
    return (data.train.x[idx].reshape(cell.size, -1).to(torch.float64),
            data.train.y[idx])


def run_method(cell: ConvexCell, problem: Problem) -> list[float]:
    """The least f found after each gradient evaluation (every method evaluates f and ∇f
    together; a line search's or a null step's trial points count), within the budget; it
    stops early at a non-finite f, and L-BFGS stops on its own once no descent direction is
    left (converged to rounding)."""
    L = problem.lipschitz()
    if cell.method in ("lbfgs", "optimum"):
        # one call runs the whole budget: called once per iteration, L-BFGS would re-evaluate
        # the point its line search has just evaluated; no early stop on small changes
        opt = torch.optim.LBFGS(problem.params, lr=1, max_iter=cell.budget,
                                max_eval=cell.budget, history_size=10, tolerance_grad=0.0,
                                tolerance_change=0.0, line_search_fn="strong_wolfe")
        opt.step(problem.closure)
    elif cell.method == "hdm-best":
        opt = HDMBest(problem.params, L=L, convex=True, max_iter=cell.budget)
    else:
        opt = SGDHD(problem.params, lr=1 / L,
                    hypergrad_lr=cell.beta if cell.method == "hd" else 0.0)
    while (cell.method not in ("lbfgs", "optimum") and len(problem.values) < cell.budget
           and all(map(math.isfinite, problem.values[-1:]))):
        if isinstance(opt, SGDHD):
            problem.closure()
            opt.step()
        else:
            opt.step(problem.closure)
    values = np.array(problem.values[:cell.budget])
    return np.minimum.accumulate(np.where(np.isfinite(values), values, np.inf)).tolist()


THIN = 200   # a stored curve keeps about this many points


def evals_to(frame: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Per (seed, method): evaluations until f − f* ≤ tol (f(0) − f*), NaN if never within the
    budget; f* is the least f any run of the seed reached. SGD-HD keeps its best β per seed."""
    rows = []
    for seed, runs in frame.groupby("seed"):
        f_star = float(runs.final_f.min())
        f0 = float(runs.best_f.iloc[0][0])
        target = f_star + tol * (f0 - f_star)
        for r in runs.itertuples():
            hit = [e for e, f in zip(r.evals, r.best_f) if f <= target]
            rows.append({"seed": seed, "method": r.method, "beta": r.beta, "budget": r.budget,
                         "evals": hit[0] if hit else math.nan, "gap": r.final_f - f_star})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    hd = out[out.method == "hd"].sort_values(["evals", "gap"]).groupby("seed").head(1)
    return pd.concat([out[out.method != "hd"], hd]).sort_values(["seed", "method"])


def verdict(table: pd.DataFrame) -> tuple[str, stats.Interval]:
    """HDM-Best's evaluations over L-BFGS's, per seed (a run that never reached the tolerance
    counts its budget, which flatters it): the geometric mean with a 95% t interval, and the
    outcome of the module docstring's rule."""
    wide = table.pivot(index="seed", columns="method", values="evals")
    budgets = table.pivot(index="seed", columns="method", values="budget")
    if "hdm-best" not in wide or "lbfgs" not in wide or wide.empty:
        return "not tested", stats.Interval(math.nan, math.nan, math.nan, 0)
    ratio = np.log(wide["hdm-best"].fillna(budgets["hdm-best"])
                   / wide["lbfgs"].fillna(budgets["lbfgs"]))
    m = stats.mean(ratio.to_numpy())
    interval = stats.Interval(math.exp(m.estimate), math.exp(m.low), math.exp(m.high), m.n)
    if 1 / BAND <= interval.low and interval.high <= BAND:
        return "matches", interval
    if interval.low > 1:
        return "slower", interval
    if interval.high < 1:
        return "faster", interval
    return "inconclusive", interval
