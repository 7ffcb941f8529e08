#pragma once
// CUDA paths of the image ops in recur/ops/conv.h (internal). Callers (src/ops/conv.cc) have
// already resolved and checked the geometry, dtypes (F32) and that all tensors share one GPU;
// outputs and gradient slots are allocated. Backward functions ADD into their gradients; null
// gradient pointers are skipped. Every kernel runs on cuda::stream(device).
// Only compiled in a CUDA build: include it under #ifdef RECUR_HAS_CUDA.
#include <cstdint>

#include "recur/core/tensor.h"
#include "recur/ops/conv.h"

namespace recur::cuda {

/// y (N, O, OH, OW) = conv(x, w) + bias (bias null for none). cuDNN when the build has it
/// (RECUR_HAS_CUDNN), else im2col + cuBLAS.
void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dGeom& g);
void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* dbias, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ops::Conv2dGeom& g);

/// argmax may be null in forward (inference).
void max_pool2d_forward(Tensor& y, Tensor* argmax, const Tensor& x, const ops::Pool2dGeom& g);
void max_pool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const ops::Pool2dGeom& g);
void avg_pool2d_forward(Tensor& y, const Tensor& x, const ops::Pool2dGeom& g);
void avg_pool2d_backward(Tensor& dx, const Tensor& dy, const ops::Pool2dGeom& g);

/// x (N, C, S) with S = the product of the spatial dims; mean/rstd (N * groups).
void group_norm_forward(Tensor& y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t n, int64_t c, int64_t s, int64_t groups, float eps);
void group_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t n, int64_t c,
                         int64_t s, int64_t groups);

}  // namespace recur::cuda
