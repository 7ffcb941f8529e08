#include "recur/ops/conv.h"

#include "../cpu/conv_cpu.h"
#include "checks.h"
#include "conv_checks.h"
#include "recur/ops/basic.h"
#include "recur/ops/util.h"

#ifdef RECUR_HAS_CUDA
#include "../cuda/conv_cuda.h"
#endif

namespace recur::ops {

Conv2dGeom conv2d_geometry(const char* op, const Shape& x, const Shape& w, const Conv2dOptions& opt) {
  RECUR_CHECK(x.size() == 4, "{}: x {} must be 4-D (N, C, H, W)", op, shape_str(x));
  RECUR_CHECK(w.size() == 4, "{}: weight {} must be 4-D (O, C, KH, KW)", op, shape_str(w));
  RECUR_CHECK(opt.stride_h > 0 && opt.stride_w > 0 && opt.dil_h > 0 && opt.dil_w > 0,
              "{}: stride ({}, {}) and dilation ({}, {}) must be positive (x {}, weight {})", op, opt.stride_h,
              opt.stride_w, opt.dil_h, opt.dil_w, shape_str(x), shape_str(w));
  RECUR_CHECK(opt.pad_h >= 0 && opt.pad_w >= 0, "{}: padding ({}, {}) is negative (x {}, weight {})", op, opt.pad_h,
              opt.pad_w, shape_str(x), shape_str(w));
  RECUR_CHECK(x[1] == w[1], "{}: x {} has {} channels but weight {} expects {}", op, shape_str(x), x[1], shape_str(w),
              w[1]);
  RECUR_CHECK(x[1] >= 1 && w[0] >= 1 && w[2] >= 1 && w[3] >= 1 && x[0] >= 0,
              "{}: x {} and weight {} must have positive channels and kernel sizes", op, shape_str(x), shape_str(w));
  Conv2dGeom g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.o = w[0], g.kh = w[2], g.kw = w[3];
  g.opt = opt;
  const int64_t eff_h = opt.dil_h * (g.kh - 1) + 1, eff_w = opt.dil_w * (g.kw - 1) + 1;
  const int64_t in_h = g.h + 2 * opt.pad_h, in_w = g.w + 2 * opt.pad_w;
  RECUR_CHECK(g.h >= 1 && g.w >= 1 && eff_h <= in_h && eff_w <= in_w,
              "{}: kernel {}x{} (dilated {}x{}) is larger than the padded input {}x{} (x {}, weight {}, padding "
              "({}, {}))",
              op, g.kh, g.kw, eff_h, eff_w, in_h, in_w, shape_str(x), shape_str(w), opt.pad_h, opt.pad_w);
  g.oh = (in_h - eff_h) / opt.stride_h + 1;
  g.ow = (in_w - eff_w) / opt.stride_w + 1;
  return g;
}

Pool2dGeom pool2d_geometry(const char* op, const Shape& x, const Pool2dOptions& opt) {
  RECUR_CHECK(x.size() == 4, "{}: x {} must be 4-D (N, C, H, W)", op, shape_str(x));
  RECUR_CHECK(opt.kernel_h > 0 && opt.kernel_w > 0 && opt.stride_h > 0 && opt.stride_w > 0,
              "{}: kernel ({}, {}) and stride ({}, {}) must be positive (x {})", op, opt.kernel_h, opt.kernel_w,
              opt.stride_h, opt.stride_w, shape_str(x));
  RECUR_CHECK(opt.pad_h >= 0 && opt.pad_w >= 0 && opt.pad_h <= opt.kernel_h / 2 && opt.pad_w <= opt.kernel_w / 2,
              "{}: padding ({}, {}) must lie in [0, kernel / 2] for kernel ({}, {}) (x {})", op, opt.pad_h, opt.pad_w,
              opt.kernel_h, opt.kernel_w, shape_str(x));
  RECUR_CHECK(x[0] >= 0 && x[1] >= 1, "{}: x {} must have at least one channel", op, shape_str(x));
  Pool2dGeom g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.opt = opt;
  const int64_t in_h = g.h + 2 * opt.pad_h, in_w = g.w + 2 * opt.pad_w;
  RECUR_CHECK(g.h >= 1 && g.w >= 1 && opt.kernel_h <= in_h && opt.kernel_w <= in_w,
              "{}: window ({}, {}) is larger than the padded input {}x{} (x {}, padding ({}, {}))", op, opt.kernel_h,
              opt.kernel_w, in_h, in_w, shape_str(x), opt.pad_h, opt.pad_w);
  g.oh = (in_h - opt.kernel_h) / opt.stride_h + 1;
  g.ow = (in_w - opt.kernel_w) / opt.stride_w + 1;
  return g;
}

// Checks shared with the references (declared in conv_checks.h).
namespace detail {

ConvCheck check_conv(const char* op, const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dOptions& opt) {
  DType dt = check_float_inputs(op, {{"x", &x}, {"weight", &w}, {"bias", bias}});
  Conv2dGeom g = conv2d_geometry(op, x.shape(), w.shape(), opt);
  if (bias)
    RECUR_CHECK(bias->shape() == Shape{g.o}, "{}: bias {} must be ({}) for weight {}", op, bias->shape_str(), g.o,
                w.shape_str());
  return {g, dt};
}

ConvCheck check_conv_backward(const char* op, const Tensor& dy, const Tensor& x, const Tensor& w,
                              const Conv2dOptions& opt) {
  ConvCheck c = check_conv(op, x, w, nullptr, opt);
  check_float_inputs(op, {{"dy", &dy}, {"x", &x}, {"weight", &w}});
  const Shape want{c.g.n, c.g.o, c.g.oh, c.g.ow};
  RECUR_CHECK(dy.shape() == want, "{}: dy {} does not match the output {} of x {} and weight {}", op, dy.shape_str(),
              shape_str(want), x.shape_str(), w.shape_str());
  return c;
}

PoolCheck check_pool2d(const char* op, const Tensor& x, const Pool2dOptions& opt) {
  DType dt = check_float_inputs(op, {{"x", &x}});
  return {pool2d_geometry(op, x.shape(), opt), dt};
}

PoolCheck check_pool2d_backward(const char* op, const Tensor& dy, const Shape& x_shape, const Pool2dOptions& opt) {
  DType dt = check_float_inputs(op, {{"dy", &dy}});
  Pool2dGeom g = pool2d_geometry(op, x_shape, opt);
  const Shape want{g.n, g.c, g.oh, g.ow};
  RECUR_CHECK(dy.shape() == want, "{}: dy {} does not match the output {} of x {}", op, dy.shape_str(),
              shape_str(want), shape_str(x_shape));
  return {g, dt};
}

void check_pool2d_argmax(const char* op, const Tensor& argmax, const Tensor& dy, const Pool2dGeom& g) {
  check_index_tensor(argmax, op, "argmax");
  RECUR_CHECK(argmax.shape() == dy.shape(), "{}: argmax {} does not match dy {}", op, argmax.shape_str(),
              dy.shape_str());
  check_same_device(op, {{"dy", &dy}, {"argmax", &argmax}});
  // A host argmax is checked element by element; a GPU one is trusted (its forward wrote it), since
  // copying it back every step would stall the stream.
  if (!argmax.device().is_cpu()) return;
  const int64_t* a = argmax.data<int64_t>();
  const int64_t plane = g.h * g.w;
  for (int64_t i = 0; i < argmax.numel(); ++i)
    RECUR_CHECK(a[i] >= 0 && a[i] < plane, "{}: argmax {} at {} is outside the {}x{} plane", op, a[i], i, g.h, g.w);
}

GroupNormCheck check_group_norm(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                int64_t groups, float eps) {
  DType dt = check_float_inputs(op, {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}});
  RECUR_CHECK(x.ndim() >= 2, "{}: x {} must be at least 2-D (N, C, ...)", op, x.shape_str());
  const int64_t c = x.dim(1);
  RECUR_CHECK(groups >= 1 && c >= 1 && c % groups == 0, "{}: {} groups do not divide the {} channels of x {}", op,
              groups, c, x.shape_str());
  RECUR_CHECK(gamma.shape() == Shape{c} && beta.shape() == Shape{c}, "{}: gamma {} and beta {} must be ({}) for x {}",
              op, gamma.shape_str(), beta.shape_str(), c, x.shape_str());
  RECUR_CHECK(eps >= 0.0f, "{}: eps = {} is negative", op, eps);
  const int64_t n = x.dim(0), s = c > 0 && n > 0 ? x.numel() / (n * c) : 0;
  RECUR_CHECK(n == 0 || s >= 1, "{}: x {} has no spatial positions", op, x.shape_str());
  return {n, c, s, dt};
}

GroupNormCheck check_group_norm_backward(const char* op, const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                         const Tensor& mean, const Tensor& rstd, int64_t groups) {
  GroupNormCheck d = check_group_norm(op, x, gamma, gamma, groups, 0.0f);
  check_float_inputs(op, {{"x", &x}, {"gamma", &gamma}, {"dy", &dy}, {"mean", &mean}, {"rstd", &rstd}});
  RECUR_CHECK(dy.shape() == x.shape(), "{}: dy {} does not match x {}", op, dy.shape_str(), x.shape_str());
  RECUR_CHECK(mean.shape() == Shape{d.n * groups} && rstd.shape() == Shape{d.n * groups},
              "{}: mean {} and rstd {} must be ({}) for x {} in {} groups", op, mean.shape_str(), rstd.shape_str(),
              d.n * groups, x.shape_str(), groups);
  return d;
}

}  // namespace detail

void conv2d_forward(Tensor* y, const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& opt) {
  const Tensor* b = bias.defined() ? &bias : nullptr;
  detail::ConvCheck c = detail::check_conv("conv2d", x, w, b, opt);
  if (c.dtype == DType::F64) return ref::conv2d_forward(y, x, w, bias, opt);
  const Conv2dGeom& g = c.g;
  prepare_output(y, {g.n, g.o, g.oh, g.ow}, c.dtype, "conv2d", "y", x.device());
  RECUR_IF_CUDA(x, cuda::conv2d_forward(*y, x, w, b, g));
  cpu::conv2d_forward(y->f32(), x.f32(), w.f32(), b ? b->f32() : nullptr, g);
}

void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* dbias, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const Conv2dOptions& opt) {
  detail::ConvCheck c = detail::check_conv_backward("conv2d_backward", dy, x, w, opt);
  if (c.dtype == DType::F64) return ref::conv2d_backward(dx, dw, dbias, dy, x, w, opt);
  const Conv2dGeom& g = c.g;
  const Device dev = x.device();
  bool want_dx = prepare_grad(dx, x.shape(), c.dtype, "conv2d_backward", "dx", dev);
  bool want_dw = prepare_grad(dw, w.shape(), c.dtype, "conv2d_backward", "dw", dev);
  bool want_db = prepare_grad(dbias, {g.o}, c.dtype, "conv2d_backward", "dbias", dev);
  RECUR_IF_CUDA(x, cuda::conv2d_backward(want_dx ? dx : nullptr, want_dw ? dw : nullptr, want_db ? dbias : nullptr,
                                         dy, x, w, g));
  cpu::conv2d_backward(want_dx ? dx->f32() : nullptr, want_dw ? dw->f32() : nullptr, want_db ? dbias->f32() : nullptr,
                       dy.f32(), x.f32(), w.f32(), g);
}

void max_pool2d_forward(Tensor* y, Tensor* argmax, const Tensor& x, const Pool2dOptions& opt) {
  detail::PoolCheck c = detail::check_pool2d("max_pool2d", x, opt);
  if (c.dtype == DType::F64) return ref::max_pool2d_forward(y, argmax, x, opt);
  const Pool2dGeom& g = c.g;
  const Shape out{g.n, g.c, g.oh, g.ow};
  prepare_output(y, out, c.dtype, "max_pool2d", "y", x.device());
  if (argmax) prepare_output(argmax, out, DType::I64, "max_pool2d", "argmax", x.device());
  RECUR_IF_CUDA(x, cuda::max_pool2d_forward(*y, argmax, x, g));
  cpu::max_pool2d_forward(y->f32(), argmax ? argmax->data<int64_t>() : nullptr, x.f32(), g);
}

void max_pool2d_backward(Tensor* dx, const Tensor& dy, const Tensor& argmax, const Shape& x_shape,
                         const Pool2dOptions& opt) {
  detail::PoolCheck c = detail::check_pool2d_backward("max_pool2d_backward", dy, x_shape, opt);
  detail::check_pool2d_argmax("max_pool2d_backward", argmax, dy, c.g);
  if (c.dtype == DType::F64) return ref::max_pool2d_backward(dx, dy, argmax, x_shape, opt);
  if (!prepare_grad(dx, x_shape, c.dtype, "max_pool2d_backward", "dx", dy.device())) return;
  RECUR_IF_CUDA(dy, cuda::max_pool2d_backward(*dx, dy, argmax, c.g));
  cpu::max_pool2d_backward(dx->f32(), dy.f32(), argmax.data<int64_t>(), c.g);
}

void avg_pool2d_forward(Tensor* y, const Tensor& x, const Pool2dOptions& opt) {
  detail::PoolCheck c = detail::check_pool2d("avg_pool2d", x, opt);
  if (c.dtype == DType::F64) return ref::avg_pool2d_forward(y, x, opt);
  const Pool2dGeom& g = c.g;
  prepare_output(y, {g.n, g.c, g.oh, g.ow}, c.dtype, "avg_pool2d", "y", x.device());
  RECUR_IF_CUDA(x, cuda::avg_pool2d_forward(*y, x, g));
  cpu::avg_pool2d_forward(y->f32(), x.f32(), g);
}

void avg_pool2d_backward(Tensor* dx, const Tensor& dy, const Shape& x_shape, const Pool2dOptions& opt) {
  detail::PoolCheck c = detail::check_pool2d_backward("avg_pool2d_backward", dy, x_shape, opt);
  if (c.dtype == DType::F64) return ref::avg_pool2d_backward(dx, dy, x_shape, opt);
  if (!prepare_grad(dx, x_shape, c.dtype, "avg_pool2d_backward", "dx", dy.device())) return;
  RECUR_IF_CUDA(dy, cuda::avg_pool2d_backward(*dx, dy, c.g));
  cpu::avg_pool2d_backward(dx->f32(), dy.f32(), c.g);
}

void group_norm_forward(Tensor* y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t groups, float eps) {
  detail::GroupNormCheck d = detail::check_group_norm("group_norm", x, gamma, beta, groups, eps);
  if (d.dtype == DType::F64) return ref::group_norm_forward(y, mean, rstd, x, gamma, beta, groups, eps);
  const Device dev = x.device();
  prepare_output(y, x.shape(), d.dtype, "group_norm", "y", dev);
  if (mean) prepare_output(mean, {d.n * groups}, d.dtype, "group_norm", "mean", dev);
  if (rstd) prepare_output(rstd, {d.n * groups}, d.dtype, "group_norm", "rstd", dev);
  RECUR_IF_CUDA(x, cuda::group_norm_forward(*y, mean, rstd, x, gamma, beta, d.n, d.c, d.s, groups, eps));
  cpu::group_norm_forward(y->f32(), mean ? mean->f32() : nullptr, rstd ? rstd->f32() : nullptr, x.f32(), gamma.f32(),
                          beta.f32(), d.n, d.c, d.s, groups, eps);
}

void group_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t groups) {
  detail::GroupNormCheck d = detail::check_group_norm_backward("group_norm_backward", dy, x, gamma, mean, rstd, groups);
  if (d.dtype == DType::F64) return ref::group_norm_backward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd, groups);
  const Device dev = x.device();
  bool want_dx = prepare_grad(dx, x.shape(), d.dtype, "group_norm_backward", "dx", dev);
  bool want_dg = prepare_grad(dgamma, gamma.shape(), d.dtype, "group_norm_backward", "dgamma", dev);
  bool want_db = prepare_grad(dbeta, gamma.shape(), d.dtype, "group_norm_backward", "dbeta", dev);
  RECUR_IF_CUDA(x, cuda::group_norm_backward(want_dx ? dx : nullptr, want_dg ? dgamma : nullptr,
                                             want_db ? dbeta : nullptr, dy, x, gamma, mean, rstd, d.n, d.c, d.s,
                                             groups));
  cpu::group_norm_backward(want_dx ? dx->f32() : nullptr, want_dg ? dgamma->f32() : nullptr,
                           want_db ? dbeta->f32() : nullptr, dy.f32(), x.f32(), gamma.f32(), mean.f32(), rstd.f32(),
                           d.n, d.c, d.s, groups);
}

}  // namespace recur::ops

namespace recur {

Var conv2d(Tape& tape, const Var& x, const Var& w, const Var& bias, const ops::Conv2dOptions& opt) {
  Tensor y;
  const Tensor none;
  ops::conv2d_forward(&y, value_of(x, "conv2d", "x"), value_of(w, "conv2d", "weight"),
                      bias.defined() ? bias.value() : none, opt);
  bool tracked = tape.needs_grad({&x, &w, &bias});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, w, bias, out, opt]() {
      ops::conv2d_backward(grad_slot(x), grad_slot(w), grad_slot(bias), out.grad(), x.value(), w.value(), opt);
    });
  return out;
}

Var max_pool2d(Tape& tape, const Var& x, const ops::Pool2dOptions& opt) {
  Tensor y, argmax;
  bool tracked = tape.needs_grad({&x});
  ops::max_pool2d_forward(&y, tracked ? &argmax : nullptr, value_of(x, "max_pool2d", "x"), opt);
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, out, argmax, opt]() {
      ops::max_pool2d_backward(&x.grad(), out.grad(), argmax, x.value().shape(), opt);
    });
  return out;
}

Var avg_pool2d(Tape& tape, const Var& x, const ops::Pool2dOptions& opt) {
  Tensor y;
  ops::avg_pool2d_forward(&y, value_of(x, "avg_pool2d", "x"), opt);
  bool tracked = tape.needs_grad({&x});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, out, opt]() { ops::avg_pool2d_backward(&x.grad(), out.grad(), x.value().shape(), opt); });
  return out;
}

Var global_avg_pool2d(Tape& tape, const Var& x) {
  const Tensor& v = value_of(x, "global_avg_pool2d", "x");
  RECUR_CHECK(v.ndim() == 4, "global_avg_pool2d: x {} must be 4-D (N, C, H, W)", v.shape_str());
  const int64_t h = v.dim(2), w = v.dim(3);
  // One window covering the whole plane.
  const ops::Pool2dOptions whole{h, w, h, w, 0, 0};
  return reshape(tape, avg_pool2d(tape, x, whole), {v.dim(0), v.dim(1)});
}

Var group_norm(Tape& tape, const Var& x, const Var& gamma, const Var& beta, int64_t groups, float eps) {
  Tensor y, mean, rstd;
  bool tracked = tape.needs_grad({&x, &gamma, &beta});
  ops::group_norm_forward(&y, tracked ? &mean : nullptr, tracked ? &rstd : nullptr, value_of(x, "group_norm", "x"),
                          value_of(gamma, "group_norm", "gamma"), value_of(beta, "group_norm", "beta"), groups, eps);
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, gamma, beta, out, mean, rstd, groups]() {
      ops::group_norm_backward(grad_slot(x), grad_slot(gamma), grad_slot(beta), out.grad(), x.value(), gamma.value(),
                               mean, rstd, groups);
    });
  return out;
}

}  // namespace recur
