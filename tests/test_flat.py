"""The one-buffer HD step (hdrepro.optim.flat): the same trajectory as the equation loop, a fixed
number of operations per step whatever the number of tensors, state_dict in torch's form, and a
fall-back to the list path whenever the layout is broken.

On CPU the step is taken only where the CPU kernels cannot be built, so these tests turn the
kernels off (as a machine without a compiler has them); on a GPU it is the default, and the
last test counts the kernels it launches there."""
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hdrepro.engine.models import MLP
from hdrepro.optim import HD, SGDHD, AdamHD, flatten_, native
from hdrepro.optim.flat import as_flat

CONFIGS = {   # name -> the optimizer, given its parameters and extra keyword arguments
    "SGD-HD": lambda p, **k: SGDHD(p, 0.1, hypergrad_lr=1e-2, **k),
    "SGDN-HD, decay": lambda p, **k: SGDHD(p, 0.1, momentum=0.9, nesterov=True,
                                           weight_decay=1e-3, hypergrad_lr=0.1, **k),
    "SGD-HD, momentum with dampening": lambda p, **k: SGDHD(p, 0.1, momentum=0.5, dampening=0.2,
                                                             hypergrad_lr=1e-2, **k),
    "SGD-HD, multiplicative, second order": lambda p, **k: SGDHD(
        p, 0.1, hypergrad_lr=1e-2, rule="multiplicative", hyper_hypergrad_lr=1e-3, **k),
    "Adam-HD": lambda p, **k: AdamHD(p, 1e-2, hypergrad_lr=1e-4, **k),
    "Adam-HD, multiplicative, decay": lambda p, **k: AdamHD(
        p, 1e-2, hypergrad_lr=1e-2, rule="multiplicative", weight_decay=1e-2, **k),
    "AdamW-HD": lambda p, **k: AdamHD(p, 1e-2, hypergrad_lr=1e-4, weight_decay=0.1,
                                      decoupled_weight_decay=True, **k),
    "AdamW-HD, multiplicative": lambda p, **k: AdamHD(
        p, 1e-2, hypergrad_lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True,
        rule="multiplicative", **k),
    "Adam-HD, AMSGrad, second order (printed)": lambda p, **k: AdamHD(
        p, 1e-2, hypergrad_lr=1e-4, amsgrad=True, hyper_hypergrad_lr=1e-3,
        second_order="printed", **k),
}


@pytest.fixture
def no_cpu_kernels(monkeypatch):
    """As on a machine without a C++ compiler: the one-buffer step is then the CPU's path."""
    monkeypatch.setattr(native, "kernels", lambda: None)


def _batches(steps=12, n=32):
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(n, 20, generator=gen, dtype=torch.float64),
             torch.randint(0, 3, (n,), generator=gen)) for _ in range(steps)]


def _model():
    torch.manual_seed(0)
    return MLP((20, 16, 16, 3), activation=torch.nn.Tanh).double()


def _train(make, flatten: bool, batches, model=None, opt=None):
    """α_t after each step and the final parameters, training an MLP on `batches`."""
    model = model or _model()
    opt = opt or make(model.parameters())
    if flatten:
        flatten_(opt)
    alphas = []
    for x, y in batches:
        opt.zero_grad(set_to_none=not flatten)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        alphas.append(float(opt.param_groups[0]["lr"]))
    return torch.tensor(alphas), torch.cat([p.detach().reshape(-1) for p in
                                            model.parameters()]), opt


def _is_flat(opt) -> bool:
    """Whether the optimizer's per-parameter state (the wrapped one's for HD) is views of one
    buffer per key, as only the one-buffer step lays it out."""
    state = (opt.optimizer if isinstance(opt, HD) else opt).state
    params = opt.param_groups[0]["params"]
    keys = state[params[0]].keys()
    return bool(keys) and all(as_flat([state[p][k] for p in params]) is not None
                              for k in keys)


@pytest.mark.parametrize("name", CONFIGS)
def test_one_buffer_step_follows_the_equation_loop_float64(no_cpu_kernels, name):
    make = CONFIGS[name]
    batches = _batches()
    alphas, params, opt = _train(make, True, batches)
    ref_alphas, ref_params, _ = _train(lambda p: make(p, foreach=False), False, batches)
    assert _is_flat(opt)   # the state is views of one buffer: the one-buffer path stepped
    assert (alphas[-1] - alphas[0]).abs() > 1e-3 * alphas[0]   # α moved: the rule ran
    torch.testing.assert_close(alphas, ref_alphas, rtol=1e-12, atol=0)
    torch.testing.assert_close(params, ref_params, rtol=1e-10, atol=1e-13)


#: HD(...) around torch's Adam and AdamW, beside the AdamHD equation loop they equal
WRAPPED = {
    "HD(Adam fused)": (lambda p: HD(torch.optim.Adam(p, 1e-2, fused=True), 1e-4),
                       lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-4, foreach=False)),
    "HD(AdamW), multiplicative": (
        lambda p: HD(torch.optim.AdamW(p, 1e-2, weight_decay=0.1), 1e-2, "multiplicative"),
        lambda p: AdamHD(p, 1e-2, hypergrad_lr=1e-2, rule="multiplicative", weight_decay=0.1,
                         decoupled_weight_decay=True, foreach=False)),
}


@pytest.mark.parametrize("name", WRAPPED)
def test_hd_around_torch_adam_on_one_buffer_follows_the_adamhd_loop_float64(
        no_cpu_kernels, name):
    make, loop = WRAPPED[name]
    batches = _batches()
    alphas, params, opt = _train(make, True, batches)
    ref_alphas, ref_params, _ = _train(loop, False, batches)
    assert _is_flat(opt) and not opt.state    # moments in one buffer, no copy of d kept
    assert (alphas[-1] - alphas[0]).abs() > 1e-3 * alphas[0]
    torch.testing.assert_close(alphas, ref_alphas, rtol=1e-12, atol=0)
    torch.testing.assert_close(params, ref_params, rtol=1e-10, atol=1e-13)


def test_each_parameter_group_steps_on_its_own_buffer(no_cpu_kernels):
    def two_groups(params, **k):
        params = list(params)
        weights, biases = [p for p in params if p.dim() > 1], [p for p in params if p.dim() == 1]
        return AdamHD([{"params": weights}, {"params": biases, "lr": 3e-3,
                                             "rule": "multiplicative"}],
                      1e-2, hypergrad_lr=1e-2, **k)
    batches = _batches()
    _, params, opt = _train(two_groups, True, batches)
    _, ref, _ = _train(lambda p: two_groups(p, foreach=False), False, batches)
    for group in opt.param_groups:
        group_params = group["params"]
        assert as_flat([opt.state[p]["exp_avg"] for p in group_params]) is not None
    torch.testing.assert_close(params, ref, rtol=1e-10, atol=1e-13)


def test_flatten_keeps_the_model_and_gradients_accumulate_in_the_buffer(no_cpu_kernels):
    model, x = _model(), torch.randn(5, 20, dtype=torch.float64)
    before = model(x).detach()
    params = list(model.parameters())
    opt = SGDHD(params, 0.1)
    flatten_(opt)
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    assert list(model.parameters()) == params          # the same Parameter objects
    theta, grad = as_flat(params), as_flat([p.grad for p in params])
    assert theta is not None and grad is not None and theta.numel() == grad.numel()
    model(x).sum().backward()
    assert as_flat([p.grad for p in params]).data_ptr() == grad.data_ptr()
    assert grad.abs().sum() > 0


def test_flat_state_loads_into_a_list_path_optimizer_and_back(no_cpu_kernels):
    make = CONFIGS["Adam-HD"]
    batches = _batches(16)
    _, whole, _ = _train(make, True, batches)
    # 8 steps flat, then the rest on a fresh optimizer of the list path from the state_dict
    model = _model()
    _, _, first = _train(make, True, batches[:8], model=model)
    plain = make(model.parameters())
    plain.load_state_dict(first.state_dict())
    with pytest.warns(UserWarning, match="list path"):   # its gradients: new tensors
        _train(make, False, batches[8:12], model=model, opt=plain)
    again = make(model.parameters())          # and back: gathered into one buffer
    again.load_state_dict(plain.state_dict())
    _, split, _ = _train(make, True, batches[12:], model=model, opt=again)
    assert _is_flat(again)
    torch.testing.assert_close(split, whole, rtol=1e-10, atol=1e-13)


def test_broken_layout_falls_back_to_the_list_path_and_says_why(no_cpu_kernels):
    make = CONFIGS["SGDN-HD, decay"]
    batches = _batches(6)
    _, ref, _ = _train(make, False, batches)
    model = _model()
    opt = make(model.parameters())
    flatten_(opt)
    with pytest.warns(UserWarning, match=r"set_to_none=False"):
        for x, y in batches:
            opt.zero_grad(set_to_none=True)      # drops the gradients' views
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in
                                          model.parameters()]), ref, rtol=1e-10, atol=1e-13)


def test_a_parameter_without_gradient_takes_the_list_path(no_cpu_kernels):
    model = _model()
    opt = CONFIGS["Adam-HD"](model.parameters())
    flatten_(opt)
    x, y = _batches(1)[0]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    model[1].bias.grad = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
    assert not opt.state[model[1].bias]                 # it did not step
    assert opt.state[model[1].weight]["step"] == 1


@pytest.mark.parametrize("bad, match", [
    (lambda: [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3).double())],
     "mixes dtypes"),
    (lambda: (lambda w: [torch.nn.Parameter(w[:2]), torch.nn.Parameter(w[1:])])(torch.ones(4)),
     "share memory"),
])
def test_flatten_refuses_groups_it_cannot_lay_out(bad, match):
    with pytest.raises(ValueError, match=match):
        flatten_(torch.optim.SGD(bad(), lr=0.1))


class _Ops(TorchDispatchMode):
    """Counts the operations a block dispatches that are neither views nor bare allocations:
    on a GPU each is a kernel launch (a reduction may be two)."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not (func.is_view or func.namespace == "profiler"
                or name.startswith(("empty", "new_empty"))):
            self.names.append(name)
        return func(*args, **(kwargs or {}))


def _ops_per_step(make, n_tensors: int) -> list[str]:
    params = [torch.nn.Parameter(torch.randn(7, 3)) for _ in range(n_tensors)]
    opt = make(params)
    flatten_(opt)
    for p in params:
        p.grad.normal_()
    for _ in range(2):
        opt.step()
    with _Ops() as ops:
        opt.step()
    return ops.names


#: operations per step (GPU: plus one copy of the sums to the host)
MOST_OPS = {"SGD-HD": 7, "SGDN-HD, decay": 8, "SGD-HD, momentum with dampening": 7,
            "SGD-HD, multiplicative, second order": 10, "Adam-HD": 11,
            "Adam-HD, multiplicative, decay": 14, "AdamW-HD": 12, "AdamW-HD, multiplicative": 16,
            "Adam-HD, AMSGrad, second order (printed)": 12, "HD(Adam fused)": 11}


@pytest.mark.parametrize("name", [*CONFIGS, "HD(Adam fused)"])
def test_one_buffer_step_dispatches_as_many_operations_for_5_tensors_as_for_200(
        no_cpu_kernels, name):
    make = CONFIGS[name] if name in CONFIGS else WRAPPED[name][0]
    few, many = (_ops_per_step(make, n) for n in (5, 200))
    assert few == many
    assert len(few) <= MOST_OPS[name], few


def test_list_path_dispatches_more_operations_with_more_tensors(no_cpu_kernels):
    """The count above can fail: without flatten_ it grows with the number of tensors."""
    def unflattened(n):
        params = [torch.nn.Parameter(torch.randn(7, 3)) for _ in range(n)]
        for p in params:
            p.grad = torch.randn_like(p)
        opt = CONFIGS["Adam-HD"](params, fused=False)
        for _ in range(2):
            opt.step()
        with _Ops() as ops:
            opt.step()
        return ops.names
    assert len(unflattened(200)) > len(unflattened(5))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("name", ["SGDN-HD, decay", "Adam-HD"])
def test_one_buffer_step_launches_at_most_16_kernels_on_the_gpu(name):
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    def kernels(n):
        # the same number of elements for any n: a reduction may launch more kernels when larger
        params = [torch.nn.Parameter(torch.randn(19200 // n, 32, device="cuda"))
                  for _ in range(n)]
        opt = CONFIGS[name](params)
        flatten_(opt)
        for p in params:
            p.grad.normal_()
        for _ in range(3):
            opt.step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            opt.step()
            torch.cuda.synchronize()
        return sum(e.device_type == DeviceType.CUDA for e in prof.events())
    few, many = kernels(10), kernels(300)
    assert few == many <= 16


@needs_cuda
@pytest.mark.parametrize("name", ["SGDN-HD, decay", "Adam-HD", "Adam-HD, multiplicative, decay",
                                  "AdamW-HD"])
def test_one_buffer_step_follows_the_list_path_on_the_gpu_float32(name):
    def run(flatten: bool):
        torch.manual_seed(0)
        model = MLP((20, 16, 16, 3), activation=torch.nn.Tanh).cuda()
        opt = CONFIGS[name](model.parameters())
        if flatten:
            flatten_(opt)
        alphas = []
        for x, y in _batches(20):
            opt.zero_grad(set_to_none=not flatten)
            torch.nn.functional.cross_entropy(model(x.float().cuda()), y.cuda()).backward()
            opt.step()
            alphas.append(float(opt.param_groups[0]["lr"]))
        return torch.tensor(alphas), torch.cat([p.detach().reshape(-1).cpu()
                                                for p in model.parameters()]), opt
    alphas, params, opt = run(True)
    ref_alphas, ref_params, _ = run(False)
    assert _is_flat(opt)
    torch.testing.assert_close(alphas, ref_alphas, rtol=1e-5, atol=0)
    torch.testing.assert_close(params, ref_params, rtol=1e-4, atol=1e-6)


PAGE_FAULTS = """
import resource, sys
import torch
from hdrepro.optim import AdamHD, flat, flatten_, native
native.kernels = lambda: None                      # the one-buffer step on CPU
if sys.argv[1] == "fresh":                         # a new temporary at every step, as before
    flat.scratch = lambda opt, like, slot=0: torch.empty_like(like)
params = [torch.nn.Parameter(torch.randn(5_000_000)) for _ in range(2)]   # 40 MB in all
opt = AdamHD(params, 1e-3, hypergrad_lr=1e-8)
flatten_(opt)
for p in params:
    p.grad.normal_()
for _ in range(3):
    opt.step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    opt.step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


@pytest.mark.slow   # starts two interpreters
def test_one_buffer_step_keeps_its_temporary_and_takes_no_page_faults():
    """A parameter-sized temporary made afresh at each step is faulted in page by page on CPU
    (glibc unmaps freed blocks above 32 MiB); the step keeps one instead (flat.scratch)."""
    import subprocess
    import sys

    def faults(mode):
        return int(subprocess.run([sys.executable, "-c", PAGE_FAULTS, mode], check=True,
                                  capture_output=True, text=True).stdout)
    fresh, kept = faults("fresh"), faults("kept")
    assert fresh > 5_000 and kept < 1_000, (fresh, kept)
