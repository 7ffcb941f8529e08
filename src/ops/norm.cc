#include "recur/ops/norm.h"

#include <cmath>

#include "../cpu/norm_cpu.h"
#include "checks.h"
#include "recur/ops/util.h"

namespace recur::ops {

namespace detail {

RowDims check_rows(const char* op, const Tensor& x) {
  DType dt = check_float_inputs(op, {{"x", &x}});
  RECUR_CHECK(x.ndim() >= 1, "{}: x must have at least one dimension, got {}", op, x.shape_str());
  return {rows_of(x), x.dim(-1), dt};
}

RowDims check_layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
  check_float_inputs("layer_norm", {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}});
  RowDims d = check_rows("layer_norm", x);
  RECUR_CHECK(d.dim >= 1, "layer_norm: x {} has an empty last dimension", x.shape_str());
  RECUR_CHECK(gamma.shape() == Shape{d.dim} && beta.shape() == Shape{d.dim},
              "layer_norm: gamma {} and beta {} must be ({}) for x {}", gamma.shape_str(), beta.shape_str(), d.dim,
              x.shape_str());
  RECUR_CHECK(eps >= 0.0f, "layer_norm: eps = {} is negative", eps);
  return d;
}

RowDims check_layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                  const Tensor& rstd) {
  RowDims d = check_layer_norm(x, gamma, gamma, 0.0f);
  check_float_inputs("layer_norm_backward",
                     {{"x", &x}, {"gamma", &gamma}, {"dy", &dy}, {"mean", &mean}, {"rstd", &rstd}});
  RECUR_CHECK(dy.shape() == x.shape(), "layer_norm_backward: dy {} does not match x {}", dy.shape_str(),
              x.shape_str());
  RECUR_CHECK(mean.shape() == Shape{d.rows} && rstd.shape() == Shape{d.rows},
              "layer_norm_backward: mean {} and rstd {} must be ({}) for x {}", mean.shape_str(), rstd.shape_str(),
              d.rows, x.shape_str());
  return d;
}

}  // namespace detail

void layer_norm_forward(Tensor* y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, float eps) {
  detail::RowDims d = detail::check_layer_norm(x, gamma, beta, eps);
  if (d.dtype == DType::F64) return ref::layer_norm_forward(y, mean, rstd, x, gamma, beta, eps);
  const Device dev = x.device();
  prepare_output(y, x.shape(), d.dtype, "layer_norm", "y", dev);
  if (mean) prepare_output(mean, {d.rows}, d.dtype, "layer_norm", "mean", dev);
  if (rstd) prepare_output(rstd, {d.rows}, d.dtype, "layer_norm", "rstd", dev);
  RECUR_IF_CUDA(x, cuda::layer_norm_forward(*y, mean, rstd, x, gamma, beta, d.rows, d.dim, eps));
  cpu::layer_norm_forward(y->f32(), mean ? mean->f32() : nullptr, rstd ? rstd->f32() : nullptr, x.f32(), gamma.f32(),
                          beta.f32(), d.rows, d.dim, eps);
}

void layer_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd) {
  detail::RowDims d = detail::check_layer_norm_backward(dy, x, gamma, mean, rstd);
  if (d.dtype == DType::F64) return ref::layer_norm_backward(dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
  const Device dev = x.device();
  bool want_dx = prepare_grad(dx, x.shape(), d.dtype, "layer_norm_backward", "dx", dev);
  bool want_dg = prepare_grad(dgamma, gamma.shape(), d.dtype, "layer_norm_backward", "dgamma", dev);
  bool want_db = prepare_grad(dbeta, gamma.shape(), d.dtype, "layer_norm_backward", "dbeta", dev);
  RECUR_IF_CUDA(x, cuda::layer_norm_backward(want_dx ? dx : nullptr, want_dg ? dgamma : nullptr,
                                             want_db ? dbeta : nullptr, dy, x, gamma, mean, rstd, d.rows, d.dim));
  cpu::layer_norm_backward(want_dx ? dx->f32() : nullptr, want_dg ? dgamma->f32() : nullptr,
                           want_db ? dbeta->f32() : nullptr, dy.f32(), x.f32(), gamma.f32(), mean.f32(), rstd.f32(),
                           d.rows, d.dim);
}

namespace {
using RowRef = void (*)(Tensor*, const Tensor&);
using RowCpu = void (*)(float*, const float*, int64_t, int64_t);
using RowBackRef = void (*)(Tensor*, const Tensor&, const Tensor&);
using RowBackCpu = void (*)(float*, const float*, const float*, int64_t, int64_t);
// The CUDA paths have the CPU kernels' signatures, on Tensors.
using RowCuda = void (*)(Tensor&, const Tensor&, int64_t, int64_t);
using RowBackCuda = void (*)(Tensor&, const Tensor&, const Tensor&, int64_t, int64_t);

#ifdef RECUR_HAS_CUDA
constexpr RowCuda kSoftmaxCuda = cuda::softmax_forward;
constexpr RowBackCuda kSoftmaxBackCuda = cuda::softmax_backward;
constexpr RowCuda kLogSoftmaxCuda = cuda::log_softmax_forward;
constexpr RowBackCuda kLogSoftmaxBackCuda = cuda::log_softmax_backward;
#else
constexpr RowCuda kSoftmaxCuda = nullptr;
constexpr RowBackCuda kSoftmaxBackCuda = nullptr;
constexpr RowCuda kLogSoftmaxCuda = nullptr;
constexpr RowBackCuda kLogSoftmaxBackCuda = nullptr;
#endif

void row_forward(const char* op, Tensor* y, const Tensor& x, RowRef reference, RowCpu fast, RowCuda gpu) {
  detail::RowDims d = detail::check_rows(op, x);
  if (d.dtype == DType::F64) return reference(y, x);
  prepare_output(y, x.shape(), d.dtype, op, "y", x.device());
  RECUR_IF_CUDA(x, gpu(*y, x, d.rows, d.dim));
  (void)gpu;
  fast(y->f32(), x.f32(), d.rows, d.dim);
}

void row_backward(const char* op, Tensor* dx, const Tensor& dy, const Tensor& y, RowBackRef reference,
                  RowBackCpu fast, RowBackCuda gpu) {
  detail::RowDims d = detail::check_rows(op, y);
  DType dt = detail::check_same_shapes(op, {{"dy", &dy}, {"y", &y}});
  if (dt == DType::F64) return reference(dx, dy, y);
  if (!prepare_grad(dx, y.shape(), dt, op, "dx", y.device())) return;
  RECUR_IF_CUDA(y, gpu(*dx, dy, y, d.rows, d.dim));
  (void)gpu;
  fast(dx->f32(), dy.f32(), y.f32(), d.rows, d.dim);
}
}  // namespace

void softmax_forward(Tensor* y, const Tensor& x) {
  row_forward("softmax", y, x, ref::softmax_forward, cpu::softmax_forward, kSoftmaxCuda);
}
void softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  row_backward("softmax_backward", dx, dy, y, ref::softmax_backward, cpu::softmax_backward, kSoftmaxBackCuda);
}
void log_softmax_forward(Tensor* y, const Tensor& x) {
  row_forward("log_softmax", y, x, ref::log_softmax_forward, cpu::log_softmax_forward, kLogSoftmaxCuda);
}
void log_softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  row_backward("log_softmax_backward", dx, dy, y, ref::log_softmax_backward, cpu::log_softmax_backward,
               kLogSoftmaxBackCuda);
}

}  // namespace recur::ops

namespace recur {

Var layer_norm(Tape& tape, const Var& x, const Var& gamma, const Var& beta, float eps) {
  Tensor y, mean, rstd;
  bool tracked = tape.needs_grad({&x, &gamma, &beta});
  ops::layer_norm_forward(&y, tracked ? &mean : nullptr, tracked ? &rstd : nullptr, value_of(x, "layer_norm", "x"),
                          value_of(gamma, "layer_norm", "gamma"), value_of(beta, "layer_norm", "beta"), eps);
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, gamma, beta, out, mean, rstd]() {
      ops::layer_norm_backward(grad_slot(x), grad_slot(gamma), grad_slot(beta), out.grad(), x.value(), gamma.value(),
                               mean, rstd);
    });
  return out;
}


Var softmax(Tape& tape, const Var& x) {
  return unary_through_output(tape, x, "softmax", ops::softmax_forward, ops::softmax_backward);
}
Var log_softmax(Tape& tape, const Var& x) {
  return unary_through_output(tape, x, "log_softmax", ops::log_softmax_forward, ops::log_softmax_backward);
}

}  // namespace recur
