"""Analytic hypergradient-descent optimizers (Baydin et al., ICLR 2018).

- :class:`SGDHD`: SGD-HD, and SGDN-HD with ``momentum > 0, nesterov=True``.
- :class:`AdamHD`: Adam-HD.
- :class:`HD`: wraps any torch.optim optimizer whose step is linear in lr.
- :class:`CUDAGraphStep`: replays any of them (on a GPU) as one CUDA graph per step.

The learning-rate rules (additive, multiplicative, second-order) live in one place:
:mod:`hdrepro.optim._hypergrad`.
"""
from .adamhd import AdamHD
from .graphs import CUDAGraphStep
from .hd import HD, LINEAR_IN_LR
from .sgdhd import SGDHD

__all__ = ["SGDHD", "AdamHD", "HD", "LINEAR_IN_LR", "CUDAGraphStep"]
