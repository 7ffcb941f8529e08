// Elementary kernels behind Tensor::fill_ and Tensor::add_ on a GPU.
#include "kernels.h"

namespace recur::kern {

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 16 ? b : 65535 * 16);
}

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) p[i] = v;
}

template <class T>
__global__ void add_kernel(T* d, const T* s, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) d[i] += s[i];
}

template <class T>
cudaError_t fill(T* p, int64_t n, T v, cudaStream_t s) {
  fill_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(p, n, v);
  return cudaGetLastError();
}

}  // namespace

cudaError_t fill_f32(float* p, int64_t n, float v, cudaStream_t s) { return fill(p, n, v, s); }
cudaError_t fill_f64(double* p, int64_t n, double v, cudaStream_t s) { return fill(p, n, v, s); }
cudaError_t fill_i32(int32_t* p, int64_t n, int32_t v, cudaStream_t s) { return fill(p, n, v, s); }
cudaError_t fill_i64(int64_t* p, int64_t n, int64_t v, cudaStream_t s) { return fill(p, n, v, s); }

cudaError_t add_f32(float* dst, const float* src, int64_t n, cudaStream_t s) {
  add_kernel<float><<<blocks_for(n), kThreads, 0, s>>>(dst, src, n);
  return cudaGetLastError();
}
cudaError_t add_f64(double* dst, const double* src, int64_t n, cudaStream_t s) {
  add_kernel<double><<<blocks_for(n), kThreads, 0, s>>>(dst, src, n);
  return cudaGetLastError();
}

}  // namespace recur::kern
