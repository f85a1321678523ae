r"""Adam's direction d_{t-1} = m̂_{t-1} / (√v̂_{t-1} + ε), read from its moments before they absorb
g_t, and the hypergradient h_t = -g_t · d_{t-1} from it: what AdamHD and HD(torch.optim.Adam or
AdamW) share, so that neither stores d. ``states`` maps each parameter to torch.optim.Adam's state
("step", "exp_avg", "exp_avg_sq", and with amsgrad "max_exp_avg_sq"); an empty state means the
parameter has not stepped (d_0 = 0). AdamW (decoupled decay) uses w = d_{t-1} + λθ_{t-2} instead
of d_{t-1}, as AdamHD's docstring derives.

:func:`update_lr` takes the CPU kernel of :mod:`.native` where it applies (one pass over
g, m, v) and torch's list operations otherwise; both give the same h_t to rounding.
"""
from __future__ import annotations

import math

import torch

from . import _hypergrad as hg
from . import native


def update_lr(group, states, params, grads, shared: bool, use_native: bool = True):
    """α_t from h_t = -g_t·d_{t-1} by :func:`._hypergrad.update_lr` (with ‖g_t‖, ‖d_{t-1}‖ for
    the multiplicative rule). `grads` are ∇f, without the coupled decay; `shared` says that
    every parameter has taken the same number of steps."""
    if use_native:
        found = native_hypergradient(group, states, params, grads, shared)
        if found is not None:
            return hg.update_lr_host(group, *found)
    g = hg.grads_with_decay(params, grads, 0.0 if decoupled(group) else group["weight_decay"])
    h, d_norm = torch_hypergradient(group, states, params, g, shared)
    return hg.update_lr(group, h, *((hg.norm(g), d_norm) if group["rule"] == "multiplicative"
                                    else ()))


def second_moment(group, state):
    """The v that d divides by: v, or with amsgrad its running maximum."""
    return state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]


def decoupled(group) -> bool:
    return bool(group["decoupled_weight_decay"]) and group["weight_decay"] != 0


def decay_terms(alpha, lam):
    """(1 + α_{t-1}k, k) with k = λ/(1 - α_{t-1}λ): AdamW-HD's d_{t-1} + λθ_{t-2} is
    (1 + α_{t-1}k) d_{t-1} + kθ_{t-1} (AdamHD's docstring). Numbers or 0-d tensors."""
    k = lam / (1 - alpha * lam)
    return 1 + alpha * k, k


def torch_hypergradient(group, states, params, g, shared: bool):
    """h_t = -g_t·d_{t-1} (and ‖d_{t-1}‖) from the moments before they absorb g_t."""
    if decoupled(group):
        return decoupled_hypergradient(group, states, params, g)
    if shared and not hg.per_tensor_loop(params):
        return shared_step_hypergradient(group, states, params, g)
    beta1, beta2 = group["betas"]
    old = [i for i, p in enumerate(params) if states[p]]  # state exists iff stepped
    zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
    if not old:
        return zero, zero
    st = [states[params[i]] for i in old]
    steps = torch.stack([s["step"].to(zero.device, zero.dtype) for s in st])
    bc1 = 1 - beta1 ** steps                       # 1 - β₁^{t-1}, one per tensor
    c = torch.sqrt(1 - beta2 ** steps)             # √(1 - β₂^{t-1})
    # m̂/(√v̂+ε) = (c/bc1) · m/(√v + ε c): fold the per-tensor scalars out of the big tensors.
    eps_c = list((group["eps"] * c).unbind())
    m_list, v_list = [s["exp_avg"] for s in st], [second_moment(group, s) for s in st]
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


def shared_step_hypergradient(group, states, params, g):
    """As :func:`torch_hypergradient` when every tensor has taken the same t-1 steps: one set
    of bias corrections, and the chain is a handful of whole-list kernels (the GPU's path). The
    corrections are computed on the device from the step count tensor, so nothing here
    depends on a host-side number that a CUDA graph would freeze, and they enter the lists
    only through a multiply by a 0-d device tensor (torch's list-plus-tensor add reads the
    tensor to the host: it broke CUDA-graph capture, seen with torch 2.11)."""
    zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
    st = [states[p] for p in params]
    if not st[0]:  # the first step: d_0 = 0
        return zero, zero
    beta1, beta2 = group["betas"]
    t = st[0]["step"].to(zero.device, zero.dtype)  # t-1, shared by every tensor
    bc1 = 1 - beta1 ** t
    q = torch._foreach_sqrt([second_moment(group, s) for s in st])
    torch._foreach_mul_(q, torch.rsqrt(1 - beta2 ** t))  # √v̂_{t-1}
    torch._foreach_add_(q, group["eps"])
    d = torch._foreach_div([s["exp_avg"] for s in st], q)  # (1-β₁^{t-1}) d_{t-1}
    h = -hg.dot(g, d) / bc1
    d_norm = hg.norm(d) / bc1 if group["rule"] == "multiplicative" else zero
    return h, d_norm


def decoupled_hypergradient(group, states, params, g):
    """AdamW-HD: h_t = -g_t·(d_{t-1} + λθ_{t-2}) and its norm, tensor by tensor (AdamHD's
    docstring's equations)."""
    zero = torch.zeros((), dtype=hg.state_dtype(params), device=params[0].device)
    old = [i for i, p in enumerate(params) if states[p]]
    if not old:
        return zero, zero
    beta1, beta2 = group["betas"]
    lam, alpha = group["weight_decay"], hg.group_alpha(group, zero)   # λ, α_{t-1}
    scale, k = decay_terms(alpha, lam)     # λθ_{t-2} = k (θ_{t-1} + α_{t-1} d_{t-1})
    h, sq = zero.clone(), zero.clone()
    for i in old:
        state = states[params[i]]
        t = state["step"].to(zero.device, zero.dtype)
        d = (state["exp_avg"] / (1 - beta1 ** t)) / (
            (second_moment(group, state) / (1 - beta2 ** t)).sqrt() + group["eps"])
        w = d.mul_(scale).add_(params[i] * k)      # d_{t-1} + λθ_{t-2}
        h = h - hg.vdot(g[i], w)
        if group["rule"] == "multiplicative":
            sq = sq + hg.vdot(w, w)
    return h, sq.sqrt()


def native_hypergradient(group, states, params, grads, shared: bool):
    """h_t (and, for the multiplicative rule, ‖g_t‖ and ‖d_{t-1}‖) in one pass over
    (grad, m, v[, θ]) with the CPU kernel of :mod:`.native`, so that only the update pass
    follows; as host scalars for :func:`._hypergrad.update_lr_host`, or None where the kernel
    does not apply (no kernels, off CPU, half precision, unequal step counts, inside
    torch.compile). `grads` are ∇f (the coupled decay λθ is added in the kernel)."""
    kernels = native.kernels()
    st = [states[p] for p in params]
    if (kernels is None or not shared or torch.compiler.is_compiling()
            or len({bool(s) for s in st}) > 1):
        return None
    mult = group["rule"] == "multiplicative"
    if not st[0]:   # the first step: d_0 = 0
        if not native.eligible(params, grads):
            return None
        return hg.host_scalars(params, *((0.0, 0.0, 0.0) if mult else (0.0,)))
    m = [s["exp_avg"] for s in st]
    v = [second_moment(group, s) for s in st]
    if not native.eligible(params, grads, m, v):
        return None
    beta1, beta2 = group["betas"]
    t = float(st[0]["step"])                       # t-1, shared by every tensor
    bc1, c = 1 - beta1 ** t, 1 / math.sqrt(1 - beta2 ** t)
    wd, a, k = group["weight_decay"], 1.0, 0.0
    if decoupled(group):   # w = d_{t-1} + λθ_{t-2} = a d + kθ (AdamHD's docstring)
        alpha = float(group["lr"])
        scale, k = decay_terms(alpha, wd)
        a, wd, bc1 = scale / bc1, 0.0, 1.0
    gd, gg, dd = kernels.adam_dot(grads, m, v, params, weight_decay=wd, c=c,
                                  eps=group["eps"], a=a, k=k, norms=mult)
    if mult:
        return hg.host_scalars(params, -gd / bc1, math.sqrt(gg), math.sqrt(dd) / bc1)
    return hg.host_scalars(params, -gd / bc1)
