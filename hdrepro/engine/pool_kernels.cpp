// BetterCNN's 2×2 max-pool followed by ReLU, on CPU, in channels-last layout, as one pass
// forward and one pass backward. Built by hdrepro/engine/pooling.py with the system C++ compiler
// into a plain shared library, called through ctypes (no torch headers).
//
// It computes what torch's max_pool2d(kernel 2, stride 2) and relu compute, bit for bit:
// - the window's maximum, scanned row by row; a later element replaces the running maximum when
//   it is larger or NaN (torch's rule: the first of equal maxima wins, NaN propagates);
// - relu(m) = 0 where m < 0, else m (so -0.0 and NaN pass through, as in torch's clamp_min);
// - backward, torch zero-fills the input's gradient and adds each output's gradient into its
//   window's winner, after relu's backward (0 where relu's output is <= 0). Here each input
//   element is written once: 0 + g at the winner (the same rounding of -0.0 as torch's add),
//   +0 elsewhere. One byte per output records the winner (bits 0-1) and whether relu let the
//   gradient through (bit 2), in place of torch's int64 indices.
// Tensors are NHWC in memory: x is N×H×W×C with H and W even, y and code N×(H/2)×(W/2)×C.
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

// Vectors of 32 bytes in GCC's vector extensions (8 floats or 4 doubles, with integer lanes as
// wide for the comparisons' masks): branch-free selects, compiled to the machine's own ISA.
template <typename T> struct Lanes;
template <> struct Lanes<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef int32_t M __attribute__((vector_size(32)));
  typedef uint8_t B __attribute__((vector_size(8)));
};
template <> struct Lanes<double> {
  typedef double V __attribute__((vector_size(32)));
  typedef int64_t M __attribute__((vector_size(32)));
  typedef uint8_t B __attribute__((vector_size(4)));
};

template <typename X> X load(const void* p) { X x; std::memcpy(&x, p, sizeof x); return x; }
template <typename X> void store(void* p, X x) { std::memcpy(p, &x, sizeof x); }

// One block of channels (k .. k + lanes) of one window: x's four rows p0..p3 of the window
// (row by row), y and code at the window's output.
template <typename T>
inline void forward_block(const T* p0, const T* p1, const T* p2, const T* p3, T* y,
                          uint8_t* code) {
  using L = Lanes<T>;
  typename L::V m = load<typename L::V>(p0);  // the first element wins over -inf or NaN alike
  typename L::M at = {};
  const typename L::V v[3] = {load<typename L::V>(p1), load<typename L::V>(p2),
                              load<typename L::V>(p3)};
  for (int e = 0; e < 3; ++e) {   // a later element wins if larger, or NaN
    const typename L::M up = (v[e] > m) | (v[e] != v[e]);
    m = up ? v[e] : m;
    at = up ? typename L::M{} + (e + 1) : at;
  }
  const typename L::V zero = {};
  const typename L::V r = (m < zero) ? zero : m;
  store(y, r);
  at |= (r <= zero) & 4;   // relu's backward passes nothing here
  store(code, __builtin_convertvector(at, typename L::B));
}

// The same block backward: its gradient, after relu's mask, to each window's winner in the
// rows q0..q3, and +0 to the other three.
template <typename T>
inline void backward_block(const T* gy, const uint8_t* code, T* q0, T* q1, T* q2, T* q3) {
  using L = Lanes<T>;
  const typename L::M s = __builtin_convertvector(load<typename L::B>(code), typename L::M);
  const typename L::V zero = {};
  const typename L::V g = zero + (((s & 4) != 0) ? zero : load<typename L::V>(gy));
  const typename L::M at = s & 3;
  store(q0, (at == 0) ? g : zero);
  store(q1, (at == 1) ? g : zero);
  store(q2, (at == 2) ? g : zero);
  store(q3, (at == 3) ? g : zero);
}

// The channels of one window in blocks of `lanes`; the last block ends at c and may overlap
// the one before it (it writes the same values again), so no scalar tail is needed when
// c >= lanes. Narrower tensors go one channel at a time through a one-lane copy.
template <typename T, typename Block>
inline void channels(int64_t c, Block block) {
  constexpr int64_t lanes = 32 / sizeof(T);
  if (c >= lanes) {
    for (int64_t k = 0; k < c; k += lanes) block(k + lanes <= c ? k : c - lanes);
  } else {
    block(-1);
  }
}

// Calls body(at, o) for every window, at = the offset of its top-left element in the N×H×W×C
// input and o = that of its output in the N×(H/2)×(W/2)×C output, both at channel 0. The
// images are shared among the threads.
template <typename Body>
void each_window(int64_t n, int64_t h, int64_t w, int64_t c, int threads, Body body) {
  const int64_t oh = h / 2, ow = w / 2;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j)
        body(((b * h + 2 * i) * w + 2 * j) * c, ((b * oh + i) * ow + j) * c);
}

template <typename T>
void forward(const T* x, T* y, uint8_t* code, int64_t n, int64_t h, int64_t w, int64_t c,
             int threads) {
  constexpr int64_t lanes = 32 / sizeof(T);
  each_window(n, h, w, c, threads, [&](int64_t at, int64_t o) {
    const T* p0 = x + at;        // the window's first row; its second is w·c further
    const T* p2 = p0 + w * c;
    channels<T>(c, [&](int64_t k) {
      if (k >= 0) {
        forward_block(p0 + k, p0 + c + k, p2 + k, p2 + c + k, y + o + k, code + o + k);
        return;
      }
      for (int64_t q = 0; q < c; ++q) {   // fewer channels than lanes
        T in[4][lanes] = {}, out[lanes];
        uint8_t s[lanes];
        in[0][0] = p0[q], in[1][0] = p0[c + q], in[2][0] = p2[q], in[3][0] = p2[c + q];
        forward_block(in[0], in[1], in[2], in[3], out, s);
        y[o + q] = out[0];
        code[o + q] = s[0];
      }
    });
  });
}

template <typename T>
void backward(const T* gy, const uint8_t* code, T* gx, int64_t n, int64_t h, int64_t w,
              int64_t c, int threads) {
  constexpr int64_t lanes = 32 / sizeof(T);
  each_window(n, h, w, c, threads, [&](int64_t at, int64_t o) {
    T* q0 = gx + at;
    T* q2 = q0 + w * c;
    channels<T>(c, [&](int64_t k) {
      if (k >= 0) {
        backward_block(gy + o + k, code + o + k, q0 + k, q0 + c + k, q2 + k, q2 + c + k);
        return;
      }
      for (int64_t q = 0; q < c; ++q) {   // fewer channels than lanes
        T g[lanes] = {}, out[4][lanes];
        uint8_t s[lanes] = {};
        g[0] = gy[o + q];
        s[0] = code[o + q];
        backward_block(g, s, out[0], out[1], out[2], out[3]);
        q0[q] = out[0][0], q0[c + q] = out[1][0], q2[q] = out[2][0], q2[c + q] = out[3][0];
      }
    });
  });
}

}  // namespace

extern "C" {

void hd_pool_relu_forward_f32(const float* x, float* y, uint8_t* code, int64_t n, int64_t h,
                              int64_t w, int64_t c, int threads) {
  forward<float>(x, y, code, n, h, w, c, threads);
}
void hd_pool_relu_forward_f64(const double* x, double* y, uint8_t* code, int64_t n, int64_t h,
                              int64_t w, int64_t c, int threads) {
  forward<double>(x, y, code, n, h, w, c, threads);
}
void hd_pool_relu_backward_f32(const float* gy, const uint8_t* code, float* gx, int64_t n,
                               int64_t h, int64_t w, int64_t c, int threads) {
  backward<float>(gy, code, gx, n, h, w, c, threads);
}
void hd_pool_relu_backward_f64(const double* gy, const uint8_t* code, double* gx, int64_t n,
                               int64_t h, int64_t w, int64_t c, int threads) {
  backward<double>(gy, code, gx, n, h, w, c, threads);
}

}  // extern "C"
