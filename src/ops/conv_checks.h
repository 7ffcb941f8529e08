#pragma once
// Checks of the image ops (internal header), defined in src/ops/conv.cc and shared by the fast
// kernels' entry points and the references in src/ops/reference/conv_ref.cc, so that both reject
// exactly the same inputs with the same messages.
#include <cstdint>

#include "recur/core/tensor.h"
#include "recur/ops/conv.h"

namespace recur::ops::detail {

struct ConvCheck {
  Conv2dGeom g;
  DType dtype;
};
ConvCheck check_conv(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dOptions& opt);
ConvCheck check_conv_backward(const char* op, const Tensor& dy, const Tensor& x, const Tensor& w,
                              const Conv2dOptions& opt);

struct PoolCheck {
  Pool2dGeom g;
  DType dtype;
};
PoolCheck check_pool2d(const char* op, const Tensor& x, const Pool2dOptions& opt);
PoolCheck check_pool2d_backward(const char* op, const Tensor& dy, const Shape& x_shape, const Pool2dOptions& opt);
void check_pool2d_argmax(const char* op, const Tensor& argmax, const Tensor& dy, const Pool2dGeom& g);

struct GroupNormCheck {
  int64_t n, c, s;
  DType dtype;
};
GroupNormCheck check_group_norm(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                int64_t groups, float eps);
GroupNormCheck check_group_norm_backward(const char* op, const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                         const Tensor& mean, const Tensor& rstd, int64_t groups);

}  // namespace recur::ops::detail
