#pragma once
// A small GEMM for the recurrent step: C (m x n) (+)= A (m x k) * B with B packed once into
// panels of 32 columns. OpenBLAS re-packs B on every call, which for the per-step products of an
// RNN (B = the same slice of W_hh at every step, m = the batch) costs about a sixth of the time;
// packing it once per layer call and keeping it in the core's cache removes that.
#include <cstdint>
#include <memory>

namespace recur::cpu {

/// B (k x n) packed in panels of 32 columns, each panel k rows of 32 floats, zero-padded.
struct PackedB {
  int64_t k = 0, n = 0;
  int64_t panels() const { return (n + 31) / 32; }
  const float* panel(int64_t p) const { return data.get() + p * k * 32; }
  /// Sets the shape and returns room for panels() * k * 32 floats (reused when large enough; not
  /// zeroed: the pack functions write every element, padding included).
  float* reshape(int64_t rows, int64_t cols);

 private:
  std::unique_ptr<float[]> data;
  size_t capacity = 0;
};

/// Packs B(kk, c) = src[c * ld + kk] (B is the transpose of the row-major src, e.g. rows of W).
void pack_b_transposed(PackedB* out, const float* src, int64_t ld, int64_t k, int64_t n);
/// Packs B(kk, c) = src[kk * ld + c] (row-major B).
void pack_b(PackedB* out, const float* src, int64_t ld, int64_t k, int64_t n);

/// C (m x n, leading dimension ldc) = (accumulate ? C : 0) + A (m x k, leading dimension lda) * B.
/// Single-threaded; a given element is always computed in the same order.
void gemm_packed(int64_t m, const float* a, int64_t lda, const PackedB& b, float* c, int64_t ldc, bool accumulate);

/// y (n) = (accumulate ? y : 0) + W (n x k, row-major, leading dimension ldw) * x (k): the batch-1
/// recurrent step. `reverse` walks the rows from the last to the first; a step loop that alternates
/// directions starts each pass on the rows the previous pass read last, which an LRU cache still
/// holds when W is a little larger than it. Each y[i] is summed in the same order either way.
void gemv_rows(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y, bool accumulate,
               bool reverse);

}  // namespace recur::cpu
