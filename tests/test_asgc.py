"""ASGC: shapes, state_dict, determinism with a seeded generator, the smooth clip below the
threshold, noise scaled by the layer's gradient variance, the ablations, bad input."""
import copy

import pytest
import torch

from hdrepro.methods.asgc import ASGC
from hdrepro.methods.registry import OptimConfig, make_optimizer


def _setup(seed=0, **kw):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3))
    gen = torch.Generator().manual_seed(seed)
    opt = ASGC(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), generator=gen, **kw)
    return model, opt


def _batch(i):
    g = torch.Generator().manual_seed(100 + i)
    return torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)


def _steps(model, opt, n, start=0):
    for i in range(start, start + n):
        x, y = _batch(i)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_clipped_gradients_keep_their_shapes_and_statistics_match_the_layers():
    model, opt = _setup(noise_scale=0.1)
    _steps(model, opt, 3)
    for p in model.parameters():
        assert p.grad.shape == p.shape
        assert opt.state[p]["mean"].shape == p.shape and opt.state[p]["var"].shape == p.shape
    assert opt.last_factors.shape == (4,)


def test_same_seeded_generator_gives_the_same_run_and_another_seed_does_not():
    a = _steps(*_setup(seed=1, noise_scale=0.1), 6)
    b = _steps(*_setup(seed=1, noise_scale=0.1), 6)
    c = _steps(*_setup(seed=2, noise_scale=0.1), 6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_state_dict_round_trip_continues_bit_identically():
    model, opt = _setup(noise_scale=0.1)
    _steps(model, opt, 4)
    snap_model, snap = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    ref = _steps(model, opt, 4, start=4)
    model2, opt2 = _setup(seed=99, noise_scale=0.1)   # another seed: the state must restore it
    model2.load_state_dict(snap_model)
    opt2.load_state_dict(snap)
    assert torch.equal(_steps(model2, opt2, 4, start=4), ref)


def test_the_first_step_passes_the_gradient_unchanged():
    model, opt = _setup(noise_scale=1.0)
    x, y = _batch(0)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    raw = [p.grad.clone() for p in model.parameters()]
    opt.step()
    assert all(torch.equal(r, p.grad) for r, p in zip(raw, model.parameters()))


@pytest.mark.parametrize("sharpness", [2.0, 10.0, 200.0])
def test_clipped_norm_is_below_the_threshold_and_the_raw_norm(sharpness):
    """‖ĝ‖ < min(‖g‖, τ); as p grows the factor tends to hard clipping min(1, τ/‖g‖)."""
    model, opt = _setup(noise_scale=0.0, threshold=0.5, sharpness=sharpness)
    _steps(model, opt, 3)
    params = list(model.parameters())
    tau = [float(opt.state[p]["mean"].norm() + 0.5 * opt.state[p]["var"].sum().sqrt())
           for p in params]
    x, y = _batch(50)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x) * 20, y).backward()   # large gradients
    raw = [float(p.grad.norm()) for p in params]
    opt.step()
    for p, t, r in zip(params, tau, raw):
        n = float(p.grad.norm())
        assert n < min(r, t) * (1 + 1e-6)
        if sharpness == 200.0:
            assert n == pytest.approx(min(r, t), rel=0.01)


def test_noise_is_scaled_by_the_layers_gradient_variance():
    model, opt = _setup(noise_scale=0.5, fixed_threshold=1e30)
    _steps(model, opt, 1)
    w = model[0].weight
    opt.state[w]["var"].fill_(4.0)             # σ = 2
    opt.zero_grad()
    x, y = _batch(1)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    raw = w.grad.clone()
    opt.clip_(list(model.parameters()))
    added = (w.grad / opt.last_factors[0] - raw)
    assert float(added.std()) == pytest.approx(0.5 * 2.0, rel=0.35)   # 35 elements


def test_fixed_threshold_replaces_the_adaptive_one():
    model, opt = _setup(noise_scale=0.0, fixed_threshold=1e-3, sharpness=200.0)
    _steps(model, opt, 3)
    assert all(float(p.grad.norm()) <= 1e-3 * (1 + 1e-6) for p in model.parameters())


def test_asgc_by_name_wraps_a_family_member_with_its_options():
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(OptimConfig("asgc-momentum", 0.1, options=(("noise_scale", 0.2),
                                                                    ("threshold", 2.0))),
                         model.parameters())
    assert isinstance(opt, ASGC) and opt.noise_scale == 0.2 and opt.threshold == 2.0
    assert opt.optimizer.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize("kw,words", [
    ({"noise_scale": -1.0}, "noise_scale"), ({"threshold": float("nan")}, "threshold"),
    ({"decay": 1.0}, "decay"), ({"sharpness": 0.0}, "sharpness"),
    ({"fixed_threshold": -2.0}, "fixed_threshold")])
def test_bad_hyperparameters_give_a_clear_error(kw, words):
    with pytest.raises(ValueError, match=words):
        ASGC(torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1), **kw)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        ASGC(object())
