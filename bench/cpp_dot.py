"""A hand-written C++/OpenMP dot product over a list of CPU tensors, for bench_step.py's question:
is torch's dot the reason the HD steps' floor is above 1.5x, or is it the machine's memory?

Σ_i ⟨g_i, d_i⟩ is split into chunks of 64K elements across all tensors, the chunks are shared among
the threads (OpenMP, the runtime torch itself loaded, so torch's thread count), and each chunk is
summed by a vectorised float loop into a double. Built on first use with the system C++ compiler
into a plain shared library called through ctypes: no torch headers, so the build takes about a
second (torch.utils.cpp_extension took about 35 s for the same kernel).
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

SOURCE = r"""
#include <algorithm>
#include <cstdint>

static double chunk_dot(const float* a, const float* b, int64_t n) {
  double total = 0;
  for (int64_t s = 0; s < n; s += 2048) {  // float partial sums of 2048 terms, kept vectorised
    const int64_t e = std::min(n, s + 2048);
    float acc = 0;
    #pragma omp simd reduction(+:acc)
    for (int64_t i = s; i < e; ++i) acc += a[i] * b[i];
    total += acc;
  }
  return total;
}

extern "C" double dot_chunks(const float* const* as, const float* const* bs, const int64_t* ns,
                             int64_t chunks) {
  double total = 0;
  #pragma omp parallel for reduction(+:total) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) total += chunk_dot(as[c], bs[c], ns[c]);
  return total;
}
"""
CHUNK = 65536
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]


class ListDot:
    """``dot_list(xs, ys)``: Σ_i ⟨xs[i], ys[i]⟩ with the compiled kernel. The chunk tables are
    built once per set of tensors (keyed by their addresses and sizes), so a timed call is the
    key's check (about 1% of the kernel's time on the ResNet-like set, one CPU thread) and one C
    call."""

    def __init__(self, lib: ctypes.CDLL):
        self.fn = lib.dot_chunks
        self.fn.restype = ctypes.c_double
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        self.key, self.table = None, None

    def __call__(self, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> float:
        key = tuple((t.data_ptr(), t.numel()) for t in (*xs, *ys))
        if key != self.key:
            self.key, self.table = key, self._chunk_table(xs, ys)
        a, b, n, count = self.table
        return self.fn(a, b, n, count)

    @staticmethod
    def _chunk_table(xs, ys):
        if len(xs) != len(ys):
            raise ValueError("dot_list: lists of different lengths")
        starts_a, starts_b, sizes = [], [], []
        for x, y in zip(xs, ys):
            if not all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()
                       for t in (x, y)) or x.shape != y.shape:
                raise ValueError("dot_list: contiguous float32 CPU tensors of equal shapes")
            for s in range(0, x.numel(), CHUNK):
                starts_a.append(x.data_ptr() + 4 * s)
                starts_b.append(y.data_ptr() + 4 * s)
                sizes.append(min(CHUNK, x.numel() - s))
        count = len(sizes)
        return ((ctypes.c_void_p * count)(*starts_a), (ctypes.c_void_p * count)(*starts_b),
                (ctypes.c_int64 * count)(*sizes), count)


def build() -> ListDot | str:
    """The compiled ``dot_list(xs, ys)``, or the reason it could not be built (a string)."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        return "no C++ compiler (c++ or g++) on PATH"
    with tempfile.TemporaryDirectory(prefix="hdrepro_dot_") as tmp:
        src, lib = Path(tmp) / "dot.cpp", Path(tmp) / "dot.so"
        src.write_text(SOURCE)
        done = subprocess.run([compiler, *FLAGS, "-o", str(lib), str(src)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            return f"{compiler} failed: {(done.stderr.strip().splitlines() or [''])[0]}"
        # libgomp.so.1 is already loaded with torch, so the kernel shares torch's OpenMP runtime
        return ListDot(ctypes.CDLL(str(lib)))


def checked(dot_list, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> None:
    """Refuse to time a kernel that gives a wrong answer: compare with torch in float64, within
    float32 rounding of the terms (1e-6 Σ|g_i d_i|)."""
    flat = [(x.reshape(-1).double(), y.reshape(-1).double()) for x, y in zip(xs, ys)]
    want = sum(float(torch.dot(x, y)) for x, y in flat)
    scale = sum(float(torch.dot(x.abs(), y.abs())) for x, y in flat)
    got = dot_list(xs, ys)
    if abs(got - want) > 1e-6 * scale:
        raise RuntimeError(f"the hand-written dot gives {got}, torch in float64 {want}")
