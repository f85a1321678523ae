"""Checks that the analytic hypergradients are right: analytic ≡ autodiff, analytic ≡ finite
differences. Used by tests/ and by experiments/equivalence.py (which reports the numbers).

Everything runs in float64 on a real model (LogReg or an MLP) over a fixed sequence of
minibatches, so two optimizers given the same start see exactly the same data.
"""
from __future__ import annotations

import copy
import functools
import io
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..methods import family
from ..autodiff import SGD, Adam, HyperStack
from ..engine.models import MLP, LogReg
from ..optim import HD, SGDHD, AdamHD

MakeOpt = Callable[[list], object]


@dataclass(frozen=True)
class Problem:
    """A model and a fixed stream of minibatches (MNIST-shaped: 784 inputs, 10 classes)."""
    model: str = "logreg"      # "logreg" or "mlp" (784-64-64-10, tanh)
    steps: int = 25
    batch: int = 32
    seed: int = 0
    samples: int = 512

    def make_model(self) -> nn.Module:
        torch.manual_seed(self.seed + 1)
        if self.model == "logreg":
            return LogReg().double()
        if self.model == "mlp":
            return MLP((784, 64, 64, 10), activation=nn.Tanh).double()
        raise ValueError(f"Unknown model {self.model!r}: choose 'logreg' or 'mlp'")

    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Seeded class-conditional Gaussians; cycled deterministically into minibatches."""
        gen = torch.Generator().manual_seed(self.seed)
        means = torch.randn(10, 784, generator=gen, dtype=torch.float64) * 0.5
        y = torch.randint(0, 10, (self.samples,), generator=gen)
        x = means[y] + torch.randn(self.samples, 784, generator=gen, dtype=torch.float64)
        out = []
        for t in range(self.steps + 2):
            idx = (torch.arange(self.batch) + t * self.batch) % self.samples
            out.append((x[idx], y[idx]))
        return out


def loss_fn(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def trajectory(make_opt: MakeOpt, problem: Problem) -> dict[str, torch.Tensor]:
    """Train `problem.steps` steps; return α_t (and β_t) per step and the final parameters."""
    model = problem.make_model()
    opt = make_opt(list(model.parameters()))
    alphas, betas = [], []
    for batch in problem.batches()[:problem.steps]:
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()
        alphas.append(float(opt.param_groups[0]["lr"]))
        betas.append(_beta(opt))
    return {"alpha": torch.tensor(alphas, dtype=torch.float64),
            "beta": torch.tensor(betas, dtype=torch.float64),
            "params": torch.cat([p.detach().reshape(-1) for p in model.parameters()])}


def _beta(opt) -> float:
    if isinstance(opt, HyperStack):
        return float(opt.hyper[1]["lr"].detach()) if len(opt.levels) > 1 else float("nan")
    return float(opt.param_groups[0].get("hypergrad_lr", float("nan")))


def train_steps(model: nn.Module, opt, batches) -> None:
    """An ordinary backward (no create_graph) and opt.step() per minibatch, in order."""
    for batch in batches:
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()


def checkpoint_and_resume(make_opt: MakeOpt, problem: Problem, first, second):
    """Train on `first`, checkpoint model and optimizer, train on `second`; then load the
    checkpoint into a fresh model and optimizer and train on `second` again. Returns
    ((model, opt) uninterrupted, (model, opt) resumed) for the caller to compare."""
    model = problem.make_model()
    opt = make_opt(list(model.parameters()))
    train_steps(model, opt, first)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    train_steps(model, opt, second)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    model2 = problem.make_model()
    model2.load_state_dict(saved["model"])
    opt2 = make_opt(list(model2.parameters()))
    opt2.load_state_dict(saved["opt"])
    train_steps(model2, opt2, second)
    return (model, opt), (model2, opt2)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |a| (0 when both are 0)."""
    scale = a.abs().max()
    return float((a - b).abs().max() / scale) if scale > 0 else float((a - b).abs().max())


@dataclass(frozen=True)
class Case:
    """One equivalence: an analytic optimizer and the autodiff stack that must match it."""
    name: str
    analytic: MakeOpt
    autodiff: MakeOpt
    second_order: bool = False


def equivalence_cases(alpha_sgd=0.1, alpha_adam=0.01) -> list[Case]:
    """SGD-HD, SGDN-HD, Adam-HD × {additive, multiplicative}, and second-order HD vs height 3."""
    a, m = "additive", "multiplicative"
    beta = {("sgd", a): 1e-2, ("sgd", m): 2e-2, ("adam", a): 1e-4, ("adam", m): 2e-2}
    cases = []
    for rule in (a, m):
        b_sgd, b_adam = beta["sgd", rule], beta["adam", rule]
        cases += [
            Case(f"SGD-HD {rule}",
                 lambda p, b=b_sgd, r=rule: SGDHD(p, alpha_sgd, hypergrad_lr=b, rule=r),
                 lambda p, b=b_sgd, r=rule: HyperStack(p, [SGD(alpha_sgd), SGD(b, rule=r)])),
            Case(f"SGDN-HD {rule}",
                 lambda p, b=b_sgd, r=rule: SGDHD(p, alpha_sgd, momentum=0.9, nesterov=True,
                                                  hypergrad_lr=b, rule=r),
                 lambda p, b=b_sgd, r=rule: HyperStack(
                     p, [SGD(alpha_sgd, 0.9, nesterov=True), SGD(b, rule=r)])),
            Case(f"Adam-HD {rule}",
                 lambda p, b=b_adam, r=rule: AdamHD(p, alpha_adam, hypergrad_lr=b, rule=r),
                 lambda p, b=b_adam, r=rule: HyperStack(p, [Adam(alpha_adam), SGD(b, rule=r)])),
        ]
    cases += [
        Case("SGD-HD 2nd order (γ) vs SGD/SGD/SGD",
             lambda p: SGDHD(p, alpha_sgd, hypergrad_lr=1e-2, hyper_hypergrad_lr=1e-3),
             lambda p: HyperStack(p, [SGD(alpha_sgd), SGD(1e-2), SGD(1e-3)]), True),
        Case("Adam-HD 2nd order (γ) vs Adam/SGD/SGD",
             lambda p: AdamHD(p, alpha_adam, hypergrad_lr=1e-4, hyper_hypergrad_lr=1e-6),
             lambda p: HyperStack(p, [Adam(alpha_adam), SGD(1e-4), SGD(1e-6)]), True),
        Case("SGD-HD multiplicative 2nd order vs SGD/SGD(mult)/SGD",
             lambda p: SGDHD(p, alpha_sgd, hypergrad_lr=2e-2, rule=m, hyper_hypergrad_lr=1e-2),
             lambda p: HyperStack(p, [SGD(alpha_sgd), SGD(2e-2, rule=m), SGD(1e-2)]), True),
    ]
    return cases


def compare(case: Case, problem: Problem) -> dict:
    """Relative differences of α_t, β_t and θ between the analytic and the autodiff run."""
    a, b = trajectory(case.analytic, problem), trajectory(case.autodiff, problem)
    row = {"case": case.name, "model": problem.model, "steps": problem.steps,
           "alpha_rel_err": rel_err(a["alpha"], b["alpha"]),
           "params_rel_err": rel_err(a["params"], b["params"]),
           "alpha_0": float(a["alpha"][0]), "alpha_T": float(a["alpha"][-1])}
    row["beta_rel_err"] = rel_err(a["beta"], b["beta"]) if case.second_order else float("nan")
    return row


def finite_difference_check(make_opt: MakeOpt, problem: Problem, k: int = 5,
                            eps_rel: float = 1e-4, l2: float = 0.0) -> tuple[float, float]:
    """(analytic h_{k+2}, central-difference ∂f_{B_{k+2}}(θ_{k+1}(α))/∂α at α = α_{k+1}).

    f is the data loss plus (l2/2)‖θ‖²: pass the optimizer's coupled weight decay as `l2`, since
    coupled decay makes the L2 term part of the objective whose hypergradient HD follows.

    Train k steps; step k+1 is taken (i) normally and (ii) twice more from copies with α forced to
    α_{k+1} ± ε and β = 0. The loss of the next batch at those two points gives the finite
    difference; the optimizer's own h at step k+2 (``param_groups[0]["hd_h"]``) is the analytic
    value.
    """
    model = problem.make_model()
    opt = make_opt(list(model.parameters()))
    batches = problem.batches()
    for batch in batches[:k]:
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()
    before = copy.deepcopy((model, opt))
    opt.zero_grad()
    loss_fn(model, batches[k]).backward()
    opt.step()
    alpha = float(opt.param_groups[0]["lr"])
    opt.zero_grad()
    loss_fn(model, batches[k + 1]).backward()
    opt.step()
    analytic = float(opt.param_groups[0]["hd_h"])

    eps = eps_rel * abs(alpha)
    losses = []
    for a in (alpha + eps, alpha - eps):
        m2, o2 = copy.deepcopy(before)
        for group in o2.param_groups:
            group["lr"] = torch.tensor(a, dtype=torch.float64)
            group["hypergrad_lr"] = 0.0
            group["hyper_hypergrad_lr"] = 0.0
        o2.zero_grad()
        loss_fn(m2, batches[k]).backward()
        o2.step()
        with torch.no_grad():
            penalty = 0.5 * l2 * sum((p * p).sum() for p in m2.parameters())
            losses.append(float(loss_fn(m2, batches[k + 1]) + penalty))
    return analytic, (losses[0] - losses[1]) / (2 * eps)


def fd_cases() -> list[tuple[str, MakeOpt, float]]:
    """(name, optimizer, coupled L2) checked against finite differences, HD-wrapped ones too."""
    return [
        ("SGD-HD", lambda p: SGDHD(p, 0.1, hypergrad_lr=1e-2), 0.0),
        ("SGDN-HD (λ=1e-4)", lambda p: SGDHD(p, 0.05, momentum=0.9, nesterov=True,
                                             weight_decay=1e-4, hypergrad_lr=1e-2), 1e-4),
        ("Adam-HD (λ=1e-4)", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4, weight_decay=1e-4),
         1e-4),
        ("SGD-HD multiplicative", lambda p: SGDHD(p, 0.1, hypergrad_lr=1e-1,
                                                  rule="multiplicative"), 0.0),
        ("Adam-HD amsgrad", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4, amsgrad=True), 0.0),
        ("AdamW-HD (decoupled λ=0.1)", lambda p: AdamHD(
            p, 1e-2, hypergrad_lr=1e-4, weight_decay=0.1, decoupled_weight_decay=True), 0.0),
        ("HD(RMSprop)", lambda p: HD(torch.optim.RMSprop(p, lr=1e-3), hypergrad_lr=1e-5), 0.0),
        ("HD(Adagrad)", lambda p: HD(torch.optim.Adagrad(p, lr=1e-2), hypergrad_lr=1e-4), 0.0),
        ("HD(NAdam)", lambda p: HD(torch.optim.NAdam(p, lr=1e-3), hypergrad_lr=1e-5), 0.0),
        ("HD(AdamW, decoupled λ)", lambda p: HD(torch.optim.AdamW(p, lr=1e-3, weight_decay=1e-2),
                                                hypergrad_lr=1e-5), 0.0),
    ] + [(f"HD({family.TITLES[n]})", functools.partial(_family_hd, n), 0.0) for n in FD_FAMILY]


#: the rest of the optimizer family (hdrepro.methods.family), with an α₀ and β each at which α moves
FD_FAMILY = {"momentum": (0.05, 1e-2), "nesterov": (0.05, 1e-2), "adadelta": (1.0, 1e-2),
             "rmsprop-centered": (1e-3, 1e-5), "adam": (1e-3, 1e-5), "adamax": (1e-3, 1e-5),
             "amsgrad": (1e-3, 1e-5), "radam": (1e-3, 1e-5)}


def _family_hd(name: str, params) -> HD:
    lr, beta = FD_FAMILY[name]
    return HD(family.build(name, params, lr), hypergrad_lr=beta)
