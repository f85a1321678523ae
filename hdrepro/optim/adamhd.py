r"""Adam-HD (Baydin et al., ICLR 2018, Algorithm 3)."""
from __future__ import annotations

import torch
from torch.optim.adam import adam as torch_adam

from . import _hypergrad as hg


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
    otherwise); ``hypergrad_lr=0`` gives exactly torch.optim.Adam.
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

    @staticmethod
    def _second_moment(group, state):
        """The v that d divides by: v, or with amsgrad its running maximum."""
        return state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]

    @staticmethod
    def _decoupled(group) -> bool:
        return bool(group["decoupled_weight_decay"]) and group["weight_decay"] != 0

    def _hypergradient(self, group, params, g):
        """h_t = -g_t·d_{t-1} (and ‖d_{t-1}‖) from the moments before they absorb g_t."""
        if self._decoupled(group):
            return self._hypergradient_decoupled(group, params, g)
        if group.get("hd_shared_step") and not hg.per_tensor_loop(params):
            return self._hypergradient_shared_step(group, params, g)
        beta1, beta2 = group["betas"]
        old = [i for i, p in enumerate(params) if self.state[p]]  # state exists iff stepped
        zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
        if not old:
            return zero, zero
        st = [self.state[params[i]] for i in old]
        steps = torch.stack([s["step"].to(zero.device, zero.dtype) for s in st])
        bc1 = 1 - beta1 ** steps                       # 1 - β₁^{t-1}, one per tensor
        c = torch.sqrt(1 - beta2 ** steps)             # √(1 - β₂^{t-1})
        # m̂/(√v̂+ε) = (c/bc1) · m/(√v + ε c): fold the per-tensor scalars out of the big tensors.
        eps_c = list((group["eps"] * c).unbind())
        m_list, v_list = [s["exp_avg"] for s in st], [self._second_moment(group, s) for s in st]
        want_norm = group["rule"] == "multiplicative"
        if hg.per_tensor_loop(params):
            dots, norms = [], []
            for i, m, v, e in zip(old, m_list, v_list, eps_c):
                q = v.sqrt().add_(e)
                torch.div(m, q, out=q)
                dots.append(hg.vdot(g[i], q))
                if want_norm:
                    norms.append(torch.linalg.vector_norm(q, dtype=zero.dtype))
        else:
            q = torch._foreach_sqrt(v_list)
            torch._foreach_add_(q, eps_c)
            q = torch._foreach_div(m_list, q)
            dots = [hg.vdot(g[i], qi) for i, qi in zip(old, q)]
            norms = hg.norms(q) if want_norm else []
        scale = c / bc1
        h = -(torch.stack(dots) * scale).sum()
        d_norm = zero
        if want_norm:
            d_norm = torch.linalg.vector_norm(torch.stack(norms) * scale)
        return h, d_norm

    def _hypergradient_shared_step(self, group, params, g):
        """As _hypergradient when every tensor has taken the same t-1 steps: one set of bias
        corrections, and the chain is a handful of whole-list kernels (the GPU's path). The
        corrections are computed on the device from the step count tensor, so nothing here
        depends on a host-side number that a CUDA graph would freeze, and they enter the lists
        only through a multiply by a 0-d device tensor (torch's list-plus-tensor add reads the
        tensor to the host: it broke CUDA-graph capture, seen with torch 2.11)."""
        zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
        st = [self.state[p] for p in params]
        if not st[0]:  # the first step: d_0 = 0
            return zero, zero
        beta1, beta2 = group["betas"]
        t = st[0]["step"].to(zero.device, zero.dtype)  # t-1, shared by every tensor
        bc1 = 1 - beta1 ** t
        q = torch._foreach_sqrt([self._second_moment(group, s) for s in st])
        torch._foreach_mul_(q, torch.rsqrt(1 - beta2 ** t))  # √v̂_{t-1}
        torch._foreach_add_(q, group["eps"])
        d = torch._foreach_div([s["exp_avg"] for s in st], q)  # (1-β₁^{t-1}) d_{t-1}
        h = -hg.dot(g, d) / bc1
        d_norm = hg.norm(d) / bc1 if group["rule"] == "multiplicative" else zero
        return h, d_norm

    def _hypergradient_decoupled(self, group, params, g):
        """AdamW-HD: h_t = -g_t·(d_{t-1} + λθ_{t-2}) and its norm, tensor by tensor (the
        class docstring's equations)."""
        zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
        old = [i for i, p in enumerate(params) if self.state[p]]
        if not old:
            return zero, zero
        beta1, beta2 = group["betas"]
        lam, alpha = group["weight_decay"], hg.group_alpha(group, zero)   # λ, α_{t-1}
        k = lam / (1 - alpha * lam)            # λθ_{t-2} = k (θ_{t-1} + α_{t-1} d_{t-1})
        h, sq = zero.clone(), zero.clone()
        for i in old:
            state = self.state[params[i]]
            t = state["step"].to(zero.device, zero.dtype)
            d = (state["exp_avg"] / (1 - beta1 ** t)) / (
                (self._second_moment(group, state) / (1 - beta2 ** t)).sqrt() + group["eps"])
            w = d.mul_(1 + alpha * k).add_(params[i] * k)      # d_{t-1} + λθ_{t-2}
            h = h - hg.vdot(g[i], w)
            if group["rule"] == "multiplicative":
                sq = sq + hg.vdot(w, w)
        return h, sq.sqrt()

    def _group_step(self, group, params, grads):
        kernel = hg.kernel(params, "adam", group.get("fused"))
        fused = kernel == "fused"
        decoupled = self._decoupled(group)
        g = hg.grads_with_decay(params, grads, 0.0 if decoupled else group["weight_decay"])
        h, d_norm = self._hypergradient(group, params, g)
        norms = (hg.norm(g), d_norm) if group["rule"] == "multiplicative" else ()
        alpha = hg.update_lr(group, h, *norms)
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
        decoupled = self._decoupled(group)
        g = [gi if decoupled else gi.add(p, alpha=wd) for p, gi in zip(params, grads)]
        zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
        alpha_prev = hg.group_alpha(group, zero)
        h, d_sq = zero.clone(), zero.clone()
        for p, gi in zip(params, g):
            state = self.state[p]
            if state:
                t = state["step"].item()
                d = (state["exp_avg"] / (1 - beta1 ** t)) / (
                    (self._second_moment(group, state) / (1 - beta2 ** t)).sqrt() + eps)
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
