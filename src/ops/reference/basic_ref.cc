// Naive double-precision references of the basic ops: plain index loops, the spec for the fast
// paths in src/cpu/basic_cpu.cc.
#include <cmath>
#include <numeric>

#include "../checks.h"
#include "recur/core/rng.h"
#include "recur/ops/basic.h"

namespace recur::ref {

using ops::detail::require_f64;
using ops::prepare_grad;
using ops::prepare_output;

void linear_forward(Tensor* y, const Tensor& x, const Tensor& w, const Tensor* b) {
  ops::detail::LinearDims d = ops::detail::check_linear(x, w, b);
  require_f64(d.dtype, "ref::linear");
  prepare_output(y, d.y_shape, DType::F64, "ref::linear", "y");
  const double *X = x.data<double>(), *W = w.data<double>(), *B = b ? b->data<double>() : nullptr;
  double* Y = y->data<double>();
  for (int64_t n = 0; n < d.rows; ++n)
    for (int64_t o = 0; o < d.out; ++o) {
      double s = B ? B[o] : 0.0;
      for (int64_t i = 0; i < d.in; ++i) s += X[n * d.in + i] * W[o * d.in + i];
      Y[n * d.out + o] = s;
    }
}

void linear_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w) {
  ops::detail::LinearDims d = ops::detail::check_linear_backward(dy, x, w);
  require_f64(d.dtype, "ref::linear_backward");
  const double *X = x.data<double>(), *W = w.data<double>(), *DY = dy.data<double>();
  if (prepare_grad(dx, x.shape(), DType::F64, "ref::linear_backward", "dx")) {
    double* DX = dx->data<double>();
    for (int64_t n = 0; n < d.rows; ++n)
      for (int64_t i = 0; i < d.in; ++i) {
        double s = 0;
        for (int64_t o = 0; o < d.out; ++o) s += DY[n * d.out + o] * W[o * d.in + i];
        DX[n * d.in + i] += s;
      }
  }
  if (prepare_grad(dw, w.shape(), DType::F64, "ref::linear_backward", "dw")) {
    double* DW = dw->data<double>();
    for (int64_t o = 0; o < d.out; ++o)
      for (int64_t i = 0; i < d.in; ++i) {
        double s = 0;
        for (int64_t n = 0; n < d.rows; ++n) s += DY[n * d.out + o] * X[n * d.in + i];
        DW[o * d.in + i] += s;
      }
  }
  if (prepare_grad(db, {d.out}, DType::F64, "ref::linear_backward", "db")) {
    double* DB = db->data<double>();
    for (int64_t o = 0; o < d.out; ++o) {
      double s = 0;
      for (int64_t n = 0; n < d.rows; ++n) s += DY[n * d.out + o];
      DB[o] += s;
    }
  }
}

void embedding_forward(Tensor* y, const Tensor& ids, const Tensor& w, int64_t padding_idx) {
  ops::detail::EmbeddingDims d = ops::detail::check_embedding(ids, w, padding_idx);
  require_f64(d.dtype, "ref::embedding");
  prepare_output(y, d.y_shape, DType::F64, "ref::embedding", "y");
  const int64_t* id = ids.data<int64_t>();
  const double* W = w.data<double>();
  double* Y = y->data<double>();
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t k = 0; k < d.dim; ++k) Y[n * d.dim + k] = id[n] == padding_idx ? 0.0 : W[id[n] * d.dim + k];
}

void embedding_backward(Tensor* dw, const Tensor& dy, const Tensor& ids, int64_t padding_idx) {
  RECUR_CHECK(dw != nullptr && dw->defined(), "ref::embedding_backward: dw must be a defined (V, D) tensor");
  ops::detail::EmbeddingDims d = ops::detail::check_embedding(ids, *dw, padding_idx);
  require_f64(d.dtype, "ref::embedding_backward");
  dy.check_shape(d.y_shape, "ref::embedding_backward: dy");
  const int64_t* id = ids.data<int64_t>();
  const double* DY = dy.data<double>();
  double* DW = dw->data<double>();
  for (int64_t n = 0; n < d.n; ++n)
    if (id[n] != padding_idx)
      for (int64_t k = 0; k < d.dim; ++k) DW[id[n] * d.dim + k] += DY[n * d.dim + k];
}

namespace {
// y[i] = f(a[i], b[i]) over same-shaped F64 tensors.
template <class F>
void binary(const char* op, Tensor* y, const Tensor& a, const Tensor& b, F f) {
  require_f64(ops::detail::check_same_shapes(op, {{"a", &a}, {"b", &b}}), op);
  prepare_output(y, a.shape(), DType::F64, op, "y");
  const double *A = a.data<double>(), *B = b.data<double>();
  double* Y = y->data<double>();
  for (int64_t i = 0; i < a.numel(); ++i) Y[i] = f(A[i], B[i]);
}

template <class F>
void unary(const char* op, Tensor* y, const Tensor& x, F f) {
  require_f64(ops::check_float_inputs(op, {{"x", &x}}), op);
  prepare_output(y, x.shape(), DType::F64, op, "y");
  const double* X = x.data<double>();
  double* Y = y->data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) Y[i] = f(X[i]);
}

// dx[i] += g(dy[i], y[i]).
template <class G>
void unary_backward(const char* op, Tensor* dx, const Tensor& dy, const Tensor& y, G g) {
  require_f64(ops::detail::check_same_shapes(op, {{"dy", &dy}, {"y", &y}}), op);
  if (!prepare_grad(dx, y.shape(), DType::F64, op, "dx")) return;
  const double *DY = dy.data<double>(), *Y = y.data<double>();
  double* DX = dx->data<double>();
  for (int64_t i = 0; i < y.numel(); ++i) DX[i] += g(DY[i], Y[i]);
}
}  // namespace

void add_forward(Tensor* y, const Tensor& a, const Tensor& b) {
  binary("ref::add", y, a, b, [](double u, double v) { return u + v; });
}

void add_backward(Tensor* da, Tensor* db, const Tensor& dy) {
  require_f64(ops::check_float_inputs("ref::add_backward", {{"dy", &dy}}), "ref::add_backward");
  for (Tensor* g : {da, db})
    if (prepare_grad(g, dy.shape(), DType::F64, "ref::add_backward", "grad"))
      for (int64_t i = 0; i < dy.numel(); ++i) g->data<double>()[i] += dy.data<double>()[i];
}

void mul_forward(Tensor* y, const Tensor& a, const Tensor& b) {
  binary("ref::mul", y, a, b, [](double u, double v) { return u * v; });
}

void mul_backward(Tensor* da, Tensor* db, const Tensor& dy, const Tensor& a, const Tensor& b) {
  require_f64(ops::detail::check_same_shapes("ref::mul_backward", {{"dy", &dy}, {"a", &a}, {"b", &b}}),
              "ref::mul_backward");
  const double *DY = dy.data<double>(), *A = a.data<double>(), *B = b.data<double>();
  if (prepare_grad(da, dy.shape(), DType::F64, "ref::mul_backward", "da"))
    for (int64_t i = 0; i < dy.numel(); ++i) da->data<double>()[i] += DY[i] * B[i];
  if (prepare_grad(db, dy.shape(), DType::F64, "ref::mul_backward", "db"))
    for (int64_t i = 0; i < dy.numel(); ++i) db->data<double>()[i] += DY[i] * A[i];
}

void tanh_forward(Tensor* y, const Tensor& x) {
  unary("ref::tanh", y, x, [](double v) { return std::tanh(v); });
}
void tanh_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  unary_backward("ref::tanh_backward", dx, dy, y, [](double g, double v) { return g * (1 - v * v); });
}
void sigmoid_forward(Tensor* y, const Tensor& x) {
  unary("ref::sigmoid", y, x, [](double v) { return 1 / (1 + std::exp(-v)); });
}
void sigmoid_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  unary_backward("ref::sigmoid_backward", dx, dy, y, [](double g, double v) { return g * v * (1 - v); });
}
void relu_forward(Tensor* y, const Tensor& x) {
  unary("ref::relu", y, x, [](double v) { return v > 0 ? v : 0.0; });
}
void relu_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  unary_backward("ref::relu_backward", dx, dy, y, [](double g, double v) { return v > 0 ? g : 0.0; });
}

namespace {
// Walks every element of the whole (outer, total, inner) tensor, telling `f` which part it falls in
// and its flat index inside that part.
template <class F>
void for_each_part_element(const ops::detail::AxisParts& a, F f) {
  for (int64_t o = 0; o < a.outer; ++o)
    for (int64_t t = 0; t < a.total; ++t)
      for (int64_t k = 0; k < a.inner; ++k) {
        size_t part = 0;
        int64_t local = t;
        while (local >= a.sizes[part]) local -= a.sizes[part++];
        int64_t whole_index = (o * a.total + t) * a.inner + k;
        int64_t part_index = (o * a.sizes[part] + local) * a.inner + k;
        f(whole_index, part, part_index);
      }
}
}  // namespace

void concat_forward(Tensor* y, const std::vector<Tensor>& xs, int64_t axis) {
  ops::detail::AxisParts a = ops::detail::check_concat(xs, axis);
  require_f64(a.dtype, "ref::concat");
  prepare_output(y, a.whole, DType::F64, "ref::concat", "y");
  double* Y = y->data<double>();
  for_each_part_element(a, [&](int64_t w, size_t p, int64_t i) { Y[w] = xs[p].data<double>()[i]; });
}

void concat_backward(const std::vector<Tensor*>& dxs, const Tensor& dy, const std::vector<int64_t>& sizes,
                     int64_t axis) {
  ops::detail::AxisParts a = ops::detail::check_split(dy, sizes, axis);
  require_f64(a.dtype, "ref::concat_backward");
  RECUR_CHECK(dxs.size() == sizes.size(), "ref::concat_backward: {} gradients for {} sizes", dxs.size(), sizes.size());
  std::vector<bool> want(dxs.size());
  for (size_t p = 0; p < dxs.size(); ++p)
    want[p] = prepare_grad(dxs[p], a.part_shape(p), DType::F64, "ref::concat_backward", "dx");
  const double* DY = dy.data<double>();
  for_each_part_element(a, [&](int64_t w, size_t p, int64_t i) {
    if (want[p]) dxs[p]->data<double>()[i] += DY[w];
  });
}

void split_forward(std::vector<Tensor>* ys, const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis) {
  ops::detail::AxisParts a = ops::detail::check_split(x, sizes, axis);
  require_f64(a.dtype, "ref::split");
  RECUR_CHECK(ys != nullptr, "ref::split: output list is null");
  ys->resize(sizes.size());
  for (size_t p = 0; p < sizes.size(); ++p) prepare_output(&(*ys)[p], a.part_shape(p), DType::F64, "ref::split", "y");
  const double* X = x.data<double>();
  for_each_part_element(a, [&](int64_t w, size_t p, int64_t i) { (*ys)[p].data<double>()[i] = X[w]; });
}

void split_backward(Tensor* dx, const std::vector<Tensor>& dys, int64_t axis) {
  ops::detail::AxisParts a = ops::detail::check_concat(dys, axis);
  require_f64(a.dtype, "ref::split_backward");
  if (!prepare_grad(dx, a.whole, DType::F64, "ref::split_backward", "dx")) return;
  double* DX = dx->data<double>();
  for_each_part_element(a, [&](int64_t w, size_t p, int64_t i) { DX[w] += dys[p].data<double>()[i]; });
}

namespace {
// The dropout multiplier of element i: 0 when dropped, 1/(1-p) when kept, 1 in eval mode.
double dropout_factor(int64_t i, float p, uint64_t seed, bool training) {
  if (!training || p == 0.0f) return 1.0;
  if (uniform_at(seed, static_cast<uint64_t>(i)) < p) return 0.0;
  return 1.0 / (1.0 - static_cast<double>(p));
}
}  // namespace

void dropout_forward(Tensor* y, const Tensor& x, float p, uint64_t seed, bool training) {
  require_f64(ops::check_float_inputs("ref::dropout", {{"x", &x}}), "ref::dropout");
  ops::detail::check_dropout_p(p);
  prepare_output(y, x.shape(), DType::F64, "ref::dropout", "y");
  for (int64_t i = 0; i < x.numel(); ++i)
    y->data<double>()[i] = x.data<double>()[i] * dropout_factor(i, p, seed, training);
}

void dropout_backward(Tensor* dx, const Tensor& dy, float p, uint64_t seed, bool training) {
  require_f64(ops::check_float_inputs("ref::dropout_backward", {{"dy", &dy}}), "ref::dropout_backward");
  ops::detail::check_dropout_p(p);
  if (!prepare_grad(dx, dy.shape(), DType::F64, "ref::dropout_backward", "dx")) return;
  for (int64_t i = 0; i < dy.numel(); ++i)
    dx->data<double>()[i] += dy.data<double>()[i] * dropout_factor(i, p, seed, training);
}

}  // namespace recur::ref
