r"""How torch's learning-rate schedulers combine with a learned α, and the warning for those that
undo it.

A scheduler that scales the current lr (StepLR, MultiStepLR, ConstantLR, LinearLR,
ExponentialLR, PolynomialLR, CosineAnnealingLR, MultiplicativeLR, ReduceLROnPlateau) multiplies
the learned α_t by its factor, and HD goes on learning from there:

    α_t ← c_t · α_t      (c_t the scheduler's factor for that step)

so warm-up + HD is ``LinearLR(opt, start_factor=0.1, total_iters=k)`` and cosine decay + HD is
``CosineAnnealingLR(opt, T_max)``. A scheduler that computes lr in closed form from its base value
(:data:`SETS_LR`) writes α_t ← η_t, which replaces whatever HD learned since its last step; stepped
every iteration, it leaves HD a single step of learning each time. One of those built on an HD
optimizer or a HyperStack warns at the optimizer's next step, naming the chainable alternative.
"""
from __future__ import annotations

import gc
import sys
import warnings

#: torch schedulers that set lr outright rather than scale the current value
SETS_LR = ("LambdaLR", "OneCycleLR", "CyclicLR", "CosineAnnealingWarmRestarts")


def check_schedulers(opt) -> None:
    """Warn once about each scheduler of SETS_LR built on `opt` (an HD optimizer or a stack), at
    the first step after it was built.

    A torch scheduler records ``group["initial_lr"]`` when it is built; the first time a group
    holds that key, the schedulers that hold this optimizer are looked up (through the garbage
    collector's referrers: the scheduler is not registered anywhere else) and those that set lr
    outright are named. The groups stay plain dicts, which torch.compile needs."""
    fresh = [g for g in opt.param_groups if "initial_lr" in g and not g.get("hd_schedulers_seen")]
    if not fresh:
        return
    for group in fresh:
        group["hd_schedulers_seen"] = True
    from torch.optim.lr_scheduler import LRScheduler
    found = []
    for ref in gc.get_referrers(opt):
        owners = [ref] if isinstance(ref, LRScheduler) else [
            o for o in gc.get_referrers(ref) if isinstance(o, LRScheduler)
            and getattr(o, "__dict__", None) is ref] if isinstance(ref, dict) else []
        found += [o for o in owners if getattr(o, "optimizer", None) is opt]
    for name in sorted({type(o).__name__ for o in found} & set(SETS_LR)):
        warnings.warn(_message(name), UserWarning, stacklevel=_outside_frames())


def _message(name: str) -> str:
    return (f"{name} sets the learning rate outright each time it steps, which replaces the α "
            "that HD learned since; use a scheduler that scales it (LinearLR for warm-up, "
            "CosineAnnealingLR, StepLR, ExponentialLR) to keep HD learning")


def _outside_frames() -> int:
    """warnings.warn's stacklevel of the first caller outside hdrepro and torch."""
    frame, level = sys._getframe(2), 2
    while frame is not None and any(part in frame.f_code.co_filename for part in
                                    ("/hdrepro/", "/torch/")):
        frame, level = frame.f_back, level + 1
    return level
