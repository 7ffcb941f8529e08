// Naive double-precision references of the pools over time: the spec for src/cpu/pool_cpu.cc.
// Each sequence's rows are found by scanning every step for its sorted position (sorted_indices),
// independently of the unsorted_indices/last_row shortcuts the fast path uses.
#include "../checks.h"
#include "recur/ops/pool.h"

namespace recur::ref {

using ops::detail::require_f64;
using ops::prepare_grad;
using ops::prepare_output;

namespace {
// Packed rows of original sequence b, in time order.
std::vector<int64_t> rows_of_sequence(const PackedBatch& pb, int64_t b) {
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j)
      if (pb.sorted_indices[static_cast<size_t>(j)] == b) rows.push_back(pb.offsets[static_cast<size_t>(t)] + j);
  return rows;
}
}  // namespace

void mean_pool_forward(Tensor* y, const Tensor& x, const PackedBatch& layout) {
  ops::detail::PoolDims d = ops::detail::check_pool("ref::mean_pool", x, layout);
  require_f64(d.dtype, "ref::mean_pool");
  prepare_output(y, {d.batch, d.hidden}, DType::F64, "ref::mean_pool", "y");
  for (int64_t b = 0; b < d.batch; ++b) {
    std::vector<int64_t> rows = rows_of_sequence(layout, b);
    for (int64_t h = 0; h < d.hidden; ++h) {
      double s = 0;
      for (int64_t r : rows) s += x.data<double>()[r * d.hidden + h];
      y->data<double>()[b * d.hidden + h] = s / static_cast<double>(rows.size());
    }
  }
}

void mean_pool_backward(Tensor* dx, const Tensor& dy, const PackedBatch& layout) {
  ops::detail::PoolDims d = ops::detail::check_pool_grad("ref::mean_pool_backward", dy, layout);
  require_f64(d.dtype, "ref::mean_pool_backward");
  if (!prepare_grad(dx, {d.tokens, d.hidden}, DType::F64, "ref::mean_pool_backward", "dx")) return;
  for (int64_t b = 0; b < d.batch; ++b) {
    std::vector<int64_t> rows = rows_of_sequence(layout, b);
    for (int64_t r : rows)
      for (int64_t h = 0; h < d.hidden; ++h)
        dx->data<double>()[r * d.hidden + h] += dy.data<double>()[b * d.hidden + h] / static_cast<double>(rows.size());
  }
}

void max_pool_forward(Tensor* y, Tensor* argmax, const Tensor& x, const PackedBatch& layout) {
  ops::detail::PoolDims d = ops::detail::check_pool("ref::max_pool", x, layout);
  require_f64(d.dtype, "ref::max_pool");
  prepare_output(y, {d.batch, d.hidden}, DType::F64, "ref::max_pool", "y");
  if (argmax) prepare_output(argmax, {d.batch, d.hidden}, DType::I64, "ref::max_pool", "argmax");
  for (int64_t b = 0; b < d.batch; ++b) {
    std::vector<int64_t> rows = rows_of_sequence(layout, b);
    for (int64_t h = 0; h < d.hidden; ++h) {
      int64_t best = rows[0];
      for (int64_t r : rows)
        if (x.data<double>()[r * d.hidden + h] > x.data<double>()[best * d.hidden + h]) best = r;
      y->data<double>()[b * d.hidden + h] = x.data<double>()[best * d.hidden + h];
      if (argmax) argmax->data<int64_t>()[b * d.hidden + h] = best;
    }
  }
}

void max_pool_backward(Tensor* dx, const Tensor& dy, const Tensor& argmax, const PackedBatch& layout) {
  ops::detail::PoolDims d = ops::detail::check_pool_grad("ref::max_pool_backward", dy, layout);
  require_f64(d.dtype, "ref::max_pool_backward");
  ops::detail::check_argmax(argmax, d);
  if (!prepare_grad(dx, {d.tokens, d.hidden}, DType::F64, "ref::max_pool_backward", "dx")) return;
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t h = 0; h < d.hidden; ++h) {
      int64_t r = argmax.data<int64_t>()[b * d.hidden + h];
      dx->data<double>()[r * d.hidden + h] += dy.data<double>()[b * d.hidden + h];
    }
}

void gather_last_step_forward(Tensor* y, const Tensor& x, const PackedBatch& layout) {
  ops::detail::PoolDims d = ops::detail::check_pool("ref::gather_last_step", x, layout);
  require_f64(d.dtype, "ref::gather_last_step");
  prepare_output(y, {d.batch, d.hidden}, DType::F64, "ref::gather_last_step", "y");
  for (int64_t b = 0; b < d.batch; ++b) {
    int64_t last = rows_of_sequence(layout, b).back();
    for (int64_t h = 0; h < d.hidden; ++h) y->data<double>()[b * d.hidden + h] = x.data<double>()[last * d.hidden + h];
  }
}

void gather_last_step_backward(Tensor* dx, const Tensor& dy, const PackedBatch& layout) {
  ops::detail::PoolDims d = ops::detail::check_pool_grad("ref::gather_last_step_backward", dy, layout);
  require_f64(d.dtype, "ref::gather_last_step_backward");
  if (!prepare_grad(dx, {d.tokens, d.hidden}, DType::F64, "ref::gather_last_step_backward", "dx")) return;
  for (int64_t b = 0; b < d.batch; ++b) {
    int64_t last = rows_of_sequence(layout, b).back();
    for (int64_t h = 0; h < d.hidden; ++h)
      dx->data<double>()[last * d.hidden + h] += dy.data<double>()[b * d.hidden + h];
  }
}

}  // namespace recur::ref
