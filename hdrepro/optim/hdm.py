r"""HDM: hypergradient descent on a normalised surrogate, with heavy-ball momentum (Chu, Gao, Ye
and Udell, ICML 2025), and HDM-Best, its authors' practical variant for deterministic problems.

The step is heavy ball with a learned stepsize P (a scalar, or one per coordinate: a diagonal
preconditioner) and a learned momentum β:

.. math::
    x_{k+1} = x_k - P_k ⊙ g_k + β_k (x_k - x_{k-1}),\qquad g_k = ∇f(x_k)

P and β are learned online on the surrogate loss f(x_{k+1}) / ‖g_k‖², whose gradients (the
hypergradients, normalised by ‖g_k‖² so that their scale does not depend on f's) are

.. math::
    r_k = -\frac{g_{k+1} ⊙ g_k}{‖g_k‖^2 + ε_g}\;(\text{diagonal}),\quad
    r_k = -\frac{g_{k+1} · g_k}{‖g_k‖^2 + ε_g}\;(\text{scalar}),\qquad
    m_k = \frac{g_{k+1} · (x_k - x_{k-1})}{‖g_k‖^2 + ε_g}

with AdaGrad stepsizes: G_k = G_{k-1} + r_k², P_{k+1} = P_k - η r_k / (√G_k + 10^{-12}), and
likewise for β with its own rate η_β and accumulator, β clipped to [0, 0.9995]. Normalising is
what separates HDM from Baydin et al.'s HD, whose h_t = -g_t·g_{t-1} grows with the gradients'
scale, the instability HDM's analysis explains.

:class:`HDM` is the stochastic form for minibatch training: g_{k+1} is the next minibatch's
gradient, the one the next step computes anyway, and every step is taken (no null step). A null
step needs f(x_{k+1}) < f(x_k) on the same data, which a minibatch loss judged on a new batch
cannot tell from noise, and judging on the same batch would cost a second forward and backward
per step. :class:`HDMBest` is the deterministic algorithm as its authors run it (module-level
notes in its docstring).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _hypergrad as hg

ADAGRAD_EPS = 1e-12
BETA_MAX = 0.9995
SHAPES = ("scalar", "diagonal")


def _check(lr, hyper_lr, beta_lr, beta, shape):
    hg.check_finite_nonneg("initial stepsize (lr, P₀)", lr)
    hg.check_finite_nonneg("stepsize learning rate (hyper_lr, η)", hyper_lr)
    hg.check_finite_nonneg("momentum learning rate (beta_lr, η_β)", beta_lr)
    hg.check_finite_nonneg("initial momentum (beta, β₀)", beta)
    if beta > BETA_MAX:
        raise ValueError(f"Invalid beta: {beta} (must be in [0, {BETA_MAX}])")
    if shape not in SHAPES:
        raise ValueError(f"Invalid shape: {shape!r}; choose one of {SHAPES}")


def _flat(tensors) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


class HDM(Optimizer):
    r"""HDM for minibatch training (module docstring): heavy ball whose stepsize P (scalar or
    diagonal) and momentum β are learned by AdaGrad on the normalised hypergradients.

    Args:
        params: the parameters (one group; P and β are learned over all of them).
        lr: P₀, the initial stepsize (>= 0).
        hyper_lr: η, the AdaGrad rate of P (the authors' default 0.1).
        beta: β₀, the initial momentum in [0, 0.9995] (the authors start at 0.95).
        beta_lr: η_β, the AdaGrad rate of β (0 keeps β fixed).
        shape: "scalar" or "diagonal" P.
        eps: ε_g, added to ‖g_k‖² (the authors' 1e-12).
        weight_decay: λ, coupled L2: g_k = ∇f(x_k) + λ x_k (part of the objective, as in
            SGDHD and AdamHD).

    P is kept in ``param_groups[0]["lr"]`` (its mean when diagonal, for loggers) and β in
    ``["momentum"]``; the full state is in ``state``. Works in float32 and float64.
    """

    def __init__(self, params, lr=1e-3, hyper_lr=0.1, beta=0.95, beta_lr=1.0,
                 shape="diagonal", eps=1e-12, weight_decay=0.0):
        _check(lr, hyper_lr, beta_lr, beta, shape)
        hg.check_finite_nonneg("eps", eps)
        hg.check_finite_nonneg("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, hyper_lr=hyper_lr, momentum=beta, beta_lr=beta_lr,
                                      shape=shape, eps=eps, weight_decay=weight_decay))

    def add_param_group(self, param_group):
        if getattr(self, "param_groups", None):
            raise ValueError("HDM takes one parameter group: P and β are learned over all "
                             "parameters together")
        super().add_param_group(param_group)
        hg.check_dtypes(self.param_groups[-1]["params"], one_dtype=True)

    @torch.no_grad()
    def step(self, closure=None):
        loss = hg.evaluate_closure(closure)
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return loss
        x, g = _flat(params), _flat([p.grad for p in params])
        if group["weight_decay"]:
            g = g + group["weight_decay"] * x
        state = self.state["hdm"] if "hdm" in self.state else self._init(group, x)
        if "g_prev" in state:   # learn P_{k-1} and β_{k-1} from g_k, the gradient at x_k
            self._learn(group, state, g)
        new = x - state["P"] * g + state["beta"] * (x - state["x_prev"])
        state.update(x_prev2=state["x_prev"], x_prev=x, g_prev=g)
        _write(params, new)
        group["lr"] = float(state["P"].mean())
        group["momentum"] = float(state["beta"])
        return loss

    def _init(self, group, x) -> dict:
        shape = x.shape if group["shape"] == "diagonal" else ()
        state = {"P": torch.full(shape, float(group["lr"]), dtype=x.dtype, device=x.device),
                 "G": torch.zeros(shape, dtype=x.dtype, device=x.device),
                 "beta": torch.tensor(float(group["momentum"]), dtype=x.dtype, device=x.device),
                 "Gm": torch.zeros((), dtype=x.dtype, device=x.device), "x_prev": x.clone()}
        self.state["hdm"] = state
        return state

    @staticmethod
    def _learn(group, state, g_next):
        """One AdaGrad step on P_{k-1} and β_{k-1} from r and m, with g_next = g_k at x_k."""
        r, m = hypergradients(g_next, state["g_prev"], state["x_prev"] - state["x_prev2"],
                              group["shape"], group["eps"])
        state.update(r=r, m=m)
        state["P"], state["G"] = adagrad(state["P"], state["G"], r, group["hyper_lr"])
        beta, state["Gm"] = adagrad(state["beta"], state["Gm"], m, group["beta_lr"])
        state["beta"] = beta.clamp(0.0, BETA_MAX)


def hypergradients(g_next: Tensor, g: Tensor, step: Tensor, shape: str, eps) -> tuple:
    """(r, m): the normalised hypergradients of P and β (module docstring), where g_next is the
    gradient at the new point, g the one the step used and `step` = x_k - x_{k-1}."""
    denom = g.dot(g) + eps
    r = -(g_next * g) / denom if shape == "diagonal" else -g_next.dot(g) / denom
    return r, g_next.dot(step) / denom


def adagrad(value: Tensor, acc: Tensor, grad: Tensor, rate) -> tuple[Tensor, Tensor]:
    """G ← G + r², value ← value − η r/(√G + 10⁻¹²): the AdaGrad step HDM takes on P and β."""
    acc = acc + grad * grad
    return value - rate * grad / (acc.sqrt() + ADAGRAD_EPS), acc


def _write(params, flat: Tensor) -> None:
    for p, v in zip(params, torch.split(flat, [p.numel() for p in params])):
        p.copy_(v.view_as(p))


class HDMBest(Optimizer):
    r"""HDM-Best (Chu et al. 2025), the practical HDM as its authors run it, for deterministic
    problems (full-batch losses): one call of ``step(closure)`` is one iteration.

    On top of the HDM step (module docstring), with P₀ = 0, β₀ = 0.95 and a scalar β:

    - **null steps**: the trial point x_{k+1} is accepted only if f(x_{k+1}) < f(x_k); otherwise
      x stays, and x_{k-1} becomes x_k, so the next step has no momentum;
    - **rate decay**: every 50 iterations, until a curvature guess exists, η ← max(0.05 η,
      10⁻² η₀) (nonconvex) or max(0.8 η, 10⁻³ η₀) (convex);
    - **curvature guess**: each accepted step longer than 10⁻³ records ‖g_{k+1} − g_k‖ /
      ‖x_{k+1} − x_k‖; after more than max(min(max_iter/4, 200), 20) net accepted steps (an
      accepted step counts +1, a null step −2, floored at 0) L is their mean, η = 1/L, G is
      reset, and from then on ε_g = ‖x_k − x_{k−1}‖² L²/4;
    - with ``convex=True``, P is clipped to [0, 10¹⁰/L], and η₀ = 10/L instead of 2/L;
    - η₀ = 0.1 when no L is given.

    Args:
        params: the parameters (one group).
        L: an estimate of the gradient's Lipschitz constant, or None.
        hyper_lr: η₀; None for the rule above.
        beta_lr: η_β (the authors' 1.0).
        shape: "diagonal" (the authors' default) or "scalar" P.
        convex: the problem is convex (needs L).
        max_iter: the run's iteration budget, which sets when L is guessed (default 1000).

    ``closure()`` must zero the gradients, compute f, call backward and return f, as for
    torch.optim.LBFGS. ``step`` returns f at the accepted point. One deviation from the
    authors' code: with no recorded curvature the guess is skipped (their mean of an empty list
    is NaN).
    """

    def __init__(self, params, L=None, hyper_lr=None, beta_lr=1.0, shape="diagonal",
                 convex=False, max_iter=1000):
        if L is not None:
            hg.check_finite_nonneg("L", L)
        if convex and not L:
            raise ValueError("convex=True clips P to [0, 1e10/L] and needs L > 0; give L, or "
                             "run with convex=False")
        if hyper_lr is None:
            hyper_lr = (10.0 if convex else 2.0) / L if L else 0.1
        _check(0.0, hyper_lr, beta_lr, 0.95, shape)
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"Invalid max_iter: {max_iter!r} (a positive integer)")
        super().__init__(params, dict(lr=hyper_lr, hyper_lr=hyper_lr, beta_lr=beta_lr,
                                      shape=shape, convex=convex, max_iter=max_iter,
                                      L=math.inf if L is None else float(L)))

    def _evaluate(self, closure, params, x) -> tuple[float, Tensor]:
        _write(params, x)
        with torch.enable_grad():
            f = float(closure().detach())
        return f, _flat([p.grad for p in params])

    @torch.no_grad()
    def step(self, closure):
        group = self.param_groups[0]
        params = list(group["params"])
        if "hdm" not in self.state:
            x = _flat(params).clone()
            fx, gx = self._evaluate(closure, params, x)
            shape = x.shape if group["shape"] == "diagonal" else ()
            self.state["hdm"] = dict(
                x=x, x_old=x.clone(), fx=fx, gx=gx, P=torch.zeros(shape, dtype=x.dtype),
                G=torch.zeros(shape, dtype=x.dtype), beta=torch.tensor(0.95, dtype=x.dtype),
                Gm=torch.zeros((), dtype=x.dtype), rate0=group["hyper_lr"], iters=0,
                monotone=0, guesses=[], guessed=False)
        s = self.state["hdm"]
        s["iters"] += 1
        x, gx = s["x"], s["gx"]
        trial = x - s["P"] * gx + s["beta"] * (x - s["x_old"])
        f_trial, g_trial = self._evaluate(closure, params, trial)
        self._learn(group, s, g_trial)
        self._decay(group, s)
        s["x_old"] = x
        if f_trial < s["fx"]:
            self._accept(s, trial, f_trial, g_trial)
        else:
            s["monotone"] = max(0, s["monotone"] - 2)
            _write(params, x)
        self._guess_curvature(group, s)
        return s["fx"]

    @staticmethod
    def _learn(group, s, g_trial):
        step = s["x"] - s["x_old"]
        eps = 0.25 * float(step.dot(step)) * group["L"] ** 2 if s["guessed"] else 1e-12
        r, m = hypergradients(g_trial, s["gx"], step, group["shape"], eps)
        s["P"], s["G"] = adagrad(s["P"], s["G"], r, group["hyper_lr"])
        if group["convex"]:
            s["P"] = s["P"].clamp(0.0, 1e10 / group["L"])
        beta, s["Gm"] = adagrad(s["beta"], s["Gm"], m, group["beta_lr"])
        s["beta"] = beta.clamp(0.0, BETA_MAX)

    @staticmethod
    def _decay(group, s):
        if s["iters"] % 50 == 49 and not s["guessed"]:
            factor, floor = (0.8, 1e-3) if group["convex"] else (0.05, 1e-2)
            group["hyper_lr"] = max(group["hyper_lr"] * factor, s["rate0"] * floor)

    @staticmethod
    def _accept(s, trial, f_trial, g_trial):
        moved = float((trial - s["x"]).norm())
        if moved > 1e-3:
            s["guesses"].append(float((g_trial - s["gx"]).norm()) / moved)
        s.update(x=trial, fx=f_trial, gx=g_trial, monotone=s["monotone"] + 1)

    @staticmethod
    def _guess_curvature(group, s):
        need = max(min(group["max_iter"] / 4, 200), 20)
        if s["monotone"] > need and not s["guessed"] and s["guesses"]:
            group["L"] = sum(s["guesses"]) / len(s["guesses"])
            group["hyper_lr"] = s["rate0"] = 1.0 / group["L"]
            s["G"] = s["G"] * 0.0
            s["guessed"] = True
