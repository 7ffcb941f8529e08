// Attention pooling: the fast float path walks the packed layout once per step; the reference
// gathers each sequence's rows and works on them alone.
#include "recur/ops/attention_pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "checks.h"
#include "recur/ops/util.h"

namespace recur {

namespace {

void check(const Tensor& x, const Tensor& scores, const PackedBatch& pb, DType dt) {
  RECUR_CHECK(x.ndim() == 2 && x.dim(0) == pb.tokens(), "attention_pool: x must be (N={}, H), got {}", pb.tokens(),
              x.shape_str());
  RECUR_CHECK(scores.ndim() == 1 && scores.dim(0) == pb.tokens(), "attention_pool: scores must be (N={}), got {}",
              pb.tokens(), scores.shape_str());
  RECUR_CHECK(x.dtype() == dt && scores.dtype() == dt, "attention_pool: expected {} tensors, got {} and {}",
              dtype_name(dt), dtype_name(x.dtype()), dtype_name(scores.dtype()));
  // One device for both; F64 (the reference) on the CPU only.
  ops::check_float_inputs("attention_pool", {{"x", &x}, {"scores", &scores}});
}

// The packed rows of original sequence b, in time order.
std::vector<int64_t> rows_of(const PackedBatch& pb, int64_t b) {
  std::vector<int64_t> rows;
  const int64_t j = pb.unsorted_indices[static_cast<size_t>(b)];
  for (int64_t t = 0; t < pb.lengths[static_cast<size_t>(b)]; ++t) rows.push_back(pb.row(t, j));
  return rows;
}

}  // namespace

namespace ops {

namespace {

// The CPU path in float (the fast path) or double (a whole model run in double for gradient checks).
template <class T>
void pool_forward_cpu(Tensor* y, Tensor* alpha, const Tensor& x, const Tensor& scores, const PackedBatch& pb) {
  const int64_t B = pb.batch(), H = x.dim(1);
  *y = Tensor::zeros({B, H}, x.dtype());
  *alpha = Tensor({pb.tokens()}, x.dtype());
  // Per sorted position: running max and sum of exp over its steps (two passes over the layout).
  std::vector<T> mx(static_cast<size_t>(B) * 2, T(0));  // max, then sum, per position (one allocation)
  T* sum = mx.data() + B;
  std::fill(mx.begin(), mx.begin() + B, -std::numeric_limits<T>::infinity());
  const T* s = scores.data<T>();
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j)
      mx[static_cast<size_t>(j)] = std::max(mx[static_cast<size_t>(j)], s[pb.row(t, j)]);
  T* a = alpha->data<T>();
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j) {
      const int64_t r = pb.row(t, j);
      a[r] = std::exp(s[r] - mx[static_cast<size_t>(j)]);
      sum[static_cast<size_t>(j)] += a[r];
    }
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j) {
      const int64_t r = pb.row(t, j);
      a[r] /= sum[static_cast<size_t>(j)];
      T* yb = y->data<T>() + pb.sorted_indices[static_cast<size_t>(j)] * H;
      const T* xr = x.data<T>() + r * H;
      for (int64_t h = 0; h < H; ++h) yb[h] += a[r] * xr[h];
    }
}

template <class T>
void pool_backward_cpu(Tensor* dx, Tensor* dscores, const Tensor& dy, const Tensor& x, const Tensor& alpha,
                       const PackedBatch& pb) {
  const int64_t B = pb.batch(), H = x.dim(1);
  const T* a = alpha.data<T>();
  // dalpha_r = dy_b . x_r; dscore_r = alpha_r (dalpha_r - sum over b's rows of alpha dalpha).
  std::vector<T> dalpha(static_cast<size_t>(pb.tokens()));
  std::vector<T> dot(static_cast<size_t>(B), T(0));
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j) {
      const int64_t r = pb.row(t, j);
      const T* dyb = dy.data<T>() + pb.sorted_indices[static_cast<size_t>(j)] * H;
      const T* xr = x.data<T>() + r * H;
      T d = 0;
      for (int64_t h = 0; h < H; ++h) d += dyb[h] * xr[h];
      dalpha[static_cast<size_t>(r)] = d;
      dot[static_cast<size_t>(j)] += a[r] * d;
      if (dx) {
        T* dxr = dx->data<T>() + r * H;
        for (int64_t h = 0; h < H; ++h) dxr[h] += a[r] * dyb[h];
      }
    }
  if (dscores)
    for (int64_t t = 0; t < pb.steps(); ++t)
      for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j) {
        const int64_t r = pb.row(t, j);
        dscores->data<T>()[r] += a[r] * (dalpha[static_cast<size_t>(r)] - dot[static_cast<size_t>(j)]);
      }
}

}  // namespace

void attention_pool_forward(Tensor* y, Tensor* alpha, const Tensor& x, const Tensor& scores, const PackedBatch& pb) {
  check(x, scores, pb, x.dtype() == DType::F64 ? DType::F64 : DType::F32);
  const int64_t B = pb.batch(), H = x.dim(1);
#ifdef RECUR_HAS_CUDA
  if (x.device().is_cuda()) {
    *y = Tensor({B, H}, DType::F32, x.device());
    *alpha = Tensor({pb.tokens()}, DType::F32, x.device());
    cuda::attention_pool_forward(*y, *alpha, x, scores, pb);
    return;
  }
#endif
  (void)B;
  (void)H;
  if (x.dtype() == DType::F64)
    pool_forward_cpu<double>(y, alpha, x, scores, pb);
  else
    pool_forward_cpu<float>(y, alpha, x, scores, pb);
}

void attention_pool_backward(Tensor* dx, Tensor* dscores, const Tensor& dy, const Tensor& x, const Tensor& alpha,
                             const PackedBatch& pb) {
  const DType dt = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  check(x, alpha, pb, dt);
  const int64_t B = pb.batch(), H = x.dim(1);
  dy.check_shape({B, H}, "attention_pool backward: dy");
  ops::check_float_inputs("attention_pool_backward", {{"x", &x}, {"alpha", &alpha}, {"dy", &dy}});
#ifdef RECUR_HAS_CUDA
  if (x.device().is_cuda()) {
    // Gradient slots as everywhere else: allocated (zeros, on x's GPU) when undefined, else checked.
    const bool want_dx = ops::prepare_grad(dx, {pb.tokens(), H}, DType::F32, "attention_pool_backward", "dx", x.device());
    const bool want_ds =
        ops::prepare_grad(dscores, {pb.tokens()}, DType::F32, "attention_pool_backward", "dscores", x.device());
    cuda::attention_pool_backward(want_dx ? dx : nullptr, want_ds ? dscores : nullptr, dy, x, alpha, pb);
    return;
  }
#endif
  if (dt == DType::F64)
    pool_backward_cpu<double>(dx, dscores, dy, x, alpha, pb);
  else
    pool_backward_cpu<float>(dx, dscores, dy, x, alpha, pb);
}

}  // namespace ops

namespace ref {

void attention_pool_forward(Tensor* y, const Tensor& x, const Tensor& scores, const PackedBatch& pb) {
  check(x, scores, pb, DType::F64);
  const int64_t H = x.dim(1);
  *y = Tensor::zeros({pb.batch(), H}, DType::F64);
  for (int64_t b = 0; b < pb.batch(); ++b) {
    const auto rows = rows_of(pb, b);
    double z = 0;
    for (int64_t r : rows) z += std::exp(scores.data<double>()[r]);
    for (int64_t r : rows)
      for (int64_t h = 0; h < H; ++h)
        y->data<double>()[b * H + h] += std::exp(scores.data<double>()[r]) / z * x.data<double>()[r * H + h];
  }
}

void attention_pool_backward(Tensor* dx, Tensor* dscores, const Tensor& dy, const Tensor& x, const Tensor& scores,
                             const PackedBatch& pb) {
  check(x, scores, pb, DType::F64);
  const int64_t H = x.dim(1);
  for (int64_t b = 0; b < pb.batch(); ++b) {
    const auto rows = rows_of(pb, b);
    std::vector<double> alpha;
    double z = 0;
    for (int64_t r : rows) z += std::exp(scores.data<double>()[r]);
    for (int64_t r : rows) alpha.push_back(std::exp(scores.data<double>()[r]) / z);
    // The softmax Jacobian written out: dscore_r = sum_q dL/dalpha_q * alpha_q (delta_qr - alpha_r).
    for (size_t i = 0; i < rows.size(); ++i) {
      double ds = 0;
      for (size_t q = 0; q < rows.size(); ++q) {
        double dalpha_q = 0;
        for (int64_t h = 0; h < H; ++h) dalpha_q += dy.data<double>()[b * H + h] * x.data<double>()[rows[q] * H + h];
        ds += dalpha_q * alpha[q] * ((q == i ? 1.0 : 0.0) - alpha[i]);
      }
      if (dscores) dscores->data<double>()[rows[i]] += ds;
      if (dx)
        for (int64_t h = 0; h < H; ++h) dx->data<double>()[rows[i] * H + h] += alpha[i] * dy.data<double>()[b * H + h];
    }
  }
}

}  // namespace ref

Var attention_pool(Tape& tape, const Var& x, const Var& scores, const PackedBatch& pb) {
  Tensor y, alpha;
  ops::attention_pool_forward(&y, &alpha, x.value(), scores.value(), pb);
  const bool tracked = tape.needs_grad({&x, &scores});
  Var out = make_output(y, tracked);
  if (tracked)
    tape.record([x, scores, out, alpha, pb]() {
      ops::attention_pool_backward(x.requires_grad() ? &x.grad() : nullptr,
                                   scores.requires_grad() ? &scores.grad() : nullptr, out.grad(), x.value(), alpha, pb);
    });
  return out;
}

}  // namespace recur
