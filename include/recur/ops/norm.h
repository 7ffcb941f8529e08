#pragma once
/// \file Normalisations over the last dimension: layer_norm, softmax, log_softmax.
///
/// A tensor (..., D) is treated as R = numel / D rows of D. Conventions as in basic.h: ops kernels
/// take F32 (fast path) or F64 (reference); forward outputs are assigned (allocated when
/// undefined); backward kernels ADD into gradients, null gradient pointers are skipped.
#include "recur/core/tape.h"
#include "recur/core/tensor.h"

namespace recur::ops {

/// y = (x - mean) * rstd * gamma + beta per row, with the biased variance (as PyTorch) and
/// rstd = 1 / sqrt(var + eps). Assigns y, and mean and rstd (saved for backward) unless null.
void layer_norm_forward(Tensor* y,             // (..., D) assigned
                        Tensor* mean,          // (R) assigned, or null
                        Tensor* rstd,          // (R) assigned, or null
                        const Tensor& x,       // (..., D)
                        const Tensor& gamma,   // (D)
                        const Tensor& beta,    // (D)
                        float eps = 1e-5f);
/// dx += d/dx, dgamma += sum over rows of dy * xhat, dbeta += sum over rows of dy.
void layer_norm_backward(Tensor* dx,            // (..., D) or null
                         Tensor* dgamma,        // (D) or null
                         Tensor* dbeta,         // (D) or null
                         const Tensor& dy,      // (..., D)
                         const Tensor& x,       // (..., D)
                         const Tensor& gamma,   // (D)
                         const Tensor& mean,    // (R) from forward
                         const Tensor& rstd);   // (R) from forward

/// y = exp(x - max) / sum exp(x - max) per row (numerically stable).
void softmax_forward(Tensor* y, const Tensor& x);  // both (..., D)
/// dx += y * (dy - sum(dy * y)) per row, from the forward output y.
void softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y);  // all (..., D)
/// y = x - max - log sum exp(x - max) per row.
void log_softmax_forward(Tensor* y, const Tensor& x);  // both (..., D)
/// dx += dy - exp(y) * sum(dy) per row, from the forward output y.
void log_softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y);  // all (..., D)

}  // namespace recur::ops

namespace recur::ref {

/// Naive double-precision references: same shapes and semantics as recur::ops, F64 tensors only.
void layer_norm_forward(Tensor* y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, float eps = 1e-5f);
void layer_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd);
void softmax_forward(Tensor* y, const Tensor& x);
void softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y);
void log_softmax_forward(Tensor* y, const Tensor& x);
void log_softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y);

}  // namespace recur::ref

namespace recur {

/// Differentiable layer norm over the last dim; x (..., D), gamma and beta (D).
Var layer_norm(Tape& tape, const Var& x, const Var& gamma, const Var& beta, float eps = 1e-5f);
/// Differentiable softmax over the last dim.
Var softmax(Tape& tape, const Var& x);
/// Differentiable log-softmax over the last dim.
Var log_softmax(Tape& tape, const Var& x);

}  // namespace recur
