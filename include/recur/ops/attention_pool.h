#pragma once
/// \file Attention pooling over time on a packed batch: each sequence's rows are weighted by a
/// softmax of their scores within that sequence, and summed.
#include "recur/core/tape.h"
#include "recur/seq/packed.h"

namespace recur::ops {

/// y (B, H) assigned, original batch order; alpha (N) assigned: the weights, for backward.
/// x: (N, H) packed; scores: (N) packed.
void attention_pool_forward(Tensor* y, Tensor* alpha, const Tensor& x, const Tensor& scores, const PackedBatch& pb);
/// Adds into dx (N, H) and dscores (N); either may be null. dy: (B, H).
void attention_pool_backward(Tensor* dx, Tensor* dscores, const Tensor& dy, const Tensor& x, const Tensor& alpha,
                             const PackedBatch& pb);

}  // namespace recur::ops

namespace recur::ref {

/// Naive double-precision reference (F64 tensors), one sequence at a time.
void attention_pool_forward(Tensor* y, const Tensor& x, const Tensor& scores, const PackedBatch& pb);
void attention_pool_backward(Tensor* dx, Tensor* dscores, const Tensor& dy, const Tensor& x, const Tensor& scores,
                             const PackedBatch& pb);

}  // namespace recur::ref

namespace recur {

/// Differentiable attention pooling: x (N, H) packed, scores (N) packed -> (B, H).
Var attention_pool(Tape& tape, const Var& x, const Var& scores, const PackedBatch& pb);

}  // namespace recur
