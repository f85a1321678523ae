r"""The CPU kernels that put an HD step at its memory floor (``native_kernels.cpp``).

An HD step must read the whole of g_t and d_{t-1} once for h_t = -g_t · d_{t-1} before it can
know α_t, and then make the base optimizer's update pass. Built from torch's list operations,
SGDN-HD and Adam-HD made several more passes over memory than these two: d_{t-1} formed in a
temporary from Adam's moments, d_t copied out after the update. These kernels make exactly two:

- :meth:`Kernels.dot_gd` (SGD, SGDN): Σ g·d_{t-1} (and Σg², Σd² for the multiplicative rule),
  g = ∇f + λθ formed on the fly;
- :meth:`Kernels.sgd_update`: torch's fused SGD update, operation for operation, that also
  writes d_t;
- :meth:`Kernels.adam_dot` (Adam, AdamW): Σ g·m/(√v c + ε) read straight from Adam's moments, so
  torch's own fused Adam makes the update pass and no d_t is stored.

The library is compiled on first use with the system C++ compiler (about a second) and kept in
a cache folder (:mod:`hdrepro.cbuild`). Where it cannot be built (no compiler) the optimizers
take torch's kernels instead, with the same results to rounding; :func:`unavailable` says why. The kernels take dense float32 or
float64 CPU tensors laid out alike; the optimizers check that (:func:`eligible`) and fall back
otherwise (half precision, GPUs, strided or sparse tensors, parameters that skipped a step).

Measured with bench/bench_step.py (docs/report/speed.md): the floors there are the fused step
plus the least memory traffic h_t needs; SGDN-HD must also write d_t, and Adam-HD read v.
"""
from __future__ import annotations

import ctypes
from typing import Sequence

import torch
from torch import Tensor

from .. import cbuild

SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def eligible(*lists: Sequence[Tensor]) -> bool:
    """Whether the kernels can take these tensor lists: on CPU, all float32 or all float64,
    each tensor dense in memory (contiguous, or channels-last as BetterCNN's convolutions run on
    CPU) with the same strides as its partner in the first list, so that their memory lines up
    element for element, and the lists of equal lengths. (A gradient or an Adam moment is on
    its parameter's device, so the device of the first list stands for the rest; this runs
    every step, so it checks no more than it must.)"""
    first = lists[0]
    if not first or first[0].dtype not in SUFFIX or first[0].device.type != "cpu":
        return False
    dtype = first[0].dtype
    if any(len(ts) != len(first) for ts in lists):
        return False
    if all(t.layout == torch.strided and t.is_contiguous() and t.dtype == dtype
           for ts in lists for t in ts):   # the usual case, checked with fewer calls
        shapes = [t.shape for t in first]
        return all(t.shape == shape for ts in lists[1:] for t, shape in zip(ts, shapes))
    if not all(_dense(t) for t in first):
        return False
    strides = [t.stride() for t in first]
    for ts in lists[1:]:
        if len(ts) != len(strides):
            return False
        for t, ref, stride in zip(ts, first, strides):
            if (t.dtype != dtype or t.layout != torch.strided or t.shape != ref.shape
                    or t.stride() != stride):
                return False
    return True


def _dense(t: Tensor) -> bool:
    return t.layout == torch.strided and (t.is_contiguous() or (
        t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)))


class Kernels:
    """The compiled kernels, called on lists of tensors (see the module docstring)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        ptr, i64, dbl, cint = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int)
        for suffix in SUFFIX.values():
            getattr(lib, f"hd_dot_gd_{suffix}").argtypes = [ptr] * 4 + [i64, dbl, cint, cint,
                                                                        ptr]
            getattr(lib, f"hd_sgd_update_{suffix}").argtypes = (
                [ptr] * 5 + [i64, dbl, dbl, dbl, cint, cint, dbl, cint])
            getattr(lib, f"hd_adam_dot_{suffix}").argtypes = (
                [ptr] * 5 + [i64] + [dbl] * 5 + [cint, cint, ptr])
        #: whether sgd_update steps exactly as torch's fused SGD here (else SGDHD leaves the
        #: update to torch): its roundings were read off one build of torch
        self.sgd_exact = all(self._sgd_matches_torch(dtype) for dtype in SUFFIX)

    def dot_gd(self, grads, dirs, params, weight_decay: float, norms: bool) -> tuple:
        """(Σ g·d, Σ g², Σ d²) with g = grad + λθ; the squares are 0 unless `norms`."""
        out = (ctypes.c_double * 3)()
        self._fn("hd_dot_gd", grads)(_ptrs(grads), _ptrs(dirs), _ptrs(params), _sizes(grads),
                                     len(grads), weight_decay, int(norms), _threads(), out)
        return tuple(out)

    def sgd_update(self, params, grads, bufs, dirs, *, weight_decay: float, momentum: float,
                   dampening: float, nesterov: bool, first: bool, alpha: float) -> None:
        """θ, b and d_t in one pass, as torch's fused SGD updates θ and b (`bufs` is ignored
        without momentum; `dirs` may be None, then d_t is not stored)."""
        self._fn("hd_sgd_update", params)(
            _ptrs(params), _ptrs(grads), _ptrs(bufs) if momentum else None,
            _ptrs(dirs) if dirs is not None else None, _sizes(params), len(params),
            weight_decay, momentum, dampening, int(nesterov), int(first), alpha, _threads())

    def adam_dot(self, grads, exp_avgs, exp_avg_sqs, params, *, weight_decay: float, c: float,
                 eps: float, a: float = 1.0, k: float = 0.0, norms: bool) -> tuple:
        """(Σ g·w, Σ g², Σ w²) with g = grad + λθ and w = m/(√v c + ε), or for AdamW (k ≠ 0)
        w = a m/(√v c + ε) + kθ; the squares are 0 unless `norms`."""
        out = (ctypes.c_double * 3)()
        self._fn("hd_adam_dot", grads)(
            _ptrs(grads), _ptrs(exp_avgs), _ptrs(exp_avg_sqs), _ptrs(params), _sizes(grads),
            len(grads), weight_decay, c, eps, a, k, int(norms), _threads(), out)
        return tuple(out)

    def _sgd_matches_torch(self, dtype: torch.dtype) -> bool:
        """A few steps of ours and of torch's fused SGD, bit for bit: Nesterov with weight
        decay, and momentum with dampening, on sizes that take every part of torch's loop."""
        settings = [dict(momentum=0.9, dampening=0.0, nesterov=True, weight_decay=1e-2),
                    dict(momentum=0.5, dampening=0.1, nesterov=False, weight_decay=0.0)]
        return all(self._sgd_steps_match(dtype, s) for s in settings)

    def _sgd_steps_match(self, dtype: torch.dtype, setting: dict) -> bool:
        gen = torch.Generator().manual_seed(0)
        ours = [torch.randn(n, generator=gen, dtype=dtype) for n in (1037, 7, 3)]
        theirs = [torch.nn.Parameter(p.clone()) for p in ours]
        opt = torch.optim.SGD(theirs, lr=0.01, fused=True, **setting)
        bufs = [torch.empty_like(p) for p in ours]
        for step in range(3):
            grads = [torch.randn(p.shape, generator=gen, dtype=dtype) for p in ours]
            self.sgd_update(ours, grads, bufs, None, first=step == 0, alpha=0.01, **setting)
            for p, g in zip(theirs, grads):
                p.grad = g.clone()
            opt.step()
        return all(torch.equal(a, b.detach()) for a, b in zip(ours, theirs))

    def _fn(self, name: str, like: Sequence[Tensor]):
        return getattr(self.lib, f"{name}_{SUFFIX[like[0].dtype]}")


def _ptrs(ts: Sequence[Tensor]):
    return (ctypes.c_void_p * len(ts))(*[t.data_ptr() for t in ts])


def _sizes(ts: Sequence[Tensor]):
    return (ctypes.c_int64 * len(ts))(*[t.numel() for t in ts])


def _threads() -> int:
    return torch.get_num_threads()


_LIBRARY = cbuild.Library("hdrepro.optim", "native_kernels.cpp", cbuild.FLAGS)


def kernels() -> Kernels | None:
    """The compiled kernels, or None where they cannot be built (then :func:`unavailable`);
    wrapped once per process, since the wrapper checks itself against torch. (Kept in a plain
    one-entry list rather than functools.cache: torch.compile traces through this call in
    every compiled step, and warns about a cache wrapper.)"""
    if not _KERNELS:
        lib = _LIBRARY.get()
        _KERNELS.append(None if lib is None else Kernels(lib))
    return _KERNELS[0]


_KERNELS: list = []   # the one Kernels of this process, once built (or None)


def unavailable() -> str | None:
    """Why the kernels cannot be used here, or None when they can."""
    return _LIBRARY.reason()
