#pragma once
/// \file Pooling over time on packed batches (seq/packed.h): mean, max and last step.
///
/// Inputs are packed (N, H) with N = layout.tokens(); outputs are (B, H) in ORIGINAL batch order.
/// Conventions as in basic.h: ops kernels take F32 (fast path) or F64 (reference); forward outputs
/// are assigned (allocated when undefined); backward kernels ADD into gradients.
#include "recur/core/tape.h"
#include "recur/core/tensor.h"
#include "recur/seq/packed.h"

namespace recur::ops {

/// y[b] = mean over the steps of sequence b of its packed rows.
void mean_pool_forward(Tensor* y,                   // (B, H) assigned, original order
                       const Tensor& x,             // (N, H) packed
                       const PackedBatch& layout);
/// dx[row of (t, b)] += dy[b] / length[b].
void mean_pool_backward(Tensor* dx,                 // (N, H) packed
                        const Tensor& dy,           // (B, H) original order
                        const PackedBatch& layout);

/// y[b, h] = max over the steps of sequence b; argmax[b, h] is the packed row that won (the
/// earliest step on ties). Assigns y and argmax (argmax may be null when no backward follows).
void max_pool_forward(Tensor* y,                    // (B, H) assigned, original order
                      Tensor* argmax,               // (B, H) I64 assigned, or null
                      const Tensor& x,              // (N, H) packed
                      const PackedBatch& layout);
/// dx[argmax[b, h], h] += dy[b, h].
void max_pool_backward(Tensor* dx,                  // (N, H) packed
                       const Tensor& dy,            // (B, H) original order
                       const Tensor& argmax,        // (B, H) I64 from forward
                       const PackedBatch& layout);

/// y[b] = x[layout.last_row(b)]: the output at the last valid step of each sequence.
void gather_last_step_forward(Tensor* y,            // (B, H) assigned, original order
                              const Tensor& x,      // (N, H) packed
                              const PackedBatch& layout);
/// dx[layout.last_row(b)] += dy[b].
void gather_last_step_backward(Tensor* dx,          // (N, H) packed
                               const Tensor& dy,    // (B, H) original order
                               const PackedBatch& layout);

}  // namespace recur::ops

namespace recur::ref {

/// Naive double-precision references: same shapes and semantics as recur::ops, F64 tensors only.
void mean_pool_forward(Tensor* y, const Tensor& x, const PackedBatch& layout);
void mean_pool_backward(Tensor* dx, const Tensor& dy, const PackedBatch& layout);
void max_pool_forward(Tensor* y, Tensor* argmax, const Tensor& x, const PackedBatch& layout);
void max_pool_backward(Tensor* dx, const Tensor& dy, const Tensor& argmax, const PackedBatch& layout);
void gather_last_step_forward(Tensor* y, const Tensor& x, const PackedBatch& layout);
void gather_last_step_backward(Tensor* dx, const Tensor& dy, const PackedBatch& layout);

}  // namespace recur::ref

namespace recur {

/// Differentiable pools: packed (N, H) -> (B, H), original batch order.
Var mean_pool(Tape& tape, const Var& packed, const PackedBatch& layout);
Var max_pool(Tape& tape, const Var& packed, const PackedBatch& layout);
Var gather_last_step(Tape& tape, const Var& packed, const PackedBatch& layout);

}  // namespace recur
