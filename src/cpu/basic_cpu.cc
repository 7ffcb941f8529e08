#include "basic_cpu.h"


#include <algorithm>
#include <cmath>
#include <cstring>

#include "recur/core/rng.h"
#include "fast_math.h"
#include "gemm.h"
#include "recur/core/thread_pool.h"

namespace recur::cpu {

namespace {

// Elements per thread below which a pointwise loop stays on the calling thread.
constexpr int64_t kGrain = 1 << 14;

// Static partition of [0, n): each element is written by exactly one thread, so results do not
// depend on the thread count.
template <class F>
void pointwise(int64_t n, F&& body) {
  thread_pool().parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(i);
  });
}

// Column ranges for reductions over rows: each column is summed by one thread, in row order.
int64_t column_grain(int64_t rows) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(rows, 1)); }

}  // namespace

void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t in, int64_t out) {
  // y starts as the broadcast bias so that the GEMM can accumulate into it (beta = 1).
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * out;
    if (b) std::memcpy(yr, b, static_cast<size_t>(out) * sizeof(float));
    else std::fill(yr, yr + out, 0.0f);
  }
  if (rows == 0 || out == 0 || in == 0) return;
  sgemm(Trans::No, Trans::Yes, rows, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t rows,
                     int64_t in, int64_t out) {
  bool gemm = rows > 0 && out > 0 && in > 0;
  if (dx && gemm)
    sgemm(Trans::No, Trans::No, rows, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
  if (dw && gemm)
    sgemm(Trans::Yes, Trans::No, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db) {
    thread_pool().parallel_for(out, column_grain(rows), [&](int64_t cb, int64_t ce) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* dyr = dy + r * out;
        for (int64_t o = cb; o < ce; ++o) db[o] += dyr[o];
      }
    });
  }
}

void embedding_forward(float* y, const int64_t* ids, const float* w, int64_t n, int64_t dim, int64_t padding_idx) {
  thread_pool().parallel_for(n, std::max<int64_t>(1, kGrain / std::max<int64_t>(dim, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* yi = y + i * dim;
      if (ids[i] == padding_idx) std::fill(yi, yi + dim, 0.0f);
      else std::memcpy(yi, w + ids[i] * dim, static_cast<size_t>(dim) * sizeof(float));
    }
  });
}

void embedding_backward(float* dw, const float* dy, const int64_t* ids, int64_t n, int64_t dim, int64_t padding_idx) {
  // Repeated ids add into the same row, so threads split the columns, never the rows.
  thread_pool().parallel_for(dim, column_grain(n), [&](int64_t cb, int64_t ce) {
    for (int64_t i = 0; i < n; ++i) {
      if (ids[i] == padding_idx) continue;
      float* row = dw + ids[i] * dim;
      const float* g = dy + i * dim;
      for (int64_t d = cb; d < ce; ++d) row[d] += g[d];
    }
  });
}

void add_forward(float* y, const float* a, const float* b, int64_t n) {
  pointwise(n, [&](int64_t i) { y[i] = a[i] + b[i]; });
}

void add_backward(float* da, float* db, const float* dy, int64_t n) {
  if (da) pointwise(n, [&](int64_t i) { da[i] += dy[i]; });
  if (db) pointwise(n, [&](int64_t i) { db[i] += dy[i]; });
}

void mul_forward(float* y, const float* a, const float* b, int64_t n) {
  pointwise(n, [&](int64_t i) { y[i] = a[i] * b[i]; });
}

void mul_backward(float* da, float* db, const float* dy, const float* a, const float* b, int64_t n) {
  if (da) pointwise(n, [&](int64_t i) { da[i] += dy[i] * b[i]; });
  if (db) pointwise(n, [&](int64_t i) { db[i] += dy[i] * a[i]; });
}

void tanh_forward(float* y, const float* x, int64_t n) {
  // The RNN cells' vectorised tanh (~1e-7 absolute): libm's tanhf is a scalar call per element.
  pointwise(n, [&](int64_t i) { y[i] = fast_tanh(x[i]); });
}

void tanh_backward(float* dx, const float* dy, const float* y, int64_t n) {
  pointwise(n, [&](int64_t i) { dx[i] += dy[i] * (1.0f - y[i] * y[i]); });
}

void sigmoid_forward(float* y, const float* x, int64_t n) {
  // Two branches keep exp() from overflowing for large |x|.
  pointwise(n, [&](int64_t i) {
    float v = x[i];
    if (v >= 0) {
      y[i] = 1.0f / (1.0f + std::exp(-v));
    } else {
      float e = std::exp(v);
      y[i] = e / (1.0f + e);
    }
  });
}

void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t n) {
  pointwise(n, [&](int64_t i) { dx[i] += dy[i] * y[i] * (1.0f - y[i]); });
}

void relu_forward(float* y, const float* x, int64_t n) {
  pointwise(n, [&](int64_t i) { y[i] = x[i] > 0 ? x[i] : 0.0f; });
}

void relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
  pointwise(n, [&](int64_t i) { dx[i] += y[i] > 0 ? dy[i] : 0.0f; });
}

void copy_blocks(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t outer, int64_t block,
                 bool accumulate) {
  if (block == 0) return;
  thread_pool().parallel_for(outer, std::max<int64_t>(1, kGrain / block), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      float* d = dst + o * dst_stride;
      const float* s = src + o * src_stride;
      if (accumulate) {
        for (int64_t k = 0; k < block; ++k) d[k] += s[k];
      } else {
        std::memcpy(d, s, static_cast<size_t>(block) * sizeof(float));
      }
    }
  });
}

// The mask is uniform_at(seed, i) < p (rng.h) in its integer form, so that the loops vectorise.
namespace {

// The dropout mask of elements first..first+n-1 applied to x: y = kept ? x * scale : 0, or
// y += that. Restrict-qualified and branch-free, so that the hash of each index and the select
// vectorise (a captured lambda over the caller's pointers did neither); the mask is the same as
// element-by-element uniform_bits_at.
// The accumulating form is written as an explicit fused multiply-add, so that the vector body and
// the scalar remainder round alike (whatever the thread count's chunk boundaries).
template <bool kAccumulate>
void dropout_range(float* __restrict y, const float* __restrict x, int64_t n, uint64_t first, float scale,
                   uint64_t below, uint64_t seed) {
  for (int64_t i = 0; i < n; ++i) {
    const bool drop = uniform_bits_at(seed, first + static_cast<uint64_t>(i)) < below;
    if constexpr (kAccumulate)
      y[i] = drop ? y[i] + 0.0f : std::fma(x[i], scale, y[i]);
    else
      y[i] = drop ? 0.0f : x[i] * scale;
  }
}

}  // namespace

void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed) {
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const uint64_t below = below_threshold(p);
  thread_pool().parallel_for(n, kGrain, [=](int64_t b, int64_t e) {
    dropout_range<false>(y + b, x + b, e - b, static_cast<uint64_t>(b), keep_scale, below, seed);
  });
}

void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed) {
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const uint64_t below = below_threshold(p);
  thread_pool().parallel_for(n, kGrain, [=](int64_t b, int64_t e) {
    dropout_range<true>(dx + b, dy + b, e - b, static_cast<uint64_t>(b), keep_scale, below, seed);
  });
}

}  // namespace recur::cpu
