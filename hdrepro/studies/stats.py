"""Uncertainty for the report's verdicts: intervals on a proportion and on a mean difference, and
the rule that turns a difference into "better", "worse" or "tie".

- A proportion k/n (runs diverged, cells where HD wins) gets Wilson's score interval, which stays
  inside [0, 1] and is honest at n = 1.
- A difference of paired runs (the same seed under two methods) gets a t interval on the mean of
  the per-seed differences; with n = 1 there is no spread to judge and the interval is infinite.
  Values counted in whole steps (a test error in whole test images, a count of grid points) can
  agree exactly on every seed although the runs are noisy; their spread is taken as at least
  that of rounding to the step, so such a sample never gets an interval of zero width.
- A difference of medians of two independent samples (configurations drawn at random, not
  paired) gets a percentile bootstrap interval, each sample resampled on its own.
- A difference whose 95% interval contains 0 is a tie: inside the noise, so neither side wins.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

LEVEL = 0.95
OUTCOMES = ("better", "worse", "tie")


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}] (n = {self.n})"

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


def proportion(k: int, n: int, level: float = LEVEL) -> Interval:
    """k of n, with Wilson's score interval (NaN bounds when n = 0)."""
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    z = _st.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def proportion_difference(k1: int, n1: int, k2: int, n2: int,
                          level: float = LEVEL) -> Interval:
    """k1/n1 − k2/n2 with Newcombe's hybrid score interval (built from the two Wilson
    intervals; NaN bounds when either n is 0). n of the result is n1 + n2."""
    a, b = proportion(k1, n1, level), proportion(k2, n2, level)
    if a.n == 0 or b.n == 0:
        return Interval(math.nan, math.nan, math.nan, n1 + n2)
    d = a.estimate - b.estimate
    low = d - math.hypot(a.estimate - a.low, b.high - b.estimate)
    high = d + math.hypot(a.high - a.estimate, b.estimate - b.low)
    return Interval(d, low, high, n1 + n2)


def mean(x, level: float = LEVEL, min_std: float = 0.0) -> Interval:
    """The mean of `x` with a t interval (infinite bounds for one value); the sample's standard
    deviation is taken as at least `min_std`."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    m = float(x.mean())
    if n == 1:
        return Interval(m, -math.inf, math.inf, 1)
    std = max(float(x.std(ddof=1)), min_std)
    half = float(_st.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n))
    return Interval(m, m - half, m + half, n)


def paired_difference(a, b, level: float = LEVEL, resolution: float = 0.0) -> Interval:
    """Mean of a − b over pairs (runs that share a seed), with a t interval. `resolution` q > 0:
    a and b are counted in steps of q, so their per-pair differences can agree exactly although
    the runs are noisy; the differences' standard deviation is then taken as at least q/√6, the
    spread of a difference of two values rounded to the step (each uniform over one step,
    variance q²/12)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need the same length (got {len(a)} and {len(b)})")
    if not (math.isfinite(resolution) and resolution >= 0):
        raise ValueError(f"resolution={resolution}: use the step the values are counted in "
                         "(>= 0; 0 for continuous values)")
    return mean(a - b, level, min_std=resolution / math.sqrt(6))


def median_difference(a, b, level: float = LEVEL, draws: int = 10_000,
                      seed: int = 0) -> Interval:
    """median(a) − median(b) of two independent samples, with a percentile bootstrap interval
    (`draws` resamples of each sample on its own; `seed` fixes them, so the same samples always
    give the same interval). A sample of fewer than 2 values has no spread: infinite bounds.
    n of the result is len(a) + len(b)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a) + len(b)
    if len(a) == 0 or len(b) == 0:
        return Interval(math.nan, math.nan, math.nan, n)
    d = float(np.median(a) - np.median(b))
    if min(len(a), len(b)) < 2:
        return Interval(d, -math.inf, math.inf, n)
    rng = np.random.default_rng(seed)
    boot = (np.median(rng.choice(a, (draws, len(a))), axis=1)
            - np.median(rng.choice(b, (draws, len(b))), axis=1))
    low, high = np.quantile(boot, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(d, float(low), float(high), n)


def error_step(runs) -> float:
    """One test image's share of a test error: the step `runs`' test errors are counted in."""
    return 1.0 / float(runs["n_test"].max())


def judge(difference: Interval, lower_is_better: bool = True) -> str:
    """"better" when the whole interval lies on the good side of 0, "worse" when it lies on the
    other, "tie" when it contains 0 (or cannot be computed)."""
    lo, hi = difference.low, difference.high
    if math.isnan(lo) or math.isnan(hi) or lo <= 0 <= hi:
        return "tie"
    good = hi < 0 if lower_is_better else lo > 0
    return "better" if good else "worse"


def paired_runs(a, b, value: str = "test_error", resolution: float = 0.0
                ) -> tuple[Interval, str]:
    """Two methods' runs (frames indexed by seed, with `value` and "diverged"): a − b over the
    seeds both ran and neither diverged, its t interval (`resolution`: as in
    :func:`paired_difference`), and the outcome for a (:func:`judge`). A run that diverged where
    its partner did not decides the comparison against its method (when each side has such a
    seed, the interval decides)."""
    seeds = a.index.intersection(b.index)
    a, b = a.loc[seeds], b.loc[seeds]
    down_a, down_b = a["diverged"].astype(bool), b["diverged"].astype(bool)
    both = ~down_a & ~down_b
    diff = paired_difference(a[value][both], b[value][both], resolution=resolution)
    lone_a, lone_b = bool((down_a & ~down_b).any()), bool((down_b & ~down_a).any())
    if lone_a != lone_b:
        return diff, "worse" if lone_a else "better"
    return diff, judge(diff)


MAJORITY_RULE = ("reproduces when the 95% interval of the share lies above 1/2, does not when "
                 "it lies below, partly when it contains 1/2")


def majority(share: Interval) -> str:
    """A claim that holds in most cases, judged by Wilson's interval on its share of cases
    (MAJORITY_RULE); "not tested" when there are no cases."""
    if share.n == 0:
        return "not tested"
    return ("reproduces" if share.low > 0.5 else "does not reproduce" if share.high < 0.5
            else "partly")
