#pragma once
// Fast float32 CPU kernels of the row-wise normalisations (internal): raw pointers, shapes already
// checked by src/ops/norm.cc. Rows are split across threads; each row is reduced by one thread.
#include <cstdint>

namespace recur::cpu {

// mean and rstd may be null.
void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        int64_t rows, int64_t dim, float eps);
// Adds into dx, dgamma, dbeta (each may be null).
void layer_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                         const float* mean, const float* rstd, int64_t rows, int64_t dim);

void softmax_forward(float* y, const float* x, int64_t rows, int64_t dim);
void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim);
void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t dim);
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim);

}  // namespace recur::cpu
