// Multi-tensor optimizer kernels: SGD, Adam/AdamW, gradient sum of squares and scaling. One launch
// covers all tensors of a table (see optim_kernels.h). The elementwise math is written in the
// same order as the CPU loops in src/train/optimizer.cc (scalars cast to the tensor's precision
// first), so that CPU and GPU agree to rounding.
#include "optim_kernels.h"

namespace recur::kern {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 2048;

// The tensor that owns chunk c: the last row whose chunk_begin <= c (rows sorted, first begins at 0).
__device__ int owner_of(const OptimTensor* table, int count, int64_t c) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = lo + (hi - lo + 1) / 2;
    if (table[mid].chunk_begin <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

__device__ inline float root(float x) { return sqrtf(x); }
__device__ inline double root(double x) { return sqrt(x); }

template <class T>
__device__ void sgd_range(const OptimTensor& e, int64_t begin, int64_t end, const SgdHyper& h) {
  T* p = static_cast<T*>(e.param);
  const T* g = static_cast<const T*>(e.grad);
  T* buf = static_cast<T*>(e.slot1);
  const T wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum), neg_lr = static_cast<T>(-h.lr);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    T d = g[i];
    if (h.weight_decay != 0) d = d + wd * p[i];
    if (h.momentum != 0) {
      const T b = e.first ? d : buf[i] * mom + d;
      buf[i] = b;
      d = h.nesterov ? d + mom * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}

template <class T>
__device__ void adam_range(const OptimTensor& e, int64_t begin, int64_t end, const AdamHyper& h) {
  T* p = static_cast<T*>(e.param);
  const T* g = static_cast<const T*>(e.grad);
  T* m = static_cast<T*>(e.slot1);
  T* v = static_cast<T*>(e.slot2);
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T one_b1 = static_cast<T>(1 - h.beta1), one_b2 = static_cast<T>(1 - h.beta2);
  const T wd = static_cast<T>(h.weight_decay), decay = static_cast<T>(1 - h.lr * h.weight_decay);
  const T neg_step = static_cast<T>(-e.step_size), bc2 = static_cast<T>(e.bc2_sqrt);
  const T eps = static_cast<T>(h.eps);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    T gi = g[i];
    T pi = p[i];
    if (h.weight_decay != 0) {
      if (h.decoupled)
        pi = pi * decay;
      else
        gi = gi + wd * pi;
    }
    const T mi = m[i] * b1 + one_b1 * gi;
    const T vi = v[i] * b2 + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const T denom = root(vi) / bc2 + eps;
    p[i] = pi + neg_step * (mi / denom);
  }
}

template <class T>
__device__ double sumsq_range(const OptimTensor& e, int64_t begin, int64_t end) {
  const T* x = static_cast<const T*>(e.param);
  double s = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double xi = static_cast<double>(x[i]);
    s += xi * xi;
  }
  return s;
}

template <class T>
__device__ void scale_range(const OptimTensor& e, int64_t begin, int64_t end, T c) {
  T* x = static_cast<T*>(e.param);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) x[i] *= c;
}

template <class T>
__device__ void ema_range(const OptimTensor& e, int64_t begin, int64_t end, T w) {
  T* avg = static_cast<T*>(e.param);
  const T* p = static_cast<const T*>(e.grad);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) avg[i] = avg[i] + w * (p[i] - avg[i]);
}

// The element range [begin, end) of chunk c inside its tensor.
__device__ inline void chunk_range(const OptimTensor& e, int64_t c, int64_t* begin, int64_t* end) {
  *begin = (c - e.chunk_begin) * kOptimChunk;
  const int64_t stop = *begin + kOptimChunk;
  *end = stop < e.n ? stop : e.n;
}

__global__ void sgd_kernel(const OptimTensor* table, int count, int64_t total_chunks, SgdHyper h) {
  for (int64_t c = blockIdx.x; c < total_chunks; c += gridDim.x) {
    const OptimTensor& e = table[owner_of(table, count, c)];
    int64_t begin = 0, end = 0;
    chunk_range(e, c, &begin, &end);
    if (e.f64)
      sgd_range<double>(e, begin, end, h);
    else
      sgd_range<float>(e, begin, end, h);
  }
}

__global__ void adam_kernel(const OptimTensor* table, int count, int64_t total_chunks, AdamHyper h) {
  for (int64_t c = blockIdx.x; c < total_chunks; c += gridDim.x) {
    const OptimTensor& e = table[owner_of(table, count, c)];
    int64_t begin = 0, end = 0;
    chunk_range(e, c, &begin, &end);
    if (e.f64)
      adam_range<double>(e, begin, end, h);
    else
      adam_range<float>(e, begin, end, h);
  }
}

// Block-wide sum of one double per thread (blockDim.x == kThreads); the result is valid in thread 0.
__device__ double block_sum(double v) {
  __shared__ double buf[kThreads];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  return buf[0];
}

__global__ void sumsq_kernel(const OptimTensor* table, int count, int64_t total_chunks, double* partials) {
  double s = 0;
  for (int64_t c = blockIdx.x; c < total_chunks; c += gridDim.x) {
    const OptimTensor& e = table[owner_of(table, count, c)];
    int64_t begin = 0, end = 0;
    chunk_range(e, c, &begin, &end);
    s += e.f64 ? sumsq_range<double>(e, begin, end) : sumsq_range<float>(e, begin, end);
  }
  const double total = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// One block: partials[n] = sum of partials[0..n), in a fixed order (deterministic).
__global__ void finish_sum_kernel(double* partials, int n) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
  const double total = block_sum(s);
  if (threadIdx.x == 0) partials[n] = total;
}

__global__ void scale_kernel(const OptimTensor* table, int count, int64_t total_chunks, double coef) {
  for (int64_t c = blockIdx.x; c < total_chunks; c += gridDim.x) {
    const OptimTensor& e = table[owner_of(table, count, c)];
    int64_t begin = 0, end = 0;
    chunk_range(e, c, &begin, &end);
    if (e.f64)
      scale_range<double>(e, begin, end, coef);
    else
      scale_range<float>(e, begin, end, static_cast<float>(coef));
  }
}

__global__ void ema_kernel(const OptimTensor* table, int count, int64_t total_chunks, double weight) {
  for (int64_t c = blockIdx.x; c < total_chunks; c += gridDim.x) {
    const OptimTensor& e = table[owner_of(table, count, c)];
    int64_t begin = 0, end = 0;
    chunk_range(e, c, &begin, &end);
    if (e.f64)
      ema_range<double>(e, begin, end, weight);
    else
      ema_range<float>(e, begin, end, static_cast<float>(weight));
  }
}

bool bad_args(const OptimTensor* table, int count, int64_t total_chunks) {
  return table == nullptr || count <= 0 || total_chunks <= 0;
}

}  // namespace

int optim_blocks(int64_t total_chunks) {
  return static_cast<int>(total_chunks < kMaxBlocks ? (total_chunks > 0 ? total_chunks : 1) : kMaxBlocks);
}

cudaError_t sgd_multi(const OptimTensor* table, int count, int64_t total_chunks, SgdHyper h, cudaStream_t s) {
  if (bad_args(table, count, total_chunks)) return cudaErrorInvalidValue;
  sgd_kernel<<<optim_blocks(total_chunks), kThreads, 0, s>>>(table, count, total_chunks, h);
  return cudaGetLastError();
}

cudaError_t adam_multi(const OptimTensor* table, int count, int64_t total_chunks, AdamHyper h, cudaStream_t s) {
  if (bad_args(table, count, total_chunks)) return cudaErrorInvalidValue;
  adam_kernel<<<optim_blocks(total_chunks), kThreads, 0, s>>>(table, count, total_chunks, h);
  return cudaGetLastError();
}

cudaError_t sumsq_multi(const OptimTensor* table, int count, int64_t total_chunks, double* partials, cudaStream_t s) {
  if (bad_args(table, count, total_chunks) || partials == nullptr) return cudaErrorInvalidValue;
  const int blocks = optim_blocks(total_chunks);
  sumsq_kernel<<<blocks, kThreads, 0, s>>>(table, count, total_chunks, partials);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  finish_sum_kernel<<<1, kThreads, 0, s>>>(partials, blocks);
  return cudaGetLastError();
}

cudaError_t scale_multi(const OptimTensor* table, int count, int64_t total_chunks, double coef, cudaStream_t s) {
  if (bad_args(table, count, total_chunks)) return cudaErrorInvalidValue;
  scale_kernel<<<optim_blocks(total_chunks), kThreads, 0, s>>>(table, count, total_chunks, coef);
  return cudaGetLastError();
}

cudaError_t ema_multi(const OptimTensor* table, int count, int64_t total_chunks, double weight, cudaStream_t s) {
  if (bad_args(table, count, total_chunks)) return cudaErrorInvalidValue;
  ema_kernel<<<optim_blocks(total_chunks), kThreads, 0, s>>>(table, count, total_chunks, weight);
  return cudaGetLastError();
}

}  // namespace recur::kern
