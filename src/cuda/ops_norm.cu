// CUDA kernels of the row-wise normalisations: layer norm, softmax, log-softmax. One block of
// kThreads threads per row (rows strided over the grid); row statistics by shared-memory reduction.
#include <cmath>

#include "ops_kernels.h"

namespace recur::kern::ops {

using dev::block_reduce;
using dev::global_index;
using dev::grid_stride;
using dev::kThreads;
using dev::MaxOp;
using dev::SumOp;

namespace {

__global__ void layer_norm_forward_kernel(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                                          const float* beta, int64_t rows, int64_t dim, float eps) {
  __shared__ float buf[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) acc += xr[i];
    const float m = block_reduce(acc, buf, SumOp<float>()) / static_cast<float>(dim);
    // Two passes: the variance of (x - mean) avoids the cancellation of E[x^2] - mean^2.
    acc = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) acc += (xr[i] - m) * (xr[i] - m);
    const float v = block_reduce(acc, buf, SumOp<float>()) / static_cast<float>(dim);
    const float s = 1.0f / sqrtf(v + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = (xr[i] - m) * s * gamma[i] + beta[i];
    if (threadIdx.x == 0) {
      if (mean) mean[r] = m;
      if (rstd) rstd[r] = s;
    }
  }
}

__global__ void layer_norm_backward_dx_kernel(float* dx, const float* dy, const float* x, const float* gamma,
                                              const float* mean, const float* rstd, int64_t rows, int64_t dim) {
  __shared__ float buf[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * dim;
    const float* g = dy + r * dim;
    const float m = mean[r], s = rstd[r];
    // dnorm = dy * gamma; dx = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)).
    float a = 0.0f, b = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float dn = g[i] * gamma[i];
      a += dn;
      b += dn * (xr[i] - m) * s;
    }
    const float mean_dn = block_reduce(a, buf, SumOp<float>()) / static_cast<float>(dim);
    const float mean_dn_xhat = block_reduce(b, buf, SumOp<float>()) / static_cast<float>(dim);
    float* dxr = dx + r * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float xhat = (xr[i] - m) * s;
      dxr[i] += s * (g[i] * gamma[i] - mean_dn - xhat * mean_dn_xhat);
    }
  }
}

// One thread per column, rows in order: each sum has one owner (deterministic).
__global__ void layer_norm_backward_params_kernel(float* dgamma, float* dbeta, const float* dy, const float* x,
                                                  const float* mean, const float* rstd, int64_t rows, int64_t dim) {
  for (int64_t i = global_index(); i < dim; i += grid_stride()) {
    float dg = 0.0f, db = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const float g = dy[r * dim + i];
      dg += g * (x[r * dim + i] - mean[r]) * rstd[r];
      db += g;
    }
    if (dgamma) dgamma[i] += dg;
    if (dbeta) dbeta[i] += db;
  }
}

__global__ void softmax_forward_kernel(float* y, const float* x, int64_t rows, int64_t dim) {
  __shared__ float buf[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) mx = MaxOp<float>()(mx, xr[i]);
    const float m = block_reduce(mx, buf, MaxOp<float>());
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) acc += expf(xr[i] - m);
    const float inv = 1.0f / block_reduce(acc, buf, SumOp<float>());
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = expf(xr[i] - m) * inv;
  }
}

__global__ void softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim) {
  __shared__ float buf[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* g = dy + r * dim;
    const float* yr = y + r * dim;
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) acc += g[i] * yr[i];
    const float dot = block_reduce(acc, buf, SumOp<float>());
    float* dxr = dx + r * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dxr[i] += yr[i] * (g[i] - dot);
  }
}

__global__ void log_softmax_forward_kernel(float* y, const float* x, int64_t rows, int64_t dim) {
  __shared__ float buf[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) mx = MaxOp<float>()(mx, xr[i]);
    const float m = block_reduce(mx, buf, MaxOp<float>());
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) acc += expf(xr[i] - m);
    const float lse = logf(block_reduce(acc, buf, SumOp<float>()));
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] - m - lse;
  }
}

__global__ void log_softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim) {
  __shared__ float buf[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* g = dy + r * dim;
    const float* yr = y + r * dim;
    float acc = 0.0f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) acc += g[i];
    const float total = block_reduce(acc, buf, SumOp<float>());
    float* dxr = dx + r * dim;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) dxr[i] += g[i] - expf(yr[i]) * total;
  }
}

}  // namespace

cudaError_t layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                               const float* beta, int64_t rows, int64_t dim, float eps, cudaStream_t s) {
  if (rows <= 0 || dim <= 0) return cudaSuccess;
  layer_norm_forward_kernel<<<dev::row_blocks(rows), kThreads, 0, s>>>(y, mean, rstd, x, gamma, beta, rows, dim, eps);
  return cudaGetLastError();
}

cudaError_t layer_norm_backward_dx(float* dx, const float* dy, const float* x, const float* gamma, const float* mean,
                                   const float* rstd, int64_t rows, int64_t dim, cudaStream_t s) {
  if (rows <= 0 || dim <= 0) return cudaSuccess;
  layer_norm_backward_dx_kernel<<<dev::row_blocks(rows), kThreads, 0, s>>>(dx, dy, x, gamma, mean, rstd, rows, dim);
  return cudaGetLastError();
}

cudaError_t layer_norm_backward_params(float* dgamma, float* dbeta, const float* dy, const float* x,
                                       const float* mean, const float* rstd, int64_t rows, int64_t dim,
                                       cudaStream_t s) {
  if (dim <= 0 || (!dgamma && !dbeta)) return cudaSuccess;
  layer_norm_backward_params_kernel<<<dev::blocks_for(dim), kThreads, 0, s>>>(dgamma, dbeta, dy, x, mean, rstd, rows,
                                                                             dim);
  return cudaGetLastError();
}

cudaError_t softmax_forward(float* y, const float* x, int64_t rows, int64_t dim, cudaStream_t s) {
  if (rows <= 0 || dim <= 0) return cudaSuccess;
  softmax_forward_kernel<<<dev::row_blocks(rows), kThreads, 0, s>>>(y, x, rows, dim);
  return cudaGetLastError();
}

cudaError_t softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim, cudaStream_t s) {
  if (rows <= 0 || dim <= 0) return cudaSuccess;
  softmax_backward_kernel<<<dev::row_blocks(rows), kThreads, 0, s>>>(dx, dy, y, rows, dim);
  return cudaGetLastError();
}

cudaError_t log_softmax_forward(float* y, const float* x, int64_t rows, int64_t dim, cudaStream_t s) {
  if (rows <= 0 || dim <= 0) return cudaSuccess;
  log_softmax_forward_kernel<<<dev::row_blocks(rows), kThreads, 0, s>>>(y, x, rows, dim);
  return cudaGetLastError();
}

cudaError_t log_softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim,
                                 cudaStream_t s) {
  if (rows <= 0 || dim <= 0) return cudaSuccess;
  log_softmax_backward_kernel<<<dev::row_blocks(rows), kThreads, 0, s>>>(dx, dy, y, rows, dim);
  return cudaGetLastError();
}

}  // namespace recur::kern::ops
