r"""BetterCNN's 2×2 max-pool and the ReLU after it as one operation on CPU, in channels-last
layout (``pool_kernels.cpp``): y = relu(max_pool2d(x, 2)), bit for bit torch's values and
gradients, in one pass over x forward and one write of ∂L/∂x backward.

torch runs the pair as four passes: the pool writes its outputs and int64 indices, ReLU writes a
copy, and backward ReLU's mask, a zero-fill of ∂L/∂x and a scatter into it. On CPU that traffic
is much of BetterCNN's step (bench/bench_grid.py times the network with and without this).

:func:`max_pool2_relu` takes the kernels where they apply (float32 or float64 CPU tensors in
channels-last layout, even height and width) and torch's two operations otherwise; where the
kernels cannot be built (no compiler), always torch's. A backward that builds a graph of its own
(create_graph=True, as MARTHE's Hessian-vector products do) goes through torch's operations too.
"""
from __future__ import annotations

import ctypes
import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import cbuild

SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
_LIBRARY = cbuild.Library("hdrepro.engine", "pool_kernels.cpp", cbuild.FLAGS)


@functools.cache
def _kernels() -> ctypes.CDLL | None:
    lib = _LIBRARY.get()
    if lib is not None:
        ptr, i64, cint = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        for suffix in SUFFIX.values():
            for name in ("forward", "backward"):
                fn = getattr(lib, f"hd_pool_relu_{name}_{suffix}")
                fn.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, cint]   # 3 arrays, N H W C
    return lib


def unavailable() -> str | None:
    """Why the kernels cannot be used here, or None when they can."""
    return _LIBRARY.reason()


def applies(x: Tensor) -> bool:
    """Whether the kernels take x: a dense float32/float64 CPU tensor N×C×H×W in channels-last
    layout with even H and W, outside torch.compile, with the kernels built."""
    return (x.device.type == "cpu" and x.dtype in SUFFIX and x.dim() == 4
            and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0 and x.layout == torch.strided
            and x.is_contiguous(memory_format=torch.channels_last)
            and not torch.compiler.is_compiling() and _kernels() is not None)


def max_pool2_relu(x: Tensor) -> Tensor:
    """relu(max_pool2d(x, 2)) by the kernels where :func:`applies`, else by torch."""
    if applies(x):
        return _MaxPool2ReLU.apply(x)
    return F.relu(F.max_pool2d(x, 2))


def _call(name: str, x: Tensor, a: Tensor, b: Tensor, c: Tensor) -> None:
    n, ch, h, w = x.shape
    getattr(_kernels(), f"hd_pool_relu_{name}_{SUFFIX[x.dtype]}")(
        a.data_ptr(), b.data_ptr(), c.data_ptr(), n, h, w, ch, torch.get_num_threads())


class _MaxPool2ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=torch.channels_last)
        code = torch.empty((n, h // 2, w // 2, c), dtype=torch.uint8)
        _call("forward", x, x, y, code)
        ctx.save_for_backward(x, code)
        return y

    @staticmethod
    def backward(ctx, gy: Tensor) -> Tensor:
        x, code = ctx.saved_tensors
        if torch.is_grad_enabled():   # create_graph: torch's operations, differentiable again
            with torch.enable_grad():
                xd = x.detach().requires_grad_()
                return torch.autograd.grad(F.relu(F.max_pool2d(xd, 2)), xd, gy,
                                           create_graph=True)[0]
        gy = gy.contiguous(memory_format=torch.channels_last)
        gx = torch.empty_like(x, memory_format=torch.channels_last)
        _call("backward", x, gy, code, gx)
        return gx
