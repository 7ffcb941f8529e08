#pragma once
// Launchers of the CUDA kernels behind the non-recurrent ops (internal): linear's bias and column
// sums, embedding, elementwise, concat/split blocks, dropout, reductions, layer norm, softmax,
// losses and the pools over time. Plain declarations with raw device pointers (as kernels.h), so
// that the .cu files need no recur headers; each launcher queues its kernels on `s` and returns
// the launch's cudaError_t, which src/cuda/ops_cuda.cc checks with RECUR_CUDA_CHECK. Shapes are
// checked by the callers; n == 0 (or no rows) launches nothing and returns cudaSuccess.
//
// Under nvcc (__CUDACC__) this header also holds the small device helpers the ops_*.cu files share.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace recur::kern::ops {

// ---- basic (ops_basic.cu) ----

/// y[r, c] = b[c] (b may be null: zeros). y: (rows, cols).
cudaError_t bias_rows(float* y, const float* b, int64_t rows, int64_t cols, cudaStream_t s);
/// dst[c] += sum over r of src[r, c]; src: (rows, cols). Each column summed by one thread, in row order.
cudaError_t column_sums_add(float* dst, const float* src, int64_t rows, int64_t cols, cudaStream_t s);
/// y (n, dim) = w[ids]; rows whose id equals padding_idx are zeros. Ids already validated.
cudaError_t embedding_forward(float* y, const int64_t* ids, const float* w, int64_t n, int64_t dim,
                              int64_t padding_idx, cudaStream_t s);
/// dw[ids[i]] += dy[i] (atomic adds: repeated ids share a row), skipping padding rows.
cudaError_t embedding_backward(float* dw, const float* dy, const int64_t* ids, int64_t n, int64_t dim,
                               int64_t padding_idx, cudaStream_t s);

cudaError_t add_forward(float* y, const float* a, const float* b, int64_t n, cudaStream_t s);
/// dst += src.
cudaError_t accumulate(float* dst, const float* src, int64_t n, cudaStream_t s);
cudaError_t mul_forward(float* y, const float* a, const float* b, int64_t n, cudaStream_t s);
/// dst += a * b.
cudaError_t mul_accumulate(float* dst, const float* a, const float* b, int64_t n, cudaStream_t s);
cudaError_t tanh_forward(float* y, const float* x, int64_t n, cudaStream_t s);
cudaError_t tanh_backward(float* dx, const float* dy, const float* y, int64_t n, cudaStream_t s);
cudaError_t sigmoid_forward(float* y, const float* x, int64_t n, cudaStream_t s);
cudaError_t sigmoid_backward(float* dx, const float* dy, const float* y, int64_t n, cudaStream_t s);
cudaError_t relu_forward(float* y, const float* x, int64_t n, cudaStream_t s);
cudaError_t relu_backward(float* dx, const float* dy, const float* y, int64_t n, cudaStream_t s);

/// For o in [0, outer), k in [0, block): dst[o*dst_stride + k] (+)= src[o*src_stride + k].
cudaError_t copy_blocks(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t outer,
                        int64_t block, bool accumulate, cudaStream_t s);

/// Training-mode inverted dropout with the CPU's counter-based mask (uniform_at(seed, i) < p drops).
cudaError_t dropout_forward(float* y, const float* x, int64_t n, float p, float keep_scale, uint64_t seed,
                            cudaStream_t s);
/// dx += dy masked and scaled as forward.
cudaError_t dropout_backward(float* dx, const float* dy, int64_t n, float p, float keep_scale, uint64_t seed,
                             cudaStream_t s);

/// dst += alpha * src.
cudaError_t axpy(float* dst, const float* src, float alpha, int64_t n, cudaStream_t s);
/// dst += alpha * scalar[0] (scalar is a device pointer).
cudaError_t add_device_scalar(float* dst, const float* scalar, float alpha, int64_t n, cudaStream_t s);

/// Doubles of scratch that sum/mse_forward need for n elements.
int64_t reduce_partials(int64_t n);
/// out[0] = sum of x (accumulated in double, deterministic). partials: reduce_partials(n) doubles.
cudaError_t sum(float* out, const float* x, int64_t n, double* partials, cudaStream_t s);

// ---- norm (ops_norm.cu): one block per row ----

/// mean and rstd may be null.
cudaError_t layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                               const float* beta, int64_t rows, int64_t dim, float eps, cudaStream_t s);
/// dx += the input gradient of layer norm.
cudaError_t layer_norm_backward_dx(float* dx, const float* dy, const float* x, const float* gamma, const float* mean,
                                   const float* rstd, int64_t rows, int64_t dim, cudaStream_t s);
/// dgamma += sum over rows of dy * xhat, dbeta += sum over rows of dy; either may be null.
cudaError_t layer_norm_backward_params(float* dgamma, float* dbeta, const float* dy, const float* x,
                                       const float* mean, const float* rstd, int64_t rows, int64_t dim,
                                       cudaStream_t s);
cudaError_t softmax_forward(float* y, const float* x, int64_t rows, int64_t dim, cudaStream_t s);
cudaError_t softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim, cudaStream_t s);
cudaError_t log_softmax_forward(float* y, const float* x, int64_t rows, int64_t dim, cudaStream_t s);
cudaError_t log_softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim,
                                 cudaStream_t s);

// ---- losses (ops_loss.cu) ----

/// row_loss[i] = (1 - eps) * (-logp[i, t]) + eps * mean over c of (-logp[i, c]), 0 for ignored rows.
cudaError_t cross_entropy_rows(double* row_loss, const float* logp, const int64_t* targets, int64_t n,
                               int64_t classes, int64_t ignore_index, float eps, cudaStream_t s);
/// loss[0] = sum of row_loss over the kept rows / their count (0 when none is kept).
cudaError_t cross_entropy_mean(float* loss, const double* row_loss, const int64_t* targets, int64_t n,
                               int64_t ignore_index, cudaStream_t s);
/// dlogits += dloss[0] * (softmax - on_target * onehot - uniform) / kept rows. kept: 1 int64 of scratch.
cudaError_t cross_entropy_backward(float* dlogits, const float* dloss, const float* logp, const int64_t* targets,
                                   int64_t n, int64_t classes, int64_t ignore_index, float on_target, float uniform,
                                   int64_t* kept, cudaStream_t s);
/// loss[0] = mean of (pred - target)^2 (in double). partials: reduce_partials(n) doubles.
cudaError_t mse_forward(float* loss, const float* pred, const float* target, int64_t n, double* partials,
                        cudaStream_t s);
/// dpred += 2 * dloss[0] / n * (pred - target).
cudaError_t mse_backward(float* dpred, const float* dloss, const float* pred, const float* target, int64_t n,
                         cudaStream_t s);

// ---- pools over time (ops_pool.cu) ----
// Layout arrays (int32, device): offsets (T+1) first packed row of each step; pos (B) sorted position
// of original sequence b; lengths (B). Outputs (B, hidden) are in original batch order.

cudaError_t mean_pool_forward(float* y, const float* x, const int32_t* offsets, const int32_t* pos,
                              const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s);
cudaError_t mean_pool_backward(float* dx, const float* dy, const int32_t* offsets, const int32_t* pos,
                               const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s);
/// argmax may be null.
cudaError_t max_pool_forward(float* y, int64_t* argmax, const float* x, const int32_t* offsets, const int32_t* pos,
                             const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s);
/// dx[argmax[b, h], h] += dy[b, h] (argmax already validated).
cudaError_t max_pool_backward(float* dx, const float* dy, const int64_t* argmax, int64_t batch, int64_t hidden,
                              cudaStream_t s);
/// y[i] = x[rows[i]] for i in [0, count); rows of `hidden` floats.
cudaError_t gather_rows(float* y, const float* x, const int32_t* rows, int64_t count, int64_t hidden,
                        cudaStream_t s);
/// dx[rows[i]] += dy[i] (rows distinct).
cudaError_t scatter_add_rows(float* dx, const float* dy, const int32_t* rows, int64_t count, int64_t hidden,
                             cudaStream_t s);
/// One block per sequence: alpha = softmax of its scores, y[b] = sum of alpha * x rows.
cudaError_t attention_pool_forward(float* y, float* alpha, const float* x, const float* scores,
                                   const int32_t* offsets, const int32_t* pos, const int32_t* lengths, int64_t batch,
                                   int64_t hidden, cudaStream_t s);
/// dx (may be null) += alpha * dy[b]; dscores (may be null) += alpha * (dalpha - sum alpha dalpha).
/// dalpha: scratch of one float per packed row.
cudaError_t attention_pool_backward(float* dx, float* dscores, float* dalpha, const float* dy, const float* x,
                                    const float* alpha, const int32_t* offsets, const int32_t* pos,
                                    const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s);

}  // namespace recur::kern::ops

#ifdef __CUDACC__
// ---- device helpers shared by the ops_*.cu files ----
namespace recur::kern::ops::dev {

/// Threads per block of every ops kernel (a power of two: the block reductions need it).
constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over n elements (capped; the loops stride over the rest).
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < 65535 * 16 ? b : 65535 * 16);
}
/// Blocks for one-block-per-row kernels (capped; the kernels stride over the rest of the rows).
inline unsigned row_blocks(int64_t rows) {
  if (rows < 1) return 1;
  return static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16);
}

__device__ __forceinline__ int64_t global_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

template <class T>
struct SumOp {
  __device__ T operator()(T a, T b) const { return a + b; }
};
/// Like std::max(a, b): a unless a < b.
template <class T>
struct MaxOp {
  __device__ T operator()(T a, T b) const { return a < b ? b : a; }
};

/// Reduces v over the block (blockDim.x == kThreads) with op; every thread gets the result. buf:
/// kThreads elements of shared memory, free again when this returns.
template <class T, class Op>
__device__ T block_reduce(T v, T* buf, Op op) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (static_cast<int>(threadIdx.x) < stride) buf[threadIdx.x] = op(buf[threadIdx.x], buf[threadIdx.x + stride]);
    __syncthreads();
  }
  T r = buf[0];
  __syncthreads();
  return r;
}

}  // namespace recur::kern::ops::dev
#endif
