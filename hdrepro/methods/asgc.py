r"""ASGC: adaptive stochastic gradient clipping (after the ASGC proposal),
as a wrapper around any torch.optim optimizer.

The proposal names the ingredients (per-layer running mean and variance of the gradients, a
threshold computed from them, Gaussian noise scaled by the layer's gradient variance added before
clipping, a smooth clipping function) and leaves the formulas open. Ours, per parameter tensor l
(a "layer") with gradient g_t at step t, decay ρ, threshold width κ, noise scale η, sharpness p:

.. math::
    τ_t &= ‖ḡ_{t-1}‖ + κ \sqrt{Σ v_{t-1}}           &&\text{threshold: the norm a gradient drawn
                                                       from the running statistics reaches}\\
    σ_t^2 &= \operatorname{mean}(v_{t-1})            &&\text{the layer's gradient variance}\\
    g̃_t &= g_t + η σ_t ξ_t,\quad ξ_t \sim N(0, I)   &&\text{noise before clipping}\\
    ĝ_t &= g̃_t \,(1 + (‖g̃_t‖/τ_t)^p)^{-1/p}        &&\text{smooth clip: }‖ĝ_t‖ < \min(‖g̃_t‖, τ_t)\\
    ḡ_t &= ρ ḡ_{t-1} + (1-ρ) g_t                     &&\text{running mean (elementwise)}\\
    v_t &= ρ v_{t-1} + ρ(1-ρ)(g_t - ḡ_{t-1})^2       &&\text{running variance (elementwise)}

then the wrapped optimizer steps on ĝ_t. The statistics are those *before* g_t, so an outlying
gradient does not raise its own threshold, and they absorb the raw g_t (not ĝ_t), so τ tracks the
gradient's own scale. At t = 1 there are no statistics: ḡ_1 = g_1, v_1 = 0, and g_1 passes
unchanged. The clip factor (1 + r^p)^{-1/p}, r = ‖g̃‖/τ, is smooth in g̃ and tends to hard
clipping min(1, 1/r) as p → ∞; it also shrinks gradients below the threshold slightly
(by 2^{-1/p} at r = 1: 7% for the default p = 10; under 1% at r ≤ 0.8).

Ablations: ``noise_scale=0`` is adaptive clipping without noise; ``fixed_threshold=c`` replaces
τ_t by the constant c (noise with a fixed threshold). The proposal meta-learns η and the clip
parameters across tasks; we choose them by a small grid search instead (experiments/asgc.py).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.optim import Optimizer


def smooth_clip_factor(ratio: torch.Tensor, p: float) -> torch.Tensor:
    """(1 + r^p)^{-1/p}, computed as (1/m)((1/m)^p + (r/m)^p)^{-1/p} with m = max(1, r) so
    that r^p cannot overflow."""
    m = torch.clamp(ratio, min=1.0)
    return ((1 / m).pow(p) + (ratio / m).pow(p)).pow(-1 / p) / m


class ASGC:
    """Adaptive stochastic gradient clipping around ``optimizer`` (equations in the module doc).

    Args:
        optimizer: the torch.optim optimizer that steps on the clipped gradients.
        noise_scale: η ≥ 0; 0 turns the noise off.
        threshold: κ ≥ 0, the threshold's width in running standard deviations.
        decay: ρ in [0, 1), the statistics' decay.
        sharpness: p > 0 of the smooth clip.
        fixed_threshold: a constant τ > 0 for every layer instead of the adaptive one.
        generator: the noise's torch.Generator (seed it for reproducible runs); None draws
            from torch's global generator.
        on_clip: called as ``on_clip(raw, clipped)`` with the lists of g_t and ĝ_t per layer,
            for recording (e.g. :class:`hdrepro.methods.histograms.GradientHistogram`).
    """

    def __init__(self, optimizer: Optimizer, noise_scale: float = 0.01, threshold: float = 3.0,
                 decay: float = 0.99, sharpness: float = 10.0,
                 fixed_threshold: float | None = None, generator: torch.Generator | None = None,
                 on_clip: Callable | None = None):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ASGC wraps a torch.optim.Optimizer, got {type(optimizer).__name__}")
        for name, v in (("noise_scale (η)", noise_scale), ("threshold (κ)", threshold)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"Invalid {name}: {v} (it must be finite and >= 0)")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"Invalid decay (ρ): {decay} (it must be in [0, 1))")
        if not (math.isfinite(sharpness) and sharpness > 0):
            raise ValueError(f"Invalid sharpness (p): {sharpness} (it must be finite and > 0)")
        if fixed_threshold is not None and not (math.isfinite(fixed_threshold)
                                                and fixed_threshold > 0):
            raise ValueError(f"Invalid fixed_threshold: {fixed_threshold} (it must be > 0)")
        self.optimizer = optimizer
        self.noise_scale, self.threshold, self.decay = noise_scale, threshold, decay
        self.sharpness, self.fixed_threshold = sharpness, fixed_threshold
        self.generator, self.on_clip = generator, on_clip
        self.state: dict = {}   # per parameter: {"mean": ḡ, "var": v}
        self.steps = 0
        self.last_factors: torch.Tensor | None = None  # clip factor per layer, last step

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none: bool = True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _noise(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """ξ for every layer from one draw (one call, not one per tensor)."""
        g0 = grads[0]
        flat = torch.randn(sum(g.numel() for g in grads), generator=self.generator,
                           device=self.generator.device if self.generator else g0.device,
                           dtype=g0.dtype).to(g0.device)
        return [x.view_as(g) for x, g in zip(flat.split([g.numel() for g in grads]), grads)]

    @torch.no_grad()
    def clip_(self, params: list[torch.Tensor]) -> None:
        """Replace each p.grad by ĝ_t and update the statistics."""
        grads = [p.grad for p in params]
        raw = torch._foreach_mul(grads, 1.0)
        if not all(p in self.state for p in params):   # t = 1: statistics start at g_1
            for p, g in zip(params, raw):
                self.state[p] = {"mean": g.clone(), "var": torch.zeros_like(g)}
            self.last_factors = torch.ones(len(params), device=grads[0].device)
            if self.on_clip is not None:
                self.on_clip(raw, grads)
            return
        mean = [self.state[p]["mean"] for p in params]
        var = [self.state[p]["var"] for p in params]
        if self.noise_scale > 0:
            sigma = torch.stack([v.mean() for v in var]).sqrt_().mul_(self.noise_scale)
            noise = self._noise(grads)
            torch._foreach_mul_(noise, list(sigma.unbind()))
            torch._foreach_add_(grads, noise)
        norms = torch.stack(torch._foreach_norm(grads))
        if self.fixed_threshold is not None:
            tau = torch.full_like(norms, self.fixed_threshold)
        else:
            spread = torch.stack([v.sum() for v in var]).sqrt_()
            tau = torch.stack(torch._foreach_norm(mean)).add_(spread, alpha=self.threshold)
        ratio = norms / tau.clamp_min(torch.finfo(tau.dtype).tiny)
        factors = smooth_clip_factor(ratio, self.sharpness)
        torch._foreach_mul_(grads, list(factors.unbind()))
        self.last_factors = factors
        self._absorb(raw, mean, var)
        if self.on_clip is not None:
            self.on_clip(raw, grads)

    def _absorb(self, raw, mean, var) -> None:
        """ḡ_t, v_t from g_t (EMA form of Welford's update)."""
        rho = self.decay
        diff = torch._foreach_sub(raw, mean)            # g_t - ḡ_{t-1}
        torch._foreach_add_(mean, diff, alpha=1 - rho)
        torch._foreach_mul_(diff, diff)
        torch._foreach_mul_(var, rho)
        torch._foreach_add_(var, diff, alpha=rho * (1 - rho))

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if params:
            self.clip_(params)
        self.steps += 1
        self.optimizer.step()
        return loss

    def state_dict(self) -> dict:
        index = {p: i for i, p in enumerate(
            p for group in self.param_groups for p in group["params"])}
        return {"optimizer": self.optimizer.state_dict(), "steps": self.steps,
                "stats": {index[p]: dict(s) for p, s in self.state.items()},
                "generator": self.generator.get_state() if self.generator else None}

    def load_state_dict(self, state_dict: dict) -> None:
        self.optimizer.load_state_dict(state_dict["optimizer"])
        params = [p for group in self.param_groups for p in group["params"]]
        self.state = {params[i]: {k: v.to(params[i].device, params[i].dtype).clone()
                                  for k, v in s.items()}
                      for i, s in state_dict["stats"].items()}
        self.steps = state_dict["steps"]
        if self.generator is not None and state_dict["generator"] is not None:
            self.generator.set_state(state_dict["generator"])

    def __repr__(self):
        return (f"ASGC({self.optimizer.__class__.__name__}, η={self.noise_scale}, "
                f"κ={self.threshold}, ρ={self.decay}, p={self.sharpness})")
