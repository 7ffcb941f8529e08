#pragma once
/// \file Image ops on NCHW tensors: 2-D convolution, max/average pooling, group normalisation.
///
/// Conventions as in basic.h: the ops take F32 (fast path: im2col + GEMM on the CPU, cuDNN or own
/// kernels on a GPU) or F64 (the naive double-precision reference in recur::ref); forward outputs
/// are assigned (allocated when undefined); backward kernels ADD into gradients, null gradient
/// pointers are skipped. Shapes follow PyTorch: x (N, C, H, W), conv weight (O, C, KH, KW),
/// OH = (H + 2*pad_h - dil_h*(KH-1) - 1) / stride_h + 1 (floor), likewise OW.
#include <cstdint>

#include "recur/core/tape.h"
#include "recur/core/tensor.h"

namespace recur::ops {

/// Stride, zero padding and dilation of a convolution, per axis.
struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  /// The same stride / padding / dilation on both axes.
  static Conv2dOptions square(int64_t stride, int64_t pad = 0, int64_t dilation = 1) {
    return {stride, stride, pad, pad, dilation, dilation};
  }
};

/// Every size of one convolution, resolved and checked (conv2d_geometry).
struct Conv2dGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;  ///< input
  int64_t o = 0, kh = 0, kw = 0;       ///< weight (O, C, KH, KW)
  int64_t oh = 0, ow = 0;              ///< output (N, O, OH, OW)
  Conv2dOptions opt;
};
/// Resolves the geometry of x (N, C, H, W) convolved with w (O, C, KH, KW); throws recur::Error
/// naming both shapes when they do not fit (channel mismatch, kernel larger than the padded
/// input, non-positive stride/dilation, negative padding, not 4-D).
Conv2dGeom conv2d_geometry(const char* op, const Shape& x, const Shape& w, const Conv2dOptions& opt);

/// y = conv(x, w) + bias (bias (O) or an undefined Tensor for none). y (N, O, OH, OW) assigned.
void conv2d_forward(Tensor* y, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opt);
/// dx += dL/dx, dw += dL/dw, dbias += sum of dy over N, OH, OW (each may be null).
void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* dbias, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const Conv2dOptions& opt);

/// Window, stride and padding of a pooling, per axis. Max pooling pads with -inf; average pooling
/// divides by the full window including padding (PyTorch's count_include_pad=True).
struct Pool2dOptions {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
  static Pool2dOptions square(int64_t kernel, int64_t stride, int64_t pad = 0) {
    return {kernel, kernel, stride, stride, pad, pad};
  }
};
struct Pool2dGeom {
  int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
  Pool2dOptions opt;
};
/// Resolves and checks the geometry (4-D x, positive kernel and stride, pad <= kernel/2, output >= 1).
Pool2dGeom pool2d_geometry(const char* op, const Shape& x, const Pool2dOptions& opt);

/// y (N, C, OH, OW) = max over each window; argmax (same shape, I64) = the flat index h*W + w of
/// the winner inside its (n, c) plane (first one on ties), assigned unless null.
void max_pool2d_forward(Tensor* y, Tensor* argmax, const Tensor& x, const Pool2dOptions& opt);
/// dx (N, C, H, W) += dy routed to each window's argmax.
void max_pool2d_backward(Tensor* dx, const Tensor& dy, const Tensor& argmax, const Shape& x_shape,
                         const Pool2dOptions& opt);
void avg_pool2d_forward(Tensor* y, const Tensor& x, const Pool2dOptions& opt);
void avg_pool2d_backward(Tensor* dx, const Tensor& dy, const Shape& x_shape, const Pool2dOptions& opt);

/// Group norm (Wu & He 2018) over x (N, C, ...) with C % groups == 0: each (n, group) is
/// normalised over its C/groups channels and all spatial positions, with the biased variance, then
/// y = xhat * gamma[c] + beta[c]. It behaves the same in training and evaluation (no running
/// statistics). mean and rstd (N * groups) are saved for backward, assigned unless null.
void group_norm_forward(Tensor* y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t groups, float eps = 1e-5f);
void group_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t groups);

}  // namespace recur::ops

namespace recur::ref {

/// Naive double-precision references (direct loops, no im2col): same shapes and semantics as
/// recur::ops, F64 tensors on the CPU only.
void conv2d_forward(Tensor* y, const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dOptions& opt);
void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* dbias, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ops::Conv2dOptions& opt);
void max_pool2d_forward(Tensor* y, Tensor* argmax, const Tensor& x, const ops::Pool2dOptions& opt);
void max_pool2d_backward(Tensor* dx, const Tensor& dy, const Tensor& argmax, const Shape& x_shape,
                         const ops::Pool2dOptions& opt);
void avg_pool2d_forward(Tensor* y, const Tensor& x, const ops::Pool2dOptions& opt);
void avg_pool2d_backward(Tensor* dx, const Tensor& dy, const Shape& x_shape, const ops::Pool2dOptions& opt);
void group_norm_forward(Tensor* y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t groups, float eps = 1e-5f);
void group_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t groups);

}  // namespace recur::ref

namespace recur {

/// Differentiable 2-D convolution; bias may be an undefined Var (no bias).
Var conv2d(Tape& tape, const Var& x, const Var& w, const Var& bias, const ops::Conv2dOptions& opt);
Var max_pool2d(Tape& tape, const Var& x, const ops::Pool2dOptions& opt);
Var avg_pool2d(Tape& tape, const Var& x, const ops::Pool2dOptions& opt);
/// (N, C, H, W) -> (N, C): the mean over all positions of each channel.
Var global_avg_pool2d(Tape& tape, const Var& x);
Var group_norm(Tape& tape, const Var& x, const Var& gamma, const Var& beta, int64_t groups, float eps = 1e-5f);

}  // namespace recur
