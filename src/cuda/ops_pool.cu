// CUDA kernels of the pools over time on packed batches (mean, max, last step) and of attention
// pooling. Packed row of step t of the sequence at sorted position j: offsets[t] + j. Every packed
// row belongs to one sequence, so per-sequence backward writes never collide.
#include <cmath>

#include "ops_kernels.h"

namespace recur::kern::ops {

using dev::global_index;
using dev::grid_stride;
using dev::kThreads;

namespace {

// One thread per (b, h), steps in time order (as the CPU kernel).
__global__ void mean_pool_forward_kernel(float* y, const float* x, const int32_t* offsets, const int32_t* pos,
                                         const int32_t* lengths, int64_t batch, int64_t hidden) {
  const int64_t total = batch * hidden;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t b = e / hidden, h = e - b * hidden;
    const int64_t j = pos[b], len = lengths[b];
    float acc = 0.0f;
    for (int64_t t = 0; t < len; ++t) acc += x[(offsets[t] + j) * hidden + h];
    y[e] = acc * (1.0f / static_cast<float>(len));
  }
}

__global__ void mean_pool_backward_kernel(float* dx, const float* dy, const int32_t* offsets, const int32_t* pos,
                                          const int32_t* lengths, int64_t batch, int64_t hidden) {
  const int64_t total = batch * hidden;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t b = e / hidden, h = e - b * hidden;
    const int64_t j = pos[b], len = lengths[b];
    const float inv = 1.0f / static_cast<float>(len);
    const float g = dy[e];
    for (int64_t t = 0; t < len; ++t) dx[(offsets[t] + j) * hidden + h] += g * inv;
  }
}

// Strictly greater: the earliest step wins ties.
__global__ void max_pool_forward_kernel(float* y, int64_t* argmax, const float* x, const int32_t* offsets,
                                        const int32_t* pos, const int32_t* lengths, int64_t batch, int64_t hidden) {
  const int64_t total = batch * hidden;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t b = e / hidden, h = e - b * hidden;
    const int64_t j = pos[b], len = lengths[b];
    int64_t best_row = offsets[0] + j;
    float best = x[best_row * hidden + h];
    for (int64_t t = 1; t < len; ++t) {
      const int64_t r = offsets[t] + j;
      const float v = x[r * hidden + h];
      if (v > best) {
        best = v;
        best_row = r;
      }
    }
    y[e] = best;
    if (argmax) argmax[e] = best_row;
  }
}

__global__ void max_pool_backward_kernel(float* dx, const float* dy, const int64_t* argmax, int64_t batch,
                                         int64_t hidden) {
  const int64_t total = batch * hidden;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t h = e % hidden;
    // Atomic: a caller-made argmax may name one row for two sequences.
    atomicAdd(dx + argmax[e] * hidden + h, dy[e]);
  }
}

__global__ void gather_rows_kernel(float* y, const float* x, const int32_t* rows, int64_t count, int64_t hidden) {
  const int64_t total = count * hidden;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t i = e / hidden, h = e - i * hidden;
    y[e] = x[static_cast<int64_t>(rows[i]) * hidden + h];
  }
}

__global__ void scatter_add_rows_kernel(float* dx, const float* dy, const int32_t* rows, int64_t count,
                                        int64_t hidden) {
  const int64_t total = count * hidden;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t i = e / hidden, h = e - i * hidden;
    dx[static_cast<int64_t>(rows[i]) * hidden + h] += dy[e];
  }
}

// One block per original sequence b. Thread 0 finds the max and the sum of exps in time order
// (as the CPU path); the weights and the weighted sum are then spread over the block.
__global__ void attention_pool_forward_kernel(float* y, float* alpha, const float* x, const float* scores,
                                              const int32_t* offsets, const int32_t* pos, const int32_t* lengths,
                                              int64_t batch, int64_t hidden) {
  __shared__ float s_max, s_sum;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    const int64_t j = pos[b], len = lengths[b];
    if (threadIdx.x == 0) {
      float m = -INFINITY;
      for (int64_t t = 0; t < len; ++t) {
        const float v = scores[offsets[t] + j];
        m = m < v ? v : m;
      }
      float sum = 0.0f;
      for (int64_t t = 0; t < len; ++t) sum += expf(scores[offsets[t] + j] - m);
      s_max = m;
      s_sum = sum;
    }
    __syncthreads();
    for (int64_t t = threadIdx.x; t < len; t += blockDim.x) {
      const int64_t r = offsets[t] + j;
      alpha[r] = expf(scores[r] - s_max) / s_sum;
    }
    __syncthreads();  // alpha (global memory) is visible to the whole block after the barrier
    for (int64_t h = threadIdx.x; h < hidden; h += blockDim.x) {
      float acc = 0.0f;
      for (int64_t t = 0; t < len; ++t) {
        const int64_t r = offsets[t] + j;
        acc += alpha[r] * x[r * hidden + h];
      }
      y[b * hidden + h] = acc;
    }
    __syncthreads();  // s_max / s_sum are rewritten by the next sequence
  }
}

__global__ void attention_pool_backward_kernel(float* dx, float* dscores, float* dalpha, const float* dy,
                                               const float* x, const float* alpha, const int32_t* offsets,
                                               const int32_t* pos, const int32_t* lengths, int64_t batch,
                                               int64_t hidden) {
  __shared__ float s_dot;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    const int64_t j = pos[b], len = lengths[b];
    const float* dyb = dy + b * hidden;
    // dalpha_r = dy_b . x_r, one thread per step.
    for (int64_t t = threadIdx.x; t < len; t += blockDim.x) {
      const int64_t r = offsets[t] + j;
      const float* xr = x + r * hidden;
      float d = 0.0f;
      for (int64_t h = 0; h < hidden; ++h) d += dyb[h] * xr[h];
      dalpha[r] = d;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      float dot = 0.0f;
      for (int64_t t = 0; t < len; ++t) {
        const int64_t r = offsets[t] + j;
        dot += alpha[r] * dalpha[r];
      }
      s_dot = dot;
    }
    __syncthreads();
    if (dscores)
      for (int64_t t = threadIdx.x; t < len; t += blockDim.x) {
        const int64_t r = offsets[t] + j;
        dscores[r] += alpha[r] * (dalpha[r] - s_dot);
      }
    if (dx)
      for (int64_t e = threadIdx.x; e < len * hidden; e += blockDim.x) {
        const int64_t t = e / hidden, h = e - t * hidden;
        const int64_t r = offsets[t] + j;
        dx[r * hidden + h] += alpha[r] * dyb[h];
      }
    __syncthreads();  // s_dot is rewritten by the next sequence
  }
}

}  // namespace

cudaError_t mean_pool_forward(float* y, const float* x, const int32_t* offsets, const int32_t* pos,
                              const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s) {
  if (batch * hidden <= 0) return cudaSuccess;
  mean_pool_forward_kernel<<<dev::blocks_for(batch * hidden), kThreads, 0, s>>>(y, x, offsets, pos, lengths, batch,
                                                                               hidden);
  return cudaGetLastError();
}

cudaError_t mean_pool_backward(float* dx, const float* dy, const int32_t* offsets, const int32_t* pos,
                               const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s) {
  if (batch * hidden <= 0) return cudaSuccess;
  mean_pool_backward_kernel<<<dev::blocks_for(batch * hidden), kThreads, 0, s>>>(dx, dy, offsets, pos, lengths, batch,
                                                                                hidden);
  return cudaGetLastError();
}

cudaError_t max_pool_forward(float* y, int64_t* argmax, const float* x, const int32_t* offsets, const int32_t* pos,
                             const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s) {
  if (batch * hidden <= 0) return cudaSuccess;
  max_pool_forward_kernel<<<dev::blocks_for(batch * hidden), kThreads, 0, s>>>(y, argmax, x, offsets, pos, lengths,
                                                                              batch, hidden);
  return cudaGetLastError();
}

cudaError_t max_pool_backward(float* dx, const float* dy, const int64_t* argmax, int64_t batch, int64_t hidden,
                              cudaStream_t s) {
  if (batch * hidden <= 0) return cudaSuccess;
  max_pool_backward_kernel<<<dev::blocks_for(batch * hidden), kThreads, 0, s>>>(dx, dy, argmax, batch, hidden);
  return cudaGetLastError();
}

cudaError_t gather_rows(float* y, const float* x, const int32_t* rows, int64_t count, int64_t hidden,
                        cudaStream_t s) {
  if (count * hidden <= 0) return cudaSuccess;
  gather_rows_kernel<<<dev::blocks_for(count * hidden), kThreads, 0, s>>>(y, x, rows, count, hidden);
  return cudaGetLastError();
}

cudaError_t scatter_add_rows(float* dx, const float* dy, const int32_t* rows, int64_t count, int64_t hidden,
                             cudaStream_t s) {
  if (count * hidden <= 0) return cudaSuccess;
  scatter_add_rows_kernel<<<dev::blocks_for(count * hidden), kThreads, 0, s>>>(dx, dy, rows, count, hidden);
  return cudaGetLastError();
}

cudaError_t attention_pool_forward(float* y, float* alpha, const float* x, const float* scores,
                                   const int32_t* offsets, const int32_t* pos, const int32_t* lengths, int64_t batch,
                                   int64_t hidden, cudaStream_t s) {
  if (batch <= 0) return cudaSuccess;
  attention_pool_forward_kernel<<<dev::row_blocks(batch), kThreads, 0, s>>>(y, alpha, x, scores, offsets, pos,
                                                                            lengths, batch, hidden);
  return cudaGetLastError();
}

cudaError_t attention_pool_backward(float* dx, float* dscores, float* dalpha, const float* dy, const float* x,
                                    const float* alpha, const int32_t* offsets, const int32_t* pos,
                                    const int32_t* lengths, int64_t batch, int64_t hidden, cudaStream_t s) {
  if (batch <= 0 || (!dx && !dscores)) return cudaSuccess;
  attention_pool_backward_kernel<<<dev::row_blocks(batch), kThreads, 0, s>>>(dx, dscores, dalpha, dy, x, alpha,
                                                                             offsets, pos, lengths, batch, hidden);
  return cudaGetLastError();
}

}  // namespace recur::kern::ops
