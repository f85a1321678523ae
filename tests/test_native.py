"""hdrepro.optim.native: the CPU kernels of the HD step. The update is torch's fused SGD bit for
bit; the reductions match float64 sums and do not depend on the thread count; the optimizers
fall back to torch's lists where the kernels do not apply, and where they cannot be built."""
import os
import subprocess
import sys

import pytest
import torch

from hdrepro.optim import HD, SGDHD, AdamHD, native
from hdrepro.optim import _hypergrad as hg
from hdrepro.studies.equivalence import Problem, loss_fn, rel_err, trajectory

SIZES = (1037, 5, 3, 70001)   # vector loop and both tails; 70001 spans three chunks
SETTINGS = {
    "plain": dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0),
    "plain wd": dict(momentum=0.0, dampening=0.0, nesterov=False, weight_decay=1e-3),
    "momentum dampening": dict(momentum=0.5, dampening=0.1, nesterov=False, weight_decay=0.0),
    "nesterov wd": dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=1e-2),
}


@pytest.fixture(scope="module")
def kernels():
    found = native.kernels()
    assert found is not None, f"the kernels did not build: {native.unavailable()}"
    return found


def _tensors(n_lists, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(n, generator=gen, dtype=dtype) for n in SIZES] for _ in range(n_lists)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_sgd_update_is_torchs_fused_sgd_bit_for_bit(kernels, dtype, setting):
    options = SETTINGS[setting]
    (ours,) = _tensors(1, dtype)
    theirs = [torch.nn.Parameter(p.clone()) for p in ours]
    opt = torch.optim.SGD(theirs, lr=0.03, fused=True, **options)
    bufs, dirs = [torch.empty_like(p) for p in ours], [torch.empty_like(p) for p in ours]
    for step, grads in enumerate(_tensors(6, dtype, seed=1)):
        kernels.sgd_update(ours, grads, bufs, dirs, first=step == 0, alpha=0.03, **options)
        for p, g in zip(theirs, grads):
            p.grad = g.clone()
        opt.step()
        assert all(torch.equal(a, b.detach()) for a, b in zip(ours, theirs))
    # d_t, the direction the next h needs: θ moved by exactly -α d_t in the last step
    assert all(d.abs().sum() > 0 for d in dirs)


def test_sgd_update_writes_the_direction_the_step_took(kernels):
    (theta,) = _tensors(1, torch.float64)
    (grads,) = _tensors(1, torch.float64, seed=2)
    bufs = [torch.randn_like(p) for p in theta]
    before, old_bufs = [p.clone() for p in theta], [b.clone() for b in bufs]
    dirs = [torch.empty_like(p) for p in theta]
    kernels.sgd_update(theta, grads, bufs, dirs, alpha=0.5, first=False,
                       **SETTINGS["nesterov wd"])
    for d, g, b, p in zip(dirs, grads, old_bufs, before):
        g = g + 1e-2 * p
        want = g + 0.9 * (0.9 * b + g)
        torch.testing.assert_close(d, want, rtol=1e-14, atol=1e-14)


def _exact(xs, ys):
    return sum(float(torch.dot(x.double(), y.double())) for x, y in zip(xs, ys))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-14)], ids=str)
@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_dot_matches_a_float64_sum(kernels, dtype, tol, wd):
    grads, dirs, params = _tensors(3, dtype)
    gd, gg, dd = kernels.dot_gd(grads, dirs, params, wd, norms=True)
    g = [(x.double() + wd * p.double()) for x, p in zip(grads, params)]
    scale = _exact([x.abs() for x in g], [y.abs() for y in dirs])
    assert abs(gd - _exact(g, dirs)) <= tol * scale
    assert gg == pytest.approx(_exact(g, g), rel=tol)
    assert dd == pytest.approx(_exact(dirs, dirs), rel=tol)
    assert kernels.dot_gd(grads, dirs, params, wd, norms=False)[1:] == (0.0, 0.0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-13)], ids=str)
@pytest.mark.parametrize("variant", ["adam", "adam wd", "adamw"])
def test_adam_dot_matches_a_float64_sum(kernels, dtype, tol, variant):
    grads, m, v, params = _tensors(4, dtype)
    v = [x.abs() for x in v]
    wd, a, k = {"adam": (0.0, 1.0, 0.0), "adam wd": (1e-2, 1.0, 0.0),
                "adamw": (0.0, 1.3, 0.02)}[variant]
    c, eps = 1.7, 1e-3
    gd, gg, dd = kernels.adam_dot(grads, m, v, params, weight_decay=wd, c=c, eps=eps, a=a, k=k,
                                  norms=True)
    g = [x.double() + wd * p.double() for x, p in zip(grads, params)]
    w = [a * mi.double() / (vi.double().sqrt() * c + eps) + k * p.double()
         for mi, vi, p in zip(m, v, params)]
    scale = _exact([x.abs() for x in g], [y.abs() for y in w])
    assert abs(gd - _exact(g, w)) <= tol * scale
    assert dd == pytest.approx(_exact(w, w), rel=tol)
    assert gg == pytest.approx(_exact(g, g), rel=tol)


def test_the_sums_do_not_depend_on_the_thread_count(kernels):
    grads, dirs, params = _tensors(3, torch.float32)
    big = [torch.randn(300_000), torch.randn(200_003)]   # large enough to run on every thread
    g, d, p = grads + big, dirs + big, params + big
    v = [x.abs() for x in d]
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append((kernels.dot_gd(g, d, p, 0.0, True),
                            kernels.adam_dot(g, d, v, p, weight_decay=0.0, c=1.0, eps=1e-8,
                                             norms=True)))
    finally:
        torch.set_num_threads(threads)
    assert results[0] == results[1] == results[2]


def test_eligible_refuses_what_the_kernels_cannot_take():
    x = torch.randn(4, 3)
    assert native.eligible([x], [x.clone()])
    assert not native.eligible([x], [x.t().contiguous().t()])        # strided
    assert not native.eligible([x.half()], [x.half()])               # half precision
    assert not native.eligible([x], [x.double()])                    # mixed dtypes
    assert not native.eligible([x], [x.to_sparse()])                 # sparse
    assert not native.eligible([x], [])                              # lists of unequal length
    assert not native.eligible([])
    w = torch.randn(15, 30, 3, 3).contiguous(memory_format=torch.channels_last)
    assert native.eligible([w], [torch.zeros_like(w)])              # channels-last, alike
    assert not native.eligible([w], [w.contiguous()])                # laid out differently


P = Problem(model="mlp", steps=12)
MAKERS = {
    "SGDN-HD": lambda ps: SGDHD(ps, 0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
                                hypergrad_lr=1e-2),
    "SGD-HD mult": lambda ps: SGDHD(ps, 0.1, hypergrad_lr=1e-1, rule="multiplicative"),
    "SGD-HD momentum": lambda ps: SGDHD(ps, 0.1, momentum=0.5, dampening=0.1, hypergrad_lr=1e-2),
    "Adam-HD wd": lambda ps: AdamHD(ps, 1e-2, weight_decay=1e-4, hypergrad_lr=1e-3),
    "AdamW-HD mult": lambda ps: AdamHD(ps, 1e-2, weight_decay=0.1, decoupled_weight_decay=True,
                                       hypergrad_lr=1e-1, rule="multiplicative"),
    "HD(AdamW)": lambda ps: HD(torch.optim.AdamW(ps, 1e-2, weight_decay=0.1), 1e-3),
}


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_the_kernels_step_as_torchs_lists(kernels, name, monkeypatch):
    """The same trajectory, in float64, with and without the kernels."""
    fast = trajectory(MAKERS[name], P)
    monkeypatch.setattr(native, "kernels", lambda: None)
    lists = trajectory(MAKERS[name], P)
    assert rel_err(fast["alpha"], lists["alpha"]) <= 1e-12
    assert rel_err(fast["params"], lists["params"]) <= 1e-12
    assert fast["alpha"][-1] != fast["alpha"][0]


def test_hd_around_torchs_adam_on_cpu_keeps_no_directions(kernels):
    p = torch.nn.Parameter(torch.randn(10))
    opt = HD(torch.optim.AdamW([p], 1e-2), 1e-3)
    for _ in range(3):
        p.grad = torch.randn(10)
        opt.step()
    assert opt.state == {} and float(opt.param_groups[0]["lr"]) != 1e-2


@pytest.mark.usefixtures("float64")
def test_hd_around_adamw_is_adamw_hd(kernels):
    ours = trajectory(lambda ps: AdamHD(ps, 1e-2, weight_decay=0.1, decoupled_weight_decay=True,
                                        hypergrad_lr=1e-3), P)
    wrapped = trajectory(MAKERS["HD(AdamW)"], P)
    assert rel_err(ours["alpha"], wrapped["alpha"]) <= 1e-10
    assert rel_err(ours["params"], wrapped["params"]) <= 1e-10


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", ["SGDN-HD", "Adam-HD wd"])
def test_a_parameter_that_skips_a_step_falls_back_and_stays_right(kernels, name, monkeypatch):
    """Steps 3-5 leave the last tensor without a gradient: its state then lags, which the
    kernels do not take; the step falls back to torch's lists and matches them throughout."""
    def run():
        model = P.make_model()
        params = list(model.parameters())
        opt = MAKERS[name](params)
        for k, batch in enumerate(P.batches()[:10]):
            opt.zero_grad()
            loss_fn(model, batch).backward()
            if 3 <= k <= 5:
                params[-1].grad = None
            opt.step()
        return float(opt.param_groups[0]["lr"]), torch.cat([p.detach().reshape(-1)
                                                            for p in params])
    fast = run()
    monkeypatch.setattr(native, "kernels", lambda: None)
    lists = run()
    assert fast[0] == pytest.approx(lists[0], rel=1e-12)
    assert rel_err(fast[1], lists[1]) <= 1e-12


BUILD = """
import sys
from hdrepro.optim import native, SGDHD
import torch
k = native.kernels()
print("built" if k is not None else "unavailable: " + native.unavailable())
torch.manual_seed(0)
p = torch.nn.Parameter(torch.randn(50))
opt = SGDHD([p], 0.1, momentum=0.9, nesterov=True, hypergrad_lr=1e-2)
for _ in range(5):
    p.grad = torch.sin(p.detach() * 3)
    opt.step()
print(repr(float(opt.param_groups[0]["lr"])), repr(float(p.detach().sum())))
"""


def _run_build(cache, path_env):
    env = {**os.environ, "HDREPRO_KERNEL_CACHE": str(cache), "PATH": path_env}
    return subprocess.Popen([sys.executable, "-c", BUILD], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_processes_building_at_once_share_one_library(tmp_path):
    procs = [_run_build(tmp_path, os.environ["PATH"]) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert [o[0].splitlines()[0] for o in outs] == ["built", "built"]
    assert [f.suffix for f in tmp_path.iterdir()] == [".so"]   # no partial file left behind


@pytest.mark.slow
def test_without_a_compiler_the_optimizers_take_torchs_lists(tmp_path):
    """With no compiler on PATH the kernels are unavailable, say why, and SGD-HD steps on
    torch's lists to the same numbers (to rounding) as with the kernels."""
    with_kernels = _run_build(tmp_path / "a", os.environ["PATH"]).communicate(timeout=300)[0]
    without = _run_build(tmp_path / "b", str(tmp_path / "empty")).communicate(timeout=300)[0]
    assert with_kernels.splitlines()[0] == "built"
    assert without.splitlines()[0] == "unavailable: no C++ compiler (c++ or g++) on PATH"
    a = [float(x) for x in with_kernels.splitlines()[1].split()]
    b = [float(x) for x in without.splitlines()[1].split()]
    assert a == pytest.approx(b, rel=1e-5)


RULES = [dict(rule="additive"), dict(rule="multiplicative"),
         dict(rule="additive", hyper_hypergrad_lr=1e-3),
         dict(rule="multiplicative", hyper_hypergrad_lr=1e-2, second_order="printed")]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: "-".join(map(str, r.values())))
def test_the_host_rule_is_the_tensor_rule_bit_for_bit(dtype, rule):
    """update_lr_host (the kernels' path) gives update_lr's α, β, a, h and NaN count bit for
    bit over a run of steps, through zero norms, huge and non-finite hypergradients."""
    gen = torch.Generator().manual_seed(1)
    groups = [SGDHD([torch.zeros(2, dtype=dtype, requires_grad=True)], 0.1, hypergrad_lr=0.3,
                    **rule).param_groups[0] for _ in range(2)]
    specials = [0.0, float("nan"), float("inf"), -1e39, 1e-46, 3e38]
    for step in range(400):
        h, gn, dn = (torch.randn(3, generator=gen, dtype=torch.float64) *
                     10.0 ** torch.randint(-8, 4, (3,), generator=gen)).tolist()
        if step % 7 == 0:
            h = specials[step // 7 % len(specials)]
        if step % 11 == 0:
            gn = 0.0
        hg.update_lr(groups[0], *(torch.tensor(x, dtype=dtype) for x in (h, abs(gn), abs(dn))))
        hg.update_lr_host(groups[1], *hg.host_scalars(groups[1]["params"], h, abs(gn), abs(dn)))
        for key in ("lr", "hypergrad_lr", "hd_dalpha_dbeta", "hd_h", "hd_nonfinite"):
            tensor, host = (torch.as_tensor(g[key]) for g in groups)
            assert torch.equal(tensor, host) or (
                torch.isnan(tensor).all() and torch.isnan(host).all()), (step, key, tensor, host)
    assert groups[1]["hd_nonfinite"] > 0 and float(groups[1]["lr"]) != 0.1
