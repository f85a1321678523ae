r"""Adam-HD (Baydin et al., ICLR 2018, Algorithm 3)."""
from __future__ import annotations

import torch
from torch.optim.adam import adam as torch_adam

from . import _hypergrad as hg
from . import adam_directions as ad
from . import flat


class AdamHD(hg.HDOptimizer):
    r"""Adam with hypergradient descent on the learning rate (Adam-HD).

    Drop-in for Baydin et al.'s ``AdamHD`` (same constructor and defaults), several parameter
    groups allowed. Adam is the paper's (ε added to √v̂ *after* bias correction, as torch.optim.Adam
    does today), not the reference code's (ε before bias correction); see REPORT.md.

    For each group, with λ = weight_decay, β = hypergrad_lr, (β₁, β₂) = betas:

    .. math::
        g_t &= ∇f(θ_{t-1}) + λ θ_{t-1}                                           \\
        d_{t-1} &= \hat m_{t-1} / (\sqrt{\hat v_{t-1}} + ε)      \quad (d_0 = 0)  \\
        h_t &= -g_t · d_{t-1}                                                    \\
        α_t &= α_{t-1} - β h_t   \quad\text{or}\quad α_t = α_{t-1}(1 + β\cos(g_t, d_{t-1}))  \\
        m_t &= β₁ m_{t-1} + (1-β₁) g_t, \quad v_t = β₂ v_{t-1} + (1-β₂) g_t^2      \\
        \hat m_t &= m_t / (1-β₁^t), \quad \hat v_t = v_t / (1-β₂^t)               \\
        θ_t &= θ_{t-1} - α_t \hat m_t / (\sqrt{\hat v_t} + ε)

    ``amsgrad=True`` divides by the running maximum of v̂ instead of v̂, in d_t and in the step, as
    torch.optim.Adam does. ``decoupled_weight_decay=True`` is AdamW-HD: λ leaves g_t and shrinks θ
    in the step instead, θ_t = θ_{t-1}(1 - α_t λ) - α_t d_t, so the update's derivative in α gains
    the decay term and

    .. math::
        h_t = -g_t · (d_{t-1} + λ θ_{t-2}),\quad
        θ_{t-2} = (θ_{t-1} + α_{t-1} d_{t-1}) / (1 - α_{t-1} λ)

    with g_t = ∇f(θ_{t-1}) (the objective has no decay term); this path forms d_{t-1} + λθ_{t-2}
    tensor by tensor, one extra pass over memory.

    h_t is computed from the moments before they absorb g_t, so no extra copy of the parameters is
    kept. α_t is a 0-d tensor in ``param_groups[i]["lr"]``, β_t in ``["hypergrad_lr"]``; ``step()``
    does not synchronise with the host where torch's fused kernel is used (one read of α
    otherwise); ``hypergrad_lr=0`` gives exactly torch.optim.Adam. With the parameters laid in
    one buffer (:func:`.flatten_`), off CPU, the step runs on the flat tensors in a fixed number
    of kernels (:mod:`.flat`), reading h_t's sums to the host once.
    ``hyper_hypergrad_lr`` γ > 0 turns on second-order HD (see :mod:`hdrepro.optim._hypergrad`;
    ``second_order="printed"`` for the reproducibility report's printed ascent on β).
    ``foreach=False`` runs the plain per-parameter loop written from the equations above;
    ``True`` (default) or ``None`` the fused/multi-tensor path. ``maximize=True`` ascends the
    objective, as in torch.optim: the equations run on g_t = −∇f(θ_{t-1}) (+ λ θ_{t-1}).
    ``fused=None`` (default) takes torch's fused kernel where it is right for the device and
    dtype (:mod:`hdrepro.optim.kernels`), ``False`` never, ``True`` insists (an error where it is
    not used); ``capturable`` and ``differentiable`` are refused, naming ``CUDAGraphStep`` and
    ``hdrepro.autodiff.HyperStack``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 hypergrad_lr=1e-8, rule="additive", hyper_hypergrad_lr=0.0,
                 *, foreach: bool | None = True, second_order: str = "derived",
                 maximize: bool = False, amsgrad: bool = False,
                 decoupled_weight_decay: bool = False, fused: bool | None = None,
                 capturable: bool = False, differentiable: bool = False):
        hg.check_hd_args(lr, hypergrad_lr, rule, hyper_hypergrad_lr, second_order)
        hg.check_torch_flags(fused, capturable, differentiable)
        for name, flag in (("maximize", maximize), ("amsgrad", amsgrad),
                           ("decoupled_weight_decay", decoupled_weight_decay)):
            hg.check_flag(name, flag)
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Invalid betas: {betas} (need two numbers in [0, 1))")
        hg.check_finite_nonneg("epsilon (eps)", eps)
        hg.check_finite_nonneg("weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        hypergrad_lr=hypergrad_lr, rule=rule,
                        hyper_hypergrad_lr=hyper_hypergrad_lr, foreach=foreach,
                        second_order=second_order, maximize=maximize, amsgrad=amsgrad,
                        decoupled_weight_decay=decoupled_weight_decay, fused=fused)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        hg.check_fused_allowed(self.param_groups[-1], "adam")
        hg.check_epsilon(self.param_groups[-1])
        # Whether every parameter of the group has stepped in every step so far: then all share
        # one Adam step count t, and the whole-list path below applies.
        self.param_groups[-1].setdefault("hd_shared_step", True)

    def _note_skipped(self, group, params):
        if len(params) != len(group["params"]):
            group["hd_shared_step"] = False

    def _init_state(self, group, params, fused):
        for p in params:
            state = self.state[p]
            if not state:
                step_device = p.device if fused else torch.device("cpu")
                state["step"] = torch.zeros((), dtype=torch.float32, device=step_device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["amsgrad"] and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _group_step(self, group, params, grads):
        kernel = hg.kernel(params, "adam", group.get("fused"))
        if flat.adam_step(self, group, params, grads, kernel):
            return   # one buffer (hdrepro.optim.flat): every parameter stepped
        fused = kernel == "fused"
        decoupled = ad.decoupled(group)
        # the CPU kernel for h_t where torch's fused kernel makes the update (fused=False asks
        # for torch's own list operations throughout)
        alpha = ad.update_lr(group, self.state, params, grads,
                             shared=group.get("hd_shared_step"), use_native=fused)
        self._init_state(group, params, fused)
        st = [self.state[p] for p in params]
        beta1, beta2 = group["betas"]
        torch_adam(params, grads, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st],
                   [s["max_exp_avg_sq"] for s in st] if group["amsgrad"] else [],
                   [s["step"] for s in st], fused=fused, foreach=kernel == "foreach",
                   amsgrad=group["amsgrad"], decoupled_weight_decay=decoupled,
                   beta1=beta1, beta2=beta2, lr=alpha if fused else float(alpha),
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        self._note_skipped(group, params)

    def _group_step_loop(self, group, params, grads):
        """The equations of the class docstring, one parameter at a time."""
        beta1, beta2 = group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        decoupled = ad.decoupled(group)
        g = [gi if decoupled else gi.add(p, alpha=wd) for p, gi in zip(params, grads)]
        zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
        alpha_prev = hg.group_alpha(group, zero)
        h, d_sq = zero.clone(), zero.clone()
        for p, gi in zip(params, g):
            state = self.state[p]
            if state:
                t = state["step"].item()
                d = (state["exp_avg"] / (1 - beta1 ** t)) / (
                    (ad.second_moment(group, state) / (1 - beta2 ** t)).sqrt() + eps)
                if decoupled:   # ∇_α u_{t-1} = -(d_{t-1} + λθ_{t-2})
                    d = d + wd * (p + alpha_prev * d) / (1 - alpha_prev * wd)
                h = h - hg.vdot(gi, d)
                d_sq = d_sq + hg.vdot(d, d)
        norms = ()
        if group["rule"] == "multiplicative":
            norms = (torch.sqrt(sum((gi * gi).sum() for gi in g)), d_sq.sqrt())
        alpha = hg.update_lr(group, h, *norms)
        self._init_state(group, params, fused=False)
        self._note_skipped(group, params)
        for p, gi in zip(params, g):
            state = self.state[p]
            state["step"] += 1
            t = state["step"].item()
            m = state["exp_avg"].mul_(beta1).add_(gi, alpha=1 - beta1)
            v = state["exp_avg_sq"].mul_(beta2).addcmul_(gi, gi, value=1 - beta2)
            if group["amsgrad"]:
                v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            d = (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + eps)
            if decoupled:
                p.copy_(p.to(alpha.dtype) * (1 - alpha * wd))    # in α's precision
            p.sub_((alpha * d.to(alpha.dtype)).to(p.dtype))
