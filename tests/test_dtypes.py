"""Dtypes: the HD optimizers take float32 and float64 and refuse half precision with a one-line
error that names the fix (mixed precision through torch.autocast, which they support)."""
import copy

import pytest
import torch
from torch import nn

from hdrepro.optim import HD, AdamHD, SGDHD


def _mlp(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 2)).to(dtype)


MAKERS = {
    "SGDHD": lambda ps: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True, hypergrad_lr=1e-3),
    "AdamHD": lambda ps: AdamHD(ps, lr=1e-3, hypergrad_lr=1e-7),
    "HD(AdamW)": lambda ps: HD(torch.optim.AdamW(ps, lr=1e-3), hypergrad_lr=1e-7),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_parameters_are_refused_naming_autocast(name, dtype):
    with pytest.raises(ValueError, match=f"not {str(dtype)[6:]}.*autocast"):
        MAKERS[name](list(_mlp(dtype).parameters()))


@pytest.mark.parametrize("name", ["SGDHD", "AdamHD"])   # HD checks its wrapped groups when built
def test_a_half_precision_group_added_later_is_refused_too(name):
    opt = MAKERS[name](list(_mlp().parameters()))
    with pytest.raises(ValueError, match="bfloat16"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))]})


def _run(name, autocast: bool, steps=30):
    model = _mlp()
    opt = MAKERS[name](list(model.parameters()))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 20, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return float(loss.detach()), float(opt.param_groups[0]["lr"])


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_mixed_precision_under_autocast_learns_alpha_like_float32(name):
    loss32, alpha32 = _run(name, autocast=False)
    loss16, alpha16 = _run(name, autocast=True)
    start = 1e-2 if name == "SGDHD" else 1e-3
    assert alpha32 != start and alpha16 != start          # HD moved α in both
    assert alpha16 == pytest.approx(alpha32, rel=0.05)    # bfloat16 matmuls: a few % apart
    assert loss16 == pytest.approx(loss32, rel=0.05, abs=0.02)


# -- checkpoints and wrapped options (drop-in use) ---------------------------------------------
def _steps(model, opt, n, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 20, generator=gen)
    y = (x[:, 0] > 0).long()
    for _ in range(n):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("torch_opt, hd_opt", [
    (lambda ps: torch.optim.Adam(ps, lr=1e-3), lambda ps: AdamHD(ps, lr=1e-3, hypergrad_lr=0.0)),
    (lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True),
     lambda ps: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True, hypergrad_lr=0.0)),
])
def test_a_torch_checkpoint_loads_as_a_warm_start(torch_opt, hd_opt):
    """Training on from a torch SGD/Adam checkpoint: with β = 0 the HD optimizer continues
    exactly as torch's would (float64), and with β > 0 it steps and learns α from there."""
    torch.set_default_dtype(torch.float64)
    try:
        a, b = _mlp(torch.float64), _mlp(torch.float64)
        ta = torch_opt(list(a.parameters()))
        _steps(a, ta, 5, seed=1)
        b.load_state_dict(a.state_dict())
        saved = ta.state_dict()
        saved["param_groups"][0]["lr"] = 2e-3 if isinstance(ta, torch.optim.Adam) else 2e-2
        ta.load_state_dict(copy.deepcopy(saved))   # torch shares the tensors it is given
        hb = hd_opt(list(b.parameters()))
        hb.load_state_dict(copy.deepcopy(saved))
        assert float(hb.param_groups[0]["lr"]) == saved["param_groups"][0]["lr"]   # α₀ from lr
        _steps(a, ta, 5, seed=2)
        _steps(b, hb, 5, seed=2)
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        hb.param_groups[0]["hypergrad_lr"] = 1e-3
        _steps(b, hb, 3, seed=3)
        assert float(hb.param_groups[0]["lr"]) != saved["param_groups"][0]["lr"]
    finally:
        torch.set_default_dtype(torch.float32)


def test_hd_refuses_a_wrapped_optimizer_that_maximises():
    with pytest.raises(ValueError, match="maximize"):
        HD(torch.optim.Adam(_mlp().parameters(), lr=1e-3, maximize=True), hypergrad_lr=1e-7)


@pytest.mark.parametrize("make", [
    lambda ps, f: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True, hypergrad_lr=1e-3, foreach=f),
    lambda ps, f: AdamHD(ps, lr=1e-3, hypergrad_lr=1e-7, foreach=f)])
def test_foreach_none_means_the_fast_path_as_in_torch(make, monkeypatch):
    called = []
    model = _mlp()
    opt = make(list(model.parameters()), None)
    monkeypatch.setattr(opt, "_group_step_loop", lambda *a: called.append("loop"))
    _steps(model, opt, 2, seed=1)
    assert called == [] and float(opt.param_groups[0]["lr"]) != opt.defaults["lr"]


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("make", [
    lambda ps, **kw: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-4,
                           hypergrad_lr=1e-3, **kw),
    lambda ps, **kw: AdamHD(ps, lr=1e-3, weight_decay=1e-4, hypergrad_lr=1e-7,
                            rule="multiplicative", **kw)])
def test_maximize_ascends_f_exactly_as_descending_minus_f(make, foreach):
    torch.set_default_dtype(torch.float64)
    try:
        up, down = _mlp(torch.float64), _mlp(torch.float64)
        o_up = make(list(up.parameters()), foreach=foreach, maximize=True)
        o_down = make(list(down.parameters()), foreach=foreach)
        gen = torch.Generator().manual_seed(4)
        x = torch.randn(64, 20, generator=gen)
        y = (x[:, 0] > 0).long()
        for _ in range(6):
            for model, opt, sign in ((up, o_up, -1.0), (down, o_down, 1.0)):
                opt.zero_grad()
                (sign * nn.functional.cross_entropy(model(x), y)).backward()
                opt.step()
        for p, q in zip(up.parameters(), down.parameters()):
            assert torch.equal(p, q)
        assert torch.equal(o_up.param_groups[0]["lr"], o_down.param_groups[0]["lr"])
        assert float(o_up.param_groups[0]["lr"]) != o_up.defaults["lr"]
    finally:
        torch.set_default_dtype(torch.float32)
    with pytest.raises(ValueError, match="maximize"):
        make(list(_mlp().parameters()), maximize="yes")


def test_a_one_element_tensor_lr_is_taken_and_a_longer_one_refused():
    model = _mlp()
    opt = HD(torch.optim.Adam(model.parameters(), lr=torch.tensor([1e-3])), hypergrad_lr=1e-7)
    _steps(model, opt, 3, seed=1)
    assert opt.param_groups[0]["lr"].shape == () and float(opt.param_groups[0]["lr"]) != 1e-3
    model = _mlp()
    opt = SGDHD(list(model.parameters()), lr=torch.tensor([1e-2]), hypergrad_lr=1e-3)
    _steps(model, opt, 3, seed=1)
    assert opt.param_groups[0]["lr"].shape == () and float(opt.param_groups[0]["lr"]) != 1e-2
    with pytest.raises(ValueError, match="shape"):
        SGDHD(list(_mlp().parameters()), lr=torch.tensor([1e-2, 1e-3]))


def test_an_unknown_param_group_option_is_refused_not_ignored():
    a, b = _mlp(), _mlp()
    with pytest.raises(ValueError, match="'maximise'"):
        SGDHD([{"params": a.parameters(), "maximise": True}], lr=1e-2)
    with pytest.raises(ValueError, match="'betas'"):
        SGDHD([{"params": a.parameters(), "betas": (0.9, 0.99)}], lr=1e-2)
    opt = AdamHD([{"params": a.parameters()}, {"params": b.parameters(), "lr": 1e-4,
                                                "maximize": False}], lr=1e-3)
    assert [float(g["lr"]) for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])
