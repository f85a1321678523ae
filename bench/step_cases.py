"""The optimizer steps bench_step.py times and profile_step.py profiles, by the name the report
prints: torch's fused steps, ours, the reference-style loops and the floor (a fused step plus the
one dot product every HD step needs)."""
from __future__ import annotations

import torch

from reference_style import LoopAdamHD, LoopSGDHD

from hdrepro.optim import HD, SGDHD, AdamHD
from hdrepro.optim._hypergrad import dot

class DotOnly:
    """h_t's dot product alone, g_t·d_{t-1} summed over every tensor, with a given kernel."""

    def __init__(self, params, kernel):
        self.kernel = kernel
        self.grads = [p.grad for p in params]
        self.dirs = [torch.randn_like(p) for p in params]  # stands in for d_{t-1}

    def step(self):
        self.kernel(self.grads, self.dirs)


class FusedStepPlusDot:
    """A lower bound on any HD step built on torch's fused kernel: the fused step plus the one
    dot product h_t = -g_t·d_{t-1} that every HD step needs (the library's own ``dot``), and
    nothing else: no √v̂ chain, no stored direction, no α update."""

    def __init__(self, opt: torch.optim.Optimizer):
        self.opt = opt
        self.dot = DotOnly([p for group in opt.param_groups for p in group["params"]], dot)

    def step(self):
        self.dot.step()
        self.opt.step()



STEP_CASES = {
    "SGDN (fused)": lambda p: torch.optim.SGD(p, 1e-3, momentum=0.9, nesterov=True, fused=True),
    "SGDN-HD (ours)": lambda p: SGDHD(p, 1e-3, momentum=0.9, nesterov=True, hypergrad_lr=1e-6),
    "SGDN-HD (reference-style loop)": lambda p: LoopSGDHD(p, 1e-3, 0.9, True, 1e-6),
    "SGDN (fused) + dot, the floor": lambda p: FusedStepPlusDot(
        torch.optim.SGD(p, 1e-3, momentum=0.9, nesterov=True, fused=True)),
    "Adam (fused)": lambda p: torch.optim.Adam(p, 1e-3, fused=True),
    "Adam (foreach)": lambda p: torch.optim.Adam(p, 1e-3, foreach=True),
    "Adam-HD (ours)": lambda p: AdamHD(p, 1e-3, hypergrad_lr=1e-8),
    "HD(Adam fused) (ours)": lambda p: HD(torch.optim.Adam(p, 1e-3, fused=True), 1e-8),
    "Adam-HD (reference-style loop)": lambda p: LoopAdamHD(p, 1e-3, hypergrad_lr=1e-8),
    "Adam (fused) + dot, the floor": lambda p: FusedStepPlusDot(
        torch.optim.Adam(p, 1e-3, fused=True)),
}
