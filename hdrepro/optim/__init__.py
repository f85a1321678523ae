"""Analytic hypergradient-descent optimizers (Baydin et al., ICLR 2018).

- :class:`SGDHD`: SGD-HD, and SGDN-HD with ``momentum > 0, nesterov=True``.
- :class:`AdamHD`: Adam-HD.
- :class:`HD`: wraps any torch.optim optimizer whose step is linear in lr.
- :class:`MARTHE`: SGD whose α follows a hypergradient through the whole trajectory, discounted
  by μ (Donini et al. 2020; RTHO at μ = 1, SGD-HD at μ = 0).
- :class:`HDM`, :class:`HDMBest`: heavy ball with a stepsize (scalar or diagonal) and momentum
  learned on a normalised surrogate (Chu et al. 2025), for minibatches and, as its authors run
  it, for deterministic problems.
- :class:`CUDAGraphStep`: replays any of them (on a GPU) as one CUDA graph per step.
- :func:`flatten_`: lays a group's parameters and gradients in one buffer each, so that SGDHD
  and AdamHD step on a GPU in a fixed handful of kernels (:mod:`hdrepro.optim.flat`).

The learning-rate rules (additive, multiplicative, second-order) live in one place:
:mod:`hdrepro.optim._hypergrad`; their names are ``RULES`` and ``SECOND_ORDER``.
"""
from ._hypergrad import RULES, SECOND_ORDER
from .adamhd import AdamHD
from .flat import flatten_
from .graphs import CUDAGraphStep
from .hd import HD, LINEAR_IN_LR
from .hdm import HDM, HDMBest
from .marthe import MARTHE
from .sgdhd import SGDHD

__all__ = ["SGDHD", "AdamHD", "HD", "MARTHE", "HDM", "HDMBest", "LINEAR_IN_LR", "CUDAGraphStep",
           "flatten_", "RULES", "SECOND_ORDER"]
