"""Hand-written C++/OpenMP reductions over lists of CPU tensors, for bench_step.py's floors: the
least reading an HD step's h_t needs, measured with no other arithmetic.

Σ_i ⟨g_i, d_i⟩ is split into chunks of 32K elements across all tensors, the chunks are shared
among the threads (OpenMP, the runtime torch itself loaded, torch's thread count), and each chunk
is summed by a vectorised float loop (blocks of 1024 terms) into a double. A second kernel sums
Σ a·b·c over three lists: the least reading of an Adam-HD step that reads Adam's moments. Built
on first use with the system C++ compiler into a plain shared library, cached as the package's
kernels are (hdrepro.cbuild), called through ctypes: no torch headers, so the build takes about
a second (torch.utils.cpp_extension took about 35 s).
"""
from __future__ import annotations

import ctypes

import torch

from hdrepro import cbuild

SOURCE = r"""
#include <algorithm>
#include <cmath>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double chunk_dot(const float* a, const float* b, int64_t n) {
  double total = 0;
  for (int64_t s = 0; s < n; s += 1024) {  // float partial sums of 1024 terms, kept vectorised
    const int64_t e = std::min(n, s + 1024);
    float acc = 0;
    #pragma omp simd reduction(+:acc)
    for (int64_t i = s; i < e; ++i) acc = std::fma(a[i], b[i], acc);
    total += acc;
  }
  return total;
}

// Σ a·b·c over the same chunks: the least a reduction over three arrays can cost (the floor of
// an Adam-HD step that reads d_{t-1} from Adam's two moments instead of storing it)
extern "C" double dot3_chunks(const float* const* as, const float* const* bs,
                              const float* const* cs, const int64_t* ns, int64_t chunks,
                              int threads) {
  double total = 0;
  #pragma omp parallel for reduction(+:total) schedule(static) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) {
    const float *a = as[c], *b = bs[c], *x = cs[c];
    double part = 0;
    for (int64_t s = 0; s < ns[c]; s += 1024) {
      const int64_t e = std::min(ns[c], s + 1024);
      float acc = 0;
      #pragma omp simd reduction(+:acc)
      for (int64_t i = s; i < e; ++i) acc = std::fma(a[i] * b[i], x[i], acc);
      part += acc;
    }
    total += part;
  }
  return total;
}

// Writes 0 over each chunk with streaming (non-temporal) stores, as an HD step that stores d_t
// writes it (hdrepro/optim/native_kernels.cpp): the least one more written array can cost
extern "C" void stream_zero_chunks(float* const* as, const int64_t* ns, int64_t chunks,
                                   int threads) {
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) {
    float* a = as[c];
    int64_t i = 0;
#if defined(__AVX512F__)
    if ((reinterpret_cast<uintptr_t>(a) & 63) == 0)
      for (; i + 16 <= ns[c]; i += 16) _mm512_stream_ps(a + i, _mm512_setzero_ps());
#endif
    for (; i < ns[c]; ++i) a[i] = 0;
#if defined(__x86_64__)
    _mm_sfence();
#endif
  }
}

extern "C" double dot_chunks(const float* const* as, const float* const* bs, const int64_t* ns,
                             int64_t chunks, int threads) {
  double total = 0;
  #pragma omp parallel for reduction(+:total) schedule(static) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) total += chunk_dot(as[c], bs[c], ns[c]);
  return total;
}
"""
CHUNK = 32768
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]


class ListDot:
    """``dot_list(xs, ys)``: Σ_i ⟨xs[i], ys[i]⟩ with the compiled kernel; with a third list,
    ``dot_list(xs, ys, zs)`` = Σ_i Σ_j xs[i]_j ys[i]_j zs[i]_j. The chunk tables are built once
    per set of tensors (kept by their addresses and sizes), so a timed call is the key's check
    (about 1% of the kernel's time on the ResNet-like set, one CPU thread) and one C call."""

    def __init__(self, lib: ctypes.CDLL):
        self.fn = lib.dot_chunks
        self.fn.restype = ctypes.c_double
        self.fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_int]
        self.fn3 = lib.dot3_chunks
        self.fn3.restype = ctypes.c_double
        self.fn3.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int]
        self.zero = lib.stream_zero_chunks
        self.zero.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_int64, ctypes.c_int]
        self.tables: dict = {}   # chunk tables by the tensors' addresses and sizes

    def __call__(self, *lists: list[torch.Tensor]) -> float:
        key = tuple((t.data_ptr(), t.numel()) for ts in lists for t in ts)
        if key not in self.tables:
            self.tables[key] = self._chunk_table(*lists)
        *starts, n, count = self.tables[key]
        return (self.fn if len(lists) == 2 else self.fn3)(*starts, n, count,
                                                          torch.get_num_threads())

    def stream_zero(self, xs: list[torch.Tensor]) -> None:
        """Write 0 over every tensor of `xs` with streaming stores."""
        key = ("zero", *((t.data_ptr(), t.numel()) for t in xs))
        if key not in self.tables:
            self.tables[key] = self._chunk_table(xs, xs)
        starts, _, n, count = self.tables[key]
        self.zero(starts, n, count, torch.get_num_threads())

    @staticmethod
    def _chunk_table(*lists):
        if len({len(ts) for ts in lists}) != 1 or len(lists) not in (2, 3):
            raise ValueError("dot_list: two or three lists of the same length")
        starts, sizes = [[] for _ in lists], []
        for ts in zip(*lists):
            if not all(t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()
                       and t.shape == ts[0].shape for t in ts):
                raise ValueError("dot_list: contiguous float32 CPU tensors of equal shapes")
            for s in range(0, ts[0].numel(), CHUNK):
                for column, t in zip(starts, ts):
                    column.append(t.data_ptr() + 4 * s)
                sizes.append(min(CHUNK, ts[0].numel() - s))
        count = len(sizes)
        return (*[(ctypes.c_void_p * count)(*column) for column in starts],
                (ctypes.c_int64 * count)(*sizes), count)


def build() -> ListDot | str:
    """The compiled ``dot_list(xs, ys)``, or the reason it could not be built (a string); built
    and cached as the package's own kernels are (hdrepro.cbuild)."""
    try:
        lib = cbuild.compile_cached(SOURCE, "cpp_dot", FLAGS)
    except RuntimeError as err:
        return str(err)
    # libgomp.so.1 is already loaded with torch, so the kernel shares torch's OpenMP runtime
    return ListDot(ctypes.CDLL(str(lib)))


def checked(dot_list, *lists: list[torch.Tensor]) -> None:
    """Refuse to time a kernel that gives a wrong answer: compare with torch in float64, within
    float32 rounding of the terms (1e-6 Σ|products|)."""
    flat = [[t.reshape(-1).double() for t in ts] for ts in zip(*lists)]
    prods = [torch.stack(ts).prod(0) for ts in flat]
    want = sum(float(p.sum()) for p in prods)
    scale = sum(float(p.abs().sum()) for p in prods)
    got = dot_list(*lists)
    if abs(got - want) > 1e-6 * scale:
        raise RuntimeError(f"the hand-written dot gives {got}, torch in float64 {want}")
