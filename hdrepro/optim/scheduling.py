r"""How torch's learning-rate schedulers combine with a learned α, and the warning for those that
undo it.

A scheduler that scales the current lr (StepLR, MultiStepLR, ConstantLR, LinearLR,
ExponentialLR, PolynomialLR, CosineAnnealingLR, MultiplicativeLR, ReduceLROnPlateau) multiplies
the learned α_t by its factor, and HD goes on learning from there:

    α_t ← c_t · α_t      (c_t the scheduler's factor for that step)

so warm-up + HD is ``LinearLR(opt, start_factor=0.1, total_iters=k)`` and cosine decay + HD is
``CosineAnnealingLR(opt, T_max)``. A scheduler that computes lr in closed form from its base value
(:data:`SETS_LR`) writes α_t ← η_t, which replaces whatever HD learned since its last step; stepped
every iteration, it leaves HD a single step of learning each time. Building one of those on an HD
optimizer warns, naming the chainable alternative.
"""
from __future__ import annotations

import sys
import warnings

#: torch schedulers that set lr outright rather than scale the current value
SETS_LR = ("LambdaLR", "OneCycleLR", "CyclicLR", "CosineAnnealingWarmRestarts")


class WatchedGroup(dict):
    """A param group that notices a scheduler being built on it.

    A torch scheduler records ``group["initial_lr"]`` on every group when it is built (by
    ``setdefault``, or by assignment in OneCycleLR); the scheduler is the ``self`` of that caller,
    which is how it is found without any change to torch's classes."""

    def setdefault(self, key, default=None):
        if key == "initial_lr" and key not in self:
            warn_if_sets_lr(sys._getframe(1))
        return super().setdefault(key, default)

    def __setitem__(self, key, value):
        if key == "initial_lr":
            warn_if_sets_lr(sys._getframe(1))
        super().__setitem__(key, value)


def warn_if_sets_lr(frame, depth: int = 4) -> None:
    """Warn if a scheduler in the calling frames sets lr outright (one of :data:`SETS_LR`).

    `frame` is the caller of the group method that noticed the write; the warning points at the
    user's line that built the scheduler."""
    from torch.optim.lr_scheduler import LRScheduler
    level = 3   # warnings.warn's stacklevel of `frame`
    for _ in range(depth):
        if frame is None:
            return
        owner = frame.f_locals.get("self")
        if isinstance(owner, LRScheduler):
            if type(owner).__name__ not in SETS_LR:
                return
            while frame is not None and frame.f_locals.get("self") is owner:
                frame, level = frame.f_back, level + 1   # out of the scheduler's __init__s
            warnings.warn(
                f"{type(owner).__name__} sets the learning rate outright each time it steps, "
                "which replaces the α that HD learned since; use a scheduler that scales it "
                "(LinearLR for warm-up, CosineAnnealingLR, StepLR, ExponentialLR) to keep HD "
                "learning", UserWarning, stacklevel=level)
            return
        frame, level = frame.f_back, level + 1


def watch(groups: list) -> None:
    """Replace each plain dict of `groups` (a param_groups list) by a WatchedGroup, in place."""
    for i, group in enumerate(groups):
        if type(group) is dict:
            groups[i] = WatchedGroup(group)
