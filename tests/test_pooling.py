"""hdrepro.engine.pooling: BetterCNN's 2×2 max-pool and ReLU as one CPU operation, bit for bit
torch's pair forward and backward, and the same training."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from hdrepro.engine import models as M
from hdrepro.engine import pooling

CL = torch.channels_last


@pytest.fixture(autouse=True, scope="module")
def built():
    assert pooling.unavailable() is None, f"the kernels did not build: {pooling.unavailable()}"


def awkward(shape, dtype, seed=0):
    """Values with ties, zeros of both signs, -inf and NaN, in channels-last layout."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    x = torch.where(torch.rand(shape, generator=gen) < 0.3, torch.round(x), x)
    flat = x.view(-1)
    flat[::97], flat[5::89], flat[7::83] = float("nan"), -0.0, float("-inf")
    return x.contiguous(memory_format=CL)


def identical(a, b) -> bool:
    """Equal as bits would be: the same values, NaN where NaN, and the same sign of zero."""
    return bool((((a == b) | (a.isnan() & b.isnan())) & (a.signbit() == b.signbit())).all())


def both(x, grad):
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = pooling.max_pool2_relu(a), F.relu(F.max_pool2d(b, 2))
    ours.backward(grad)
    theirs.backward(grad)
    return ours, theirs, a.grad, b.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(16, 30, 24, 24), (7, 15, 10, 10), (3, 5, 4, 6), (2, 1, 2, 2)],
                         ids=lambda s: "x".join(map(str, s)))
def test_forward_and_backward_are_torchs_pool_then_relu_bit_for_bit(dtype, shape):
    x = awkward(shape, dtype)
    assert pooling.applies(x)
    grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, dtype=dtype)
    grad.view(-1)[::13] = -0.0
    ours, theirs, g_ours, g_theirs = both(x, grad)
    assert identical(ours, theirs) and identical(g_ours, g_theirs)
    assert ours.is_contiguous(memory_format=CL)


def test_results_do_not_depend_on_the_thread_count():
    x = awkward((8, 30, 24, 24), torch.float32, seed=1)
    grad = torch.randn(8, 30, 12, 12)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = both(x, grad)
        torch.set_num_threads(2)
        two = both(x, grad)
    finally:
        torch.set_num_threads(saved)
    assert identical(one[0], two[0]) and identical(one[2], two[2])


def test_gradients_pass_the_finite_difference_check_in_float64():
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64).contiguous(memory_format=CL)
    x.requires_grad_()
    assert torch.autograd.gradcheck(pooling.max_pool2_relu, (x,))


@pytest.mark.parametrize("x", [torch.randn(2, 3, 5, 4).contiguous(memory_format=CL),  # odd H
                               torch.randn(2, 3, 4, 4),                                # NCHW
                               torch.randn(2, 3, 4, 4).half().contiguous(memory_format=CL)],
                         ids=["odd height", "standard layout", "float16"])
def test_what_the_kernels_cannot_take_goes_to_torch(x):
    assert not pooling.applies(x)
    assert torch.equal(pooling.max_pool2_relu(x), F.relu(F.max_pool2d(x, 2)))


def test_a_second_derivative_goes_through_torchs_operations():
    """create_graph=True (MARTHE's Hessian-vector products): the gradient stays
    differentiable and gives torch's second derivative through the layers around the pool."""
    torch.manual_seed(0)
    conv, lin = torch.nn.Conv2d(1, 4, 3).double(), torch.nn.Linear(4 * 3 * 3, 1).double()
    conv = conv.to(memory_format=CL)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64).contiguous(memory_format=CL)

    def hvp(pool):
        loss = lin(pool(conv(x)).flatten(1)).square().sum()
        grads = torch.autograd.grad(loss, list(conv.parameters()), create_graph=True)
        v = [torch.ones_like(g) for g in grads]
        return torch.autograd.grad(grads, list(conv.parameters()), grad_outputs=v)

    ours = hvp(pooling.max_pool2_relu)
    theirs = hvp(lambda t: F.relu(F.max_pool2d(t, 2)))
    assert all(torch.allclose(a, b, rtol=1e-12, atol=0) for a, b in zip(ours, theirs))
    assert any(bool(a.abs().sum() > 0) for a in ours)


def _train(model, steps=6):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=gen)
    x, y = (x > 0.6) * torch.round(x * 4) / 4, torch.randint(0, 10, (64,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9)
    torch.manual_seed(3)   # the dropout masks
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_bettercnn_trains_bit_for_bit_as_with_torchs_pool_and_relu(monkeypatch):
    torch.manual_seed(0)
    start = M.BetterCNN().state_dict()
    fused = M.prepare(M.BetterCNN(), torch.device("cpu"))
    fused.load_state_dict(start)
    a = _train(fused)
    monkeypatch.setattr(pooling, "applies", lambda x: False)
    plain = M.prepare(M.BetterCNN(), torch.device("cpu"))
    plain.load_state_dict(start)
    assert torch.equal(a, _train(plain))


WITHOUT_COMPILER = """
import torch
from hdrepro.engine import pooling
print("unavailable: " + str(pooling.unavailable()))
x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last)
print(pooling.applies(x), torch.equal(pooling.max_pool2_relu(x),
                                      torch.relu(torch.nn.functional.max_pool2d(x, 2))))
"""


@pytest.mark.slow
def test_without_a_compiler_torchs_operations_run(tmp_path):
    env = {**os.environ, "HDREPRO_KERNEL_CACHE": str(tmp_path), "PATH": str(tmp_path / "empty")}
    out = subprocess.run([sys.executable, "-c", WITHOUT_COMPILER], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.splitlines() == ["unavailable: no C++ compiler (c++ or g++) on PATH",
                                       "False True"]
