r"""SGD-HD and SGDN-HD (Baydin et al., ICLR 2018, Algorithms 1 and 2)."""
from __future__ import annotations

import numpy as np
import torch
from torch.optim.sgd import sgd as torch_sgd

from . import _hypergrad as hg
from . import flat, native


class SGDHD(hg.HDOptimizer):
    r"""SGD with hypergradient descent on the learning rate (SGD-HD; SGDN-HD with Nesterov).

    Drop-in for Baydin et al.'s ``SGDHD`` (same constructor and defaults), with several parameter
    groups allowed: each group has its own α and its hypergradient is taken over that group.

    For each group, with μ = momentum, τ = dampening, λ = weight_decay, β = hypergrad_lr:

    .. math::
        g_t &= ∇f(θ_{t-1}) + λ θ_{t-1}                                       \\
        h_t &= -g_t · d_{t-1}                       \quad (d_0 = 0)           \\
        α_t &= α_{t-1} - β h_t                      \quad \text{(additive)}   \\
        α_t &= α_{t-1}\,(1 + β\,\cos(g_t, d_{t-1})) \quad \text{(multiplicative)} \\
        b_t &= μ b_{t-1} + (1-τ) g_t                \quad (b_1 = g_1)         \\
        d_t &= g_t + μ b_t \text{ (Nesterov)},\; b_t \text{ (momentum)},\; g_t \text{ (plain)} \\
        θ_t &= θ_{t-1} - α_t d_t                    \quad (u_t = -α_t d_t)

    With ``hyper_hypergrad_lr`` γ > 0, β is learned too (second-order HD, see
    :mod:`hdrepro.optim._hypergrad`). α_t is kept as a 0-d tensor on the parameters' device in
    ``param_groups[i]["lr"]`` and β_t in ``param_groups[i]["hypergrad_lr"]``; nothing in
    ``step()`` synchronises with the host where torch's fused kernel is used (elsewhere, half
    precision say, α is read once per group and step). ``hypergrad_lr=0`` gives exactly
    torch.optim.SGD. With the parameters laid in one buffer (:func:`.flatten_`), off CPU, the
    step runs on the flat tensors in a fixed number of kernels instead, and reads h_t's sums to
    the host once (:mod:`.flat`).

    Args:
        params: parameters or parameter groups.
        lr: initial learning rate α₀ (>= 0; default 1e-3, as torch.optim.SGD).
        momentum, dampening, weight_decay, nesterov: as in torch.optim.SGD.
        hypergrad_lr: β, the hypergradient learning rate (default 1e-6, as the reference code).
        rule: "additive" or "multiplicative".
        hyper_hypergrad_lr: γ; > 0 turns on second-order HD.
        second_order: how β is updated then: "derived" (descent) or "printed" (the
            reproducibility report's printed ascent; see :mod:`hdrepro.optim._hypergrad`).
        foreach: True (default) or None uses torch's fused/multi-tensor SGD kernel; False runs the plain
            per-parameter loop below, written line by line from the equations above.
        maximize: ascend the objective, as torch.optim's ``maximize``: every equation above
            runs on g_t = −∇f(θ_{t-1}) (+ λ θ_{t-1}).
        fused: None (default) takes torch's fused kernel where it is right for the device and
            dtype (:mod:`hdrepro.optim.kernels`), False never, True insists (an error where it
            is not used). ``capturable`` and ``differentiable`` are refused, naming
            ``CUDAGraphStep`` and ``hdrepro.autodiff.HyperStack``, which do their jobs.
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, hypergrad_lr=1e-6, rule="additive", hyper_hypergrad_lr=0.0,
                 *, foreach: bool | None = True, second_order: str = "derived",
                 maximize: bool = False, fused: bool | None = None, capturable: bool = False,
                 differentiable: bool = False):
        hg.check_hd_args(lr, hypergrad_lr, rule, hyper_hypergrad_lr, second_order)
        hg.check_flag("maximize", maximize)
        hg.check_torch_flags(fused, capturable, differentiable)
        hg.check_finite_nonneg("momentum", momentum)
        hg.check_finite_nonneg("dampening", dampening)
        hg.check_finite_nonneg("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires momentum > 0 and dampening = 0 "
                             f"(got momentum={momentum}, dampening={dampening})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, hypergrad_lr=hypergrad_lr,
                        rule=rule, hyper_hypergrad_lr=hyper_hypergrad_lr, foreach=foreach,
                        second_order=second_order, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        hg.check_fused_allowed(self.param_groups[-1], "sgd")

    def _stores_direction(self, group) -> bool:
        # With plain momentum d_{t-1} is the momentum buffer itself; otherwise keep a copy.
        return group["momentum"] == 0 or group["nesterov"]

    def _prev_directions(self, group, params):
        key = "direction" if self._stores_direction(group) else "momentum_buffer"
        return [self.state[p].get(key) for p in params]

    def _group_step(self, group, params, grads):
        kernel = hg.kernel(params, "sgd", group.get("fused"))
        if (self._native_step(group, params, grads, kernel)
                or flat.sgd_step(self, group, params, grads, kernel)):
            return
        mu, wd = group["momentum"], group["weight_decay"]
        g = hg.grads_with_decay(params, grads, wd)
        prev = self._prev_directions(group, params)
        have = [i for i, d in enumerate(prev) if d is not None]
        g_prev, d_prev = [g[i] for i in have], [prev[i] for i in have]
        h = -hg.dot(g_prev, d_prev).to(params[0].device, hg.state_dtype(params))
        norms = (hg.norm(g), hg.norm(d_prev)) if group["rule"] == "multiplicative" else ()
        alpha = hg.update_lr(group, h, *norms)

        bufs = [self.state[p].get("momentum_buffer") for p in params]
        fused = kernel == "fused"
        if kernel == "foreach" and group["nesterov"] and g is grads:
            # torch's multi-tensor Nesterov step adds μ b_t into the gradients it is given;
            # g_t must survive it for d_t below.
            grads = torch._foreach_add(grads, 0.0)
        # a float α is read once on the host; the float32 α rounds to the same number that a
        # Python lr does inside torch's kernels, so hypergrad_lr=0 stays exactly torch's step
        torch_sgd(params, grads, bufs, fused=fused, foreach=kernel == "foreach",
                  lr=alpha if fused else float(alpha), weight_decay=wd, momentum=mu,
                  dampening=group["dampening"], nesterov=group["nesterov"], maximize=False)
        if mu != 0:
            for p, b in zip(params, bufs):
                self.state[p]["momentum_buffer"] = b
        if self._stores_direction(group):
            self._store_directions(group, params, g, bufs)

    def _native_step(self, group, params, grads, kernel: str) -> bool:
        """The step in two passes over memory (:mod:`.native`): h_t by one reduction over
        (grad, d_{t-1}[, θ]), then θ_t, b_t and d_t by one update that is torch's fused SGD
        operation for operation. False (nothing done) where the kernels do not apply: off CPU,
        half precision, non-contiguous tensors, fused=False, or some parameters with state and
        some without."""
        kernels = native.kernels()
        if (kernels is None or not kernels.sgd_exact or torch.compiler.is_compiling()
                or kernel != "fused"):
            return False
        mu, wd = group["momentum"], group["weight_decay"]
        stores = self._stores_direction(group)
        states = [self.state[p] for p in params]   # one look-up per parameter, every step
        bufs = [s.get("momentum_buffer") for s in states] if mu else []
        dirs = [s.get("direction") for s in states] if stores else []
        prev = dirs if stores else bufs   # d_{t-1}, as _prev_directions gives it
        for some in (bufs, dirs):
            if len({x is None for x in some}) > 1:   # a parameter that has not always stepped
                return False
        held = [some for some in (bufs, dirs) if some and some[0] is not None]
        if not native.eligible(params, grads, *held):
            return False
        mult = group["rule"] == "multiplicative"
        gd, gg, dd = 0.0, 0.0, 0.0
        if prev[0] is not None:
            gd, gg, dd = kernels.dot_gd(grads, prev, params, wd, mult)
        h, gg, dd = hg.host_scalars(params, -gd, gg, dd)
        alpha = hg.update_lr_host(group, h, *((np.sqrt(gg), np.sqrt(dd)) if mult else ()))
        first = bool(mu) and bufs[0] is None
        if first:
            bufs = [torch.empty_like(p) for p in params]
            for state, b in zip(states, bufs):
                state["momentum_buffer"] = b
        if stores and dirs[0] is None:
            dirs = [torch.empty_like(p) for p in params]
            for state, d in zip(states, dirs):
                state["direction"] = d
        kernels.sgd_update(params, grads, bufs, dirs if stores else None, weight_decay=wd,
                           momentum=mu, dampening=group["dampening"],
                           nesterov=group["nesterov"], first=first, alpha=float(alpha))
        return True

    def _store_directions(self, group, params, g, bufs):
        """d_t = g_t + μ b_t (Nesterov) or g_t (plain), written into last step's buffers."""
        mu, nesterov = group["momentum"], group["nesterov"]
        dirs = [self.state[p].get("direction") for p in params]
        if any(d is None for d in dirs):  # first step: allocate
            dirs = [torch.empty_like(p) for p in params]
            for p, d in zip(params, dirs):
                self.state[p]["direction"] = d
        if hg.per_tensor_loop(params):
            for d, gi, b in zip(dirs, g, bufs):
                if nesterov:
                    torch.add(gi, b, alpha=mu, out=d)
                else:
                    d.copy_(gi)
        else:
            torch._foreach_copy_(dirs, g)
            if nesterov:
                torch._foreach_add_(dirs, bufs, alpha=mu)

    def _group_step_loop(self, group, params, grads):
        """The equations of the class docstring, one parameter at a time."""
        mu, tau, wd = group["momentum"], group["dampening"], group["weight_decay"]
        g = [gi.add(p, alpha=wd) for p, gi in zip(params, grads)]
        prev = self._prev_directions(group, params)
        h = sum((-hg.vdot(gi, d) for gi, d in zip(g, prev) if d is not None),
                torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device))
        norms = ()
        if group["rule"] == "multiplicative":
            norms = (torch.sqrt(sum(hg.vdot(gi, gi) for gi in g)),
                     torch.sqrt(sum((hg.vdot(d, d) for d in prev if d is not None),
                                    torch.zeros_like(h))))
        alpha = hg.update_lr(group, h, *norms)
        for p, gi in zip(params, g):
            state = self.state[p]
            d = gi
            if mu != 0:
                b = state.get("momentum_buffer")
                b = gi.clone() if b is None else b.mul_(mu).add_(gi, alpha=1 - tau)
                state["momentum_buffer"] = b
                d = gi + mu * b if group["nesterov"] else b
            if self._stores_direction(group):
                state["direction"] = d.clone()
            p.sub_((alpha * d.to(alpha.dtype)).to(p.dtype))   # α·d in α's precision
