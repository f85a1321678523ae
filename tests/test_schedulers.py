"""HD(...) is a torch.optim.Optimizer over the wrapped optimizer's groups, so schedulers, step
hooks, add_param_group and deepcopy work on it; and what a scheduler does to the learned α_t:
one that scales the current lr (StepLR, ExponentialLR) scales α_t and HD goes on from there, one
that sets lr outright (LambdaLR) replaces α_t whenever it steps (HD's docstring, the README)."""
import copy

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

from hdrepro.optim import HD, AdamHD, SGDHD

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
    with pytest.raises(ValueError, match="bfloat16"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))]})
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
        _step(model, opt, x, y)
        assert _alpha(opt) != pytest.approx(base / t, rel=1e-9)   # HD moved it during the step
        sched.step()
        assert _alpha(opt) == pytest.approx(base / (1 + t), rel=1e-6)   # ... and the schedule reset it
