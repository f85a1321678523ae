r"""The levels of a hyperoptimizer stack: SGD, Adam, AdaGrad and RMSProp as pure update rules.

A level is the pair (init_state, update) of optax, with its hyperparameters passed in as tensors
so that the level above can learn them:

    new_params, new_state = level.update(params, grads, state, hyper, scale)

Each level's state is a typed tuple, as optax types its own (``ScaleByAdamState(count, mu,
nu)``): :class:`SGDState`, :class:`AdamState`, :class:`AdaGradState`, :class:`RMSPropState`.

``params``, ``grads`` and ``state`` come in detached; ``hyper`` holds 0-d tensors, some of which
require grad. The returned parameters are therefore differentiable in ``hyper`` through exactly
one step, which is Chandra et al.'s construction (detach p and g, keep α attached:
``p - α·f(g)``). The returned state is detached (no graph grows across steps). A level serves at
any height: as the primary it updates the model's parameters, above that it updates the learned
hyperparameters (0-d tensors) of the level below.

A hyperparameter may be *stored* (and so learned) in another form than it is used
(``store={"beta1": "tanh"}``): Chandra et al.'s package learns Adam's β and RMSProp's γ as x with
β = (tanh x + 1)/2, and RMSProp's α as √α. The stack keeps the stored x and hands the level the
used value through :meth:`Level.values`, so the level above descends on x, as theirs does.
``chandra(name)`` builds a level with all of that package's conventions.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from .clip import clip_init, clip_step

TensorList = list[Tensor]


class SGDState(NamedTuple):
    """buf: each tensor's momentum buffer b_{t-1} (None before the first step), or None without
    momentum; clip: each tensor's clipper state (:func:`clip_init`), or None without clipping."""
    buf: list | None = None
    clip: list | None = None


class AdamState(NamedTuple):
    """m_t and v_t per tensor, and the step count t."""
    m: TensorList
    v: TensorList
    t: int


class AdaGradState(NamedTuple):
    """G_t, the sum of squared gradients, per tensor."""
    G: TensorList


class RMSPropState(NamedTuple):
    """s_t, the running mean of squared gradients, per tensor."""
    s: TensorList


State = SGDState | AdamState | AdaGradState | RMSPropState

#: stored form -> (stored value from the used one (a float), used value from the stored tensor)
STORES = {
    "raw": (lambda v: v, lambda x: x),
    "tanh": (lambda v: math.atanh(2 * v - 1), lambda x: (torch.tanh(x) + 1) / 2),
    "square": (math.sqrt, lambda x: x * x),   # stored √α, used α = x²
}


def _number(name: str, value, low: float = 0.0, high: float = math.inf, high_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Invalid {name}: expected a number, got {type(value).__name__}")
    value = float(value)  # ints are fine: SGD(lr=50) works
    if not math.isfinite(value) or value < low or value > high or (high_open and value >= high):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ValueError(f"Invalid {name}: {value} (need {low} <= {name} {bound}, finite)")
    return value


class Level:
    """Base class: ``hyper`` (initial values), ``learn`` (names the level above will learn),
    ``State`` (the type of its state)."""

    State: type = NamedTuple
    hyper: dict[str, float]
    learn: tuple[str, ...]
    store: dict[str, str] = {}
    #: the update acts element by element (no norm over a tensor), so the stack may hand it the
    #: model's parameters as one flat vector
    elementwise: bool = True

    def _set_store(self, store: dict[str, str] | None) -> None:
        store = dict(store or {})
        for n, kind in store.items():
            if n not in self.hyper or kind not in STORES:
                raise ValueError(f"Invalid store {{{n!r}: {kind!r}}} for {type(self).__name__}: "
                                 f"names from {sorted(self.hyper)}, forms from {sorted(STORES)}")
            if kind == "tanh" and not 0 < self.hyper[n] < 1:
                raise ValueError(f"store 'tanh' needs 0 < {n} < 1 (got {self.hyper[n]})")
        self.store = store

    def stored(self) -> dict[str, float]:
        """The initial hyperparameters in their stored form (what the level above learns)."""
        return {n: self.stored_value(n, v) for n, v in self.hyper.items()}

    def stored_value(self, name: str, value: float) -> float:
        """One hyperparameter's value in its stored form."""
        return STORES[self.store.get(name, "raw")][0](value)

    def values(self, stored: dict[str, Tensor]) -> dict[str, Tensor]:
        """The used hyperparameters from the stored tensors (differentiably)."""
        return {n: STORES[self.store.get(n, "raw")][1](x) for n, x in stored.items()}

    def _set_learn(self, learn: Sequence[str]) -> None:
        learn = (learn,) if isinstance(learn, str) else tuple(learn)
        unknown = [n for n in learn if n not in self.hyper]
        if unknown:
            raise ValueError(f"{type(self).__name__} cannot learn {unknown}; "
                             f"its hyperparameters are {sorted(self.hyper)}")
        self.learn = learn

    def init_state(self, params: TensorList) -> State:
        """The state before the first step, for these parameters."""
        raise NotImplementedError

    def update(self, params: TensorList, grads: TensorList, state: State,
               hyper: dict[str, Tensor], scale: TensorList | None = None
               ) -> tuple[TensorList, State]:
        """One step: the new parameters (differentiable in ``hyper``) and the new state
        (detached). ``scale`` is the stack's normaliser for the multiplicative rule, one tensor
        per parameter (None for the additive rule)."""
        raise NotImplementedError

    def state_from(self, state) -> State:
        """A state as saved: the typed tuple itself, or the dict of names an older checkpoint
        holds."""
        return self.State(**state) if isinstance(state, dict) else state

    def __repr__(self):
        args = ", ".join(f"{k}={v:g}" for k, v in self.hyper.items())
        return f"{type(self).__name__}({args}, learn={self.learn})"


class SGD(Level):
    r"""SGD, with optional (Nesterov) momentum, the multiplicative rule and averaged clipping.

    .. math::
        b_t = μ b_{t-1} + g_t \;(b_1 = g_1),\quad
        d_t = g_t + μ b_t \text{ (Nesterov)} \;|\; b_t \;(μ_0 ≠ 0) \;|\; g_t,\quad
        d'_t = \mathrm{clip}(d_t) \text{ if clip},\quad
        p_t = p_{t-1} - α d'_t

    Momentum is on when the initial μ ≠ 0 (as in Chandra et al.); clipping is applied after the
    momentum buffer, per parameter tensor (per scalar hyperparameter above the primary), as in the
    clipping report's code. ``rule="multiplicative"`` (a level above the primary only) updates
    p_t = p_{t-1}(1 - α ĥ_t) with the normalised hypergradient ĥ_t = g_t / (‖g_below‖ ‖∂θ/∂p‖)
    that the stack supplies through ``scale``: Baydin et al.'s multiplicative rule.
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, *, nesterov: bool = False,
                 learn: Sequence[str] = ("lr",), clip: bool = False,
                 clip_count_zero_first: bool = True, rule: str = "additive",
                 store: dict[str, str] | None = None):
        self.hyper = {"lr": _number("lr", lr), "momentum": _number("momentum", momentum)}
        self._set_store(store)
        if nesterov and momentum == 0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        if rule not in ("additive", "multiplicative"):
            raise ValueError(f"Invalid rule: {rule!r}; choose 'additive' or 'multiplicative'")
        self.nesterov, self.clip, self.rule = nesterov, clip, rule
        self.elementwise = not clip   # clipping takes a norm per parameter tensor
        self.clip_count_zero_first = clip_count_zero_first
        self._set_learn(learn)

    State = SGDState

    def init_state(self, params):
        return SGDState(buf=[None] * len(params) if self.hyper["momentum"] != 0 else None,
                        clip=[clip_init(p) for p in params] if self.clip else None)

    def update(self, params, grads, state, hyper, scale=None):
        lr, mu = hyper["lr"], hyper["momentum"]
        bufs = None if state.buf is None else list(state.buf)
        clips = None if state.clip is None else list(state.clip)
        new_params = []
        for i, (p, g) in enumerate(zip(params, grads)):
            d = g
            if bufs is not None:
                prev = state.buf[i]
                buf = g if prev is None else mu * prev + g
                bufs[i] = buf.detach()
                d = g + mu * buf if self.nesterov else buf
            if clips is not None:
                d, clips[i], _ = clip_step(d, state.clip[i], self.clip_count_zero_first)
            if self.rule == "multiplicative":
                new_params.append(p - lr * p * (d * scale[i]))
            else:
                new_params.append(p - lr * d)
        return new_params, SGDState(bufs, clips)


class Adam(Level):
    r"""Adam (ε added to √v̂ after bias correction, as torch.optim.Adam and the paper).

    .. math::
        m_t = β_1 m_{t-1} + (1-β_1) g_t,\; v_t = β_2 v_{t-1} + (1-β_2) g_t^2,\;
        p_t = p_{t-1} - α\,\frac{m_t/(1-β_1^t)}{\sqrt{v_t/(1-β_2^t)} + ε}

    β₁ and β₂ may be learned (the bias correction then uses the learned β^t); ε is not. ``v0`` is
    v's initial value (0 as torch; Chandra et al.'s package starts at ε).
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, *, v0: float = 0.0, learn: Sequence[str] = ("lr",),
                 store: dict[str, str] | None = None):
        self.hyper = {"lr": _number("lr", lr), "beta1": _number("beta1", beta1, high=1, high_open=True),
                      "beta2": _number("beta2", beta2, high=1, high_open=True)}
        self.eps, self.v0 = _number("eps", eps), _number("v0", v0)
        self._set_learn(learn)
        self._set_store(store)

    State = AdamState

    def init_state(self, params):
        return AdamState([torch.zeros_like(p) for p in params],
                         [torch.full_like(p, self.v0) for p in params], 0)

    def update(self, params, grads, state, hyper, scale=None):
        lr, b1, b2 = hyper["lr"], hyper["beta1"], hyper["beta2"]
        t = state.t + 1
        # The same equations arranged for a short recorded graph (its backward pass is the
        # hypergradient's cost): the bias corrections as two scalars computed once, m and v by
        # lerp (β m + (1-β) g in one op), a single division per tensor.
        step = lr / (1 - b1 ** t)                 # α / (1 - β₁ᵗ)
        root = torch.rsqrt(1 - b2 ** t)           # 1 / √(1 - β₂ᵗ), so √v̂ = √v · root
        new_params, ms, vs = [], [], []
        for p, g, m, v in zip(params, grads, state.m, state.v):
            m = torch.lerp(g, m, b1)
            v = torch.lerp(g * g, v, b2)
            new_params.append(p - step * m / (torch.sqrt(v) * root + self.eps))
            ms.append(m.detach())
            vs.append(v.detach())
        return new_params, AdamState(ms, vs, t)


class AdaGrad(Level):
    r"""AdaGrad: G_t = G_{t-1} + g_t², p_t = p_{t-1} - α g_t / (√G_t + ε).

    ``initial_accumulator_value`` is G₀ (0 as torch.optim.Adagrad; 0.1 in Chandra et al.'s
    package), ``eps`` 1e-10 as both; ``eps_inside_sqrt`` uses √(G_t + ε) as their package does.
    """

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, *,
                 initial_accumulator_value: float = 0.0, eps_inside_sqrt: bool = False,
                 learn: Sequence[str] = ("lr",), store: dict[str, str] | None = None):
        self.hyper = {"lr": _number("lr", lr)}
        self.eps = _number("eps", eps)
        self.g0 = _number("initial_accumulator_value", initial_accumulator_value)
        self.eps_inside_sqrt = eps_inside_sqrt
        self._set_learn(learn)
        self._set_store(store)

    State = AdaGradState

    def init_state(self, params):
        return AdaGradState([torch.full_like(p, self.g0) for p in params])

    def update(self, params, grads, state, hyper, scale=None):
        new_params, Gs = [], []
        for p, g, G in zip(params, grads, state.G):
            G = G + g * g
            new_params.append(p - hyper["lr"] * g / _root(G, self.eps, self.eps_inside_sqrt))
            Gs.append(G.detach())
        return new_params, AdaGradState(Gs)


class RMSProp(Level):
    r"""RMSProp: s_t = γ s_{t-1} + (1-γ) g_t², p_t = p_{t-1} - α g_t / (√s_t + ε).

    γ is torch.optim.RMSprop's ``alpha`` (default 0.99); α and γ may be learned.
    ``eps_inside_sqrt`` uses √(s_t + ε) as Chandra et al.'s package does.
    """

    def __init__(self, lr: float = 0.01, gamma: float = 0.99, eps: float = 1e-8, *,
                 eps_inside_sqrt: bool = False, learn: Sequence[str] = ("lr",),
                 store: dict[str, str] | None = None):
        self.hyper = {"lr": _number("lr", lr),
                      "gamma": _number("gamma", gamma, high=1, high_open=True)}
        self.eps = _number("eps", eps)
        self.eps_inside_sqrt = eps_inside_sqrt
        self._set_learn(learn)
        self._set_store(store)

    State = RMSPropState

    def init_state(self, params):
        return RMSPropState([torch.zeros_like(p) for p in params])

    def update(self, params, grads, state, hyper, scale=None):
        lr, gamma = hyper["lr"], hyper["gamma"]
        new_params, ss = [], []
        for p, g, s in zip(params, grads, state.s):
            s = gamma * s + (1 - gamma) * g * g
            new_params.append(p - lr * g / _root(s, self.eps, self.eps_inside_sqrt))
            ss.append(s.detach())
        return new_params, RMSPropState(ss)


def _root(x: Tensor, eps: float, inside: bool) -> Tensor:
    return torch.sqrt(x + eps) if inside else torch.sqrt(x) + eps


def chandra(name: str, lr: float | None = None, **kw) -> Level:
    """A level with the conventions of Chandra et al.'s package (gdtuo 1.0), which the clipping
    report ran: every hyperparameter learned; Adam's β₁, β₂ stored through tanh, v₀ = ε;
    AdaGrad G₀ = 0.1 and √(G+ε); RMSProp α stored as √α, γ through tanh, √(s+ε); SGD learns μ
    only when μ ≠ 0 (μ has no effect otherwise). ``lr`` and ``kw`` override the defaults."""
    package = {
        "sgd": (SGD, {"learn": ("lr", "momentum") if kw.get("momentum", 0) else ("lr",)}),
        "adam": (Adam, {"v0": 1e-8, "learn": ("lr", "beta1", "beta2"),
                        "store": {"beta1": "tanh", "beta2": "tanh"}}),
        "adagrad": (AdaGrad, {"initial_accumulator_value": 0.1, "eps_inside_sqrt": True}),
        "rmsprop": (RMSProp, {"eps_inside_sqrt": True, "learn": ("lr", "gamma"),
                              "store": {"lr": "square", "gamma": "tanh"}}),
    }
    if name in package:
        cls, defaults = package[name]
        return cls(**{**defaults, **({} if lr is None else {"lr": lr}), **kw})
    raise ValueError(f"Unknown level {name!r}; choose sgd, adam, adagrad or rmsprop")
