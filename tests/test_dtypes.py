"""Dtypes: the HD optimizers take float32, float64, bfloat16 and float16 parameters. In half
precision the HD state is kept in float64, the step runs the kernel torch.optim runs by default for
the dtype (never one that is wrong for it), and α_t and the loss follow float32."""
import copy

import pytest
import torch
from torch import nn

from hdrepro.optim import HD, AdamHD, SGDHD
from hdrepro.optim import _hypergrad as hg

HALF = [torch.bfloat16, torch.float16]


def _mlp(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 2)).to(dtype)


def _data():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 20, generator=gen)
    return x, (x[:, 0] + x[:, 1] > 0).long()


MAKERS = {
    "SGDHD": lambda ps, **kw: SGDHD(ps, lr=1e-2, hypergrad_lr=1e-3, **kw),
    "SGDHD nesterov": lambda ps, **kw: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True,
                                             hypergrad_lr=1e-3, **kw),
    "AdamHD": lambda ps, **kw: AdamHD(ps, lr=1e-3, hypergrad_lr=1e-7, **kw),
    "AdamHD mult": lambda ps, **kw: AdamHD(ps, lr=1e-3, hypergrad_lr=1e-2,
                                           rule="multiplicative", **kw),
    "HD(AdamW)": lambda ps, **kw: HD(torch.optim.AdamW(ps, lr=1e-3, **kw), hypergrad_lr=1e-7),
}


def _train(name, dtype, steps=50, **kw):
    """The 20-64-2 MLP, full-batch, in `dtype`: (final loss, α_T) as Python floats."""
    model = _mlp(dtype)
    opt = MAKERS[name](list(model.parameters()), **kw)
    x, y = _data()
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x.to(dtype)).float(), y)
        loss.backward()
        opt.step()
    return float(loss.detach()), float(opt.param_groups[0]["lr"])


@pytest.mark.filterwarnings("ignore:eps=1e-08 is below float16")
@pytest.mark.parametrize("dtype", HALF + [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_the_hd_state_is_float32_or_wider_whatever_the_parameters(name, dtype):
    opt = MAKERS[name](list(_mlp(dtype).parameters()))
    want = torch.float32 if dtype == torch.float32 else torch.float64
    group = opt.param_groups[0]
    assert group["lr"].dtype == want and group["hd_h"].dtype == want
    assert group["hd_dalpha_dbeta"].dtype == want


def _start(name) -> float:
    return MAKERS[name]([nn.Parameter(torch.zeros(1))]).defaults["lr"]


#: Adam in float16: v = (1-β₂)g² underflows below 6e-8 (and ε = 1e-8 is 0), so torch.optim.Adam
#: itself follows another trajectory than in float32; those pairs are held to the equation loop
ADAM_FP16 = {(n, torch.float16) for n in MAKERS if "Adam" in n}
FOLLOWS_FLOAT32 = [(n, d) for n in sorted(MAKERS) for d in HALF if (n, d) not in ADAM_FP16]


@pytest.mark.parametrize("name,dtype", FOLLOWS_FLOAT32)
def test_half_precision_learns_alpha_like_float32(name, dtype):
    """What this pins: in bfloat16 an α kept in the parameters' dtype never moved (Adam-HD),
    and torch's fused CPU SGD kernel moved the parameters ~300x too little (SGD-HD)."""
    loss32, alpha32 = _train(name, torch.float32)
    loss16, alpha16 = _train(name, dtype)
    start = _start(name)
    assert alpha32 != start
    # α moves as in float32: its change agrees to 10% (measured: within 1.5%)
    assert alpha16 - start == pytest.approx(alpha32 - start, rel=0.10)
    assert loss16 == pytest.approx(loss32, rel=0.05, abs=0.02)
    assert _train(name, dtype) == (loss16, alpha16), "repeatable"


@pytest.mark.parametrize("name,dtype", sorted(ADAM_FP16 - {("HD(AdamW)", torch.float16)}))
def test_adam_hd_in_float16_is_its_equation_loop(name, dtype):
    """Where float16 Adam departs from float32, the fast path still equals the equations run in
    float16, and α still moves the way it does in float32."""
    loss_f, alpha_f = _train(name, dtype, eps=1e-4)
    loss_l, alpha_l = _train(name, dtype, eps=1e-4, foreach=False)
    _, alpha32 = _train(name, torch.float32, eps=1e-4)
    start = _start(name)
    assert alpha_f - start == pytest.approx(alpha_l - start, rel=1e-3)
    assert loss_f == pytest.approx(loss_l, rel=1e-3)
    assert (alpha_f - start) * (alpha32 - start) > 0


@pytest.mark.parametrize("name,dtype", [(n, d) for n, d in FOLLOWS_FLOAT32
                                        if n in ("SGDHD nesterov", "AdamHD mult")])
def test_the_equation_loop_in_half_precision_follows_float32_too(name, dtype):
    loss32, alpha32 = _train(name, torch.float32, foreach=False)
    loss16, alpha16 = _train(name, dtype, foreach=False)
    start = _start(name)
    assert alpha16 - start == pytest.approx(alpha32 - start, rel=0.10)
    assert loss16 == pytest.approx(loss32, rel=0.05, abs=0.02)


@pytest.mark.parametrize("make", [
    lambda ps: AdamHD(ps, lr=1e-3), lambda ps: HD(torch.optim.Adam(ps), hypergrad_lr=1e-7)])
def test_float16_with_an_epsilon_that_rounds_to_zero_warns(make, recwarn):
    with pytest.warns(UserWarning, match="eps=1e-08.*float16.*1e-4"):
        make([nn.Parameter(torch.zeros(3, dtype=torch.float16))])
    make([nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))])
    assert not [w for w in recwarn if "eps" in str(w.message)]


TORCH_TWINS = [
    ("SGD", lambda ps: torch.optim.SGD(ps, lr=1e-2),
     lambda ps: SGDHD(ps, lr=1e-2, hypergrad_lr=0.0)),
    ("SGD nesterov", lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True,
                                                weight_decay=1e-3),
     lambda ps: SGDHD(ps, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-3,
                      hypergrad_lr=0.0)),
    ("Adam", lambda ps: torch.optim.Adam(ps, lr=1e-3, eps=1e-4),
     lambda ps: AdamHD(ps, lr=1e-3, eps=1e-4, hypergrad_lr=0.0)),
    ("AdamW amsgrad", lambda ps: torch.optim.AdamW(ps, lr=1e-3, eps=1e-4, amsgrad=True),
     lambda ps: AdamHD(ps, lr=1e-3, eps=1e-4, weight_decay=1e-2, decoupled_weight_decay=True,
                       amsgrad=True, hypergrad_lr=0.0)),
]


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name,torch_opt,hd_opt", TORCH_TWINS, ids=[t[0] for t in TORCH_TWINS])
def test_hypergrad_lr_zero_is_torch_default_path_bit_for_bit(name, torch_opt, hd_opt, dtype):
    if name == "AdamW amsgrad":   # AdamW's default λ is 1e-2
        torch_opt = (lambda ps: torch.optim.AdamW(ps, lr=1e-3, eps=1e-4, amsgrad=True))
    a, b = _mlp(dtype), _mlp(dtype)
    ta, hb = torch_opt(list(a.parameters())), hd_opt(list(b.parameters()))
    x, y = _data()
    for _ in range(20):
        for model, opt in ((a, ta), (b, hb)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x.to(dtype)).float(), y).backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_the_kernel_table_keeps_half_precision_off_torchs_wrong_fused_sgd():
    for dtype in HALF:
        p = [torch.zeros(3, dtype=dtype)]
        assert hg.kernel(p, "sgd") == "single" and hg.kernel(p, "adam") == "single"
    if hg._torch_version() >= (2, 4):
        assert hg.kernel([torch.zeros(3)], "sgd") == "fused"
        assert hg.kernel([torch.zeros(3, dtype=torch.float64)], "adam") == "fused"


@pytest.mark.parametrize("bad,match", [
    (torch.complex64, "complex64.*view_as_real"), (torch.int64, "int64")])
def test_other_dtypes_are_refused_naming_the_way_out(bad, match):
    with pytest.raises(ValueError, match=match):
        SGDHD([torch.zeros(3, dtype=bad)], lr=1e-2)


def test_a_group_mixing_dtypes_is_refused():
    with pytest.raises(ValueError, match="mixes dtypes.*group of its own"):
        AdamHD([nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))])
    opt = AdamHD([{"params": [nn.Parameter(torch.zeros(3))]},
                  {"params": [nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))]}])
    assert [g["lr"].dtype for g in opt.param_groups] == [torch.float32, torch.float64]


def _run_autocast(name, autocast: bool, steps=30):
    model = _mlp()
    opt = MAKERS[name](list(model.parameters()))
    x, y = _data()
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return float(loss.detach()), float(opt.param_groups[0]["lr"])


@pytest.mark.parametrize("name", ["SGDHD nesterov", "AdamHD", "HD(AdamW)"])
def test_mixed_precision_under_autocast_learns_alpha_like_float32(name):
    loss32, alpha32 = _run_autocast(name, autocast=False)
    loss16, alpha16 = _run_autocast(name, autocast=True)
    start = 1e-2 if name.startswith("SGDHD") else 1e-3
    assert alpha32 != start and alpha16 != start          # HD moved α in both
    assert alpha16 == pytest.approx(alpha32, rel=0.05)    # bfloat16 matmuls: a few % apart
    assert loss16 == pytest.approx(loss32, rel=0.05, abs=0.02)


@pytest.mark.parametrize("name", ["SGDHD nesterov", "AdamHD", "HD(AdamW)"])
def test_grad_scaler_skips_an_overflowing_step_without_touching_alpha(name):
    """float16 autocast with a GradScaler: a step whose scaled gradients overflow is skipped by
    the scaler, so no inf reaches h_t; α, the HD state and the parameters are left as they were,
    and training goes on."""
    model = _mlp()
    opt = MAKERS[name](list(model.parameters()))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    x, y = _data()

    def step(overflow=False):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss * (float("inf") if overflow else 1.0)).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(5):
        step()
    group = opt.param_groups[0]
    before = (copy.deepcopy(group["lr"]), [p.detach().clone() for p in model.parameters()])
    step(overflow=True)
    assert torch.equal(group["lr"], before[0]) and int(group["hd_nonfinite"]) == 0
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before[1]))
    assert scaler.get_scale() == 2.0 ** 9                   # the scaler saw the overflow
    for _ in range(5):
        step()
    assert torch.isfinite(group["lr"]) and not torch.equal(group["lr"], before[0])
    assert int(group["hd_nonfinite"]) == 0
