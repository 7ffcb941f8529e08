#pragma once
// Fast float32 CPU kernels of the pools over time (internal): shapes already checked by
// src/ops/pool.cc. Threads split the sequences; every packed row belongs to one sequence, so
// backward writes never collide.
#include <cstdint>

#include "recur/seq/packed.h"

namespace recur::cpu {

// x (N, hidden) packed -> y (B, hidden) original order.
void mean_pool_forward(float* y, const float* x, const PackedBatch& layout, int64_t hidden);
void mean_pool_backward(float* dx, const float* dy, const PackedBatch& layout, int64_t hidden);
// argmax (B, hidden) packed rows; may be null in forward.
void max_pool_forward(float* y, int64_t* argmax, const float* x, const PackedBatch& layout, int64_t hidden);
void max_pool_backward(float* dx, const float* dy, const int64_t* argmax, const PackedBatch& layout, int64_t hidden);
void gather_last_step_forward(float* y, const float* x, const PackedBatch& layout, int64_t hidden);
void gather_last_step_backward(float* dx, const float* dy, const PackedBatch& layout, int64_t hidden);

}  // namespace recur::cpu
