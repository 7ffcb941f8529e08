#pragma once
// Fast float32 CPU kernels of the image ops in recur/ops/conv.h (internal): raw pointers, shapes
// already resolved and checked by src/ops/conv.cc. Convolutions are im2col + one GEMM per block
// of images (several small images share one GEMM); blocks of images are split across recur's
// thread pool, each thread running single-threaded GEMMs on its own scratch buffers. Pooling and
// group norm split their (n, c) planes / (n, group) blocks across threads.
#include <cstdint>

#include "recur/ops/conv.h"

namespace recur::cpu {

// y (N, O, OH, OW) = conv(x (N, C, H, W), w (O, C, KH, KW)) + bias (O) (bias may be null).
void conv2d_forward(float* y, const float* x, const float* w, const float* bias, const ops::Conv2dGeom& g);
// Adds into dx (N, C, H, W), dw (O, C, KH, KW), dbias (O); each may be null.
void conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x, const float* w,
                     const ops::Conv2dGeom& g);

// y (N, C, OH, OW); argmax (same shape, flat h*W + w in the plane) may be null.
void max_pool2d_forward(float* y, int64_t* argmax, const float* x, const ops::Pool2dGeom& g);
// dx (N, C, H, W) += dy routed through argmax.
void max_pool2d_backward(float* dx, const float* dy, const int64_t* argmax, const ops::Pool2dGeom& g);
void avg_pool2d_forward(float* y, const float* x, const ops::Pool2dGeom& g);
void avg_pool2d_backward(float* dx, const float* dy, const ops::Pool2dGeom& g);

// x, y (N, C, S); gamma, beta (C); mean, rstd (N * groups), each may be null.
void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        int64_t n, int64_t c, int64_t s, int64_t groups, float eps);
// Adds into dx (N, C, S), dgamma (C), dbeta (C); each may be null.
void group_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                         const float* mean, const float* rstd, int64_t n, int64_t c, int64_t s, int64_t groups);

}  // namespace recur::cpu
