"""A hand-written C++/OpenMP dot product over a list of CPU tensors, for bench_step.py's question:
is torch's dot the reason the HD steps' floor is above 1.5x, or is it the machine's memory?

Σ_i ⟨g_i, d_i⟩ is split into chunks of 64K elements across all tensors, the chunks are shared among
the threads (ATen's parallel_for), and each chunk is summed by a vectorised float loop into a
double. Built on first use with torch.utils.cpp_extension (needs a C++ compiler and ninja; the
build is cached by torch, about 40 s the first time).
"""
from __future__ import annotations

from typing import Callable

import torch

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <vector>

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

double dot_list(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ys) {
  TORCH_CHECK(xs.size() == ys.size(), "dot_list: lists of different lengths");
  std::vector<const float*> as, bs;
  std::vector<int64_t> ns;
  for (size_t k = 0; k < xs.size(); ++k) {
    TORCH_CHECK(xs[k].is_cpu() && xs[k].scalar_type() == at::kFloat && xs[k].is_contiguous()
                && ys[k].sizes() == xs[k].sizes() && ys[k].scalar_type() == at::kFloat
                && ys[k].is_contiguous(), "dot_list: contiguous float32 CPU tensors of equal shapes");
    const float* a = xs[k].data_ptr<float>();
    const float* b = ys[k].data_ptr<float>();
    for (int64_t s = 0; s < xs[k].numel(); s += 65536) {
      as.push_back(a + s); bs.push_back(b + s); ns.push_back(std::min<int64_t>(65536, xs[k].numel() - s));
    }
  }
  std::vector<double> part(ns.size());
  at::parallel_for(0, ns.size(), 1, [&](int64_t s, int64_t e) {
    for (int64_t c = s; c < e; ++c) part[c] = chunk_dot(as[c], bs[c], ns[c]);
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}
"""


def build() -> Callable[[list, list], float] | str:
    """The compiled ``dot_list(xs, ys)``, or the reason it could not be built (a string)."""
    try:
        from torch.utils.cpp_extension import load_inline
        module = load_inline("hdrepro_bench_dot", cpp_sources=SOURCE, functions=["dot_list"],
                             extra_cflags=["-O3", "-march=native", "-fopenmp"],
                             extra_ldflags=["-fopenmp"])
    except Exception as exc:  # no compiler, no ninja, ...: the bench goes on without these rows
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return module.dot_list


def checked(dot_list, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> None:
    """Refuse to time a kernel that gives a wrong answer: compare with torch in float64, within
    float32 rounding of the terms (1e-6 Σ|g_i d_i|)."""
    flat = [(x.reshape(-1).double(), y.reshape(-1).double()) for x, y in zip(xs, ys)]
    want = sum(float(torch.dot(x, y)) for x, y in flat)
    scale = sum(float(torch.dot(x.abs(), y.abs())) for x, y in flat)
    got = dot_list(xs, ys)
    if abs(got - want) > 1e-6 * scale:
        raise RuntimeError(f"the hand-written dot gives {got}, torch in float64 {want}")
