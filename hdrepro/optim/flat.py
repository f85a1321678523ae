r"""One-buffer HD steps: a fixed number of kernels per step, whatever the number of tensors.

Why. On a GPU an eager step built from torch's list operations launches kernels for every
operation and every block of about a hundred tensors; on the ResNet-like set of 160 tensors
Adam-HD launched 68 kernels a step against 8 for torch's fused Adam, and the launches, not the
memory traffic, set its time (docs/report/speed.md). When a group's parameters lie end to end
in one tensor, and their gradients and the optimizer's state likewise, the step can run on
those flat tensors instead: each operation is then one kernel, however many parameters there
are.

:func:`flatten_` lays an optimizer's groups out that way: each parameter, and its ``.grad``,
becomes a view of its group's buffer. SGDHD, AdamHD and HD(...) around torch's Adam or AdamW
check the layout at each step and take :func:`sgd_step` or :func:`adam_step` (HD: the same
:func:`adam_plan` and :func:`adam_run` on the wrapped optimizer's state) where the CPU kernels
of :mod:`.native` do not apply (on a GPU; on a CPU without a compiler). Elsewhere, and whenever
the layout is broken (a parameter without a gradient, gradients replaced after
``zero_grad(set_to_none=True)``, ``maximize``, half precision), the list path steps, with the
same result to rounding; state made by either path is read by the other. The per-parameter
state stays in ``optimizer.state[p]`` (as views of the flat buffers), so ``state_dict()`` has
torch's form.

The equations are the optimizers' own (their docstrings), on the flat tensors. With t-1 the
steps taken so far, c = 1/√(1-β₂^{t-1}) and q = m_{t-1} / (√v_{t-1} + ε/c):

    SGD-HD, SGDN-HD:  h_t = -g_t · d_{t-1},                g_t = ∇f(θ_{t-1}) + λθ_{t-1}
    Adam-HD:          h_t = -g_t · d_{t-1} = -(A Σ g_t·q + K Σ g_t·θ_{t-1})
                      A = 1/((1-β₁^{t-1}) c), K = 0          (coupled decay λ in g_t)
                      A = (1+α_{t-1}k)/((1-β₁^{t-1}) c), K = k = λ/(1-α_{t-1}λ)   (AdamW-HD)
                      ‖d_{t-1}‖² = A² q·q + 2AK q·θ + K² θ·θ  (multiplicative rule)

then α_t (and β_t) by the rules of :mod:`._hypergrad` on the host
(:func:`._hypergrad.update_lr_host`; the sums, α_{t-1}, a_{t-1} and β_{t-1} come back in one
transfer), and torch's fused (or multi-tensor) step on the one flat tensor; SGD-HD and SGDN-HD
then write d_t.

Operations per step, counted by tests/test_flat.py (each one kernel on a GPU, a reduction
perhaps two): SGDN-HD 7, Adam-HD and HD(Adam) 11, at most 16 (multiplicative AdamW-HD), plus on
a GPU one copy of the sums to the host; the same for 5 tensors as for 200. Torch's fused kernel
itself takes one launch per 21 M elements or so. The step reads the host once (the sums); the
Adam step count t is kept on the host between steps and read again only when something else
has written it. :class:`.CUDAGraphStep` remains the way to a step with no host read at all.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.optim.adam import adam as torch_adam
from torch.optim.sgd import sgd as torch_sgd

from . import _hypergrad as hg
from . import adam_directions as ad
from . import native


def flatten_(optimizer) -> None:
    """Lay each parameter group's parameters end to end in one new tensor, and their gradients in
    another, so that SGDHD and AdamHD step them in a fixed number of kernels (module docstring).

    Each parameter keeps its identity (modules, hooks and the optimizer hold the same
    ``Parameter``); its data and its ``.grad`` become views of the group's buffers, holding the
    same values (a parameter without a gradient gets zeros). Keep the gradients there: zero them
    with ``optimizer.zero_grad(set_to_none=False)``, since ``set_to_none=True`` drops the views
    and the next backward makes new tensors (then the list path steps, correctly, and a warning
    says why). Existing optimizer state is gathered into flat buffers at the next step.
    """
    groups = optimizer.param_groups
    for i, group in enumerate(groups):
        params = [p for p in group["params"] if p.requires_grad]
        if not params:
            continue
        _check_flattenable(i, params)
        theta = torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype,
                            device=params[0].device)
        grad = torch.zeros_like(theta)
        with torch.no_grad():
            for p, piece, gpiece in zip(params, _pieces(theta, params),
                                        _pieces(grad, params)):
                piece.copy_(p)
                if p.grad is not None:
                    gpiece.copy_(p.grad)
                p.data = piece
                p.grad = gpiece


def _check_flattenable(index: int, params: Sequence[Tensor]) -> None:
    kinds = {(p.dtype, p.device) for p in params}
    if len(kinds) > 1:
        raise ValueError(f"flatten_: parameter group {index} mixes dtypes or devices "
                         f"({', '.join(sorted(f'{d} on {v}' for d, v in kinds))}); put each "
                         "dtype and device in a group of its own")
    if any(p.is_sparse or p.layout != torch.strided for p in params):
        raise ValueError(f"flatten_: parameter group {index} holds a sparse parameter; "
                         "flatten only dense ones")
    spans = sorted((p.data_ptr(), p.data_ptr() + p.numel() * p.element_size())
                   for p in params if p.numel())
    if any(start < end for (_, end), (start, _) in zip(spans, spans[1:])):
        raise ValueError(f"flatten_: two parameters of group {index} share memory (tied "
                         "weights as separate tensors); flattening would untie them, so tie "
                         "them as one Parameter instead")


def _pieces(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """`flat` split into views shaped as the tensors of `like`, in order."""
    return [piece.view(p.shape) for piece, p in
            zip(flat.split([p.numel() for p in like]), like)]


def as_flat(tensors: Sequence[Tensor]) -> Tensor | None:
    """One 1-D view over `tensors` when they are contiguous, of one dtype, and lie end to end in
    memory in this order inside the first one's storage; else None. (Only the addresses are
    compared: a view over the first storage that covers them all is their memory.)"""
    first = tensors[0]
    dtype, size, start = first.dtype, first.element_size(), first.data_ptr()
    ptr = start
    for t in tensors:
        if t.data_ptr() != ptr or t.dtype != dtype or not t.is_contiguous():
            return None
        ptr += t.numel() * size
    storage = first.untyped_storage()
    if ptr > storage.data_ptr() + storage.nbytes():
        return None   # adjacent in memory, but not one allocation
    return first.detach().as_strided(((ptr - start) // size,), (1,))


def applies(group: dict, params: Sequence[Tensor]) -> bool:
    """Whether a group may take the one-buffer step: every parameter has a gradient, float32 or
    float64, not where the CPU kernels of :mod:`.native` step (they make fewer passes over
    memory), not inside torch.compile or a CUDA-graph capture (the step reads the host)."""
    p = params[0]
    if (len(params) != len(group["params"]) or p.dtype not in hg.HOST_SCALAR
            or group.get("maximize") or torch.compiler.is_compiling()):
        return False
    if p.device.type == "cpu":
        return native.kernels() is None
    return not (p.is_cuda and torch.cuda.is_current_stream_capturing())


def flat_pair(opt, group: dict, params, grads, kernel: str) -> tuple[Tensor, Tensor] | None:
    """(θ, ∇f) as two flat tensors when the one-buffer step applies (:func:`applies`, torch's
    fused or multi-tensor `kernel`) and the group is laid out by :func:`flatten_`, else None;
    warns once per optimizer when the parameters are flat but their gradients are not."""
    if kernel not in ("fused", "foreach") or not applies(group, params):
        return None
    theta = as_flat(params)
    if theta is None:
        return None
    grad = as_flat(grads)
    if grad is None or grad.numel() != theta.numel():
        if not getattr(opt, "_hd_flat_warned", False):
            opt._hd_flat_warned = True
            warnings.warn("the parameters lie in one buffer (flatten_) but their gradients do "
                          "not, so the step takes the list path; zero gradients with "
                          "zero_grad(set_to_none=False) to keep them in place", stacklevel=4)
        return None
    return theta, grad


class NotFlat(Exception):
    """The state cannot be had as flat buffers this step (some parameters have it, some not)."""


def state_buffer(states: list[dict], key: str, params, like: Tensor,
                 create: bool) -> Tensor | None:
    """The flat buffer behind ``state[key]`` of every parameter: the views already there, or
    gathered into a new buffer once (after a load, or steps on the list path), or, with `create`,
    zeros when no parameter has it yet (None without `create`). Raises :class:`NotFlat` when
    only some parameters have it."""
    held = [s.get(key) for s in states]
    if all(x is None for x in held):
        if not create:
            return None
        return spread(torch.zeros_like(like), states, key, params)
    if any(x is None for x in held):
        raise NotFlat(key)
    flat = as_flat(held)
    if flat is not None and flat.numel() == like.numel() and flat.dtype == like.dtype:
        return flat
    gathered = torch.cat([x.reshape(-1) for x in held]).to(like.dtype)
    if gathered.numel() != like.numel():
        raise NotFlat(key)
    return spread(gathered, states, key, params)


def spread(flat: Tensor, states: list[dict], key: str, params) -> Tensor:
    """Make each parameter's ``state[key]`` its view of `flat`; return `flat`."""
    for state, piece in zip(states, _pieces(flat, params)):
        state[key] = piece
    return flat


def scratch(opt, like: Tensor, slot: int = 0) -> Tensor:
    """A tensor shaped as `like` that the optimizer keeps from step to step for a temporary of
    the step (`slot` tells two apart). Allocating one as large as the parameters at every step
    costs a fresh page per 4 KiB on CPU, since glibc returns blocks above 32 MiB to the system
    when they are freed: 11,442 page faults and about 40% of an Adam-HD step on the ResNet-like
    set (measured beside bench/bench_step.py). On a GPU torch's caching allocator would keep
    the block anyway. Not part of ``state_dict()``."""
    held = opt.__dict__.setdefault("_hd_scratch", {})
    key = (like.device, like.dtype, like.numel(), slot)
    if key not in held:
        held[key] = torch.empty_like(like)
    return held[key]


def read_host(sums: list[Tensor], group: dict) -> tuple[list[float], dict]:
    """The sums and the group's HD scalars as host numbers, in one transfer (the tensors of the
    group that share the sums' dtype and device; any other is read on its own)."""
    like = sums[0] if sums else group["lr"]
    if not isinstance(like, Tensor):
        return [], {}
    keys = [k for k in hg.HOST_RULE_KEYS if isinstance(group[k], Tensor) and group[k].dim() == 0
            and group[k].dtype == like.dtype and group[k].device == like.device]
    if not sums and not keys:
        return [], {}
    values = torch.stack([*sums, *(group[k] for k in keys)]).tolist()
    return values[:len(sums)], dict(zip(keys, values[len(sums):]))


def sgd_step(opt, group: dict, params, grads, kernel: str) -> bool:
    """SGDHD's step on one buffer (module docstring); False, with nothing done, where it does
    not apply."""
    pair = flat_pair(opt, group, params, grads, kernel)
    if pair is None:
        return False
    theta, grad = pair
    mu, wd, nesterov = group["momentum"], group["weight_decay"], group["nesterov"]
    stores = mu == 0 or nesterov          # else d_{t-1} is the momentum buffer itself
    states = [opt.state[p] for p in params]
    try:
        buf = state_buffer(states, "momentum_buffer", params, theta, create=False) if mu else None
        dirs = state_buffer(states, "direction", params, theta, create=False) if stores else None
    except NotFlat:
        return False
    prev = dirs if stores else buf
    g = torch.add(grad, theta, alpha=wd, out=scratch(opt, theta)) if wd else grad
    mult = group["rule"] == "multiplicative"
    sums = [] if prev is None else [torch.dot(g, prev)] + (
        [torch.dot(g, g), torch.dot(prev, prev)] if mult else [])
    values, held = read_host(sums, group)
    gd, gg, dd = (values + [0.0, 0.0, 0.0])[:3]
    h, gg, dd = hg.host_scalars(params, -gd, gg, dd)
    alpha = hg.update_lr_host(group, h, *((np.sqrt(gg), np.sqrt(dd)) if mult else ()),
                              held=held)
    if kernel == "foreach" and nesterov and not wd:
        grad = grad.clone()    # torch's multi-tensor Nesterov step adds μ b_t into its gradients
    bufs = [buf]
    torch_sgd([theta], [grad], bufs, fused=kernel == "fused", foreach=kernel == "foreach",
              lr=alpha if kernel == "fused" else float(alpha), weight_decay=wd, momentum=mu,
              dampening=group["dampening"], nesterov=nesterov, maximize=False)
    if mu and buf is None:
        spread(bufs[0], states, "momentum_buffer", params)
    if stores:
        if dirs is None:
            dirs = spread(torch.empty_like(theta), states, "direction", params)
        if nesterov:
            torch.add(g, bufs[0], alpha=mu, out=dirs)   # d_t = g_t + μ b_t
        else:
            dirs.copy_(g)                               # d_t = g_t
    return True


def adam_step(opt, group: dict, params, grads, kernel: str) -> bool:
    """AdamHD's step on one buffer (module docstring); False, with nothing done, where it does
    not apply."""
    plan = adam_plan(opt, group, params, grads, kernel)
    if plan is None:
        return False
    adam_run(opt, group, params, kernel, plan)
    return True


def adam_plan(opt, group: dict, params, grads, kernel: str) -> tuple | None:
    """What :func:`adam_run` steps: (θ, ∇f, the states, the step counts, m, v[, max v]) as flat
    tensors, the state laid out flat if it was not (a layout change only); None where the
    one-buffer step does not apply. `opt.state` holds torch.optim.Adam's per-parameter state."""
    pair = flat_pair(opt, group, params, grads, kernel)
    if pair is None:
        return None
    theta, grad = pair
    states = [opt.state[p] for p in params]
    keys = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
    try:
        steps = step_buffer(states, params, theta.device if kernel == "fused" else "cpu")
        moments = [state_buffer(states, k, params, theta, create=True) for k in keys]
    except NotFlat:
        return None
    return theta, grad, states, steps, moments


def adam_run(opt, group: dict, params, kernel: str, plan: tuple) -> None:
    """α_t from Adam's moments (:func:`adam_lr`), then torch's Adam step on the flat tensors."""
    theta, grad, states, steps, moments = plan
    t = host_step(states[0]["step"])
    alpha = adam_lr(opt, group, params, theta, grad, moments, t)
    beta1, beta2 = group["betas"]
    torch_adam([theta], [grad], moments[:1], moments[1:2], moments[2:], [steps[0]],
               fused=kernel == "fused", foreach=kernel == "foreach", amsgrad=group["amsgrad"],
               decoupled_weight_decay=ad.decoupled(group), beta1=beta1,
               beta2=beta2, lr=alpha if kernel == "fused" else float(alpha),
               weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
    if len(steps) > 1:
        steps[1:].add_(1)       # torch advanced the first; every parameter took the step
    remember_step(states[0]["step"], t + 1)


def adam_lr(opt, group: dict, params, theta: Tensor, grad: Tensor, moments,
            t: float) -> Tensor:
    """α_t from h_t = -g_t·d_{t-1} read off Adam's moments (module docstring); α_{t-1}'s
    rule on the host. t is the number of steps taken so far (0: d_0 = 0, h_1 = 0)."""
    mult = group["rule"] == "multiplicative"
    lam, decoupled = group["weight_decay"], ad.decoupled(group)
    if t == 0:
        _, held = read_host([], group)
        h, gn, dn = hg.host_scalars(params, 0.0, 0.0, 0.0)
        return hg.update_lr_host(group, h, *((gn, dn) if mult else ()), held=held)
    beta1, beta2 = group["betas"]
    c = 1 / math.sqrt(1 - beta2 ** t)
    m, v = moments[0], moments[-1]         # v: with amsgrad, its running maximum
    q = torch.sqrt(v, out=scratch(opt, theta)).add_(group["eps"] / c)
    torch.div(m, q, out=q)
    g = grad if decoupled or not lam else torch.add(grad, theta, alpha=lam,
                                                    out=scratch(opt, theta, 1))
    sums = [torch.dot(g, q)]
    if decoupled:
        sums.append(torch.dot(g, theta))
    if mult:
        sums += [torch.dot(g, g), torch.dot(q, q)]
        if decoupled:
            sums += [torch.dot(q, theta), torch.dot(theta, theta)]
    values, held = read_host(sums, group)
    a, k = 1 / ((1 - beta1 ** t) * c), 0.0
    if decoupled:
        alpha = held["lr"] if "lr" in held else float(group["lr"])
        scale, k = ad.decay_terms(alpha, lam)
        a *= scale
    gq, gt = values[0], values[1] if decoupled else 0.0
    h = -(a * gq + k * gt)
    if not mult:
        return hg.update_lr_host(group, *hg.host_scalars(params, h), held=held)
    gg, qq, qt, tt = (values[1 + decoupled:] + [0.0, 0.0])[:4]
    d_sq = max(a * a * qq + 2 * a * k * qt + k * k * tt, 0.0)
    h, gn, dn = hg.host_scalars(params, h, math.sqrt(gg), math.sqrt(d_sq))
    return hg.update_lr_host(group, h, gn, dn, held=held)


def step_buffer(states: list[dict], params, device) -> Tensor:
    """The flat vector behind every parameter's Adam step count ``state["step"]`` (0-d views of
    it): the views already there, gathered from equal counts, or zeros on the first step.
    Raises :class:`NotFlat` when the counts differ (some parameters skipped steps)."""
    held = [s.get("step") for s in states]
    if all(x is None for x in held):
        flat = torch.zeros(len(states), dtype=torch.float32, device=device)
    elif any(x is None for x in held):
        raise NotFlat("step")
    else:
        flat = as_flat(held)
        if flat is not None and flat.numel() == len(states) and flat.device == torch.device(
                device) and flat.dtype == torch.float32:
            return flat
        flat = torch.stack([x.reshape(()) for x in held]).to(device, torch.float32)
        if not bool((flat == flat[0]).all()):
            raise NotFlat("step")
    for state, piece in zip(states, flat.unbind()):
        state["step"] = piece
    return flat


def host_step(step: Tensor) -> float:
    """The value of an Adam step-count tensor, from the host copy :func:`remember_step` kept
    when nothing has written the tensor since (its version counter says so), else read."""
    seen = getattr(step, "_hd_host", None)
    version = step._version
    if seen is not None and seen[0] == version:
        return seen[1]
    value = float(step)
    step._hd_host = (version, value)
    return value


def remember_step(step: Tensor, value: float) -> None:
    """Keep `value` as the step count's host copy, valid until something writes the tensor (a
    copy of the tensor starts its own version count, so it is read again)."""
    step._hd_host = (step._version, value)
