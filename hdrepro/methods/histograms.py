r"""Gradient-magnitude histograms (Silva & Rodriguez, "Fine-tuning adaptive stochastic optimizers:
determining the optimal hyperparameter ε via gradient magnitude histogram analysis") and the
search interval for Adam's ε that they suggest.

:class:`GradientHistogram` counts, every k-th step and per layer, the per-element gradient
magnitudes |g| on log-spaced bins: one ``torch.histc`` of log₁₀|g| per layer, kept on the device
(no host synchronisation while training). Two edge bins make the counts complete: the first holds
|g| < 10^lo (zeros included), the last |g| ≥ 10^hi and non-finite values, so each record's bins
sum to the layer's element count.

The ε interval (:func:`epsilon_interval`). Adam divides by √v̂ + ε, and √v̂ of an element is its
recent root-mean-square gradient, so ε only matters in comparison with the gradient magnitudes.
Below the magnitudes of nearly every element (the q_lo quantile of |g|) ε changes almost no
update: smaller values behave alike, and searching there is wasted. Above nearly every magnitude
(the q_hi quantile) ε dominates the denominator: Adam becomes momentum SGD with step size α/ε,
and larger ε only shrinks that step. The interval worth searching is therefore
[10^⌊log₁₀ q_lo⌋, 10^⌈log₁₀ q_hi⌉]: the quantiles of the histogram gathered early in training
(before ε has shaped the run), widened to whole decades. Defaults q_lo = 5%, q_hi = 95%, fixed
before any ε sweep was run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

#: the range usually searched for Adam's ε (10 decades), against which the interval is compared
DEFAULT_RANGE = (1e-10, 1.0)


@dataclass(frozen=True)
class HistogramBins:
    """log₁₀|g| bins: `per_decade` bins per decade on [lo, hi], plus the two edge bins."""
    lo: float = -12.0
    hi: float = 2.0
    per_decade: int = 4

    def __post_init__(self):
        if not (self.hi > self.lo and self.per_decade >= 1):
            raise ValueError(f"Invalid bins: need hi > lo and per_decade >= 1 (got {self})")

    @property
    def inner(self) -> int:
        return round((self.hi - self.lo) * self.per_decade)

    @property
    def width(self) -> float:
        return 1.0 / self.per_decade

    def edges(self) -> np.ndarray:
        """Edges of the inner bins, in log₁₀|g| (the edge bins are (-∞, lo) and [hi, ∞])."""
        return np.linspace(self.lo, self.hi, self.inner + 1)


class GradientHistogram:
    """Histograms of per-element |g|, per layer, every `every` steps (and at step 1), of a model's
    parameters or of a list of (name, parameter) pairs (see module doc).

    Call :meth:`record` after ``backward()`` (e.g. from train()'s ``on_step``), or
    :meth:`record_tensors` with any tensors (ASGC's ``on_clip`` gives g before and after
    clipping). :meth:`frame` returns the tidy table: one row per (step, tag, layer, bin).
    """

    def __init__(self, model: nn.Module | list[tuple[str, torch.Tensor]],
                 bins: HistogramBins = HistogramBins(), every: int = 10):
        if every < 1:
            raise ValueError(f"Invalid every: {every} (record every k >= 1 steps)")
        named = model.named_parameters() if isinstance(model, nn.Module) else model
        named = [(n, p) for n, p in named if p.requires_grad]
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.bins, self.every = bins, every
        self.records: list[tuple[int, str, torch.Tensor]] = []   # (step, tag, counts[layer, bin])

    @classmethod
    def of_optimizer(cls, opt, bins: HistogramBins = HistogramBins(),
                     every: int = 10) -> "GradientHistogram":
        """For the parameters an optimizer steps (from a training callback, which sees the
        optimizer but not the model); each layer is named by its shape, e.g. "1000×784"."""
        params = [p for g in opt.param_groups for p in g["params"]]
        return cls([("×".join(map(str, p.shape)), p) for p in params], bins, every)

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == 1

    def counts(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """[layer, bin] counts of log₁₀|x| for each tensor; bins 0 and -1 are the edge bins."""
        b = self.bins
        lo, hi = b.lo - b.width, b.hi + b.width          # the edge bins, one width each
        out = []
        for x in tensors:
            z = x.detach().abs().float().log10()
            z = torch.nan_to_num(z, nan=hi, posinf=hi, neginf=lo).clamp_(lo, hi - 1e-6)
            out.append(torch.histc(z, bins=b.inner + 2, min=lo, max=hi))
        return torch.stack(out)

    def record_tensors(self, step: int, tensors: list[torch.Tensor], tag: str = "grad") -> None:
        if self.due(step):
            self.records.append((step, tag, self.counts(tensors)))

    def record(self, step: int, *_) -> None:
        """Record the parameters' current gradients (signature fits train()'s on_step)."""
        if self.due(step):
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            self.records.append((step, "grad", self.counts(grads)))

    def frame(self) -> pd.DataFrame:
        edges = self.bins.edges()
        lo = np.concatenate([[-np.inf], edges])
        hi = np.concatenate([edges, [np.inf]])
        rows = []
        for step, tag, counts in self.records:
            c = counts.cpu().numpy()
            for li, name in enumerate(self.names[:len(c)]):
                for bi in np.flatnonzero(c[li]):
                    rows.append((step, tag, name, lo[bi], hi[bi], int(c[li, bi])))
        return pd.DataFrame(rows, columns=["step", "tag", "layer", "log10_lo", "log10_hi",
                                           "count"])


def quantile(hist: pd.DataFrame, q: float) -> float:
    """The q-quantile of |g| from histogram rows (log-linear inside a bin), ignoring the
    underflow bin (zeros carry no scale) and counting the overflow bin at its lower edge."""
    h = hist[np.isfinite(hist["log10_lo"])].groupby(["log10_lo", "log10_hi"])["count"].sum()
    h = h.sort_index()
    if h.sum() == 0:
        raise ValueError("The histogram holds no non-zero gradient magnitudes")
    cum = h.cumsum().to_numpy() / h.sum()
    i = int(np.searchsorted(cum, q))
    (lo, hi), prev = h.index[i], (cum[i - 1] if i else 0.0)
    if not math.isfinite(hi):
        return 10.0 ** lo
    inside = (q - prev) / max(cum[i] - prev, 1e-300)
    return 10.0 ** (lo + inside * (hi - lo))


def epsilon_interval(hist: pd.DataFrame, q_lo: float = 0.05, q_hi: float = 0.95
                     ) -> tuple[float, float]:
    """[10^⌊log₁₀ Q(q_lo)⌋, 10^⌈log₁₀ Q(q_hi)⌉] of |g| (module doc)."""
    if not 0 < q_lo < q_hi < 1:
        raise ValueError(f"Need 0 < q_lo < q_hi < 1 (got {q_lo}, {q_hi})")
    a, b = quantile(hist, q_lo), quantile(hist, q_hi)
    return 10.0 ** math.floor(math.log10(a)), 10.0 ** math.ceil(math.log10(b))


def decades(interval: tuple[float, float]) -> float:
    return math.log10(interval[1] / interval[0])
