#include "recur/ops/pool.h"

#include "../cpu/pool_cpu.h"
#include "checks.h"
#include "recur/ops/util.h"

namespace recur::ops {

namespace detail {

namespace {
void check_layout(const char* op, const PackedBatch& layout) {
  size_t B = layout.lengths.size(), T = layout.batch_sizes.size();
  RECUR_CHECK(B >= 1 && layout.sorted_indices.size() == B && layout.unsorted_indices.size() == B &&
                  layout.offsets.size() == T + 1,
              "{}: malformed PackedBatch ({} lengths, {} sorted indices, {} steps, {} offsets); build it with "
              "PackedBatch::from_lengths",
              op, B, layout.sorted_indices.size(), T, layout.offsets.size());
  for (size_t b = 0; b < B; ++b)
    RECUR_CHECK(layout.lengths[b] >= 1 && layout.lengths[b] <= static_cast<int64_t>(T),
                "{}: sequence {} has length {} in a layout of {} steps", op, b, layout.lengths[b], T);
}
}  // namespace

PoolDims check_pool(const char* op, const Tensor& x, const PackedBatch& layout) {
  check_layout(op, layout);
  DType dt = check_float_inputs(op, {{"x", &x}});
  RECUR_CHECK(x.ndim() == 2 && x.dim(0) == layout.tokens(),
              "{}: packed input {} does not match the layout's {} tokens (expected ({}, H))", op, x.shape_str(),
              layout.tokens(), layout.tokens());
  return {layout.tokens(), layout.batch(), x.dim(1), dt};
}

PoolDims check_pool_grad(const char* op, const Tensor& dy, const PackedBatch& layout) {
  check_layout(op, layout);
  DType dt = check_float_inputs(op, {{"dy", &dy}});
  RECUR_CHECK(dy.ndim() == 2 && dy.dim(0) == layout.batch(), "{}: dy {} does not match a batch of {} (expected ({}, H))",
              op, dy.shape_str(), layout.batch(), layout.batch());
  return {layout.tokens(), layout.batch(), dy.dim(1), dt};
}

}  // namespace detail

void mean_pool_forward(Tensor* y, const Tensor& x, const PackedBatch& layout) {
  detail::PoolDims d = detail::check_pool("mean_pool", x, layout);
  if (d.dtype == DType::F64) return ref::mean_pool_forward(y, x, layout);
  prepare_output(y, {d.batch, d.hidden}, d.dtype, "mean_pool", "y", x.device());
  RECUR_IF_CUDA(x, cuda::mean_pool_forward(*y, x, layout, d.hidden));
  cpu::mean_pool_forward(y->f32(), x.f32(), layout, d.hidden);
}

void mean_pool_backward(Tensor* dx, const Tensor& dy, const PackedBatch& layout) {
  detail::PoolDims d = detail::check_pool_grad("mean_pool_backward", dy, layout);
  if (d.dtype == DType::F64) return ref::mean_pool_backward(dx, dy, layout);
  if (!prepare_grad(dx, {d.tokens, d.hidden}, d.dtype, "mean_pool_backward", "dx", dy.device())) return;
  RECUR_IF_CUDA(dy, cuda::mean_pool_backward(*dx, dy, layout, d.hidden));
  cpu::mean_pool_backward(dx->f32(), dy.f32(), layout, d.hidden);
}

void max_pool_forward(Tensor* y, Tensor* argmax, const Tensor& x, const PackedBatch& layout) {
  detail::PoolDims d = detail::check_pool("max_pool", x, layout);
  if (d.dtype == DType::F64) return ref::max_pool_forward(y, argmax, x, layout);
  prepare_output(y, {d.batch, d.hidden}, d.dtype, "max_pool", "y", x.device());
  if (argmax) prepare_output(argmax, {d.batch, d.hidden}, DType::I64, "max_pool", "argmax", x.device());
  RECUR_IF_CUDA(x, cuda::max_pool_forward(*y, argmax, x, layout, d.hidden));
  cpu::max_pool_forward(y->f32(), argmax ? argmax->data<int64_t>() : nullptr, x.f32(), layout, d.hidden);
}

namespace detail {
void check_argmax(const Tensor& argmax, const PoolDims& d) {
  check_index_tensor(argmax, "max_pool_backward", "argmax");
  RECUR_CHECK(argmax.shape() == (Shape{d.batch, d.hidden}), "max_pool_backward: argmax {} does not match dy ({}, {})",
              argmax.shape_str(), d.batch, d.hidden);
  RECUR_CHECK(d.dtype != DType::F64 || argmax.device().is_cpu(),
              "max_pool_backward: argmax {} is on {} but the F64 reference runs on the CPU", argmax.shape_str(),
              argmax.device().str());
  // A GPU argmax is validated on a host copy.
  const Tensor host_argmax = argmax.cpu();
  const int64_t* a = host_argmax.data<int64_t>();
  for (int64_t i = 0; i < argmax.numel(); ++i)
    RECUR_CHECK(a[i] >= 0 && a[i] < d.tokens, "max_pool_backward: argmax {} at {} is not a row of the {} tokens", a[i],
                i, d.tokens);
}
}  // namespace detail

void max_pool_backward(Tensor* dx, const Tensor& dy, const Tensor& argmax, const PackedBatch& layout) {
  detail::PoolDims d = detail::check_pool_grad("max_pool_backward", dy, layout);
  detail::check_argmax(argmax, d);
  check_same_device("max_pool_backward", {{"dy", &dy}, {"argmax", &argmax}});
  if (d.dtype == DType::F64) return ref::max_pool_backward(dx, dy, argmax, layout);
  if (!prepare_grad(dx, {d.tokens, d.hidden}, d.dtype, "max_pool_backward", "dx", dy.device())) return;
  RECUR_IF_CUDA(dy, cuda::max_pool_backward(*dx, dy, argmax, d.hidden));
  cpu::max_pool_backward(dx->f32(), dy.f32(), argmax.data<int64_t>(), layout, d.hidden);
}

void gather_last_step_forward(Tensor* y, const Tensor& x, const PackedBatch& layout) {
  detail::PoolDims d = detail::check_pool("gather_last_step", x, layout);
  if (d.dtype == DType::F64) return ref::gather_last_step_forward(y, x, layout);
  prepare_output(y, {d.batch, d.hidden}, d.dtype, "gather_last_step", "y", x.device());
  RECUR_IF_CUDA(x, cuda::gather_last_step_forward(*y, x, layout, d.hidden));
  cpu::gather_last_step_forward(y->f32(), x.f32(), layout, d.hidden);
}

void gather_last_step_backward(Tensor* dx, const Tensor& dy, const PackedBatch& layout) {
  detail::PoolDims d = detail::check_pool_grad("gather_last_step_backward", dy, layout);
  if (d.dtype == DType::F64) return ref::gather_last_step_backward(dx, dy, layout);
  if (!prepare_grad(dx, {d.tokens, d.hidden}, d.dtype, "gather_last_step_backward", "dx", dy.device())) return;
  RECUR_IF_CUDA(dy, cuda::gather_last_step_backward(*dx, dy, layout, d.hidden));
  cpu::gather_last_step_backward(dx->f32(), dy.f32(), layout, d.hidden);
}

}  // namespace recur::ops

namespace recur {

Var mean_pool(Tape& tape, const Var& packed, const PackedBatch& layout) {
  Tensor y;
  ops::mean_pool_forward(&y, value_of(packed, "mean_pool", "packed"), layout);
  bool tracked = tape.needs_grad({&packed});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([packed, out, layout]() { ops::mean_pool_backward(&packed.grad(), out.grad(), layout); });
  return out;
}

Var max_pool(Tape& tape, const Var& packed, const PackedBatch& layout) {
  Tensor y, argmax;
  bool tracked = tape.needs_grad({&packed});
  ops::max_pool_forward(&y, tracked ? &argmax : nullptr, value_of(packed, "max_pool", "packed"), layout);
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([packed, out, argmax, layout]() {
      ops::max_pool_backward(&packed.grad(), out.grad(), argmax, layout);
    });
  return out;
}

Var gather_last_step(Tape& tape, const Var& packed, const PackedBatch& layout) {
  Tensor y;
  ops::gather_last_step_forward(&y, value_of(packed, "gather_last_step", "packed"), layout);
  bool tracked = tape.needs_grad({&packed});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([packed, out, layout]() { ops::gather_last_step_backward(&packed.grad(), out.grad(), layout); });
  return out;
}

}  // namespace recur
