"""HD(...) is a torch.optim.Optimizer over the wrapped optimizer's groups, so schedulers, step
hooks, add_param_group and deepcopy work on it; and what a scheduler does to the learned α_t:
one that scales the current lr (StepLR, ExponentialLR) scales α_t and HD goes on from there, one
that sets lr outright (LambdaLR) replaces α_t whenever it steps (HD's docstring, the README)."""
import copy

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

from hdrepro.autodiff import SGD as StackSGD
from hdrepro.autodiff import Adam as StackAdam
from hdrepro.autodiff import HyperStack
from hdrepro.optim import HD, AdamHD, SGDHD
from hdrepro.optim.scheduling import SETS_LR

MAKERS = {
    "HD(AdamW)": lambda ps, beta=1e-4: HD(torch.optim.AdamW(ps, lr=1e-2), hypergrad_lr=beta),
    "HD(SGD)": lambda ps, beta=1e-2: HD(torch.optim.SGD(ps, lr=0.1, momentum=0.9),
                                        hypergrad_lr=beta),
    "AdamHD": lambda ps, beta=1e-4: AdamHD(ps, lr=1e-2, hypergrad_lr=beta),
    "SGDHD": lambda ps, beta=1e-2: SGDHD(ps, lr=0.1, momentum=0.9, hypergrad_lr=beta),
}


def _problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    return model, x, y


def _step(model, opt, x, y):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def _alpha(opt) -> float:
    return float(opt.param_groups[0]["lr"])


def test_hd_is_an_optimizer_over_the_wrapped_groups_with_hooks_and_added_groups():
    model, x, y = _problem()
    inner = torch.optim.AdamW(model[0].parameters(), lr=1e-2)
    opt = HD(inner, hypergrad_lr=1e-4)
    assert isinstance(opt, torch.optim.Optimizer) and opt.param_groups is inner.param_groups
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    opt.add_param_group({"params": model[2].parameters(), "lr": 1e-3})
    assert len(inner.param_groups) == 2
    added = opt.param_groups[1]
    assert added["hypergrad_lr"] == 1e-4 and added["betas"] == (0.9, 0.999)  # HD's and AdamW's
    _step(model, opt, x, y)
    _step(model, opt, x, y)
    assert calls == ["pre", "post", "pre", "post"]
    assert _alpha(opt) != 1e-2 and float(opt.param_groups[1]["lr"]) != 1e-3
    with pytest.raises(ValueError, match="maximize"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "maximize": True})
    with pytest.raises(ValueError, match="complex64"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, dtype=torch.complex64))]})
    assert len(inner.param_groups) == 2, "a refused group is taken back out"


def test_a_deep_copy_of_hd_steps_as_the_original():
    model, x, y = _problem()
    opt = MAKERS["HD(AdamW)"](list(model.parameters()))
    _step(model, opt, x, y)
    twin = copy.deepcopy({"model": model, "opt": opt})
    assert twin["opt"].param_groups is twin["opt"].optimizer.param_groups
    for _ in range(3):
        _step(model, opt, x, y)
        _step(twin["model"], twin["opt"], x, y)
    assert _alpha(opt) == _alpha(twin["opt"])
    for p, q in zip(model.parameters(), twin["model"].parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_step_lr_scales_the_learned_alpha_and_hd_goes_on(name):
    model, x, y = _problem()
    opt = MAKERS[name](list(model.parameters()))
    sched = lr_scheduler.StepLR(opt, step_size=4, gamma=0.1)
    for t in range(1, 9):
        _step(model, opt, x, y)
        before = _alpha(opt)
        sched.step()
        after = _alpha(opt)
        if t % 4 == 0:   # the boundary: α_t scaled by γ
            assert after == pytest.approx(0.1 * before, rel=1e-6)
        else:            # between boundaries the scheduler leaves α_t as HD made it
            assert after == before
    start = _alpha(opt)
    _step(model, opt, x, y)
    assert _alpha(opt) != start, "HD goes on learning after the scheduler's step"


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_exponential_lr_every_step_does_not_cancel_hd(name):
    """α_t under ExponentialLR with HD differs from the schedule alone (β = 0)."""
    alphas = []
    for beta in (None, 0.0):
        model, x, y = _problem()
        opt = MAKERS[name](list(model.parameters())) if beta is None else \
            MAKERS[name](list(model.parameters()), beta)
        sched = lr_scheduler.ExponentialLR(opt, gamma=0.9)
        for _ in range(6):
            _step(model, opt, x, y)
            sched.step()
        alphas.append(_alpha(opt))
    learned, scheduled = alphas
    base = 1e-2 if "Adam" in name else 0.1
    assert scheduled == pytest.approx(base * 0.9 ** 6, rel=1e-6)
    assert learned != pytest.approx(scheduled, rel=1e-6)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_lambda_lr_sets_alpha_outright_when_it_steps(name):
    model, x, y = _problem()
    opt = MAKERS[name](list(model.parameters()))
    _step(model, opt, x, y)   # the first step leaves α as it is (d_0 = 0)
    base = _alpha(opt)
    sched = lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 / (1 + epoch))
    for t in range(1, 4):
        if t == 1:   # the next step warns, pointing at the user's line
            with pytest.warns(UserWarning, match="LambdaLR sets the learning rate") as seen:
                _step(model, opt, x, y)
            assert seen[0].filename == __file__
        else:
            _step(model, opt, x, y)
        assert _alpha(opt) != pytest.approx(base / t, rel=1e-9)   # HD moved it during the step
        sched.step()
        assert _alpha(opt) == pytest.approx(base / (1 + t), rel=1e-6)   # ... and the schedule reset it


# -- every torch scheduler, against the definition (hdrepro.optim.scheduling) --------------------
WITH_STACK = {**MAKERS, "HyperStack": lambda ps, beta=1e-3: HyperStack(
    ps, [StackAdam(1e-2), StackSGD(beta)])}

SCALING = {
    "StepLR": lambda o: lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
    "MultiStepLR": lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 4], gamma=0.5),
    "ConstantLR": lambda o: lr_scheduler.ConstantLR(o, factor=0.5, total_iters=3),
    "LinearLR (warm-up)": lambda o: lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=4),
    "ExponentialLR": lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9),
    "PolynomialLR": lambda o: lr_scheduler.PolynomialLR(o, total_iters=8, power=1.0),
    "CosineAnnealingLR": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=8),
    "MultiplicativeLR": lambda o: lr_scheduler.MultiplicativeLR(o, lambda epoch: 0.95),
}
SETTING = {
    "LambdaLR": lambda o: lr_scheduler.LambdaLR(o, lambda epoch: 1.0),
    "OneCycleLR": lambda o: lr_scheduler.OneCycleLR(o, max_lr=1e-2, total_steps=20,
                                                    cycle_momentum=False),
    "CyclicLR": lambda o: lr_scheduler.CyclicLR(o, 1e-3, 1e-2, cycle_momentum=False),
    "CosineAnnealingWarmRestarts": lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=4),
}


def _alphas_under(name, make_sched, beta=None, steps=6):
    model, x, y = _problem()
    params = list(model.parameters())
    opt = WITH_STACK[name](params) if beta is None else WITH_STACK[name](params, beta)
    sched = make_sched(opt)
    out = []
    for _ in range(steps):
        _step(model, opt, x, y)
        sched.step()
        out.append(_alpha(opt))
    return out


@pytest.mark.filterwarnings("error::UserWarning")
@pytest.mark.parametrize("sched", sorted(SCALING))
@pytest.mark.parametrize("name", sorted(WITH_STACK))
def test_a_scaling_scheduler_scales_the_learned_alpha_and_hd_keeps_learning(name, sched):
    """The schedule alone (β = 0) against schedule + HD: HD's α differs from the schedule's at
    every step after the first, and no warning is raised."""
    scheduled = _alphas_under(name, SCALING[sched], beta=0.0)
    learned = _alphas_under(name, SCALING[sched])
    assert all(a != pytest.approx(b, rel=1e-9) for a, b in zip(learned[1:], scheduled[1:]))


@pytest.mark.parametrize("sched", sorted(SETTING))
@pytest.mark.parametrize("name", sorted(WITH_STACK))
def test_a_scheduler_that_sets_lr_outright_warns_once(name, sched):
    assert set(SETTING) == set(SETS_LR)
    model, x, y = _problem()
    opt = WITH_STACK[name](list(model.parameters()))
    with pytest.warns(UserWarning, match=f"{sched} sets the learning rate outright") as seen:
        kept = SETTING[sched](opt)   # the optimizer's next step warns
        _step(model, opt, x, y)
        kept.step()
    assert len([w for w in seen if "outright" in str(w.message)]) == 1


def test_reduce_lr_on_plateau_scales_the_learned_alpha():
    model, x, y = _problem()
    opt = MAKERS["AdamHD"](list(model.parameters()))
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    _step(model, opt, x, y)
    _step(model, opt, x, y)
    before = _alpha(opt)
    sched.step(1.0)
    sched.step(2.0)                                   # no improvement: α halves
    assert _alpha(opt) == pytest.approx(before / 2, rel=1e-6)
    _step(model, opt, x, y)
    assert _alpha(opt) != pytest.approx(before / 2, rel=1e-9)
