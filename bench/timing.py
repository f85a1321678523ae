"""How every benchmark times: the parameter sets (ResNet-like and MLNN shapes with preset
gradients), round-robin timing of several entries in one run, and a bootstrap interval on a
ratio of medians. bench_step.py, bench_rivals.py and profile_step.py share it."""
from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from common import sync

REPEATS = {"smoke": 5, "quick": 30, "full": 100}


def resnet_like_shapes() -> list[tuple[int, ...]]:
    """~160 tensors, ~11M parameters: ResNet-18-like conv weights plus many small vectors."""
    convs = [(64, 3, 7, 7)] + [(64, 64, 3, 3)] * 4
    for c_in, c in ((64, 128), (128, 256), (256, 512)):
        convs += [(c, c_in, 3, 3), (c, c, 3, 3), (c, c_in, 1, 1), (c, c, 3, 3), (c, c, 3, 3)]
    shapes = convs + [(1000, 512), (1000,)]
    widths = [64] * 10 + [128] * 10 + [256] * 10 + [512] * 10
    while len(shapes) < 160:
        shapes.append((widths[len(shapes) % len(widths)],))
    return shapes


def mlnn_shapes() -> list[tuple[int, ...]]:
    return [(1000, 784), (1000,), (1000, 1000), (1000,), (10, 1000), (10,)]


def make_params(shapes, device):
    gen = torch.Generator(device="cpu").manual_seed(0)
    params = []
    for s in shapes:
        p = torch.nn.Parameter((torch.randn(s, generator=gen) * 0.01).to(device))
        p.grad = (torch.randn(s, generator=gen) * 0.01).to(device)
        params.append(p)
    return params



def interleaved_medians(fns: dict, device, repeats: int) -> dict[str, float]:
    """Median ms per call of each function, timed round-robin so that drift in the machine's
    speed (other load, frequency changes) affects every entry alike."""
    return {name: 1e3 * statistics.median(t)
            for name, t in interleaved_times(fns, device, repeats).items()}


def ratio_interval(times: dict, name: str, baseline: str, level: float = 0.95,
                   resamples: int = 2000) -> tuple[float, float]:
    """A bootstrap interval on median(name)/median(baseline), resampling whole rounds (the
    round-robin pairs the two entries' calls in time)."""
    a, b = np.asarray(times[name]), np.asarray(times[baseline])
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    ratios = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    lo, hi = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def interleaved_times(fns: dict, device, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, `repeats` rounds, timed round-robin (after warm-up)."""
    for fn in fns.values():
        for _ in range(max(3, repeats // 10)):
            fn()
    sync(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times
