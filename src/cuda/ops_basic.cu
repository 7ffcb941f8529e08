// CUDA kernels of the basic ops: linear's bias and column sums (the GEMMs are cuBLAS calls in
// ops_cuda.cc), embedding, elementwise, concat/split blocks, dropout, axpy and the sum reduction.
#include "ops_kernels.h"

namespace recur::kern::ops {

using dev::blocks_for;
using dev::global_index;
using dev::grid_stride;
using dev::kThreads;

namespace {

// ---- counter-based random numbers: the same hash as include/recur/core/rng.h ----

__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__device__ __forceinline__ float uniform_at(uint64_t seed, uint64_t index) {
  uint64_t r = mix64(seed ^ mix64(index));
  return static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
}

// ---- kernels ----

__global__ void bias_rows_kernel(float* y, const float* b, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = global_index(); i < n; i += grid_stride()) y[i] = b ? b[i % cols] : 0.0f;
}

__global__ void column_sums_add_kernel(float* dst, const float* src, int64_t rows, int64_t cols) {
  for (int64_t c = global_index(); c < cols; c += grid_stride()) {
    float acc = 0.0f;
    for (int64_t r = 0; r < rows; ++r) acc += src[r * cols + c];
    dst[c] += acc;
  }
}

__global__ void embedding_forward_kernel(float* y, const int64_t* ids, const float* w, int64_t n, int64_t dim,
                                         int64_t padding_idx) {
  const int64_t total = n * dim;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t i = e / dim, d = e - i * dim;
    const int64_t id = ids[i];
    y[e] = id == padding_idx ? 0.0f : w[id * dim + d];
  }
}

__global__ void embedding_backward_kernel(float* dw, const float* dy, const int64_t* ids, int64_t n, int64_t dim,
                                          int64_t padding_idx) {
  const int64_t total = n * dim;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t i = e / dim, d = e - i * dim;
    const int64_t id = ids[i];
    if (id != padding_idx) atomicAdd(dw + id * dim + d, dy[e]);
  }
}

__global__ void add_kernel(float* y, const float* a, const float* b, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) y[i] = a[i] + b[i];
}
__global__ void accumulate_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) dst[i] += src[i];
}
__global__ void mul_kernel(float* y, const float* a, const float* b, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) y[i] = a[i] * b[i];
}
__global__ void mul_accumulate_kernel(float* dst, const float* a, const float* b, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) dst[i] += a[i] * b[i];
}

__global__ void tanh_forward_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) y[i] = tanhf(x[i]);
}
__global__ void tanh_backward_kernel(float* dx, const float* dy, const float* y, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}
__global__ void sigmoid_forward_kernel(float* y, const float* x, int64_t n) {
  // Two branches keep exp() from overflowing for large |x| (as the CPU kernel).
  for (int64_t i = global_index(); i < n; i += grid_stride()) {
    const float v = x[i];
    if (v >= 0.0f) {
      y[i] = 1.0f / (1.0f + expf(-v));
    } else {
      const float e = expf(v);
      y[i] = e / (1.0f + e);
    }
  }
}
__global__ void sigmoid_backward_kernel(float* dx, const float* dy, const float* y, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}
__global__ void relu_forward_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ void relu_backward_kernel(float* dx, const float* dy, const float* y, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void copy_blocks_kernel(float* dst, int64_t dst_stride, const float* src, int64_t src_stride,
                                   int64_t outer, int64_t block, bool accumulate) {
  const int64_t total = outer * block;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t o = e / block, k = e - o * block;
    const float v = src[o * src_stride + k];
    float* d = dst + o * dst_stride + k;
    if (accumulate) *d += v;
    else *d = v;
  }
}

__global__ void dropout_forward_kernel(float* y, const float* x, int64_t n, float p, float keep_scale,
                                       uint64_t seed) {
  for (int64_t i = global_index(); i < n; i += grid_stride())
    y[i] = uniform_at(seed, static_cast<uint64_t>(i)) < p ? 0.0f : x[i] * keep_scale;
}
__global__ void dropout_backward_kernel(float* dx, const float* dy, int64_t n, float p, float keep_scale,
                                        uint64_t seed) {
  for (int64_t i = global_index(); i < n; i += grid_stride())
    if (!(uniform_at(seed, static_cast<uint64_t>(i)) < p)) dx[i] += dy[i] * keep_scale;
}

__global__ void axpy_kernel(float* dst, const float* src, float alpha, int64_t n) {
  for (int64_t i = global_index(); i < n; i += grid_stride()) dst[i] += alpha * src[i];
}
__global__ void add_device_scalar_kernel(float* dst, const float* scalar, float alpha, int64_t n) {
  const float v = alpha * scalar[0];
  for (int64_t i = global_index(); i < n; i += grid_stride()) dst[i] += v;
}

// Two-pass deterministic sum in double: fixed partials per block, then one block adds them.
constexpr int64_t kMaxPartials = 1024;

__global__ void partial_sum_kernel(double* partials, const float* x, int64_t n) {
  __shared__ double buf[kThreads];
  double acc = 0.0;
  for (int64_t i = global_index(); i < n; i += grid_stride()) acc += static_cast<double>(x[i]);
  const double total = dev::block_reduce(acc, buf, dev::SumOp<double>());
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void finish_sum_kernel(float* out, const double* partials, int64_t count) {
  __shared__ double buf[kThreads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  const double total = dev::block_reduce(acc, buf, dev::SumOp<double>());
  if (threadIdx.x == 0) out[0] = static_cast<float>(total);
}

template <class Kernel, class... Args>
cudaError_t launch(Kernel k, int64_t n, cudaStream_t s, Args... args) {
  if (n <= 0) return cudaSuccess;
  k<<<blocks_for(n), kThreads, 0, s>>>(args...);
  return cudaGetLastError();
}

}  // namespace

cudaError_t bias_rows(float* y, const float* b, int64_t rows, int64_t cols, cudaStream_t s) {
  return launch(bias_rows_kernel, rows * cols, s, y, b, rows, cols);
}

cudaError_t column_sums_add(float* dst, const float* src, int64_t rows, int64_t cols, cudaStream_t s) {
  return launch(column_sums_add_kernel, cols, s, dst, src, rows, cols);
}

cudaError_t embedding_forward(float* y, const int64_t* ids, const float* w, int64_t n, int64_t dim,
                              int64_t padding_idx, cudaStream_t s) {
  return launch(embedding_forward_kernel, n * dim, s, y, ids, w, n, dim, padding_idx);
}

cudaError_t embedding_backward(float* dw, const float* dy, const int64_t* ids, int64_t n, int64_t dim,
                               int64_t padding_idx, cudaStream_t s) {
  return launch(embedding_backward_kernel, n * dim, s, dw, dy, ids, n, dim, padding_idx);
}

cudaError_t add_forward(float* y, const float* a, const float* b, int64_t n, cudaStream_t s) {
  return launch(add_kernel, n, s, y, a, b, n);
}
cudaError_t accumulate(float* dst, const float* src, int64_t n, cudaStream_t s) {
  return launch(accumulate_kernel, n, s, dst, src, n);
}
cudaError_t mul_forward(float* y, const float* a, const float* b, int64_t n, cudaStream_t s) {
  return launch(mul_kernel, n, s, y, a, b, n);
}
cudaError_t mul_accumulate(float* dst, const float* a, const float* b, int64_t n, cudaStream_t s) {
  return launch(mul_accumulate_kernel, n, s, dst, a, b, n);
}
cudaError_t tanh_forward(float* y, const float* x, int64_t n, cudaStream_t s) {
  return launch(tanh_forward_kernel, n, s, y, x, n);
}
cudaError_t tanh_backward(float* dx, const float* dy, const float* y, int64_t n, cudaStream_t s) {
  return launch(tanh_backward_kernel, n, s, dx, dy, y, n);
}
cudaError_t sigmoid_forward(float* y, const float* x, int64_t n, cudaStream_t s) {
  return launch(sigmoid_forward_kernel, n, s, y, x, n);
}
cudaError_t sigmoid_backward(float* dx, const float* dy, const float* y, int64_t n, cudaStream_t s) {
  return launch(sigmoid_backward_kernel, n, s, dx, dy, y, n);
}
cudaError_t relu_forward(float* y, const float* x, int64_t n, cudaStream_t s) {
  return launch(relu_forward_kernel, n, s, y, x, n);
}
cudaError_t relu_backward(float* dx, const float* dy, const float* y, int64_t n, cudaStream_t s) {
  return launch(relu_backward_kernel, n, s, dx, dy, y, n);
}

cudaError_t copy_blocks(float* dst, int64_t dst_stride, const float* src, int64_t src_stride, int64_t outer,
                        int64_t block, bool accumulate, cudaStream_t s) {
  return launch(copy_blocks_kernel, outer * block, s, dst, dst_stride, src, src_stride, outer, block, accumulate);
}

cudaError_t dropout_forward(float* y, const float* x, int64_t n, float p, float keep_scale, uint64_t seed,
                            cudaStream_t s) {
  return launch(dropout_forward_kernel, n, s, y, x, n, p, keep_scale, seed);
}
cudaError_t dropout_backward(float* dx, const float* dy, int64_t n, float p, float keep_scale, uint64_t seed,
                             cudaStream_t s) {
  return launch(dropout_backward_kernel, n, s, dx, dy, n, p, keep_scale, seed);
}

cudaError_t axpy(float* dst, const float* src, float alpha, int64_t n, cudaStream_t s) {
  return launch(axpy_kernel, n, s, dst, src, alpha, n);
}
cudaError_t add_device_scalar(float* dst, const float* scalar, float alpha, int64_t n, cudaStream_t s) {
  return launch(add_device_scalar_kernel, n, s, dst, scalar, alpha, n);
}

int64_t reduce_partials(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  return b < kMaxPartials ? b : kMaxPartials;
}

cudaError_t sum(float* out, const float* x, int64_t n, double* partials, cudaStream_t s) {
  const int64_t blocks = reduce_partials(n);
  partial_sum_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(partials, x, n);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  finish_sum_kernel<<<1, kThreads, 0, s>>>(out, partials, blocks);
  return cudaGetLastError();
}

}  // namespace recur::kern::ops
