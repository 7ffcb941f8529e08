// CUDA kernels of the losses: cross entropy (rows of the log-softmax, computed by ops_norm.cu) and
// mean squared error. Scalar sums run in double in a fixed order, so results are deterministic;
// the loss stays on the device (no host round trip).
#include "ops_kernels.h"

namespace recur::kern::ops {

using dev::block_reduce;
using dev::global_index;
using dev::grid_stride;
using dev::kThreads;
using dev::SumOp;

namespace {

// One block per row; ignored rows contribute 0.
__global__ void cross_entropy_rows_kernel(double* row_loss, const float* logp, const int64_t* targets, int64_t n,
                                          int64_t classes, int64_t ignore_index, float eps) {
  __shared__ double buf[kThreads];
  const double e = eps;
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index) {  // the same for the whole block: no thread reaches a barrier alone
      if (threadIdx.x == 0) row_loss[r] = 0.0;
      continue;
    }
    const float* lp = logp + r * classes;
    double mean_term = 0.0;
    if (eps > 0.0f) {
      double acc = 0.0;
      for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) acc += static_cast<double>(lp[c]);
      mean_term = block_reduce(acc, buf, SumOp<double>());
    }
    if (threadIdx.x == 0) {
      double row = -(1.0 - e) * static_cast<double>(lp[t]);
      if (eps > 0.0f) row -= e * mean_term / static_cast<double>(classes);
      row_loss[r] = row;
    }
  }
}

// One block: sums the rows in double and counts the kept ones.
__global__ void cross_entropy_mean_kernel(float* loss, const double* row_loss, const int64_t* targets, int64_t n,
                                          int64_t ignore_index) {
  __shared__ double buf[kThreads];
  __shared__ long long cbuf[kThreads];
  double acc = 0.0;
  long long kept = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    if (targets[i] == ignore_index) continue;
    acc += row_loss[i];
    ++kept;
  }
  const double total = block_reduce(acc, buf, SumOp<double>());
  const long long count = block_reduce(kept, cbuf, SumOp<long long>());
  if (threadIdx.x == 0) loss[0] = count ? static_cast<float>(total / static_cast<double>(count)) : 0.0f;
}

// One block: kept[0] = number of rows whose target is not ignore_index.
__global__ void count_kept_kernel(int64_t* kept, const int64_t* targets, int64_t n, int64_t ignore_index) {
  __shared__ long long cbuf[kThreads];
  long long c = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) c += targets[i] != ignore_index ? 1 : 0;
  const long long total = block_reduce(c, cbuf, SumOp<long long>());
  if (threadIdx.x == 0) kept[0] = static_cast<int64_t>(total);
}

__global__ void cross_entropy_backward_kernel(float* dlogits, const float* dloss, const float* logp,
                                              const int64_t* targets, int64_t n, int64_t classes,
                                              int64_t ignore_index, float on_target, float uniform,
                                              const int64_t* kept) {
  const int64_t k = kept[0];
  if (k == 0) return;
  const float g = dloss[0] / static_cast<float>(k);
  const int64_t total = n * classes;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t i = e / classes, c = e - i * classes;
    const int64_t t = targets[i];
    if (t == ignore_index) continue;
    dlogits[e] += g * (expf(logp[e]) - uniform - (c == t ? on_target : 0.0f));
  }
}

__global__ void sq_diff_partials_kernel(double* partials, const float* pred, const float* target, int64_t n) {
  __shared__ double buf[kThreads];
  double acc = 0.0;
  for (int64_t i = global_index(); i < n; i += grid_stride()) {
    const double e = static_cast<double>(pred[i]) - static_cast<double>(target[i]);
    acc += e * e;
  }
  const double total = block_reduce(acc, buf, SumOp<double>());
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void mean_of_partials_kernel(float* out, const double* partials, int64_t count, int64_t n) {
  __shared__ double buf[kThreads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  const double total = block_reduce(acc, buf, SumOp<double>());
  if (threadIdx.x == 0) out[0] = static_cast<float>(total / static_cast<double>(n));
}

__global__ void mse_backward_kernel(float* dpred, const float* dloss, const float* pred, const float* target,
                                    int64_t n) {
  const float g = 2.0f * dloss[0] / static_cast<float>(n);
  for (int64_t i = global_index(); i < n; i += grid_stride()) dpred[i] += g * (pred[i] - target[i]);
}

}  // namespace

cudaError_t cross_entropy_rows(double* row_loss, const float* logp, const int64_t* targets, int64_t n,
                               int64_t classes, int64_t ignore_index, float eps, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  cross_entropy_rows_kernel<<<dev::row_blocks(n), kThreads, 0, s>>>(row_loss, logp, targets, n, classes,
                                                                    ignore_index, eps);
  return cudaGetLastError();
}

cudaError_t cross_entropy_mean(float* loss, const double* row_loss, const int64_t* targets, int64_t n,
                               int64_t ignore_index, cudaStream_t s) {
  // Runs for n == 0 too: the loss is then written as 0.
  cross_entropy_mean_kernel<<<1, kThreads, 0, s>>>(loss, row_loss, targets, n, ignore_index);
  return cudaGetLastError();
}

cudaError_t cross_entropy_backward(float* dlogits, const float* dloss, const float* logp, const int64_t* targets,
                                   int64_t n, int64_t classes, int64_t ignore_index, float on_target, float uniform,
                                   int64_t* kept, cudaStream_t s) {
  if (n <= 0 || classes <= 0) return cudaSuccess;
  count_kept_kernel<<<1, kThreads, 0, s>>>(kept, targets, n, ignore_index);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  cross_entropy_backward_kernel<<<dev::blocks_for(n * classes), kThreads, 0, s>>>(
      dlogits, dloss, logp, targets, n, classes, ignore_index, on_target, uniform, kept);
  return cudaGetLastError();
}

cudaError_t mse_forward(float* loss, const float* pred, const float* target, int64_t n, double* partials,
                        cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  const int64_t blocks = reduce_partials(n);
  sq_diff_partials_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(partials, pred, target, n);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  mean_of_partials_kernel<<<1, kThreads, 0, s>>>(loss, partials, blocks, n);
  return cudaGetLastError();
}

cudaError_t mse_backward(float* dpred, const float* dloss, const float* pred, const float* target, int64_t n,
                         cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  mse_backward_kernel<<<dev::blocks_for(n), kThreads, 0, s>>>(dpred, dloss, pred, target, n);
  return cudaGetLastError();
}

}  // namespace recur::kern::ops
