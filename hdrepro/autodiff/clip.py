r"""Norm-based averaged clipping of hypergradients (the clipping report, Section 3).

For one hyperparameter with hypergradient g_t (a 0-d tensor here, so ‖g_t‖ = |g_t|), the
report's pseudo-code is

    θ_t  = ((t-1) θ'_{t-1} + ‖g_t‖) / t           (θ_1 = ‖g_1‖)
    g'_t = g_t · min(1, θ_t / ‖g_t‖)
    θ'_t = ((t-1) θ'_{t-1} + ‖g'_t‖) / t

with no threshold hyperparameter. ``count_zero_first``:

- True (the report's *code*): t counts every step, including the first, whose hypergradient is
  exactly 0 in a stack (no update has happened yet). Then θ_1 = 0, the t = 1 factor is 0/0 (taken
  as 1), and under a constant ‖g‖ = c one finds θ_t = c/2 for all t ≥ 2: the factor is exactly 0.5.
- False (the report's *pseudo-code*, read literally): all-zero hypergradients are skipped; the
  average runs over the non-zero norms only, so a constant ‖g‖ is never clipped.

Everything is tensor arithmetic (no host synchronisation).
"""
from __future__ import annotations

import torch
from torch import Tensor


def clip_init(like: Tensor) -> dict[str, Tensor]:
    """State of one hyperparameter's clipper: the step count t and the average θ'_{t-1}; also the
    latest ‖g_t‖ and θ_t, kept for plots of the mechanism."""
    zero = torch.zeros((), dtype=like.dtype, device=like.device)
    return {"count": zero.clone(), "avg": zero.clone(), "norm": zero.clone(), "theta": zero.clone()}


def clip_step(g: Tensor, state: dict[str, Tensor], count_zero_first: bool = True
              ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Clip one hypergradient; return (g'_t, new state, θ_t the threshold used)."""
    n = torch.linalg.vector_norm(g.detach())
    t = state["count"] + (1 if count_zero_first else (n > 0).to(n.dtype))
    t_safe = t.clamp(min=1)   # t = 0 only before any non-zero g, when avg = n = 0: θ_t = 0
    total_prev = state["avg"] * state["count"]
    theta = (total_prev + n) / t_safe
    # n > θ implies n > 0; elsewhere θ/n (perhaps 0/0) is discarded by where
    factor = torch.where(n > theta, theta / n, 1.0)
    new_avg = (total_prev + n * factor) / t_safe
    return g * factor, {"count": t, "avg": new_avg, "norm": n, "theta": theta}, theta
