#pragma once
// Row-major float GEMM, C = alpha * op(A) * op(B) + beta * C, partitioned over recur's thread pool.
// OpenBLAS itself runs single-threaded inside each part (set_num_threads sets it so): recur decides
// which thread does what, so GEMMs, pointwise loops and the persistent RNN steps never compete
// with idle-spinning BLAS threads.
#include <cstdint>

namespace recur::cpu {

enum class Trans { No, Yes };

/// Single-threaded call on the calling thread.
void sgemm_serial(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

/// Splits the larger of m and n across the pool (a static partition: results do not depend on
/// timing, and each element is computed by one call, so they equal the serial result).
void sgemm(Trans ta, Trans tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

/// out[c] += sum over rows of a (rows x cols, leading dimension lda); parallel over columns.
void add_column_sums(float* out, const float* a, int64_t rows, int64_t cols, int64_t lda);

}  // namespace recur::cpu
