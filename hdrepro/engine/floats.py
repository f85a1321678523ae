"""Subnormal floats flushed to zero on CPU for the length of a training run.

The moments of a unit whose gradient stays 0 (a dead ReLU) decay geometrically into the
subnormal range (|x| < 1.2e-38 in float32) and stay there: β₁ times the smallest subnormal rounds
back to it. Every CPU operation on a subnormal is several times slower: with a tenth of the MLNN's
moment entries subnormal an Adam-HD step takes about 3× as long (``bench/bench_denormal.py``),
and an MLNN run with Adam-HD grows slower epoch by epoch as such entries accumulate. Flushing
them to zero changes no update that matters: the values involved are below 1.2e-38, next to
ε = 1e-8. The mode is the CPU's (per process, shared by torch's threads); :func:`flushed_denormals`
sets it for a run and puts back what it found.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def flushing() -> bool:
    """Whether this process flushes subnormals now (torch has a setter only, so ask the FPU)."""
    return float(torch.tensor([1e-40]) * 2) == 0.0


@contextlib.contextmanager
def flushed_denormals(device: torch.device) -> Iterator[bool]:
    """Within the context, on a CPU device, subnormal floats are flushed to zero; yields whether
    they are. The mode found on entry is restored on exit."""
    if device.type != "cpu":
        yield False
        return
    before = flushing()
    on = torch.set_flush_denormal(True)   # False on a CPU without the mode (no SSE3)
    try:
        yield on
    finally:
        torch.set_flush_denormal(before)
