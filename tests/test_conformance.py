"""torch.optim conformance, table-driven in the spirit of torch's OptimizerInfo tests: every HD
optimizer (with its main options) is run through the same behaviours: state_dict round trips,
snapshots and torch's form, step hooks, unknown param-group options, deepcopy and pickle,
zero_grad, refused dtypes, and where an optimizer claims them, foreach ≡ loop and maximize."""
import copy
import json
import pickle

import pytest
import torch
from torch import nn

from hdrepro.autodiff import SGD as StackSGD
from hdrepro.autodiff import Adam as StackAdam
from hdrepro.autodiff import HyperStack
from hdrepro.optim import HD, AdamHD, SGDHD

#: name -> (factory(params, **options), what it claims beyond the common behaviours)
OPTIMIZERS = {
    "SGDHD nesterov": (lambda ps, **kw: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True,
                                              weight_decay=1e-4, hypergrad_lr=1e-3, **kw),
                       {"foreach", "maximize"}),
    "SGDHD multiplicative 2nd-order": (
        lambda ps, **kw: SGDHD(ps, lr=1e-2, hypergrad_lr=1e-2, rule="multiplicative",
                               hyper_hypergrad_lr=1e-4, **kw), {"foreach", "maximize"}),
    "AdamHD": (lambda ps, **kw: AdamHD(ps, lr=1e-3, hypergrad_lr=1e-7, **kw),
               {"foreach", "maximize"}),
    "AdamW-HD amsgrad": (lambda ps, **kw: AdamHD(ps, lr=1e-3, weight_decay=1e-2, amsgrad=True,
                                                 decoupled_weight_decay=True, hypergrad_lr=1e-7,
                                                 **kw), {"foreach", "maximize"}),
    "HD(SGD)": (lambda ps: HD(torch.optim.SGD(ps, lr=1e-2, momentum=0.9), hypergrad_lr=1e-3),
                set()),
    "HD(AdamW)": (lambda ps: HD(torch.optim.AdamW(ps, lr=1e-3), hypergrad_lr=1e-7), set()),
    "HyperStack": (lambda ps: HyperStack(ps, [StackAdam(1e-3), StackSGD(1e-7)]), set()),
}
NAMES = sorted(OPTIMIZERS)
CLAIMS = {c for _, claims in OPTIMIZERS.values() for c in claims}


def _make(name, params, **kw):
    return OPTIMIZERS[name][0](params, **kw)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))


def _steps(model, opt, n, seed=0, sign=1.0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(32, 10, generator=gen)
        y = torch.randint(0, 3, (32,), generator=gen)
        opt.zero_grad()
        (sign * nn.functional.cross_entropy(model(x), y)).backward()
        opt.step()


def _trained(name, steps, seed=1):
    """A fresh model and its optimizer after `steps` steps."""
    model = _model()
    opt = _make(name, list(model.parameters()))
    _steps(model, opt, steps, seed=seed)
    return model, opt


def _alpha(opt) -> float:
    return float(opt.param_groups[0]["lr"])


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("name", NAMES)
def test_a_state_dict_round_trip_continues_the_same_training(name):
    model, opt = _trained(name, 4)
    saved_model, saved = copy.deepcopy(model), opt.state_dict()
    assert set(saved) == {"state", "param_groups"}                  # torch's form
    json.dumps([{k: v for k, v in g.items() if k != "params"} for g in saved["param_groups"]])
    _steps(model, opt, 4, seed=2)
    twin = _make(name, list(saved_model.parameters()))
    twin.load_state_dict(saved)
    _steps(saved_model, twin, 4, seed=2)
    assert _same(model, saved_model) and _alpha(twin) == _alpha(opt)


@pytest.mark.parametrize("name", NAMES)
def test_a_state_dict_is_a_snapshot(name):
    model, opt = _trained(name, 3)
    saved = opt.state_dict()
    frozen = copy.deepcopy(saved)
    _steps(model, opt, 3, seed=2)
    assert _equal(saved, frozen)
    assert saved["param_groups"][0]["lr"] != _alpha(opt)            # α moved since


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", NAMES)
def test_step_hooks_run_around_each_step(name):
    model = _model()
    opt = _make(name, list(model.parameters()))
    calls = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(_alpha(o)))
    _steps(model, opt, 2)
    pre.remove()
    _steps(model, opt, 1)
    assert calls[0] == "pre" and calls[2] == "pre" and len(calls) == 5
    assert isinstance(opt, torch.optim.Optimizer)


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_param_group_option_is_refused(name):
    opt = _make(name, list(_model().parameters()))
    extra = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="maximise|one set of hyperparameters"):
        opt.add_param_group({"params": [extra], "maximise": True})
    assert all(extra is not p for g in opt.param_groups for p in g["params"])


@pytest.mark.parametrize("name", NAMES)
def test_a_deep_copy_and_a_pickled_copy_step_as_the_original(name):
    model, opt = _trained(name, 3)
    copies = [copy.deepcopy((model, opt)), pickle.loads(pickle.dumps((model, opt)))]
    _steps(model, opt, 3, seed=2)
    for twin_model, twin_opt in copies:
        _steps(twin_model, twin_opt, 3, seed=2)
        assert _same(model, twin_model) and _alpha(twin_opt) == _alpha(opt)


@pytest.mark.parametrize("name", NAMES)
def test_zero_grad_clears_or_zeroes(name):
    model, opt = _trained(name, 1, seed=0)
    nn.functional.mse_loss(model(torch.randn(4, 10)), torch.zeros(4, 3)).backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int32])
@pytest.mark.parametrize("name", NAMES)
def test_parameters_of_an_unsupported_dtype_are_refused_in_one_line(name, dtype):
    param = torch.zeros(3, dtype=dtype, requires_grad=dtype.is_complex)
    with pytest.raises(ValueError, match=str(dtype)[6:]) as err:
        _make(name, [param])
    assert "\n" not in str(err.value)


FOREACH = [n for n in NAMES if "foreach" in OPTIMIZERS[n][1]]


@pytest.mark.parametrize("name", FOREACH)
def test_foreach_is_the_equation_loop(name, float64):
    runs = []
    for foreach in (True, False):
        model = _model().double()
        opt = _make(name, list(model.parameters()), foreach=foreach)
        _steps(model, opt, 5)
        runs.append((model, _alpha(opt)))
    (a, alpha_a), (b, alpha_b) = runs
    assert alpha_a == pytest.approx(alpha_b, rel=1e-12)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)


MAXIMIZE = [n for n in NAMES if "maximize" in OPTIMIZERS[n][1]]


@pytest.mark.parametrize("name", MAXIMIZE)
def test_maximize_ascends_f_as_descent_on_minus_f(name):
    up, down = _model(), _model()
    o_up = _make(name, list(up.parameters()), maximize=True)
    o_down = _make(name, list(down.parameters()))
    _steps(up, o_up, 4, sign=-1.0)
    _steps(down, o_down, 4)
    assert _same(up, down) and _alpha(o_up) == _alpha(o_down)


def test_every_claim_is_exercised():
    assert CLAIMS == {"foreach", "maximize"} and FOREACH and MAXIMIZE


@pytest.mark.parametrize("cls", [SGDHD, AdamHD])
def test_torchs_kernel_flags_work_or_name_the_alternative(cls):
    params = list(_model().parameters())
    assert cls(params).defaults["lr"] == 1e-3                      # torch's default lr
    with pytest.raises(ValueError, match="CUDAGraphStep"):
        cls(params, capturable=True)
    with pytest.raises(ValueError, match="HyperStack"):
        cls(params, differentiable=True)
    with pytest.raises(ValueError, match="fused=True.*bfloat16.*fused=None"):
        cls([nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))], fused=True)
    runs = []
    for fused in (None, False, True):     # torch's fused kernel or its multi-tensor one
        model = _model()
        opt = cls(list(model.parameters()), hypergrad_lr=1e-3 if cls is SGDHD else 1e-7,
                  fused=fused)
        _steps(model, opt, 4)
        runs.append((model, _alpha(opt)))
    assert _same(runs[0][0], runs[2][0]) and runs[0][1] == runs[2][1]
    for p, q in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_an_old_format_adam_state_dict_with_a_number_for_step_loads_and_steps():
    """torch < 1.12 saved Adam's step as a Python number; it loads, and training goes on as
    from the new form."""
    model = _model()
    opt = AdamHD(list(model.parameters()), hypergrad_lr=1e-7)
    _steps(model, opt, 3, seed=1)
    new, old = opt.state_dict(), opt.state_dict()
    for state in old["state"].values():
        state["step"] = float(state["step"])
    runs = []
    for saved in (new, old):
        twin_model = copy.deepcopy(model)
        twin = AdamHD(list(twin_model.parameters()), hypergrad_lr=1e-7)
        twin.load_state_dict(saved)
        _steps(twin_model, twin, 2, seed=2)
        runs.append((twin_model, _alpha(twin)))
    assert _same(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
