"""AdamHD's torch.optim options: amsgrad and decoupled weight decay (AdamW-HD). With
hypergrad_lr = 0 each is exactly torch's Adam / AdamW with the same options; with HD on, the fast
path equals the equation loop; the hypergradient matches finite differences (test_equivalence's
"Adam-HD amsgrad" and "AdamW-HD" cases), and the decay term in it is needed to match."""
import pytest
import torch
from torch import nn

from hdrepro.optim import AdamHD, native
from hdrepro.optim import adam_directions as ad
from hdrepro.studies.equivalence import Problem, finite_difference_check

VARIANTS = {
    "amsgrad": (dict(amsgrad=True), lambda ps: torch.optim.Adam(ps, 1e-2, amsgrad=True)),
    "AdamW": (dict(decoupled_weight_decay=True, weight_decay=0.1),
              lambda ps: torch.optim.AdamW(ps, 1e-2, weight_decay=0.1)),
    "AdamW amsgrad": (dict(decoupled_weight_decay=True, weight_decay=0.1, amsgrad=True),
                      lambda ps: torch.optim.AdamW(ps, 1e-2, weight_decay=0.1, amsgrad=True)),
}


def _train(make, steps=15):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    opt = make(list(model.parameters()))
    x, y = torch.randn(64, 5, dtype=torch.float64), torch.randint(0, 3, (64,))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()]), opt


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_without_hd_it_is_torchs_optimizer(variant, foreach):
    options, torch_opt = VARIANTS[variant]
    ours, _ = _train(lambda ps: AdamHD(ps, 1e-2, hypergrad_lr=0.0, foreach=foreach, **options))
    theirs, _ = _train(torch_opt)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-14)


@pytest.mark.parametrize("rule,beta", [("additive", 1e-3), ("multiplicative", 1e-1)])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_fast_path_is_the_equation_loop(variant, rule, beta):
    options, _ = VARIANTS[variant]
    runs = [_train(lambda ps: AdamHD(ps, 1e-2, hypergrad_lr=beta, rule=rule, foreach=f,
                                     **options)) for f in (True, False)]
    (fast, o_fast), (loop, o_loop) = runs
    torch.testing.assert_close(fast, loop, rtol=0, atol=1e-13)
    alphas = [float(o.param_groups[0]["lr"]) for o in (o_fast, o_loop)]
    assert alphas[0] == pytest.approx(alphas[1], rel=1e-12) and alphas[0] != 1e-2


@pytest.mark.parametrize("path", ["native-kernel", "torch-lists"])
def test_the_decay_term_of_the_hypergradient_is_what_finite_differences_need(path, monkeypatch):
    """h_t = -g_t·(d_{t-1} + λθ_{t-2}), on the CPU kernel and on torch's lists: leaving λθ_{t-2}
    out (on the lists) misses the finite difference."""
    if path == "torch-lists":
        monkeypatch.setattr(native, "kernels", lambda: None)
    else:
        assert native.kernels() is not None, native.unavailable()
    torch.set_default_dtype(torch.float64)
    try:
        def make(ps):
            return AdamHD(ps, 1e-2, hypergrad_lr=1e-4, weight_decay=0.5,
                          decoupled_weight_decay=True)
        analytic, fd = finite_difference_check(make, Problem(model="mlp", steps=25), l2=0.0)
        assert abs(analytic - fd) <= 1e-6 * abs(fd)
        if path == "native-kernel":
            return
        right = ad.decoupled_hypergradient

        def without_decay(group, states, params, g):
            lam, group["weight_decay"] = group["weight_decay"], 0.0
            try:
                return right(group, states, params, g)
            finally:
                group["weight_decay"] = lam
        monkeypatch.setattr(ad, "decoupled_hypergradient", without_decay)
        analytic, fd = finite_difference_check(make, Problem(model="mlp", steps=25), l2=0.0)
        assert abs(analytic - fd) > 1e-3 * abs(fd)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("option", ["amsgrad", "decoupled_weight_decay"])
def test_the_flags_are_validated(option):
    with pytest.raises(ValueError, match=option):
        AdamHD([nn.Parameter(torch.zeros(2))], **{option: "yes"})
