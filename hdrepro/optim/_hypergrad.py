r"""The learning-rate update shared by every analytic HD optimizer: one place for the equations.

Notation (Baydin et al., ICLR 2018). The base optimizer moves the parameters by
u_t = -α_t d_t, where d_t is its update direction (g_t for SGD, the momentum buffer for SGDN,
m̂_t / (√v̂_t + ε) for Adam), so ∇_α u_{t-1} = -d_{t-1}. With g_t = ∇f(θ_{t-1}):

    h_t = ∂f(θ_{t-1}) / ∂α_{t-1} = g_t · ∇_α u_{t-1} = -g_t · d_{t-1}     (h_1 = 0: d_0 = 0)

the dot product taken over all parameters of a parameter group.

Additive rule (Baydin et al., Eq. for α_t in Algorithms 1-3):

    α_t = α_{t-1} - β_t h_t

Multiplicative rule (Baydin et al., "multiplicative rule"), with the normalised hypergradient
ĥ_t = h_t / (‖g_t‖ ‖∇_α u_{t-1}‖) = -cos(g_t, d_{t-1})  (ĥ_t = 0 when either norm is 0):

    α_t = α_{t-1} (1 - β_t ĥ_t)

Second-order HD (the reproducibility report's extension, sign corrected). β is learned by
gradient descent on the same loss, with rate γ. Since α_{t-1} depends on β through its own update,

    ∂f(θ_{t-1}) / ∂β = h_t · a_{t-1},     a_{t-1} = ∂α_{t-1}/∂β_{t-1}
                     = -h_{t-1}                     (additive)
                     = -α_{t-2} ĥ_{t-1}             (multiplicative)
    β_t = β_{t-1} - γ h_t a_{t-1}

so for the additive rule β_t = β_{t-1} + γ h_t h_{t-1}. The report printed
β_t = β_{t-1} + γ ∂f/∂β (gradient *ascent*); tests/test_equivalence.py checks our sign against a
height-3 autodiff tower. ``second_order="printed"`` runs the printed update instead,

    β_t = β_{t-1} + γ h_t a_{t-1}                                         (printed: ascent)

to test what the report's own runs did; "derived" (the default) is the descent above. As in the reference code and Chandra et al.'s stacks, β is updated first
and the new β_t is used for α_t, which is used for θ_t in the same step.

Non-finite hypergradients. If h_t (or ĥ_t) is NaN/inf, for example from a NaN gradient, α and β
keep their previous values and ``group["hd_nonfinite"]`` counts the event. The parameters are then
updated exactly as the base optimizer would update them (a NaN gradient still reaches θ, as with
torch.optim), so the training loss shows the divergence while α stays a finite, inspectable
number. The rules are written once (:func:`lr_rule`) and run on 0-d tensors on the parameters'
device, so there is no host synchronisation (:func:`update_lr`), or, where the CPU kernels of
:mod:`.native` have already summed h_t on the host, on NumPy scalars that round as those
tensors do (:func:`update_lr_host`).
"""
from __future__ import annotations

import copy
import functools
import math
import warnings
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.optim import Optimizer

from .kernels import FUSED, HALF_DTYPES, check_dtypes
from .scheduling import check_schedulers

RULES = ("additive", "multiplicative")
#: how second-order HD updates β: "derived" (descent, checked by autodiff) or "printed" (the
#: reproducibility report's equation as printed, ascent)
SECOND_ORDER = ("derived", "printed")


def check_hd_args(lr, hypergrad_lr, rule: str, hyper_hypergrad_lr,
                  second_order: str = "derived") -> None:
    """Validate the HD hyperparameters shared by SGDHD, AdamHD and HD, naming the bad value."""
    if second_order not in SECOND_ORDER:
        raise ValueError(f"Invalid second_order: {second_order!r}; choose one of {SECOND_ORDER}")
    check_finite_nonneg("learning rate (lr, α₀)", lr)
    check_finite_nonneg("hypergradient learning rate (hypergrad_lr, β)", hypergrad_lr)
    check_finite_nonneg("hyper-hypergradient learning rate (hyper_hypergrad_lr, γ)",
                        hyper_hypergrad_lr)
    if rule not in RULES:
        raise ValueError(f"Invalid rule: {rule!r}; choose one of {RULES}")


def check_finite_nonneg(name: str, value) -> None:
    """Raise a ValueError naming `value` unless it is a finite real number >= 0."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"Invalid {name}: expected a number or 0-d tensor, got shape "
                             f"{tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Invalid {name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value} is not finite")
    if value < 0:
        raise ValueError(f"Invalid {name}: {value} (must be >= 0)")


def check_torch_flags(fused, capturable, differentiable) -> None:
    """torch.optim's kernel flags: ``fused`` is taken (None: where :data:`.kernels.FUSED` says
    it is right; False: never); ``capturable`` and ``differentiable`` are refused, naming what
    does their job here."""
    if fused not in (None, False, True):
        raise ValueError(f"Invalid fused: {fused!r} (None, False or True)")
    if capturable:
        raise ValueError("capturable=True is not needed: the HD step never reads the host, and "
                         "to record it as a CUDA graph wrap the optimizer, CUDAGraphStep(opt) "
                         "(hdrepro.optim)")
    if differentiable:
        raise ValueError("differentiable=True is not supported; to differentiate through "
                         "optimizer steps (hypergradients by autodiff) use "
                         "hdrepro.autodiff.HyperStack")


def check_fused_allowed(group: dict, name: str) -> None:
    """With fused=True, refuse parameters for which torch's fused kernel is not used (wrong or
    unchecked: :data:`.kernels.FUSED`), naming the way out."""
    params = group["params"]
    if group.get("fused") and params and kernel(params, name) != "fused":
        p = params[0]
        raise ValueError(f"fused=True: torch's fused {name} kernel is not used for "
                         f"{str(p.dtype)[6:]} on {p.device.type} (see hdrepro.optim.kernels); "
                         "leave fused=None to let the optimizer choose")


def check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"Invalid {name}: {value!r} (must be True or False)")


def check_epsilon(group: dict) -> None:
    """Warn when Adam's ε is 0 in float16: v then underflows to 0 and m/(√v + ε) turns inf (as in
    torch.optim.Adam, whose default path does the same)."""
    eps = group.get("eps")
    params = group["params"]
    if (isinstance(eps, (int, float)) and params and params[0].dtype == torch.float16
            and eps < torch.finfo(torch.float16).tiny):
        warnings.warn(f"eps={eps:g} is below float16's smallest normal number (6.1e-05) and v "
                      "underflows, so Adam's step turns inf; pass eps=1e-4 or more, or keep the "
                      "parameters in bfloat16 or float32", UserWarning, stacklevel=4)


def state_dtype(params: Sequence[Tensor]) -> torch.dtype:
    """The dtype of a group's HD scalars (α, β, h_t, ∂α/∂β): float32 for float32 parameters, else
    float64. In half precision the scalars cost nothing in float64, and α then reaches torch's
    kernels as the very Python float a user gives torch.optim (Adam divides it by its bias
    correction in double precision), so hypergrad_lr=0 is torch's step bit for bit."""
    if params and params[0].dtype == torch.float32:
        return torch.float32
    return torch.float64


def kernel(params: Sequence[Tensor], name: str, fused: bool | None = None) -> str:
    """Which torch kernel steps these parameters: "fused" (:data:`.kernels.FUSED`, unless
    `fused` is False), else torch's default for the device: "single" (one tensor at a time) on
    CPU in half precision, where it is what torch.optim runs by default, and "foreach"
    (multi-tensor) otherwise."""
    p = params[0]
    if fused is not False and FUSED.get((p.device.type, p.dtype, name)) and (
            p.device.type != "cpu" or _torch_version() >= (2, 4)):   # no fused CPU kernels before
        return "fused"
    if p.dtype in HALF_DTYPES and p.device.type == "cpu":
        return "single"
    return "foreach"


def _torch_version() -> tuple[int, int]:
    return tuple(int(x) for x in torch.__version__.split(".")[:2])


def init_group(group: dict) -> None:
    """Give a parameter group its HD state: α as a 0-d tensor, a_{t-1}, h_t and the NaN counter
    (numbers from a state_dict become tensors again)."""
    check_dtypes(group["params"], one_dtype=True)
    dtype, device = torch.get_default_dtype(), None
    if group["params"]:
        dtype, device = state_dtype(group["params"]), group["params"][0].device
    lr = torch.as_tensor(group["lr"], dtype=dtype, device=device)
    if lr.numel() != 1:
        raise ValueError(f"Invalid lr: a tensor of shape {tuple(lr.shape)}; HD learns one α per "
                         "group, so give a number or a one-element tensor")
    group["lr"] = lr.reshape(()).clone()   # a (1,)-shaped lr becomes the 0-d α the rules use
    for key, kind in (("hd_dalpha_dbeta", dtype), ("hd_h", dtype), ("hd_nonfinite", torch.int64)):
        group[key] = torch.as_tensor(group.get(key, 0), dtype=kind, device=device).clone()
    if isinstance(group.get("hypergrad_lr"), Tensor) and group["hypergrad_lr"].dim() == 0:
        group["hypergrad_lr"] = group["hypergrad_lr"].to(device, dtype).clone()


def snapshot(state_dict: dict) -> dict:
    """A state_dict that later steps cannot change: the state's tensors cloned, and each
    group's 0-d tensors (α_t, β_t, h_t, …) as Python numbers."""
    def plain(v):
        return v.item() if isinstance(v, Tensor) and v.dim() == 0 else copy.deepcopy(v)
    return {**state_dict, "state": copy.deepcopy(state_dict["state"]),
            "param_groups": [{k: plain(v) for k, v in g.items()}
                             for g in state_dict["param_groups"]]}


def group_alpha(group: dict, like: Tensor) -> Tensor:
    """α_{t-1} as a tensor on `like`'s device: the group's own tensor, or a new one if a scheduler
    set a float."""
    return torch.as_tensor(group["lr"], dtype=like.dtype, device=like.device)


def store(group: dict, key: str, value: Tensor) -> None:
    """group[key] = value, written into the tensor already there when it matches, so that the HD
    state keeps its storage from step to step: what a replayed CUDA graph needs
    (:mod:`hdrepro.optim.graphs`), since a graph reads and writes fixed addresses. Under
    torch.compile the value is rebound instead: in a compiled step, in-place writes to a
    group's tensors were lost (seen with torch 2.13; tests/test_compile.py)."""
    old = group.get(key)
    if (isinstance(old, Tensor) and old.shape == value.shape and old.dtype == value.dtype
            and old.device == value.device and not torch.compiler.is_compiling()):
        old.copy_(value)
    else:
        group[key] = value


def per_tensor_loop(params: Sequence[Tensor]) -> bool:
    """Whether to run an elementwise chain tensor by tensor rather than as whole-list foreach ops.

    On CPU a loop keeps each tensor in cache through the whole chain (measured 1.5x faster than
    whole-list foreach ops for Adam-HD's hypergradient on 2 cores, bench/bench_step.py); on a GPU
    whole-list foreach ops win because they launch far fewer kernels.
    """
    return bool(params) and params[0].device.type == "cpu"


def dot(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> Tensor:
    """Σ_i ⟨x_i, y_i⟩ over a list of tensors, as one 0-d tensor (no host sync)."""
    if not xs:
        return torch.zeros(())
    if per_tensor_loop(xs):
        return torch.stack([vdot(x, y) for x, y in zip(xs, ys)]).sum()
    xs, ys = _upcast(xs), _upcast(ys)
    return signed_sum(torch._foreach_mul(xs, ys))


def vdot(x: Tensor, y: Tensor) -> Tensor:
    """⟨x, y⟩ of two tensors of any shape, accumulated and returned in float32 or wider."""
    x, y = x.reshape(-1), y.reshape(-1)
    if x.dtype != y.dtype or x.dtype in HALF_DTYPES:
        x, y = x.float(), y.float()   # one half-precision product is already 3 digits off
    return torch.dot(x, y)


def _upcast(xs: Sequence[Tensor]) -> list[Tensor]:
    """The list in float32 if it holds half-precision tensors, else as it is."""
    if xs and xs[0].dtype in HALF_DTYPES:
        return [x.float() for x in xs]
    return list(xs)


def signed_sum(xs: Sequence[Tensor]) -> Tensor:
    """Σ of every element of a list of tensors in a constant number of kernel launches.

    torch has no multi-tensor sum, but it has a multi-tensor 1-norm: Σx = 2 Σ max(x, 0) − Σ|x|.
    The rounding error is ε·Σ|x|, the same bound as a plain summation. (A loop of one reduction
    per tensor costs one launch per tensor, which dominated the step on a GPU.)
    """
    pos = torch._foreach_clamp_min(list(xs), 0.0)
    total_pos = torch.stack(torch._foreach_norm(pos, 1)).sum()
    total_abs = torch.stack(torch._foreach_norm(list(xs), 1)).sum()
    return 2 * total_pos - total_abs


def norm(xs: Sequence[Tensor]) -> Tensor:
    """‖x‖₂ over a list of tensors, as one 0-d tensor (no host sync); 0 for an empty list."""
    if not xs:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(norms(xs)))


def norms(xs: Sequence[Tensor]) -> list[Tensor]:
    """‖x_i‖₂ of each tensor of a list, in float32 or wider."""
    return list(torch._foreach_norm(_upcast(xs)))


def update_lr(group: dict, h: Tensor, g_norm: Tensor | None = None,
              d_norm: Tensor | None = None) -> Tensor:
    """Apply the (second-order) HD rule to a group given h_t; return the new α_t (a 0-d tensor).

    For rule="multiplicative", `g_norm` = ‖g_t‖ and `d_norm` = ‖∇_α u_{t-1}‖ = ‖d_{t-1}‖.
    """
    alpha, beta = group_alpha(group, h), group["hypergrad_lr"]  # β: a number or a tensor
    h_used = h
    if group["rule"] == "multiplicative":   # an empty list's norm is a default-dtype CPU zero
        h_used = normalised(h, g_norm.to(h), d_norm.to(h))
    gamma = group["hyper_hypergrad_lr"]  # a number, or one per cell (hdrepro.optim.batched)
    a_prev = group["hd_dalpha_dbeta"].to(h.device, h.dtype)
    new_alpha, new_beta, a_new = lr_rule(group, alpha, beta, gamma, h, h_used, a_prev)
    ok = torch.isfinite(new_alpha)
    second = is_second_order(group)
    if second:
        ok &= torch.isfinite(new_beta)
    store(group, "hd_h", h.detach())  # the latest hypergradient, for loggers and checks
    store(group, "lr", torch.where(ok, new_alpha, alpha))
    store(group, "hd_dalpha_dbeta", torch.where(ok, a_new, a_prev))
    store(group, "hd_nonfinite", group["hd_nonfinite"].to(h.device) + ~ok)   # int64 + bool
    if second:
        store(group, "hypergrad_lr", torch.where(ok, new_beta, beta))
    return group["lr"]


def normalised(h, g_norm, d_norm):
    """ĥ_t = h_t / (‖g_t‖ ‖d_{t-1}‖), the multiplicative rule's hypergradient; 0 where a norm is
    0 (the first step, or a zero gradient). On 0-d tensors without a branch (no host read), on
    host scalars with one."""
    denom = g_norm * d_norm
    if isinstance(denom, Tensor):
        return torch.where(denom > 0, h / torch.where(denom > 0, denom, 1.0), 0.0)
    return h / denom if denom > 0 else type(h)(0)


def is_second_order(group: dict) -> bool:
    """Whether β is learned too (γ > 0, or one γ per cell)."""
    gamma = group["hyper_hypergrad_lr"]
    return isinstance(gamma, Tensor) or gamma != 0


def lr_rule(group: dict, alpha, beta, gamma, h, h_used, a_prev):
    """(α_t, β_t, a_t) from α_{t-1}, β_{t-1}, γ, h_t, the h the rule uses (ĥ_t for the
    multiplicative rule, else h_t) and a_{t-1} = ∂α_{t-1}/∂β_{t-1}: the rules of the module
    docstring, written once. They run on 0-d tensors (:func:`update_lr`), on vectors of them
    (one α per cell, :mod:`.batched`) and on NumPy scalars of the state's dtype
    (:func:`update_lr_host`); each operation rounds once in that dtype either way."""
    if not is_second_order(group):
        new_beta = beta
    elif group.get("second_order", "derived") == "derived":
        new_beta = beta - gamma * h * a_prev     # descent on f w.r.t. β
    else:
        new_beta = beta + gamma * h * a_prev     # the report's printed (ascent) update
    if group["rule"] == "multiplicative":
        return alpha * (1 - new_beta * h_used), new_beta, -alpha * h_used
    return alpha - new_beta * h_used, new_beta, -h_used


#: the NumPy scalar type that rounds as a group's HD state does (:func:`state_dtype`)
HOST_SCALAR = {torch.float32: np.float32, torch.float64: np.float64}
TORCH_DTYPE = {v: k for k, v in HOST_SCALAR.items()}
#: the group values the host rule reads: α_{t-1}, β_{t-1}, γ, a_{t-1}
HOST_RULE_KEYS = ("lr", "hypergrad_lr", "hyper_hypergrad_lr", "hd_dalpha_dbeta")


def host_scalars(params: Sequence[Tensor], *values: float) -> list:
    """Numbers computed on the host (the CPU kernels' sums), rounded to the HD state's dtype as
    torch.tensor(value, dtype=state_dtype(params)) rounds them (an overflow is inf, quietly)."""
    kind = HOST_SCALAR[state_dtype(params)]
    with np.errstate(all="ignore"):
        return [kind(v) for v in values]


def update_lr_host(group: dict, h, g_norm=None, d_norm=None, held: dict | None = None) -> Tensor:
    """:func:`update_lr` for an h_t (and norms) known on the host, as NumPy scalars of the
    state's dtype (:func:`host_scalars`): the same equations (:func:`lr_rule`), rounded the
    same way, so the same α_t, β_t and a_t bit for bit (tests/test_native.py), without torch's
    15 or so operations on 0-d tensors (about 30 µs a step on CPU). `held` gives group values
    already read to the host ("lr", "hypergrad_lr", …: :mod:`.flat` reads them with its sums
    in one transfer); the others are read here. The results are written into the group's
    tensors, as :func:`update_lr` writes them; returns α_t."""
    kind, held = type(h), held or {}
    with np.errstate(all="ignore"):   # inf and NaN are caught below, as in update_lr
        alpha, beta, gamma, a_prev = (kind(held[k] if k in held else float(group[k]))
                                      for k in HOST_RULE_KEYS)
        h_used = h
        if group["rule"] == "multiplicative":
            h_used = normalised(h, g_norm, d_norm)
        new_alpha, new_beta, a_new = lr_rule(group, alpha, beta, gamma, h, h_used, a_prev)
    second = is_second_order(group)
    ok = math.isfinite(new_alpha) and (not second or math.isfinite(new_beta))
    put = functools.partial(_put, group, TORCH_DTYPE[kind])
    put("hd_h", h)
    put("lr", new_alpha if ok else alpha)
    put("hd_dalpha_dbeta", a_new if ok else a_prev)
    if second:
        put("hypergrad_lr", new_beta if ok else beta)
    if not ok:
        group["hd_nonfinite"].add_(1)
    return group["lr"]


def _put(group: dict, dtype: torch.dtype, key: str, value) -> None:
    """group[key] = value as a 0-d tensor of `dtype`, written into the tensor already there when
    it has that dtype (as :func:`store` keeps the state's storage)."""
    old = group.get(key)
    if isinstance(old, Tensor) and old.dim() == 0 and old.dtype == dtype:
        old.fill_(float(value))
    else:
        group[key] = torch.tensor(float(value), dtype=dtype)


def grads_with_decay(params: list[Tensor], grads: list[Tensor], weight_decay: float) -> list[Tensor]:
    """g_t = ∇L(θ_{t-1}) + λ θ_{t-1} (coupled L2, as in Baydin et al.'s code), without touching .grad."""
    if weight_decay == 0:
        return grads
    return torch._foreach_add(grads, params, alpha=weight_decay)


def params_with_grads(group: dict) -> tuple[list[Tensor], list[Tensor]]:
    """The group's parameters that have a gradient, and those gradients (sparse ones refused)."""
    params, grads = [], []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError("HD optimizers do not support sparse gradients; use dense ones")
        params.append(p)
        grads.append(p.grad)
    return params, grads


def evaluate_closure(closure):
    """torch.optim's closure protocol: re-evaluate the loss with gradients on (None if no closure)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class HDOptimizer(Optimizer):
    """Base of SGDHD and AdamHD: HD state in every parameter group, and a ``step()`` that runs
    ``_group_step`` (torch's fused/multi-tensor kernels) or, with ``foreach=False``,
    ``_group_step_loop`` (the equations, one parameter at a time) for each group."""

    def add_param_group(self, param_group):
        # torch.optim ignores keys it does not know; a misspelt or foreign option (say
        # "maximise", or Adam's "betas" given to SGDHD) would then silently do nothing
        unknown = sorted(set(param_group) - set(self.defaults) - {"params", "param_names"})
        if unknown:
            raise ValueError(f"{type(self).__name__} does not know the param-group option(s) "
                             f"{', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(sorted(self.defaults))}")
        super().add_param_group(param_group)
        init_group(self.param_groups[-1])

    def state_dict(self) -> dict:
        """torch's state_dict, as a snapshot: later steps do not change it (torch's holds the
        group's α tensor and the state tensors themselves), and param_groups hold plain numbers,
        as torch's do, so they can be written as JSON."""
        return snapshot(super().state_dict())

    def load_state_dict(self, state_dict: dict) -> None:
        """torch's load, then each group's HD settings and state where the saved dict has none:
        a plain torch.optim SGD or Adam checkpoint loads as a warm start, its lr becoming α₀
        and β and the rule this optimizer's (a missing key would otherwise fail at the next
        step)."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            init_group(group)   # the HD scalars back as tensors, in the state's dtype
        for state in self.state.values():   # torch < 1.12 saved Adam's step as a number
            if "step" in state and not torch.is_tensor(state["step"]):
                state["step"] = torch.tensor(float(state["step"]), dtype=torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        if not torch.compiler.is_compiling():
            check_schedulers(self)   # a scheduler that would undo HD warns
        for group in self.param_groups:
            params, grads = params_with_grads(group)
            if params and group.get("maximize"):
                grads = torch._foreach_neg(grads)   # ascend f: descend on −f, equations as they are
            if params:
                # foreach=None means "choose for me", as in torch.optim: the fast path
                fast = group.get("foreach") is not False
                step = self._group_step if fast else self._group_step_loop
                step(group, params, grads)
        return loss

    def _group_step(self, group, params, grads):
        raise NotImplementedError

    def _group_step_loop(self, group, params, grads):
        raise NotImplementedError
