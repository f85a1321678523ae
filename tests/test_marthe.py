"""MARTHE and RTHO (hdrepro.optim.marthe), checked in float64 on a small MLP: μ = 0 is SGD-HD bit
for bit, and μ = 1 (RTHO) is reverse-mode autodiff through the unrolled trajectory, on the
training batch and on a validation batch; plus the automatic μ rule and the constructor's
checks."""
import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from hdrepro.optim import MARTHE, SGDHD
from hdrepro.optim.marthe import auto_mu


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _batches(n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 5, generator=gen, dtype=torch.float64),
             torch.randint(0, 3, (16,), generator=gen)) for _ in range(n)]


def _loss(model, batch, params=None, wd=0.0):
    """Cross-entropy, plus λ/2 ‖θ‖² when given λ = wd (the objective MARTHE's weight decay
    stands for)."""
    x, y = batch
    out = model(x) if params is None else functional_call(model, params, (x,))
    penalty = sum((t * t).sum() for t in params.values()) if wd else 0.0
    return nn.functional.cross_entropy(out, y) + 0.5 * wd * penalty


@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_mu_zero_is_sgd_hd_bit_for_bit(wd):
    a, b = _model(), _model()
    ours = MARTHE(a.parameters(), lr=0.1, hypergrad_lr=1e-2, mu=0.0, weight_decay=wd)
    theirs = SGDHD(b.parameters(), lr=0.1, hypergrad_lr=1e-2, weight_decay=wd)
    for batch in _batches(12):
        ours.step(lambda: _loss(a, batch))
        theirs.zero_grad()
        _loss(b, batch).backward()
        theirs.step()
        assert torch.equal(ours.param_groups[0]["lr"], theirs.param_groups[0]["lr"])
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert float(ours.param_groups[0]["lr"]) != 0.1


def _unrolled_hypergradient(model, batches, alphas, final, wd=0.0):
    """d final(θ_T) / dε, θ_t = θ_{t-1} - (α_t + ε) ∇(L_t + λ/2‖θ‖²)(θ_{t-1}), by reverse-mode
    autodiff through the T unrolled steps, at ε = 0."""
    eps = torch.zeros((), dtype=torch.float64, requires_grad=True)
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    theta = dict(params)
    for batch, alpha in zip(batches, alphas):
        grads = torch.autograd.grad(_loss(model, batch, theta, wd), list(theta.values()),
                                    create_graph=True)
        theta = {n: t - (alpha + eps) * g for (n, t), g in zip(theta.items(), grads)}
    (dfde,) = torch.autograd.grad(final(theta), eps)
    return float(dfde)


@pytest.mark.parametrize("beta", [0.0, 1e-2])
@pytest.mark.parametrize("steps", [1, 5, 20])
@pytest.mark.parametrize("on", ["train", "validation"])
def test_rtho_is_autodiff_through_the_unrolled_trajectory(steps, beta, on):
    """With μ = 1, h_{T+1} = ∇E(θ_T)·Z_T is the derivative of E(θ_T) with respect to a shift of
    every α_t the run used (α fixed when β = 0, learned otherwise), to float64 rounding."""
    model = _model()
    start = _model()
    batches = _batches(steps + 1)
    val = _batches(1, seed=9)[0]
    opt = MARTHE(model.parameters(), lr=0.1, hypergrad_lr=beta, mu=1.0)
    alphas = []
    for batch in batches[:steps]:
        opt.step(lambda: _loss(model, batch))
        alphas.append(float(opt.param_groups[0]["lr"]))
    hyper = (lambda: _loss(model, val)) if on == "validation" else None
    opt.step(lambda: _loss(model, batches[steps]), hyper)
    final = val if on == "validation" else batches[steps]
    want = _unrolled_hypergradient(start, batches[:steps], alphas,
                                   lambda theta: _loss(start, final, theta))
    got = float(opt.param_groups[0]["hd_h"])
    assert got == pytest.approx(want, rel=1e-10, abs=1e-14)
    assert want != 0


def test_rtho_with_weight_decay_is_autodiff_of_the_decayed_objective():
    """λ enters g_t and H_t: μ = 1 with λ > 0 is the unrolled derivative of the training
    objective L_t + λ/2 ‖θ‖², 12 steps with α learned."""
    model, start, batches, wd = _model(), _model(), _batches(13), 0.05
    opt = MARTHE(model.parameters(), lr=0.1, hypergrad_lr=1e-2, mu=1.0, weight_decay=wd)
    alphas = []
    for batch in batches[:12]:
        opt.step(lambda: _loss(model, batch))
        alphas.append(float(opt.param_groups[0]["lr"]))
    opt.step(lambda: _loss(model, batches[12]))
    want = _unrolled_hypergradient(start, batches[:12], alphas,
                                   lambda theta: _loss(start, batches[12], theta, wd), wd)
    assert float(opt.param_groups[0]["hd_h"]) == pytest.approx(want, rel=1e-10, abs=1e-14)


def test_a_horizon_between_is_between():
    """0 < μ < 1 gives a hypergradient that is neither SGD-HD's nor RTHO's."""
    hs = {}
    for mu in (0.0, 0.5, 1.0):
        model = _model()
        opt = MARTHE(model.parameters(), lr=0.1, hypergrad_lr=0.0, mu=mu)
        for batch in _batches(6):
            opt.step(lambda: _loss(model, batch))
        hs[mu] = float(opt.param_groups[0]["hd_h"])
    assert len({round(h, 12) for h in hs.values()}) == 3


def test_the_automatic_mu_rule():
    # q = α/p clipped to [0, 1]; c grows by μ while μ > 0; μ = q^(1/(c+1))
    assert auto_mu(0.0, 0.0, 0.1, 0.4) == (0.25, 0.0)
    mu, c = auto_mu(0.25, 0.0, 0.1, 0.4)
    assert c == 0.25 and mu == pytest.approx(0.25 ** (1 / 1.25))
    assert auto_mu(0.5, 2.0, 0.1, -1.0) == (0.0, 2.5)          # a step that hurt E: μ = 0
    assert auto_mu(0.5, 2.0, 1.0, 0.1)[0] == 1.0                # clipped at 1
    model = _model()
    opt = MARTHE(model.parameters(), lr=0.1, hypergrad_lr=1e-3, mu="auto")
    seen = []
    for batch in _batches(10):
        opt.step(lambda: _loss(model, batch))
        seen.append(opt.param_groups[0]["mu"])
    assert all(0.0 <= m <= 1.0 for m in seen) and len(set(seen)) > 1
    assert math.isfinite(float(opt.param_groups[0]["lr"]))


@pytest.mark.parametrize("kwargs,match", [
    (dict(mu=1.5), "mu"), (dict(mu=-0.1), "mu"), (dict(lr=float("nan")), "not finite"),
    (dict(hypergrad_lr=-1.0), "hypergrad_lr"), (dict(weight_decay=-1.0), "weight_decay")])
def test_bad_settings_are_refused_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MARTHE(_model().parameters(), **kwargs)
    with pytest.raises(ValueError, match="one parameter group"):
        MARTHE([{"params": [nn.Parameter(torch.zeros(2))]},
                {"params": [nn.Parameter(torch.zeros(2))]}])


def test_a_state_dict_round_trip_continues_the_same_training():
    import copy
    model = _model()
    opt = MARTHE(model.parameters(), lr=0.1, hypergrad_lr=1e-2, mu="auto")
    batches = _batches(8)
    for batch in batches[:4]:
        opt.step(lambda: _loss(model, batch))
    saved_model, saved = copy.deepcopy(model), opt.state_dict()
    twin = MARTHE(saved_model.parameters(), lr=0.1, hypergrad_lr=1e-2, mu="auto")
    twin.load_state_dict(saved)
    for batch in batches[4:]:
        opt.step(lambda: _loss(model, batch))
        twin.step(lambda: _loss(saved_model, batch))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), saved_model.parameters()))
    assert float(twin.param_groups[0]["lr"]) == float(opt.param_groups[0]["lr"])
