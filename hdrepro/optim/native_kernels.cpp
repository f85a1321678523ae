// The HD step at its memory floor on CPU: one reduction pass for h_t and, for SGD, one update
// pass that also leaves d_t for the next h. Built by hdrepro/optim/native.py with the system
// C++ compiler into a plain shared library, called through ctypes (no torch headers).
//
// A call gets the group's tensors as arrays of pointers and sizes. The work is cut into chunks
// of at most CHUNK elements, each inside one tensor and starting at a multiple of 16 elements
// from the tensor's start (as torch's fused kernels cut theirs). Chunks are shared among the
// threads (OpenMP, the runtime torch loaded); a reduction writes one partial sum per chunk and
// adds them in chunk order, so its result does not depend on the number of threads.
//
// Floating point: built with -ffp-contract=off and without -ffast-math, so the compiler fuses
// no multiply-add on its own; sgd_update writes out with std::fma the very roundings of torch's
// fused CPU SGD kernel as built (measured on torch 2.13, AVX512), so that hypergrad_lr = 0 is
// torch's step bit for bit. native.py checks that on first use and, where it does not hold,
// leaves the update to torch.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t CHUNK = 1 << 15;

struct Chunk {
  int64_t tensor, start, len;
};

std::vector<Chunk> chunks(const int64_t* sizes, int64_t count) {
  std::vector<Chunk> out;
  for (int64_t i = 0; i < count; ++i)
    for (int64_t s = 0; s < sizes[i]; s += CHUNK)
      out.push_back({i, s, std::min(CHUNK, sizes[i] - s)});
  return out;
}

int64_t total_of(const int64_t* sizes, int64_t count) {
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) total += sizes[i];
  return total;
}

int threads_for(int64_t total, int threads) {
  // a parallel region costs microseconds: small groups (LogReg's) run on one thread
  return total < 4 * CHUNK ? 1 : std::max(1, threads);
}

// Runs body(chunk, sums) for every chunk, sums = the chunk's 3 partial sums, and adds the
// chunks' sums in chunk order into out.
template <typename Body>
void reduce(const int64_t* sizes, int64_t count, int threads, double* out, Body body) {
  const auto work = chunks(sizes, count);
  const int64_t n = static_cast<int64_t>(work.size());
  std::vector<double> part(3 * n, 0.0);
#pragma omp parallel for schedule(static) num_threads(threads_for(total_of(sizes, count), threads))
  for (int64_t c = 0; c < n; ++c) body(work[c], &part[3 * c]);
  out[0] = out[1] = out[2] = 0;
  for (int64_t c = 0; c < n; ++c)
    for (int j = 0; j < 3; ++j) out[j] += part[3 * c + j];
}

// Terms are summed BLOCK at a time in T (vectorised), and the blocks' sums in double.
constexpr int64_t BLOCK = 1024;

// s += {Σ g·d, Σ g², Σ d²} over i < len, where term(i, g, d) gives element i's g and d; the
// squares only WITH_NORMS.
template <typename T, bool WITH_NORMS, typename Term>
inline void block_sums(int64_t len, double* s, Term term) {
  for (int64_t b = 0; b < len; b += BLOCK) {
    const int64_t e = std::min(len, b + BLOCK);
    T gd = 0, gg = 0, dd = 0;
#pragma omp simd reduction(+ : gd, gg, dd)
    for (int64_t i = b; i < e; ++i) {
      T gi, d;
      term(i, gi, d);
      gd = std::fma(gi, d, gd);
      if (WITH_NORMS) {
        gg = std::fma(gi, gi, gg);
        dd = std::fma(d, d, dd);
      }
    }
    s[0] += gd;
    s[1] += gg;
    s[2] += dd;
  }
}

// One chunk of dot_gd: g = grad + λθ (θ read only WITH_DECAY).
template <typename T, bool WITH_DECAY, bool WITH_NORMS>
void dot_gd_chunk(const T* g, const T* d, const T* th, int64_t len, T lam, double* s) {
  block_sums<T, WITH_NORMS>(len, s, [=](int64_t i, T& gi, T& di) {
    gi = WITH_DECAY ? std::fma(th[i], lam, g[i]) : g[i];
    di = d[i];
  });
}

// Σ g·d, Σ g² and Σ d² over the group, with g = grad + λθ (coupled decay; θ is read only when
// λ ≠ 0). out = {Σ g·d, Σ g², Σ d²}; the squares only when norms != 0.
template <typename T>
void dot_gd(const T* const* grad, const T* const* dir, const T* const* theta,
            const int64_t* sizes, int64_t count, double wd, int norms, int threads,
            double* out) {
  const T lam = static_cast<T>(wd);
  reduce(sizes, count, threads, out, [&](const Chunk& k, double* s) {
    const T* g = grad[k.tensor] + k.start;
    const T* d = dir[k.tensor] + k.start;
    const T* th = theta[k.tensor] + k.start;
    if (wd != 0 && norms) dot_gd_chunk<T, true, true>(g, d, th, k.len, lam, s);
    else if (wd != 0) dot_gd_chunk<T, true, false>(g, d, th, k.len, lam, s);
    else if (norms) dot_gd_chunk<T, false, true>(g, d, th, k.len, lam, s);
    else dot_gd_chunk<T, false, false>(g, d, th, k.len, lam, s);
  });
}

// SGD's update as torch's fused CPU SGD kernel computes it, and d_t stored (fma(x, y, z) is
// x y + z rounded once):
//   g = fma(θ, λ, grad);  b = first ? g : fma(g, 1-τ, b μ);  d = nesterov ? fma(b, μ, g) : b
//   (d = g without momentum);  θ = fma(d, -α, θ);  dir = d (when dir is given)
// One rounding differs along a tensor: torch's build runs it in 64- and then 32-byte vectors,
// and its last numel % (32 / sizeof(T)) elements one by one, where b = fma(b, μ, g (1-τ));
// TAIL picks that form (seen on torch 2.13's AVX512 build; native.py checks it on first use).
template <typename T, bool TAIL>
inline void sgd_elements(T* th, const T* gr, T* b, T* out, int64_t len, T lam, T m, T damp,
                         T lr, bool wd, bool mu, bool nesterov, bool first) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) {
    T g = gr[i];
    if (wd) g = std::fma(th[i], lam, g);
    if (mu) {
      const T bi = first ? g : TAIL ? std::fma(b[i], m, g * damp) : std::fma(g, damp, b[i] * m);
      b[i] = bi;
      g = nesterov ? std::fma(bi, m, g) : bi;
    }
    th[i] = std::fma(g, -lr, th[i]);
    if (out) out[i] = g;
  }
}

// dst[0..n) = src[0..n) with non-temporal (streaming) stores where the CPU has them and dst is
// aligned: d_t is read back only at the next step, so it need not pass through the cache, and a
// plain store would first read the old d_{t-1} line from memory (measured: the d_t store then
// costs as much as a whole pass).
// One vector of streaming stores: the lanes it writes, or 0 where the CPU has none.
#if defined(__AVX512F__)
constexpr int64_t LANES = 64;   // bytes per vector
inline void stream_vector(float* d, const float* s) { _mm512_stream_ps(d, _mm512_load_ps(s)); }
inline void stream_vector(double* d, const double* s) { _mm512_stream_pd(d, _mm512_load_pd(s)); }
#elif defined(__AVX__)
constexpr int64_t LANES = 32;
inline void stream_vector(float* d, const float* s) { _mm256_stream_ps(d, _mm256_load_ps(s)); }
inline void stream_vector(double* d, const double* s) { _mm256_stream_pd(d, _mm256_load_pd(s)); }
#else
constexpr int64_t LANES = 0;
template <typename T>
inline void stream_vector(T*, const T*) {}
#endif

template <typename T>
inline void stream_copy(T* dst, const T* src, int64_t n) {
  int64_t i = 0;
  constexpr int64_t step = LANES / static_cast<int64_t>(sizeof(T));
  if (LANES && (reinterpret_cast<uintptr_t>(dst) % LANES) == 0)
    for (; i + step <= n; i += step) stream_vector(dst + i, src + i);
  for (; i < n; ++i) dst[i] = src[i];
}

constexpr int64_t STAGE = 512;   // d_t is staged in a cache-resident block, then streamed out

template <typename T>
void sgd_update(T* const* theta, const T* const* grad, T* const* buf, T* const* dir,
                const int64_t* sizes, int64_t count, double wd, double mu, double tau,
                int nesterov, int first, double alpha, int threads) {
  const auto work = chunks(sizes, count);
  const int64_t n = static_cast<int64_t>(work.size());
  const T lam = static_cast<T>(wd), m = static_cast<T>(mu), damp = static_cast<T>(1 - tau);
  const T lr = static_cast<T>(alpha);
  constexpr int64_t SCALAR = 32 / sizeof(T);
#pragma omp parallel for schedule(static) num_threads(threads_for(total_of(sizes, count), threads))
  for (int64_t c = 0; c < n; ++c) {
    const Chunk k = work[c];
    T* th = theta[k.tensor] + k.start;
    const T* gr = grad[k.tensor] + k.start;
    T* b = mu != 0 ? buf[k.tensor] + k.start : nullptr;
    T* out = dir ? dir[k.tensor] + k.start : nullptr;
    const bool last = k.start + k.len == sizes[k.tensor];
    const int64_t body = last ? k.len - sizes[k.tensor] % SCALAR : k.len;
    alignas(64) T stage[STAGE];
    for (int64_t s = 0; s < k.len; s += STAGE) {
      const int64_t e = std::min(k.len, s + STAGE), split = std::clamp(body, s, e);
      T* o = out ? stage : nullptr;
      sgd_elements<T, false>(th + s, gr + s, b ? b + s : nullptr, o, split - s, lam, m, damp,
                             lr, wd != 0, mu != 0, nesterov, first);
      sgd_elements<T, true>(th + split, gr + split, b ? b + split : nullptr,
                            o ? o + (split - s) : nullptr, e - split, lam, m, damp, lr, wd != 0,
                            mu != 0, nesterov, first);
      if (out) stream_copy(out + s, stage, e - s);
    }
#if defined(__x86_64__)
    _mm_sfence();   // streaming stores are weakly ordered: this thread's are visible from here
#endif
  }
}

struct AdamScalars {
  double lam, c, eps, a, k;
};

// One chunk of adam_dot: d = m / (√v c + ε), or for AdamW a d + kθ.
template <typename T, bool WITH_DECAY, bool WITH_NORMS, bool DECOUPLED>
void adam_dot_chunk(const T* g, const T* m, const T* v, const T* th, int64_t len,
                    const AdamScalars& sc, double* s) {
  const T lam = T(sc.lam), c = T(sc.c), eps = T(sc.eps), a = T(sc.a), k = T(sc.k);
  block_sums<T, WITH_NORMS>(len, s, [=](int64_t i, T& gi, T& d) {
    gi = WITH_DECAY ? std::fma(th[i], lam, g[i]) : g[i];
    d = m[i] / std::fma(std::sqrt(v[i]), c, eps);
    if (DECOUPLED) d = std::fma(d, a, th[i] * k);
  });
}

template <typename T>
void adam_dot(const T* const* grad, const T* const* m, const T* const* v, const T* const* theta,
              const int64_t* sizes, int64_t count, double wd, double c, double eps, double a,
              double k, int norms, int threads, double* out) {
  const AdamScalars sc{wd, c, eps, a, k};
  reduce(sizes, count, threads, out, [&](const Chunk& q, double* s) {
    const T* g = grad[q.tensor] + q.start;
    const T* mm = m[q.tensor] + q.start;
    const T* vv = v[q.tensor] + q.start;
    const T* th = theta[q.tensor] + q.start;
    const bool dec = k != 0;
    if (wd != 0 && norms) adam_dot_chunk<T, true, true, false>(g, mm, vv, th, q.len, sc, s);
    else if (wd != 0) adam_dot_chunk<T, true, false, false>(g, mm, vv, th, q.len, sc, s);
    else if (dec && norms) adam_dot_chunk<T, false, true, true>(g, mm, vv, th, q.len, sc, s);
    else if (dec) adam_dot_chunk<T, false, false, true>(g, mm, vv, th, q.len, sc, s);
    else if (norms) adam_dot_chunk<T, false, true, false>(g, mm, vv, th, q.len, sc, s);
    else adam_dot_chunk<T, false, false, false>(g, mm, vv, th, q.len, sc, s);
  });
}

}  // namespace

#define HD_EXPORT(T, SUFFIX)                                                                  \
  extern "C" void hd_dot_gd_##SUFFIX(const T* const* g, const T* const* d,                    \
                                     const T* const* th, const int64_t* n, int64_t count,     \
                                     double wd, int norms, int threads, double* out) {        \
    dot_gd<T>(g, d, th, n, count, wd, norms, threads, out);                                   \
  }                                                                                           \
  extern "C" void hd_sgd_update_##SUFFIX(T* const* th, const T* const* g, T* const* b,        \
                                         T* const* d, const int64_t* n, int64_t count,        \
                                         double wd, double mu, double tau, int nesterov,      \
                                         int first, double alpha, int threads) {              \
    sgd_update<T>(th, g, b, d, n, count, wd, mu, tau, nesterov, first, alpha, threads);       \
  }                                                                                           \
  extern "C" void hd_adam_dot_##SUFFIX(const T* const* g, const T* const* m,                  \
                                       const T* const* v, const T* const* th,                 \
                                       const int64_t* n, int64_t count, double wd, double c,  \
                                       double eps, double a, double k, int norms,             \
                                       int threads, double* out) {                            \
    adam_dot<T>(g, m, v, th, n, count, wd, c, eps, a, k, norms, threads, out);                \
  }

HD_EXPORT(float, f32)
HD_EXPORT(double, f64)
