#pragma once
// Fast float32 CPU kernels of the basic ops (internal): raw pointers, shapes already checked by
// src/ops/basic.cc. Backward kernels add into their outputs; null gradient pointers are skipped.
#include <cstdint>

namespace recur::cpu {

// y (rows, out) = x (rows, in) w^T (w: (out, in)) + b (out, may be null).
void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t rows, int64_t in, int64_t out);
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t rows,
                     int64_t in, int64_t out);

// y (n, dim) = w[ids] with padding rows zero.
void embedding_forward(float* y, const int64_t* ids, const float* w, int64_t n, int64_t dim, int64_t padding_idx);
void embedding_backward(float* dw, const float* dy, const int64_t* ids, int64_t n, int64_t dim, int64_t padding_idx);

void add_forward(float* y, const float* a, const float* b, int64_t n);
void add_backward(float* da, float* db, const float* dy, int64_t n);
void mul_forward(float* y, const float* a, const float* b, int64_t n);
void mul_backward(float* da, float* db, const float* dy, const float* a, const float* b, int64_t n);
void tanh_forward(float* y, const float* x, int64_t n);
void tanh_backward(float* dx, const float* dy, const float* y, int64_t n);
void sigmoid_forward(float* y, const float* x, int64_t n);
void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t n);
void relu_forward(float* y, const float* x, int64_t n);
void relu_backward(float* dx, const float* dy, const float* y, int64_t n);

// For o in [0, outer): dst[o*dst_stride + k] (+)= src[o*src_stride + k], k in [0, block). Every
// concat/split direction is this copy with the right strides and offsets.
void copy_blocks(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t outer, int64_t block,
                 bool accumulate);

// Training-mode dropout with p in (0, 1]; the backward adds.
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed);
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed);

}  // namespace recur::cpu
