#pragma once
/// \file Losses: cross_entropy (with ignore_index and label smoothing, as PyTorch) and mse.
///
/// Conventions as in basic.h: ops kernels take F32 (fast path) or F64 (reference); the loss is a
/// scalar of shape () and is assigned; backward kernels ADD into gradients.
#include <cstdint>

#include "recur/core/tape.h"
#include "recur/core/tensor.h"

namespace recur {

/// Options of cross_entropy, with PyTorch's defaults and meaning.
struct CrossEntropyOptions {
  /// Rows whose target equals this are skipped and excluded from the mean.
  int64_t ignore_index = -100;
  /// eps in [0, 1]: the target distribution is (1 - eps) one-hot + eps uniform over the classes.
  float label_smoothing = 0.0f;
};

}  // namespace recur

namespace recur::ops {

/// loss = mean over rows with target != ignore_index of
/// (1 - eps) * (-logp[target]) + eps * mean over classes of (-logp[c]); 0 when every row is
/// ignored. Assigns loss and logp (the log-softmax of the logits, saved for backward; may be null).
/// Throws naming the row and value for a target outside [0, C) that is not ignore_index.
void cross_entropy_forward(Tensor* loss,            // () assigned
                           Tensor* logp,            // (N, C) assigned, or null
                           const Tensor& logits,    // (N, C)
                           const Tensor& targets,   // (N) I64
                           const CrossEntropyOptions& opt = {});
/// dlogits += dloss * (softmax - (1 - eps) onehot - eps / C) / count over non-ignored rows.
void cross_entropy_backward(Tensor* dlogits,         // (N, C) or null
                            const Tensor& dloss,     // ()
                            const Tensor& logp,      // (N, C) from forward
                            const Tensor& targets,   // (N) I64
                            const CrossEntropyOptions& opt = {});

/// loss = mean of (pred - target)^2 over all elements (at least one).
void mse_forward(Tensor* loss,            // () assigned
                 const Tensor& pred,      // (...)
                 const Tensor& target);   // (...) same shape
/// dpred += dloss * 2 (pred - target) / numel.
void mse_backward(Tensor* dpred,          // (...) or null
                  const Tensor& dloss,    // ()
                  const Tensor& pred,     // (...)
                  const Tensor& target);  // (...)

}  // namespace recur::ops

namespace recur::ref {

/// Naive double-precision references: same shapes and semantics as recur::ops, F64 tensors only.
void cross_entropy_forward(Tensor* loss, Tensor* logp, const Tensor& logits, const Tensor& targets,
                           const CrossEntropyOptions& opt = {});
void cross_entropy_backward(Tensor* dlogits, const Tensor& dloss, const Tensor& logp, const Tensor& targets,
                            const CrossEntropyOptions& opt = {});
void mse_forward(Tensor* loss, const Tensor& pred, const Tensor& target);
void mse_backward(Tensor* dpred, const Tensor& dloss, const Tensor& pred, const Tensor& target);

}  // namespace recur::ref

namespace recur {

/// Differentiable cross entropy: logits (N, C), targets (N) I64 -> scalar ().
Var cross_entropy(Tape& tape, const Var& logits, const Tensor& targets, const CrossEntropyOptions& opt = {});
/// Differentiable mean squared error: pred and target (...) -> scalar (). The target gets no gradient.
Var mse(Tape& tape, const Var& pred, const Tensor& target);

}  // namespace recur
