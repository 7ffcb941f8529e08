// Naive double-precision references of the row-wise normalisations: the spec for
// src/cpu/norm_cpu.cc.
#include <cmath>
#include <limits>

#include "../checks.h"
#include "recur/ops/norm.h"

namespace recur::ref {

using ops::detail::require_f64;
using ops::prepare_grad;
using ops::prepare_output;

void layer_norm_forward(Tensor* y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, float eps) {
  ops::detail::RowDims d = ops::detail::check_layer_norm(x, gamma, beta, eps);
  require_f64(d.dtype, "ref::layer_norm");
  prepare_output(y, x.shape(), DType::F64, "ref::layer_norm", "y");
  if (mean) prepare_output(mean, {d.rows}, DType::F64, "ref::layer_norm", "mean");
  if (rstd) prepare_output(rstd, {d.rows}, DType::F64, "ref::layer_norm", "rstd");
  const double *X = x.data<double>(), *G = gamma.data<double>(), *B = beta.data<double>();
  double* Y = y->data<double>();
  for (int64_t r = 0; r < d.rows; ++r) {
    const double* xr = X + r * d.dim;
    double m = 0, v = 0;
    for (int64_t i = 0; i < d.dim; ++i) m += xr[i];
    m /= static_cast<double>(d.dim);
    for (int64_t i = 0; i < d.dim; ++i) v += (xr[i] - m) * (xr[i] - m);
    v /= static_cast<double>(d.dim);
    double s = 1.0 / std::sqrt(v + static_cast<double>(eps));
    for (int64_t i = 0; i < d.dim; ++i) Y[r * d.dim + i] = (xr[i] - m) * s * G[i] + B[i];
    if (mean) mean->data<double>()[r] = m;
    if (rstd) rstd->data<double>()[r] = s;
  }
}

void layer_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd) {
  ops::detail::RowDims d = ops::detail::check_layer_norm_backward(dy, x, gamma, mean, rstd);
  require_f64(d.dtype, "ref::layer_norm_backward");
  bool want_dx = prepare_grad(dx, x.shape(), DType::F64, "ref::layer_norm_backward", "dx");
  bool want_dg = prepare_grad(dgamma, gamma.shape(), DType::F64, "ref::layer_norm_backward", "dgamma");
  bool want_db = prepare_grad(dbeta, gamma.shape(), DType::F64, "ref::layer_norm_backward", "dbeta");
  const double *X = x.data<double>(), *G = gamma.data<double>(), *DY = dy.data<double>();
  const double *M = mean.data<double>(), *S = rstd.data<double>();
  double n = static_cast<double>(d.dim);
  for (int64_t r = 0; r < d.rows; ++r) {
    const double* xr = X + r * d.dim;
    const double* g = DY + r * d.dim;
    // xhat = (x - m) s with m and s functions of the whole row:
    // dx_i = s (dxhat_i - mean_j dxhat_j - xhat_i mean_j dxhat_j xhat_j), dxhat = dy * gamma.
    double mean_dxhat = 0, mean_dxhat_xhat = 0;
    for (int64_t i = 0; i < d.dim; ++i) {
      double xhat = (xr[i] - M[r]) * S[r];
      mean_dxhat += g[i] * G[i] / n;
      mean_dxhat_xhat += g[i] * G[i] * xhat / n;
    }
    for (int64_t i = 0; i < d.dim; ++i) {
      double xhat = (xr[i] - M[r]) * S[r];
      if (want_dx) dx->data<double>()[r * d.dim + i] += S[r] * (g[i] * G[i] - mean_dxhat - xhat * mean_dxhat_xhat);
      if (want_dg) dgamma->data<double>()[i] += g[i] * xhat;
      if (want_db) dbeta->data<double>()[i] += g[i];
    }
  }
}

void softmax_forward(Tensor* y, const Tensor& x) {
  ops::detail::RowDims d = ops::detail::check_rows("ref::softmax", x);
  require_f64(d.dtype, "ref::softmax");
  prepare_output(y, x.shape(), DType::F64, "ref::softmax", "y");
  const double* X = x.data<double>();
  double* Y = y->data<double>();
  for (int64_t r = 0; r < d.rows; ++r) {
    double m = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t i = 0; i < d.dim; ++i) m = std::max(m, X[r * d.dim + i]);
    for (int64_t i = 0; i < d.dim; ++i) s += std::exp(X[r * d.dim + i] - m);
    for (int64_t i = 0; i < d.dim; ++i) Y[r * d.dim + i] = std::exp(X[r * d.dim + i] - m) / s;
  }
}

void softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  ops::detail::RowDims d = ops::detail::check_rows("ref::softmax_backward", y);
  require_f64(ops::detail::check_same_shapes("ref::softmax_backward", {{"dy", &dy}, {"y", &y}}),
              "ref::softmax_backward");
  if (!prepare_grad(dx, y.shape(), DType::F64, "ref::softmax_backward", "dx")) return;
  const double *DY = dy.data<double>(), *Y = y.data<double>();
  double* DX = dx->data<double>();
  // Jacobian dy_j/dx_i = y_j (delta_ij - y_i), applied row by row.
  for (int64_t r = 0; r < d.rows; ++r)
    for (int64_t i = 0; i < d.dim; ++i) {
      double s = 0;
      for (int64_t j = 0; j < d.dim; ++j) {
        double yi = Y[r * d.dim + i], yj = Y[r * d.dim + j];
        s += DY[r * d.dim + j] * yj * ((i == j ? 1.0 : 0.0) - yi);
      }
      DX[r * d.dim + i] += s;
    }
}

void log_softmax_forward(Tensor* y, const Tensor& x) {
  ops::detail::RowDims d = ops::detail::check_rows("ref::log_softmax", x);
  require_f64(d.dtype, "ref::log_softmax");
  prepare_output(y, x.shape(), DType::F64, "ref::log_softmax", "y");
  const double* X = x.data<double>();
  double* Y = y->data<double>();
  for (int64_t r = 0; r < d.rows; ++r) {
    double m = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t i = 0; i < d.dim; ++i) m = std::max(m, X[r * d.dim + i]);
    for (int64_t i = 0; i < d.dim; ++i) s += std::exp(X[r * d.dim + i] - m);
    for (int64_t i = 0; i < d.dim; ++i) Y[r * d.dim + i] = X[r * d.dim + i] - m - std::log(s);
  }
}

void log_softmax_backward(Tensor* dx, const Tensor& dy, const Tensor& y) {
  ops::detail::RowDims d = ops::detail::check_rows("ref::log_softmax_backward", y);
  require_f64(ops::detail::check_same_shapes("ref::log_softmax_backward", {{"dy", &dy}, {"y", &y}}),
              "ref::log_softmax_backward");
  if (!prepare_grad(dx, y.shape(), DType::F64, "ref::log_softmax_backward", "dx")) return;
  const double *DY = dy.data<double>(), *Y = y.data<double>();
  double* DX = dx->data<double>();
  // Jacobian dy_j/dx_i = delta_ij - softmax_i, applied row by row.
  for (int64_t r = 0; r < d.rows; ++r)
    for (int64_t i = 0; i < d.dim; ++i) {
      double s = 0;
      for (int64_t j = 0; j < d.dim; ++j) s += DY[r * d.dim + j] * ((i == j ? 1.0 : 0.0) - std::exp(Y[r * d.dim + i]));
      DX[r * d.dim + i] += s;
    }
}

}  // namespace recur::ref
