"""hdrepro.optim: invariants, wrapping, validation, checkpointing and NaN handling."""
import copy
import math

import pytest
import torch

from hdrepro.optim import HD, SGDHD, AdamHD
from hdrepro.optim import _hypergrad as hg
from hdrepro.optim import native
from hdrepro.studies.equivalence import (Problem, checkpoint_and_resume, loss_fn, rel_err,
                                         train_steps, trajectory)

pytestmark = pytest.mark.usefixtures("float64")

P = Problem(model="mlp", steps=20)


def _run(make, problem=P):
    return trajectory(make, problem)


# -- β = 0 is exactly the plain optimizer ------------------------------------------------------
PLAIN = [
    ("SGD", lambda p: SGDHD(p, 0.05, hypergrad_lr=0), lambda p: torch.optim.SGD(p, 0.05)),
    ("SGDN+wd", lambda p: SGDHD(p, 0.05, momentum=0.9, nesterov=True, weight_decay=1e-4,
                                hypergrad_lr=0),
     lambda p: torch.optim.SGD(p, 0.05, momentum=0.9, nesterov=True, weight_decay=1e-4,
                               fused=True)),
    ("Adam+wd", lambda p: AdamHD(p, 1e-3, weight_decay=1e-4, hypergrad_lr=0),
     lambda p: torch.optim.Adam(p, 1e-3, weight_decay=1e-4, fused=True)),
]


@pytest.mark.parametrize("name,ours,plain", PLAIN, ids=[c[0] for c in PLAIN])
def test_zero_hypergrad_lr_is_exactly_the_plain_optimizer(name, ours, plain):
    a, b = _run(ours), _run(plain)
    assert torch.equal(a["params"], b["params"])
    assert torch.all(a["alpha"] == a["alpha"][0])


# -- the fast multi-tensor path ≡ the per-parameter loop written from the equations ------------
PATHS = [
    ("SGDHD", lambda f: (lambda p: SGDHD(p, 0.1, hypergrad_lr=1e-2, foreach=f))),
    ("SGDNHD mult wd", lambda f: (lambda p: SGDHD(p, 0.1, momentum=0.9, nesterov=True,
                                                  weight_decay=1e-4, hypergrad_lr=1e-1,
                                                  rule="multiplicative", foreach=f))),
    ("SGDHD momentum dampening 2nd", lambda f: (lambda p: SGDHD(
        p, 0.1, momentum=0.5, dampening=0.1, hypergrad_lr=1e-2, hyper_hypergrad_lr=1e-3,
        foreach=f))),
    ("SGDNHD mult 2nd", lambda f: (lambda p: SGDHD(p, 0.1, momentum=0.9, nesterov=True,
                                                   hypergrad_lr=1e-2, rule="multiplicative",
                                                   hyper_hypergrad_lr=1e-3, foreach=f))),
    ("AdamHD wd", lambda f: (lambda p: AdamHD(p, 1e-2, weight_decay=1e-4, hypergrad_lr=1e-4,
                                              foreach=f))),
    ("AdamHD mult 2nd", lambda f: (lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-1,
                                                    rule="multiplicative",
                                                    hyper_hypergrad_lr=1e-2, foreach=f))),
]


@pytest.mark.parametrize("path", ["native-kernels", "cpu-loop", "whole-list-foreach",
                                  "no-fused-kernel", "single-tensor-kernel"])
@pytest.mark.parametrize("name,make", PATHS, ids=[c[0] for c in PATHS])
def test_fast_path_matches_equation_loop(name, make, path, monkeypatch):
    """The fast paths ≡ the equations' loop: the CPU kernels of hdrepro.optim.native (the
    default on CPU), torch's lists per tensor (CPU) or whole (GPU), torch's multi-tensor
    kernels where torch has no fused one for the parameters (float64 on CUDA, torch < 2.4 on
    CPU; its Nesterov SGD writes into the gradients it is given), and its single-tensor kernels
    (half precision on CPU)."""
    if path == "native-kernels":
        assert native.kernels() is not None, native.unavailable()
    else:
        monkeypatch.setattr(native, "kernels", lambda: None)
    monkeypatch.setattr(hg, "per_tensor_loop", lambda params: path == "cpu-loop")
    if path == "no-fused-kernel":
        monkeypatch.setattr(hg, "kernel", lambda params, name, fused=None: "foreach")
    if path == "single-tensor-kernel":
        monkeypatch.setattr(hg, "kernel", lambda params, name, fused=None: "single")
    a = _run(make(True))
    monkeypatch.undo()
    b = _run(make(False))
    assert rel_err(a["alpha"], b["alpha"]) <= 1e-12
    assert rel_err(a["params"], b["params"]) <= 1e-12
    assert a["alpha"][-1] != a["alpha"][0]


def _run_with_a_frozen_bias(make, steps=12):
    """Train with the last parameter tensor given no gradient on steps 3-5 (it then lags)."""
    model = P.make_model()
    params = list(model.parameters())
    opt = make(params)
    alphas = []
    for k, batch in enumerate(P.batches()[:steps]):
        opt.zero_grad()
        loss_fn(model, batch).backward()
        if 3 <= k <= 5:
            params[-1].grad = None
        opt.step()
        alphas.append(float(opt.param_groups[0]["lr"]))
    return torch.tensor(alphas), torch.cat([p.detach().reshape(-1) for p in params])


@pytest.mark.parametrize("per_tensor", [True, False], ids=["cpu-loop", "whole-list-foreach"])
def test_adam_hd_with_unequal_step_counts_matches_equation_loop(per_tensor, monkeypatch):
    """Once a tensor skips a step, tensors have different Adam step counts (bias corrections)."""
    make = lambda f: (lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-3, foreach=f))  # noqa: E731
    monkeypatch.setattr(native, "kernels", lambda: None)
    monkeypatch.setattr(hg, "per_tensor_loop", lambda params: per_tensor)
    a_alpha, a_params = _run_with_a_frozen_bias(make(True))
    monkeypatch.undo()
    b_alpha, b_params = _run_with_a_frozen_bias(make(False))
    assert rel_err(a_alpha, b_alpha) <= 1e-12 and rel_err(a_params, b_params) <= 1e-12
    assert a_alpha[-1] != a_alpha[0]


def test_signed_sum_matches_a_plain_sum():
    xs = [torch.randn(5, 3), -torch.rand(7), torch.zeros(2), torch.randn(1)]
    want = sum(x.sum() for x in xs)
    assert abs(float(hg.signed_sum(xs) - want)) <= 1e-12 * float(sum(x.abs().sum() for x in xs))


# -- HD(torch optimizer) ≡ SGDHD / AdamHD -------------------------------------------------------
WRAPS = [
    ("SGD", lambda p: SGDHD(p, 0.1, hypergrad_lr=1e-2),
     lambda p: HD(torch.optim.SGD(p, 0.1), 1e-2)),
    ("SGDN wd", lambda p: SGDHD(p, 0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
                                hypergrad_lr=1e-2),
     lambda p: HD(torch.optim.SGD(p, 0.1, momentum=0.9, nesterov=True, weight_decay=1e-4), 1e-2)),
    ("Adam", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4),
     lambda p: HD(torch.optim.Adam(p, 1e-2), 1e-4)),
    ("Adam fused wd mult", lambda p: AdamHD(p, 1e-2, weight_decay=1e-4, hypergrad_lr=1e-1,
                                            rule="multiplicative"),
     lambda p: HD(torch.optim.Adam(p, 1e-2, weight_decay=1e-4, fused=True), 1e-1,
                  rule="multiplicative")),
    ("Adam 2nd", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4, hyper_hypergrad_lr=1e-6),
     lambda p: HD(torch.optim.Adam(p, 1e-2), 1e-4, hyper_hypergrad_lr=1e-6)),
]


@pytest.mark.parametrize("name,ours,wrapped", WRAPS, ids=[c[0] for c in WRAPS])
def test_hd_wrapper_reproduces_sgdhd_and_adamhd(name, ours, wrapped):
    a, b = _run(ours), _run(wrapped)
    assert rel_err(a["alpha"], b["alpha"]) <= 1e-10
    assert rel_err(a["params"], b["params"]) <= 1e-10
    assert a["alpha"][-1] != a["alpha"][0]


def test_alpha_and_beta_live_in_param_groups():
    model = P.make_model()
    opt = SGDHD(model.parameters(), 0.1, hypergrad_lr=1e-2, hyper_hypergrad_lr=1e-3)
    for batch in P.batches()[:3]:
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()
    g = opt.param_groups[0]
    assert isinstance(g["lr"], torch.Tensor) and g["lr"].dim() == 0 and float(g["lr"]) != 0.1
    assert float(g["hypergrad_lr"]) != 1e-2  # β learned


def test_each_parameter_group_has_its_own_alpha():
    model = P.make_model()
    layers = [m for m in model if isinstance(m, torch.nn.Linear)]
    opt = SGDHD([{"params": layers[0].parameters()},
                 {"params": [p for m in layers[1:] for p in m.parameters()], "lr": 0.01}],
                0.1, hypergrad_lr=1e-2)
    for batch in P.batches()[:5]:
        opt.zero_grad()
        loss_fn(model, batch).backward()
        opt.step()
    a0, a1 = (float(g["lr"]) for g in opt.param_groups)
    assert a0 != 0.1 and a1 != 0.01 and a0 != a1


# -- checkpointing -----------------------------------------------------------------------------
RESUMABLE = [
    ("SGDHD", lambda p: SGDHD(p, 0.1, momentum=0.9, nesterov=True, hypergrad_lr=1e-2,
                              hyper_hypergrad_lr=1e-3)),
    ("AdamHD", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4, rule="multiplicative")),
    ("HD(RMSprop)", lambda p: HD(torch.optim.RMSprop(p, 1e-3), 1e-5)),
]


@pytest.mark.parametrize("name,make", RESUMABLE, ids=[c[0] for c in RESUMABLE])
def test_state_dict_round_trip_continues_bit_identically(name, make):
    batches = P.batches()
    (model, opt), (model2, opt2) = checkpoint_and_resume(make, P, batches[:8], batches[8:16])
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(torch.as_tensor(opt.param_groups[0]["lr"]),
                       torch.as_tensor(opt2.param_groups[0]["lr"]))


# -- bad input ---------------------------------------------------------------------------------
def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


BAD = [
    (lambda: SGDHD(_params(), lr=-0.1), ValueError, "learning rate"),
    (lambda: SGDHD(_params(), lr=0.1, hypergrad_lr=-1e-3), ValueError, "hypergrad_lr"),
    (lambda: SGDHD(_params(), lr=0.1, hyper_hypergrad_lr=-1.0), ValueError, "hyper_hypergrad_lr"),
    (lambda: SGDHD(_params(), lr=0.1, rule="exponential"), ValueError, "rule"),
    (lambda: SGDHD(_params(), lr=float("nan")), ValueError, "not finite"),
    (lambda: SGDHD(_params(), lr=float("inf")), ValueError, "not finite"),
    (lambda: SGDHD(_params(), lr="0.1"), TypeError, "expected a number"),
    (lambda: SGDHD(_params(), lr=0.1, momentum=-0.9), ValueError, "momentum"),
    (lambda: SGDHD(_params(), lr=0.1, nesterov=True), ValueError, "Nesterov"),
    (lambda: SGDHD(_params(), lr=0.1, weight_decay=-1e-4), ValueError, "weight_decay"),
    (lambda: AdamHD(_params(), betas=(0.9, 1.0)), ValueError, "betas"),
    (lambda: AdamHD(_params(), betas=(-0.1, 0.999)), ValueError, "betas"),
    (lambda: AdamHD(_params(), eps=-1e-8), ValueError, "eps"),
    (lambda: AdamHD(_params(), lr=torch.ones(2)), ValueError, "shape"),
    (lambda: HD(torch.optim.LBFGS(_params()), 1e-3), ValueError, "linear in lr"),
    (lambda: HD(torch.optim.ASGD(_params()), 1e-3), ValueError, "linear in lr"),
    (lambda: HD("sgd", 1e-3), TypeError, "torch.optim.Optimizer"),
    (lambda: HD(torch.optim.SGD(_params(), 0.1), -1e-3), ValueError, "hypergrad_lr"),
]


@pytest.mark.parametrize("make,exc,words", BAD, ids=[f"{i}-{c[2]}" for i, c in enumerate(BAD)])
def test_bad_input_gives_a_clear_error(make, exc, words):
    with pytest.raises(exc, match=words):
        make()


# -- NaN gradients -----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda p: SGDHD(p, 0.1, hypergrad_lr=1e-2),
                                  lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4),
                                  lambda p: HD(torch.optim.SGD(p, 0.1), 1e-2)],
                         ids=["SGDHD", "AdamHD", "HD(SGD)"])
def test_nan_gradient_keeps_alpha_finite_and_counts_the_event(make):
    """α never becomes NaN silently: it keeps its last finite value and the event is counted;
    the parameters take the NaN exactly as torch.optim would, so the loss reveals it."""
    model = P.make_model()
    opt = make(list(model.parameters()))
    batches = P.batches()
    train_steps(model, opt, batches[:3])
    alpha_before = float(opt.param_groups[0]["lr"])
    opt.zero_grad()
    loss_fn(model, batches[3]).backward()
    next(model.parameters()).grad[0, 0] = float("nan")
    opt.step()
    g = opt.param_groups[0]
    assert float(g["lr"]) == alpha_before
    assert int(g["hd_nonfinite"]) == 1
    assert math.isnan(float(next(model.parameters()).detach()[0, 0]))


def test_deepcopy_keeps_the_optimizer_working():
    model = P.make_model()
    opt = SGDHD(model.parameters(), 0.1, hypergrad_lr=1e-2, foreach=False)
    m2, o2 = copy.deepcopy((model, opt))
    o2.zero_grad()
    loss_fn(m2, P.batches()[0]).backward()
    o2.step()
    assert o2.param_groups[0]["foreach"] is False


# -- no host synchronisation ---------------------------------------------------------------------
NO_SYNC = [
    ("SGDN-HD", lambda p: SGDHD(p, 0.1, momentum=0.9, nesterov=True, hypergrad_lr=1e-2)),
    ("SGD-HD mult 2nd", lambda p: SGDHD(p, 0.1, hypergrad_lr=1e-2, rule="multiplicative",
                                        hyper_hypergrad_lr=1e-3)),
    ("Adam-HD", lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4, weight_decay=1e-4)),
    ("HD(Adam fused)", lambda p: HD(torch.optim.Adam(p, 1e-2, fused=True), 1e-4)),
]


def _step_with_syncs_forbidden(make, monkeypatch):
    model = P.make_model()
    opt = make(list(model.parameters()))
    batches = P.batches()
    train_steps(model, opt, batches[:2])
    opt.zero_grad()
    loss_fn(model, batches[2]).backward()

    def sync(*args, **kwargs):
        raise AssertionError("host synchronisation inside step()")

    for attr in ("item", "__float__", "__int__", "__bool__", "tolist"):
        monkeypatch.setattr(torch.Tensor, attr, sync)
    try:
        opt.step()
    finally:
        monkeypatch.undo()
    return opt


@pytest.mark.parametrize("name,make", NO_SYNC, ids=[c[0] for c in NO_SYNC])
def test_step_reads_nothing_back_to_the_host(name, make, monkeypatch):
    """No .item()/float()/bool() of a tensor inside step(): on a GPU each would be a sync. (The
    CPU kernels of hdrepro.optim.native read α as a number, which on a CPU is a plain load; they
    are turned off here to check the path that GPUs take.)"""
    monkeypatch.setattr(native, "kernels", lambda: None)
    opt = _step_with_syncs_forbidden(make, monkeypatch)
    assert math.isfinite(float(opt.param_groups[0]["lr"]))


def test_the_sync_check_catches_a_sync(monkeypatch):
    """HD around a non-fused torch SGD must read float(α) (documented), and the check sees it."""
    with pytest.raises(AssertionError, match="host synchronisation"):
        _step_with_syncs_forbidden(lambda p: HD(torch.optim.SGD(p, 0.1), 1e-2), monkeypatch)
