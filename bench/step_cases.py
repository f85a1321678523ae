"""The optimizer steps bench_step.py times and profile_step.py profiles, by the name the report
prints: torch's fused steps, ours, the reference-style loops and the floor (a fused step plus the
one dot product every HD step needs)."""
from __future__ import annotations

import torch

from reference_style import LoopAdamHD, LoopSGDHD

from hdrepro.optim import HD, SGDHD, AdamHD, flatten_, native
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
    dot product h_t = -g_t·d_{t-1} that every HD step needs, and nothing else: no √v̂ chain, no
    stored direction, no α update. The dot is torch's (the library's list dot) unless a faster
    `kernel` is given (bench_step.py passes the hand-written one of bench/cpp_dot.py)."""

    def __init__(self, opt: torch.optim.Optimizer, kernel=dot):
        self.opt = opt
        self.dot = DotOnly([p for group in opt.param_groups for p in group["params"]], kernel)

    def step(self):
        self.dot.step()
        self.opt.step()


class FusedStepPlusDotAndWrite(FusedStepPlusDot):
    """The floor of an HD step that stores its direction d_t for the next h (SGDN-HD must: d_t
    cannot be had from torch's momentum buffer alone): the fused step, the dot, and one more
    array written with streaming stores (`kernel.stream_zero`), as our update writes d_t."""

    def __init__(self, opt: torch.optim.Optimizer, kernel):
        super().__init__(opt, kernel)
        self.kernel = kernel
        self.out = [torch.empty_like(p) for p in self.dot.grads]

    def step(self):
        super().step()
        self.kernel.stream_zero(self.out)


class FusedStepPlusRead:
    """The floor of an HD step that keeps torch's fused Adam for the update and reads d_{t-1}
    from Adam's moments (as ours does): the fused step plus one read of g_t, m and v, summed as
    Σ g·m·v by a hand-written kernel (`kernel`, bench/cpp_dot.py) with no other arithmetic."""

    def __init__(self, opt: torch.optim.Optimizer, kernel):
        self.opt, self.kernel = opt, kernel
        params = [p for group in opt.param_groups for p in group["params"]]
        self.lists = ([p.grad for p in params], [torch.randn_like(p) for p in params],
                      [torch.rand_like(p) for p in params])

    def step(self):
        self.kernel(*self.lists)
        self.opt.step()


class TorchLists:
    """The same HD optimizer with the CPU kernels of hdrepro.optim.native turned off, so that
    it steps on torch's list operations: the path before those kernels, and the one taken
    wherever they do not apply."""

    def __init__(self, opt):
        self.opt = opt

    def step(self):
        kernels, native.kernels = native.kernels, lambda: None
        try:
            self.opt.step()
        finally:
            native.kernels = kernels


class PassesStubbed:
    """Our SGD-HD-family step with its two passes over memory taken out: for the length of the
    call, the compiled functions of hdrepro.optim.native return at once (their sums read as 0,
    so α stays put), after their arguments were built as usual. What is left is what the step
    costs around the passes: the checks, the calls into the kernels, the α rule."""

    def __init__(self, opt):
        self.opt, self.kernels = opt, native.kernels()

    def step(self):
        self.kernels._fn = lambda name, like: lambda *args: None
        try:
            self.opt.step()
        finally:
            del self.kernels._fn   # the class's own again


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


def one_buffer(opt):
    """`opt` with each group's parameters and gradients laid in one buffer (flatten_), so that
    its step runs on the flat tensors (hdrepro.optim.flat; off CPU, where the CPU kernels step)."""
    flatten_(opt)
    return opt


#: our eager steps on one buffer, beside torch's eager fused steps (GPU only: on CPU the CPU
#: kernels step flattened parameters as any others)
ONE_BUFFER_CASES = {
    "SGDN-HD (ours, one buffer)": lambda p: one_buffer(STEP_CASES["SGDN-HD (ours)"](p)),
    "Adam-HD (ours, one buffer)": lambda p: one_buffer(STEP_CASES["Adam-HD (ours)"](p)),
    "HD(Adam fused) (ours, one buffer)": lambda p: one_buffer(
        STEP_CASES["HD(Adam fused) (ours)"](p)),
}
