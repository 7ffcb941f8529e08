#include "gemm.h"

#include <cblas.h>

#include <algorithm>

#include "recur/core/thread_pool.h"

namespace recur::cpu {

void sgemm_serial(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    // BLAS leaves C untouched for k = 0 only when beta = 1; make the beta scaling explicit.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta == Trans::Yes ? CblasTrans : CblasNoTrans, tb == Trans::Yes ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

void sgemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  ThreadPool& pool = thread_pool();
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (pool.size() == 1 || flops < 2e6) {
    sgemm_serial(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool split_m = m >= n;
  const int64_t len = split_m ? m : n;
  const int64_t parts = std::min<int64_t>(pool.size(), std::max<int64_t>(1, len / 16));
  pool.run_on_all([&](int t) {
    if (t >= parts) return;
    // Chunk boundaries on multiples of 16 keep each part's panel aligned for the kernels.
    const int64_t b0 = t == 0 ? 0 : len * t / parts / 16 * 16;
    const int64_t b1 = t + 1 == parts ? len : len * (t + 1) / parts / 16 * 16;
    if (b1 <= b0) return;
    if (split_m) {
      const float* ap = ta == Trans::No ? a + b0 * lda : a + b0;
      sgemm_serial(ta, tb, b1 - b0, n, k, alpha, ap, lda, b, ldb, beta, c + b0 * ldc, ldc);
    } else {
      const float* bp = tb == Trans::No ? b + b0 : b + b0 * ldb;
      sgemm_serial(ta, tb, m, b1 - b0, k, alpha, a, lda, bp, ldb, beta, c + b0, ldc);
    }
  });
}

void add_column_sums(float* out, const float* a, int64_t rows, int64_t cols, int64_t lda) {
  thread_pool().parallel_for(cols, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = a + r * lda;
      for (int64_t c = c0; c < c1; ++c) out[c] += row[c];
    }
  });
}

}  // namespace recur::cpu
