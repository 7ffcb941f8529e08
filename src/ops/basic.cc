#include "recur/ops/basic.h"

#include <climits>
#include <numeric>

#include "../cpu/basic_cpu.h"
#include "checks.h"
#include "recur/ops/util.h"

namespace recur::ops {

namespace detail {

void require_f64(DType dtype, const char* op) {
  RECUR_CHECK(dtype == DType::F64, "{}: the reference runs in double; got {} tensors", op, dtype_name(dtype));
}

LinearDims check_linear(const Tensor& x, const Tensor& w, const Tensor* b) {
  DType dt = check_float_inputs("linear", {{"x", &x}, {"weight", &w}, {"bias", b}});
  RECUR_CHECK(w.ndim() == 2, "linear: weight must be (O, I), got {}", w.shape_str());
  RECUR_CHECK(x.ndim() >= 1 && x.dim(-1) == w.dim(1), "linear: x {} does not match weight {} (expected (..., {}))",
              x.shape_str(), w.shape_str(), w.dim(1));
  if (b) RECUR_CHECK(b->shape() == Shape{w.dim(0)}, "linear: bias {} does not match weight {}", b->shape_str(), w.shape_str());
  LinearDims d{rows_of(x), w.dim(1), w.dim(0), dt, x.shape()};
  d.y_shape.back() = d.out;
  // cblas takes int dimensions.
  RECUR_CHECK(d.rows <= INT_MAX && d.in <= INT_MAX && d.out <= INT_MAX, "linear: x {} / weight {} too large for BLAS",
              x.shape_str(), w.shape_str());
  return d;
}

LinearDims check_linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w) {
  LinearDims d = check_linear(x, w, nullptr);
  check_float_inputs("linear_backward", {{"x", &x}, {"dy", &dy}});
  RECUR_CHECK(dy.shape() == d.y_shape, "linear_backward: dy {} for x {} and weight {} (expected {})", dy.shape_str(),
              x.shape_str(), w.shape_str(), shape_str(d.y_shape));
  return d;
}

EmbeddingDims check_embedding(const Tensor& ids, const Tensor& w, int64_t padding_idx) {
  check_index_tensor(ids, "embedding", "ids");
  DType dt = check_float_inputs("embedding", {{"weight", &w}});
  check_same_device("embedding", {{"weight", &w}, {"ids", &ids}});
  RECUR_CHECK(w.ndim() == 2, "embedding: weight must be (V, D), got {}", w.shape_str());
  int64_t V = w.dim(0);
  RECUR_CHECK(padding_idx == -1 || (padding_idx >= 0 && padding_idx < V),
              "embedding: padding_idx {} out of range for a vocabulary of {} (use -1 for none)", padding_idx, V);
  // GPU ids are validated on a host copy (a sync; clear errors matter more than speed here).
  const Tensor host_ids = ids.cpu();
  const int64_t* p = host_ids.data<int64_t>();
  for (int64_t i = 0; i < ids.numel(); ++i)
    RECUR_CHECK(p[i] >= 0 && p[i] < V, "embedding: id {} at position {} is out of range for a vocabulary of V={}",
                p[i], i, V);
  EmbeddingDims d{ids.numel(), V, w.dim(1), dt, ids.shape()};
  d.y_shape.push_back(d.dim);
  return d;
}

DType check_same_shapes(const char* op, std::initializer_list<NamedInput> inputs) {
  DType dt = check_float_inputs(op, inputs);
  const NamedInput& first = *inputs.begin();
  for (const NamedInput& in : inputs)
    RECUR_CHECK(in.t->shape() == first.t->shape(), "{}: {} {} does not match {} {}", op, in.name, in.t->shape_str(),
                first.name, first.t->shape_str());
  return dt;
}

Shape AxisParts::part_shape(size_t i) const {
  Shape s = whole;
  s[static_cast<size_t>(axis)] = sizes[i];
  return s;
}

namespace {
AxisParts axis_parts(const Shape& whole, int64_t axis, std::vector<int64_t> sizes, DType dt) {
  AxisParts a;
  a.axis = axis;
  a.whole = whole;
  a.sizes = std::move(sizes);
  a.dtype = dt;
  a.total = whole[static_cast<size_t>(axis)];
  a.outer = 1;
  a.inner = 1;
  for (int64_t i = 0; i < axis; ++i) a.outer *= whole[static_cast<size_t>(i)];
  for (size_t i = static_cast<size_t>(axis) + 1; i < whole.size(); ++i) a.inner *= whole[i];
  return a;
}
}  // namespace

AxisParts check_concat(const std::vector<Tensor>& xs, int64_t axis) {
  RECUR_CHECK(!xs.empty(), "concat: no inputs");
  DType dt = check_float_inputs("concat", {{"input 0", &xs[0]}});
  int64_t ax = normalize_axis(axis, xs[0].shape(), "concat");
  Shape whole = xs[0].shape();
  std::vector<int64_t> sizes;
  whole[static_cast<size_t>(ax)] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_float_inputs("concat", {{"input 0", &xs[0]}, {"input", &xs[i]}});
    Shape want = whole;
    bool ok = xs[i].ndim() == xs[0].ndim();
    if (ok) {
      want[static_cast<size_t>(ax)] = xs[i].dim(ax);
      ok = want == xs[i].shape();
    }
    RECUR_CHECK(ok, "concat: input {} has shape {} but input 0 has {}; only axis {} may differ", i, xs[i].shape_str(),
                xs[0].shape_str(), ax);
    sizes.push_back(xs[i].dim(ax));
  }
  whole[static_cast<size_t>(ax)] = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  return axis_parts(whole, ax, std::move(sizes), dt);
}

AxisParts check_split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  DType dt = check_float_inputs("split", {{"x", &x}});
  int64_t ax = normalize_axis(axis, x.shape(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    RECUR_CHECK(s >= 0, "split: negative size {} in {}", s, sizes);
    total += s;
  }
  RECUR_CHECK(total == x.dim(ax), "split: sizes {} sum to {} but x {} has {} along axis {}", sizes, total,
              x.shape_str(), x.dim(ax), ax);
  return axis_parts(x.shape(), ax, sizes, dt);
}

void check_dropout_p(float p) {
  RECUR_CHECK(p >= 0.0f && p <= 1.0f, "dropout: p = {} is not in [0, 1]", p);
}

}  // namespace detail

using detail::check_same_shapes;

void linear_forward(Tensor* y, const Tensor& x, const Tensor& w, const Tensor* b) {
  detail::LinearDims d = detail::check_linear(x, w, b);
  if (d.dtype == DType::F64) return ref::linear_forward(y, x, w, b);
  prepare_output(y, d.y_shape, d.dtype, "linear", "y", x.device());
  RECUR_IF_CUDA(x, cuda::linear_forward(*y, x, w, b, d.rows, d.in, d.out));
  cpu::linear_forward(y->f32(), x.f32(), w.f32(), b ? b->f32() : nullptr, d.rows, d.in, d.out);
}

void linear_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w) {
  detail::LinearDims d = detail::check_linear_backward(dy, x, w);
  if (d.dtype == DType::F64) return ref::linear_backward(dx, dw, db, dy, x, w);
  const Device dev = x.device();
  bool want_dx = prepare_grad(dx, x.shape(), d.dtype, "linear_backward", "dx", dev);
  bool want_dw = prepare_grad(dw, w.shape(), d.dtype, "linear_backward", "dw", dev);
  bool want_db = prepare_grad(db, {d.out}, d.dtype, "linear_backward", "db", dev);
  RECUR_IF_CUDA(x, cuda::linear_backward(want_dx ? dx : nullptr, want_dw ? dw : nullptr, want_db ? db : nullptr, dy, x,
                                         w, d.rows, d.in, d.out));
  cpu::linear_backward(want_dx ? dx->f32() : nullptr, want_dw ? dw->f32() : nullptr, want_db ? db->f32() : nullptr,
                       dy.f32(), x.f32(), w.f32(), d.rows, d.in, d.out);
}

void embedding_forward(Tensor* y, const Tensor& ids, const Tensor& w, int64_t padding_idx) {
  detail::EmbeddingDims d = detail::check_embedding(ids, w, padding_idx);
  if (d.dtype == DType::F64) return ref::embedding_forward(y, ids, w, padding_idx);
  prepare_output(y, d.y_shape, d.dtype, "embedding", "y", w.device());
  RECUR_IF_CUDA(w, cuda::embedding_forward(*y, ids, w, d.dim, padding_idx));
  cpu::embedding_forward(y->f32(), ids.data<int64_t>(), w.f32(), d.n, d.dim, padding_idx);
}

void embedding_backward(Tensor* dw, const Tensor& dy, const Tensor& ids, int64_t padding_idx) {
  RECUR_CHECK(dw != nullptr && dw->defined(), "embedding_backward: dw must be a defined (V, D) tensor");
  detail::EmbeddingDims d = detail::check_embedding(ids, *dw, padding_idx);
  check_float_inputs("embedding_backward", {{"dw", dw}, {"dy", &dy}});
  RECUR_CHECK(dy.shape() == d.y_shape, "embedding_backward: dy {} for ids {} and dw {} (expected {})", dy.shape_str(),
              ids.shape_str(), dw->shape_str(), shape_str(d.y_shape));
  if (d.dtype == DType::F64) return ref::embedding_backward(dw, dy, ids, padding_idx);
  RECUR_IF_CUDA(*dw, cuda::embedding_backward(*dw, dy, ids, d.dim, padding_idx));
  cpu::embedding_backward(dw->f32(), dy.f32(), ids.data<int64_t>(), d.n, d.dim, padding_idx);
}

void add_forward(Tensor* y, const Tensor& a, const Tensor& b) {
  DType dt = check_same_shapes("add", {{"a", &a}, {"b", &b}});
  if (dt == DType::F64) return ref::add_forward(y, a, b);
  prepare_output(y, a.shape(), dt, "add", "y", a.device());
  RECUR_IF_CUDA(a, cuda::add_forward(*y, a, b));
  cpu::add_forward(y->f32(), a.f32(), b.f32(), a.numel());
}

void add_backward(Tensor* da, Tensor* db, const Tensor& dy) {
  DType dt = check_float_inputs("add_backward", {{"dy", &dy}});
  if (dt == DType::F64) return ref::add_backward(da, db, dy);
  bool want_a = prepare_grad(da, dy.shape(), dt, "add_backward", "da", dy.device());
  bool want_b = prepare_grad(db, dy.shape(), dt, "add_backward", "db", dy.device());
  RECUR_IF_CUDA(dy, cuda::add_backward(want_a ? da : nullptr, want_b ? db : nullptr, dy));
  cpu::add_backward(want_a ? da->f32() : nullptr, want_b ? db->f32() : nullptr, dy.f32(), dy.numel());
}

void mul_forward(Tensor* y, const Tensor& a, const Tensor& b) {
  DType dt = check_same_shapes("mul", {{"a", &a}, {"b", &b}});
  if (dt == DType::F64) return ref::mul_forward(y, a, b);
  prepare_output(y, a.shape(), dt, "mul", "y", a.device());
  RECUR_IF_CUDA(a, cuda::mul_forward(*y, a, b));
  cpu::mul_forward(y->f32(), a.f32(), b.f32(), a.numel());
}

void mul_backward(Tensor* da, Tensor* db, const Tensor& dy, const Tensor& a, const Tensor& b) {
  DType dt = check_same_shapes("mul_backward", {{"dy", &dy}, {"a", &a}, {"b", &b}});
  if (dt == DType::F64) return ref::mul_backward(da, db, dy, a, b);
  bool want_a = prepare_grad(da, dy.shape(), dt, "mul_backward", "da", dy.device());
  bool want_b = prepare_grad(db, dy.shape(), dt, "mul_backward", "db", dy.device());
  RECUR_IF_CUDA(dy, cuda::mul_backward(want_a ? da : nullptr, want_b ? db : nullptr, dy, a, b));
  cpu::mul_backward(want_a ? da->f32() : nullptr, want_b ? db->f32() : nullptr, dy.f32(), a.f32(), b.f32(),
                    dy.numel());
}

namespace {
using UnaryRef = void (*)(Tensor*, const Tensor&);
using UnaryCpu = void (*)(float*, const float*, int64_t);
using UnaryBackRef = void (*)(Tensor*, const Tensor&, const Tensor&);
using UnaryBackCpu = void (*)(float*, const float*, const float*, int64_t);

// Which function, for the CUDA path (the CPU and reference paths come as function pointers).
enum class UnaryKind { Tanh, Sigmoid, Relu };

#ifdef RECUR_HAS_CUDA
cuda::Unary cuda_unary(UnaryKind k) {
  switch (k) {
    case UnaryKind::Tanh: return cuda::Unary::Tanh;
    case UnaryKind::Sigmoid: return cuda::Unary::Sigmoid;
    case UnaryKind::Relu: break;
  }
  return cuda::Unary::Relu;
}
#endif

void unary_forward(const char* op, UnaryKind kind, Tensor* y, const Tensor& x, UnaryRef reference, UnaryCpu fast) {
  DType dt = check_float_inputs(op, {{"x", &x}});
  if (dt == DType::F64) return reference(y, x);
  prepare_output(y, x.shape(), dt, op, "y", x.device());
  RECUR_IF_CUDA(x, cuda::unary_forward(cuda_unary(kind), *y, x));
  (void)kind;
  fast(y->f32(), x.f32(), x.numel());
}

void unary_backward(const char* op, UnaryKind kind, Tensor* dx, const Tensor& dy, const Tensor& y,
                    UnaryBackRef reference, UnaryBackCpu fast) {
  DType dt = check_same_shapes(op, {{"dy", &dy}, {"y", &y}});
  if (dt == DType::F64) return reference(dx, dy, y);
  if (!prepare_grad(dx, y.shape(), dt, op, "dx", y.device())) return;
  RECUR_IF_CUDA(y, cuda::unary_backward(cuda_unary(kind), *dx, dy, y));
  (void)kind;
  fast(dx->f32(), dy.f32(), y.f32(), y.numel());
}
}  // namespace

void tanh_forward(Tensor* y, const Tensor& x) {
  unary_forward("tanh", UnaryKind::Tanh, y, x, ref::tanh_forward, cpu::tanh_forward);
}
void tanh_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  unary_backward("tanh_backward", UnaryKind::Tanh, dx, dy, y, ref::tanh_backward, cpu::tanh_backward);
}
void sigmoid_forward(Tensor* y, const Tensor& x) {
  unary_forward("sigmoid", UnaryKind::Sigmoid, y, x, ref::sigmoid_forward, cpu::sigmoid_forward);
}
void sigmoid_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  unary_backward("sigmoid_backward", UnaryKind::Sigmoid, dx, dy, y, ref::sigmoid_backward, cpu::sigmoid_backward);
}
void relu_forward(Tensor* y, const Tensor& x) {
  unary_forward("relu", UnaryKind::Relu, y, x, ref::relu_forward, cpu::relu_forward);
}
void relu_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  unary_backward("relu_backward", UnaryKind::Relu, dx, dy, y, ref::relu_backward, cpu::relu_backward);
}

namespace {
// Offset of part i along the axis.
int64_t part_offset(const detail::AxisParts& a, size_t i) {
  return std::accumulate(a.sizes.begin(), a.sizes.begin() + static_cast<std::ptrdiff_t>(i), int64_t{0});
}

// Part i of the whole tensor (outer, total, inner) is `outer` blocks of sizes[i] * inner floats.
struct PartBlocks {
  int64_t block, whole_stride, whole_offset;
};
PartBlocks part_blocks(const detail::AxisParts& a, size_t i) {
  return {a.sizes[i] * a.inner, a.total * a.inner, part_offset(a, i) * a.inner};
}

// whole's slice i (+)= part (both on one device, checked by the caller).
void part_to_whole(const detail::AxisParts& a, size_t i, Tensor& whole, const Tensor& part, bool accumulate) {
  PartBlocks p = part_blocks(a, i);
  RECUR_IF_CUDA(whole, cuda::copy_blocks(whole, p.whole_offset, p.whole_stride, part, 0, p.block, a.outer, p.block,
                                         accumulate));
  cpu::copy_blocks(whole.f32() + p.whole_offset, p.whole_stride, part.f32(), p.block, a.outer, p.block, accumulate);
}

// part (+)= whole's slice i.
void whole_to_part(const detail::AxisParts& a, size_t i, Tensor& part, const Tensor& whole, bool accumulate) {
  PartBlocks p = part_blocks(a, i);
  RECUR_IF_CUDA(part, cuda::copy_blocks(part, 0, p.block, whole, p.whole_offset, p.whole_stride, a.outer, p.block,
                                        accumulate));
  cpu::copy_blocks(part.f32(), p.block, whole.f32() + p.whole_offset, p.whole_stride, a.outer, p.block, accumulate);
}
}  // namespace

void concat_forward(Tensor* y, const std::vector<Tensor>& xs, int64_t axis) {
  detail::AxisParts a = detail::check_concat(xs, axis);
  if (a.dtype == DType::F64) return ref::concat_forward(y, xs, axis);
  prepare_output(y, a.whole, a.dtype, "concat", "y", xs[0].device());
  for (size_t i = 0; i < xs.size(); ++i) part_to_whole(a, i, *y, xs[i], false);
}

void concat_backward(const std::vector<Tensor*>& dxs, const Tensor& dy, const std::vector<int64_t>& sizes,
                     int64_t axis) {
  detail::AxisParts a = detail::check_split(dy, sizes, axis);
  RECUR_CHECK(dxs.size() == sizes.size(), "concat_backward: {} gradients for {} sizes", dxs.size(), sizes.size());
  if (a.dtype == DType::F64) return ref::concat_backward(dxs, dy, sizes, axis);
  for (size_t i = 0; i < dxs.size(); ++i)
    if (prepare_grad(dxs[i], a.part_shape(i), a.dtype, "concat_backward", "dx", dy.device()))
      whole_to_part(a, i, *dxs[i], dy, true);
}

void split_forward(std::vector<Tensor>* ys, const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  detail::AxisParts a = detail::check_split(x, sizes, axis);
  RECUR_CHECK(ys != nullptr, "split: output list is null");
  if (a.dtype == DType::F64) return ref::split_forward(ys, x, sizes, axis);
  ys->resize(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    prepare_output(&(*ys)[i], a.part_shape(i), a.dtype, "split", "y", x.device());
    whole_to_part(a, i, (*ys)[i], x, false);
  }
}

void split_backward(Tensor* dx, const std::vector<Tensor>& dys, int64_t axis) {
  detail::AxisParts a = detail::check_concat(dys, axis);
  if (a.dtype == DType::F64) return ref::split_backward(dx, dys, axis);
  if (!prepare_grad(dx, a.whole, a.dtype, "split_backward", "dx", dys[0].device())) return;
  for (size_t i = 0; i < dys.size(); ++i) part_to_whole(a, i, *dx, dys[i], true);
}

void dropout_forward(Tensor* y, const Tensor& x, float p, uint64_t seed, bool training) {
  DType dt = check_float_inputs("dropout", {{"x", &x}});
  detail::check_dropout_p(p);
  if (dt == DType::F64) return ref::dropout_forward(y, x, p, seed, training);
  prepare_output(y, x.shape(), dt, "dropout", "y", x.device());
  if (!training || p == 0.0f) return y->copy_from(x);
  RECUR_IF_CUDA(x, cuda::dropout_forward(*y, x, p, seed));
  cpu::dropout_forward(y->f32(), x.f32(), x.numel(), p, seed);
}

void dropout_backward(Tensor* dx, const Tensor& dy, float p, uint64_t seed, bool training) {
  DType dt = check_float_inputs("dropout_backward", {{"dy", &dy}});
  detail::check_dropout_p(p);
  if (dt == DType::F64) return ref::dropout_backward(dx, dy, p, seed, training);
  if (!prepare_grad(dx, dy.shape(), dt, "dropout_backward", "dx", dy.device())) return;
  if (!training || p == 0.0f) return dx->add_(dy);
  RECUR_IF_CUDA(dy, cuda::dropout_backward(*dx, dy, p, seed));
  cpu::dropout_backward(dx->f32(), dy.f32(), dy.numel(), p, seed);
}

}  // namespace recur::ops

namespace recur {

Var linear(Tape& tape, const Var& x, const Var& w, const Var& b) {
  Tensor y;
  ops::linear_forward(&y, value_of(x, "linear", "x"), value_of(w, "linear", "weight"), b.defined() ? &b.value() : nullptr);
  bool tracked = tape.needs_grad({&x, &w, &b});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, w, b, out]() {
      ops::linear_backward(grad_slot(x), grad_slot(w), grad_slot(b), out.grad(), x.value(), w.value());
    });
  return out;
}

Var embedding(Tape& tape, const Tensor& ids, const Var& w, int64_t padding_idx) {
  Tensor y;
  ops::embedding_forward(&y, ids, value_of(w, "embedding", "weight"), padding_idx);
  bool tracked = tape.needs_grad({&w});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([ids, w, out, padding_idx]() { ops::embedding_backward(&w.grad(), out.grad(), ids, padding_idx); });
  return out;
}

Var add(Tape& tape, const Var& a, const Var& b) {
  Tensor y;
  ops::add_forward(&y, value_of(a, "add", "a"), value_of(b, "add", "b"));
  bool tracked = tape.needs_grad({&a, &b});
  Var out = make_output(y, tracked);
  if (tracked) tape.record([a, b, out]() { ops::add_backward(grad_slot(a), grad_slot(b), out.grad()); });
  return out;
}

Var mul(Tape& tape, const Var& a, const Var& b) {
  Tensor y;
  ops::mul_forward(&y, value_of(a, "mul", "a"), value_of(b, "mul", "b"));
  bool tracked = tape.needs_grad({&a, &b});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([a, b, out]() { ops::mul_backward(grad_slot(a), grad_slot(b), out.grad(), a.value(), b.value()); });
  return out;
}


Var tanh(Tape& tape, const Var& x) { return unary_through_output(tape, x, "tanh", ops::tanh_forward, ops::tanh_backward); }
Var sigmoid(Tape& tape, const Var& x) { return unary_through_output(tape, x, "sigmoid", ops::sigmoid_forward, ops::sigmoid_backward); }
Var relu(Tape& tape, const Var& x) { return unary_through_output(tape, x, "relu", ops::relu_forward, ops::relu_backward); }

Var concat(Tape& tape, const std::vector<Var>& xs, int64_t axis) {
  std::vector<Tensor> values;
  std::vector<int64_t> sizes;
  bool tracked = false;
  for (const Var& v : xs) {
    RECUR_CHECK(v.defined(), "concat: input {} is undefined", values.size());
    values.push_back(v.value());
    tracked = tracked || tape.needs_grad({&v});
  }
  Tensor y;
  ops::concat_forward(&y, values, axis);
  int64_t ax = ops::normalize_axis(axis, values[0].shape(), "concat");
  for (const Tensor& t : values) sizes.push_back(t.dim(ax));
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([xs, out, sizes, ax]() {
      std::vector<Tensor*> slots;
      for (const Var& v : xs) slots.push_back(grad_slot(v));
      ops::concat_backward(slots, out.grad(), sizes, ax);
    });
  return out;
}

std::vector<Var> split(Tape& tape, const Var& x, const std::vector<int64_t>& sizes, int64_t axis) {
  std::vector<Tensor> ys;
  ops::split_forward(&ys, value_of(x, "split", "x"), sizes, axis);
  bool tracked = tape.needs_grad({&x});
  std::vector<Var> outs;
  for (Tensor& y : ys) outs.push_back(make_output(y, tracked));
  if (tracked)
    tape.record([x, outs, axis]() {
      // Outputs nobody used get zero gradients from grad().
      std::vector<Tensor> grads;
      for (const Var& o : outs) grads.push_back(o.grad());
      ops::split_backward(&x.grad(), grads, axis);
    });
  return outs;
}

Var dropout(Tape& tape, const Var& x, float p, uint64_t seed, bool training) {
  const Tensor& xv = value_of(x, "dropout", "x");
  ops::detail::check_dropout_p(p);
  // Like PyTorch, eval-mode dropout hands back its input itself.
  if (!training || p == 0.0f) return x;
  Tensor y;
  ops::dropout_forward(&y, xv, p, seed, training);
  bool tracked = tape.needs_grad({&x});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, out, p, seed, training]() { ops::dropout_backward(&x.grad(), out.grad(), p, seed, training); });
  return out;
}

namespace {
template <class T>
void sum_into(Tensor& y, const Tensor& x) {
  // Accumulated in double and in index order: deterministic and accurate for long vectors.
  double s = 0;
  const T* p = x.data<T>();
  for (int64_t i = 0; i < x.numel(); ++i) s += p[i];
  y.data<T>()[0] = static_cast<T>(s);
}

template <class T>
void axpy(Tensor& dst, const Tensor& src, double s) {
  T* d = dst.data<T>();
  const T* p = src.data<T>();
  for (int64_t i = 0; i < src.numel(); ++i) d[i] += static_cast<T>(s * p[i]);
}

// dst += s * src for float tensors of the same numel, on one device.
void add_scaled_impl(Tensor& dst, const Tensor& src, double s) {
  RECUR_IF_CUDA(dst, cuda::axpy(dst, src, static_cast<float>(s)));
  if (src.dtype() == DType::F64) axpy<double>(dst, src, s);
  else axpy<float>(dst, src, s);
}
void add_scaled(Tensor& dst, const Tensor& src, double s, const char* op) {
  ops::check_float_inputs(op, {{"gradient", &dst}, {"source", &src}});
  add_scaled_impl(dst, src, s);
}

void sum_impl(Tensor& y, const Tensor& x) {
  RECUR_IF_CUDA(x, cuda::sum(y, x));
  if (x.dtype() == DType::F64) sum_into<double>(y, x);
  else sum_into<float>(y, x);
}

// x.grad += d(sum) broadcast; on a GPU the scalar is read there (no host round trip).
void sum_backward_impl(Tensor& dx, const Tensor& dout) {
  ops::check_float_inputs("sum_backward", {{"dx", &dx}, {"dout", &dout}});
  RECUR_IF_CUDA(dx, cuda::add_scalar(dx, dout, 1.0f));
  add_scaled_impl(dx, Tensor::full(dx.shape(), 1.0, dx.dtype()), dout.item(0));
}
}  // namespace

Var sum(Tape& tape, const Var& x) {
  DType dt = ops::check_float_inputs("sum", {{"x", &value_of(x, "sum", "x")}});
  Tensor y(Shape{}, dt, x.value().device());
  sum_impl(y, x.value());
  bool tracked = tape.needs_grad({&x});
  Var out = make_output(y, tracked);
  if (tracked) tape.record([x, out]() { sum_backward_impl(x.grad(), out.grad()); });
  return out;
}

Var scale(Tape& tape, const Var& x, float s) {
  DType dt = ops::check_float_inputs("scale", {{"x", &value_of(x, "scale", "x")}});
  Tensor y = Tensor::zeros(x.shape(), dt, x.value().device());
  add_scaled(y, x.value(), s, "scale");
  bool tracked = tape.needs_grad({&x});
  Var out = make_output(y, tracked);
  if (tracked) tape.record([x, out, s]() { add_scaled(x.grad(), out.grad(), s, "scale_backward"); });
  return out;
}

Var reshape(Tape& tape, const Var& x, Shape shape) {
  const bool tracked = tape.needs_grad({&x});
  Var out = make_output(value_of(x, "reshape", "x").view(std::move(shape)), tracked);
  if (tracked) tape.record([x, out]() { x.grad().add_(out.grad()); });
  return out;
}

}  // namespace recur
