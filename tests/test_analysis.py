"""Gradient-magnitude histograms (bins sum to the element count) and the ε interval."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from hdrepro.methods.histograms import (GradientHistogram, HistogramBins, decades, epsilon_interval,
                                        quantile)


def test_bins_sum_to_the_element_count_edges_zeros_and_nonfinite_included():
    model = torch.nn.Linear(4, 3)
    hist = GradientHistogram(model, HistogramBins(lo=-6, hi=0, per_decade=2), every=1)
    w = torch.tensor([[0.0, 1e-9, 1e-6, 0.5], [1.0, 3.0, float("nan"), float("inf")],
                      [-2e-3, 2e-3, -0.7, 1e-1]])
    counts = hist.counts([w, torch.zeros(3)])
    assert counts.shape == (2, 6 * 2 + 2)
    assert counts.sum(1).tolist() == [12, 3]
    assert counts[0, 0] == 2          # 0 and 1e-9: below 10^-6
    assert counts[0, -1] == 4         # 1.0, 3.0, nan, inf: at or above 10^0
    assert counts[1, 0] == 3          # zeros


def test_record_keeps_every_kth_step_and_the_frame_counts_each_layer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 2))
    hist = GradientHistogram(model, every=3)
    for step in range(1, 8):
        model.zero_grad()
        model(torch.randn(8, 5)).pow(2).sum().backward()
        hist.record(step)
    frame = hist.frame()
    assert sorted(frame.step.unique()) == [1, 3, 6]
    per = frame.groupby(["step", "layer"])["count"].sum()
    sizes = dict((n, p.numel()) for n, p in model.named_parameters())
    assert all(per[(s, n)] == sizes[n] for s, n in per.index)


def _log_uniform_hist(lo, hi, n=100_000):
    g = torch.Generator().manual_seed(0)
    x = 10 ** (lo + (hi - lo) * torch.rand(n, generator=g))
    hist = GradientHistogram([("x", torch.zeros(1, requires_grad=True))], every=1)
    hist.record_tensors(1, [x])
    return hist.frame()


def test_quantiles_of_a_known_distribution():
    frame = _log_uniform_hist(-6, -2)
    assert math.log10(quantile(frame, 0.5)) == pytest.approx(-4, abs=0.02)
    assert math.log10(quantile(frame, 0.05)) == pytest.approx(-5.8, abs=0.02)


def test_epsilon_interval_widens_the_quantiles_to_whole_decades():
    frame = _log_uniform_hist(-6, -2)         # 5%: 10^-5.8, 95%: 10^-2.2
    assert epsilon_interval(frame) == (1e-6, 1e-2)
    assert decades((1e-6, 1e-2)) == pytest.approx(4)
    with pytest.raises(ValueError, match="q_lo"):
        epsilon_interval(frame, 0.9, 0.1)
    empty = pd.DataFrame({"log10_lo": [-np.inf], "log10_hi": [-12.0], "count": [5]})
    with pytest.raises(ValueError, match="no non-zero"):
        quantile(empty, 0.5)


def test_bad_histogram_settings_are_refused():
    with pytest.raises(ValueError, match="hi > lo"):
        HistogramBins(lo=1, hi=0)
    with pytest.raises(ValueError, match="every"):
        GradientHistogram(torch.nn.Linear(2, 2), every=0)
