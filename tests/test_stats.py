"""The verdict statistics: Wilson intervals, t intervals on paired differences, and the rule that
calls a difference inside the noise a tie; every outcome is reachable."""
import math

import numpy as np
import pytest

from hdrepro.studies import stats


def test_wilson_interval_matches_known_values_and_stays_in_unit_range():
    i = stats.proportion(0, 10)
    assert (i.estimate, i.low) == (0, 0) and i.high == pytest.approx(0.2775, abs=1e-4)
    i = stats.proportion(5, 10)
    assert (i.low, i.high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    i = stats.proportion(1, 1)
    assert i.high == 1 and i.low == pytest.approx(0.2065, abs=1e-4)
    assert math.isnan(stats.proportion(0, 0).estimate)


def test_t_interval_of_a_mean_and_of_paired_differences():
    i = stats.mean([1.0, 2.0, 3.0])
    assert i.estimate == 2 and (i.low, i.high) == pytest.approx((-0.4841, 4.4841), abs=1e-4)
    one = stats.mean([5.0])
    assert one.n == 1 and one.low == -math.inf and one.high == math.inf
    d = stats.paired_difference([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    assert d.estimate == 2 and d.low == d.high == 2     # no spread: the difference is exact
    with pytest.raises(ValueError, match="same length"):
        stats.paired_difference([1.0], [1.0, 2.0])


@pytest.mark.parametrize("a,b,lower,want", [
    ([1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.0], True, "better"),
    ([1.0, 1.1, 0.9, 1.05], [2.0, 2.1, 1.9, 2.0], False, "worse"),
    ([2.0, 2.1, 1.9, 2.0], [1.0, 1.1, 0.9, 1.05], True, "worse"),
    ([1.0, 3.0, 0.5, 2.5], [2.0, 1.0, 2.0, 1.5], True, "tie"),      # inside the noise
    ([1.0], [2.0], True, "tie"),                                    # one pair: no spread to judge
])
def test_judge_returns_every_outcome_and_calls_noise_a_tie(a, b, lower, want):
    assert stats.judge(stats.paired_difference(a, b), lower_is_better=lower) == want


def test_a_small_mean_difference_inside_a_wide_spread_is_a_tie():
    base = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    noise = np.array([0.5, -0.4, 0.3, -0.2, 0.45, -0.35])
    d = stats.paired_difference(base + 0.01 + noise, base)
    assert d.estimate == pytest.approx(0.06) and stats.judge(d) == "tie"
    assert stats.judge(stats.paired_difference(base + 0.01, base), lower_is_better=False) \
        == "better"                                   # the same shift without noise is not


def test_values_counted_in_steps_never_get_an_interval_of_zero_width():
    # three seeds where HD's count of good α₀ is one more than its base's on every seed: the
    # counts move in whole steps, so the agreement is not a noiseless +1 but a tie
    d = stats.paired_difference([3, 4, 3], [2, 3, 2], resolution=1)
    half = 4.303 * (1 / math.sqrt(6)) / math.sqrt(3)   # t(0.975, 2) × q/√6 / √n
    assert d.estimate == 1 and (d.low, d.high) == pytest.approx((1 - half, 1 + half), abs=1e-3)
    assert stats.judge(d, lower_is_better=False) == "tie"
    # three steps on every seed is beyond the rounding: decided
    assert stats.judge(stats.paired_difference([5, 6, 5], [2, 3, 2], resolution=1),
                       lower_is_better=False) == "better"
    # continuous values keep the plain t interval, and a spread above the floor is untouched
    assert stats.paired_difference([3, 4, 3], [2, 3, 2]).high == 1
    wide = stats.paired_difference([1, 5, 2], [0, 0, 0], resolution=1)
    assert wide == stats.paired_difference([1, 5, 2], [0, 0, 0])
    with pytest.raises(ValueError, match="resolution=-1"):
        stats.paired_difference([1, 2], [0, 0], resolution=-1)


def test_test_errors_are_counted_in_test_images():
    import pandas as pd
    runs = pd.DataFrame({"n_test": [10_000, 10_000]})
    assert stats.error_step(runs) == 1e-4
    # two seeds where one method is 59 images better on both: decided, with a visible interval
    a, b = pd.DataFrame({"test_error": [0.0147, 0.0146], "diverged": [False, False]}), \
        pd.DataFrame({"test_error": [0.0206, 0.0205], "diverged": [False, False]})
    d, outcome = stats.paired_runs(a, b, resolution=stats.error_step(runs))
    assert outcome == "better" and d.high - d.low > 5e-4


def test_a_difference_of_medians_of_independent_samples_gets_a_bootstrap_interval():
    rng = np.random.default_rng(3)
    low, high = 0.02 + 0.002 * rng.standard_normal(10), 0.03 + 0.002 * rng.standard_normal(10)
    spread = 0.02 + 0.02 * rng.standard_normal(10)
    d = stats.median_difference(low, high)
    assert d.estimate == pytest.approx(np.median(low) - np.median(high)) and d.n == 20
    assert d.low < d.estimate < d.high
    assert stats.judge(d) == "better"
    assert stats.judge(stats.median_difference(high, low)) == "worse"
    assert stats.judge(stats.median_difference(spread, low + 0.001)) == "tie"   # inside the noise
    assert stats.median_difference(low, high) == d          # the draws are seeded: same interval
    one = stats.median_difference(low[:1], high)
    assert (one.low, one.high) == (-math.inf, math.inf) and stats.judge(one) == "tie"
    assert math.isnan(stats.median_difference([], high).estimate)
