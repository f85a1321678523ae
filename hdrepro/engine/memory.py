"""Large blocks kept by the C allocator rather than handed back to the kernel (glibc only).

glibc serves a request above its mmap threshold (which adapts, but never past 32 MiB) with fresh
pages from the kernel and unmaps them when the block is freed, so every reuse faults each page
in again. Evaluating BetterCNN on 1,000 images at once allocates 69 MB for its first
convolution's output, and paid about 16,900 page faults per evaluation for it
(tests/test_train.py counts them). The arithmetic is the same either way, so no result
changes.

The setting belongs to the process, so the library never makes it on its own: the workers that
train cells call :func:`keep_large_blocks` (:func:`hdrepro.engine.executors.worker_device`), as
do ``hdrepro train`` and bench/bench_grid.py.
"""
from __future__ import annotations

import ctypes

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap and are reused there, and free memory at the
#: heap's top goes back to the kernel only beyond it (mallopt takes a C int: at most 2**31 - 1)
THRESHOLD = 1 << 30


def keep_large_blocks() -> bool:
    """Raise this process's mmap and trim thresholds (see the module docstring); True where the
    allocator took both settings, False where it has no ``mallopt`` (not glibc) or refused."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)
                and mallopt(M_TRIM_THRESHOLD, THRESHOLD))
