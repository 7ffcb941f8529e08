// Naive double-precision references of the image ops: direct loops over every output and window
// position (no im2col, no blocking), the spec for src/cpu/conv_cpu.cc.
#include <cmath>
#include <limits>

#include "../checks.h"
#include "../conv_checks.h"
#include "recur/ops/conv.h"

namespace recur::ref {

using ops::prepare_grad;
using ops::prepare_output;
using ops::detail::require_f64;

namespace {
// Index of (a, b, c, d) in a row-major 4-D tensor of dims (.., B, C, D).
inline int64_t at4(int64_t a, int64_t b, int64_t c, int64_t d, int64_t nb, int64_t nc, int64_t nd) {
  return ((a * nb + b) * nc + c) * nd + d;
}
}  // namespace

void conv2d_forward(Tensor* y, const Tensor& x, const Tensor& w, const Tensor& bias, const ops::Conv2dOptions& opt) {
  const Tensor* b = bias.defined() ? &bias : nullptr;
  ops::detail::ConvCheck c = ops::detail::check_conv("ref::conv2d", x, w, b, opt);
  require_f64(c.dtype, "ref::conv2d");
  const ops::Conv2dGeom& g = c.g;
  prepare_output(y, {g.n, g.o, g.oh, g.ow}, DType::F64, "ref::conv2d", "y");
  const double *X = x.data<double>(), *W = w.data<double>();
  double* Y = y->data<double>();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < g.o; ++o)
      for (int64_t oh = 0; oh < g.oh; ++oh)
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          double s = b ? b->data<double>()[o] : 0.0;
          for (int64_t ch = 0; ch < g.c; ++ch)
            for (int64_t i = 0; i < g.kh; ++i)
              for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t ih = oh * opt.stride_h - opt.pad_h + i * opt.dil_h;
                const int64_t iw = ow * opt.stride_w - opt.pad_w + j * opt.dil_w;
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                s += X[at4(n, ch, ih, iw, g.c, g.h, g.w)] * W[at4(o, ch, i, j, g.c, g.kh, g.kw)];
              }
          Y[at4(n, o, oh, ow, g.o, g.oh, g.ow)] = s;
        }
}

void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* dbias, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ops::Conv2dOptions& opt) {
  ops::detail::ConvCheck c = ops::detail::check_conv_backward("ref::conv2d_backward", dy, x, w, opt);
  require_f64(c.dtype, "ref::conv2d_backward");
  const ops::Conv2dGeom& g = c.g;
  bool want_dx = prepare_grad(dx, x.shape(), DType::F64, "ref::conv2d_backward", "dx");
  bool want_dw = prepare_grad(dw, w.shape(), DType::F64, "ref::conv2d_backward", "dw");
  bool want_db = prepare_grad(dbias, {g.o}, DType::F64, "ref::conv2d_backward", "dbias");
  const double *X = x.data<double>(), *W = w.data<double>(), *DY = dy.data<double>();
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < g.o; ++o)
      for (int64_t oh = 0; oh < g.oh; ++oh)
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          const double gy = DY[at4(n, o, oh, ow, g.o, g.oh, g.ow)];
          if (want_db) dbias->data<double>()[o] += gy;
          for (int64_t ch = 0; ch < g.c; ++ch)
            for (int64_t i = 0; i < g.kh; ++i)
              for (int64_t j = 0; j < g.kw; ++j) {
                const int64_t ih = oh * opt.stride_h - opt.pad_h + i * opt.dil_h;
                const int64_t iw = ow * opt.stride_w - opt.pad_w + j * opt.dil_w;
                if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
                const int64_t xi = at4(n, ch, ih, iw, g.c, g.h, g.w), wi = at4(o, ch, i, j, g.c, g.kh, g.kw);
                if (want_dx) dx->data<double>()[xi] += gy * W[wi];
                if (want_dw) dw->data<double>()[wi] += gy * X[xi];
              }
        }
}

void max_pool2d_forward(Tensor* y, Tensor* argmax, const Tensor& x, const ops::Pool2dOptions& opt) {
  ops::detail::PoolCheck c = ops::detail::check_pool2d("ref::max_pool2d", x, opt);
  require_f64(c.dtype, "ref::max_pool2d");
  const ops::Pool2dGeom& g = c.g;
  const Shape out{g.n, g.c, g.oh, g.ow};
  prepare_output(y, out, DType::F64, "ref::max_pool2d", "y");
  if (argmax) prepare_output(argmax, out, DType::I64, "ref::max_pool2d", "argmax");
  const double* X = x.data<double>();
  for (int64_t p = 0; p < g.n * g.c; ++p)
    for (int64_t oh = 0; oh < g.oh; ++oh)
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        // The window padded with -inf; the first maximum (in row-major order) wins, NaN beats all.
        double best = -std::numeric_limits<double>::infinity();
        int64_t at = -1;
        for (int64_t i = 0; i < opt.kernel_h; ++i)
          for (int64_t j = 0; j < opt.kernel_w; ++j) {
            const int64_t ih = oh * opt.stride_h - opt.pad_h + i, iw = ow * opt.stride_w - opt.pad_w + j;
            if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;
            const double v = X[(p * g.h + ih) * g.w + iw];
            if (at < 0 || v > best || std::isnan(v)) {
              best = v;
              at = ih * g.w + iw;
            }
          }
        const int64_t q = (p * g.oh + oh) * g.ow + ow;
        y->data<double>()[q] = best;
        if (argmax) argmax->data<int64_t>()[q] = at;
      }
}

void max_pool2d_backward(Tensor* dx, const Tensor& dy, const Tensor& argmax, const Shape& x_shape,
                         const ops::Pool2dOptions& opt) {
  ops::detail::PoolCheck c = ops::detail::check_pool2d_backward("ref::max_pool2d_backward", dy, x_shape, opt);
  ops::detail::check_pool2d_argmax("ref::max_pool2d_backward", argmax, dy, c.g);
  require_f64(c.dtype, "ref::max_pool2d_backward");
  if (!prepare_grad(dx, x_shape, DType::F64, "ref::max_pool2d_backward", "dx")) return;
  const ops::Pool2dGeom& g = c.g;
  const int64_t* A = argmax.data<int64_t>();
  for (int64_t p = 0; p < g.n * g.c; ++p)
    for (int64_t q = 0; q < g.oh * g.ow; ++q)
      dx->data<double>()[p * g.h * g.w + A[p * g.oh * g.ow + q]] += dy.data<double>()[p * g.oh * g.ow + q];
}

void avg_pool2d_forward(Tensor* y, const Tensor& x, const ops::Pool2dOptions& opt) {
  ops::detail::PoolCheck c = ops::detail::check_pool2d("ref::avg_pool2d", x, opt);
  require_f64(c.dtype, "ref::avg_pool2d");
  const ops::Pool2dGeom& g = c.g;
  prepare_output(y, {g.n, g.c, g.oh, g.ow}, DType::F64, "ref::avg_pool2d", "y");
  const double* X = x.data<double>();
  for (int64_t p = 0; p < g.n * g.c; ++p)
    for (int64_t oh = 0; oh < g.oh; ++oh)
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        // Padding counts as zeros in the window (count_include_pad).
        double s = 0;
        for (int64_t i = 0; i < opt.kernel_h; ++i)
          for (int64_t j = 0; j < opt.kernel_w; ++j) {
            const int64_t ih = oh * opt.stride_h - opt.pad_h + i, iw = ow * opt.stride_w - opt.pad_w + j;
            if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) s += X[(p * g.h + ih) * g.w + iw];
          }
        y->data<double>()[(p * g.oh + oh) * g.ow + ow] = s / static_cast<double>(opt.kernel_h * opt.kernel_w);
      }
}

void avg_pool2d_backward(Tensor* dx, const Tensor& dy, const Shape& x_shape, const ops::Pool2dOptions& opt) {
  ops::detail::PoolCheck c = ops::detail::check_pool2d_backward("ref::avg_pool2d_backward", dy, x_shape, opt);
  require_f64(c.dtype, "ref::avg_pool2d_backward");
  if (!prepare_grad(dx, x_shape, DType::F64, "ref::avg_pool2d_backward", "dx")) return;
  const ops::Pool2dGeom& g = c.g;
  for (int64_t p = 0; p < g.n * g.c; ++p)
    for (int64_t oh = 0; oh < g.oh; ++oh)
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        const double v =
            dy.data<double>()[(p * g.oh + oh) * g.ow + ow] / static_cast<double>(opt.kernel_h * opt.kernel_w);
        for (int64_t i = 0; i < opt.kernel_h; ++i)
          for (int64_t j = 0; j < opt.kernel_w; ++j) {
            const int64_t ih = oh * opt.stride_h - opt.pad_h + i, iw = ow * opt.stride_w - opt.pad_w + j;
            if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) dx->data<double>()[(p * g.h + ih) * g.w + iw] += v;
          }
      }
}

void group_norm_forward(Tensor* y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t groups, float eps) {
  ops::detail::GroupNormCheck d = ops::detail::check_group_norm("ref::group_norm", x, gamma, beta, groups, eps);
  require_f64(d.dtype, "ref::group_norm");
  prepare_output(y, x.shape(), DType::F64, "ref::group_norm", "y");
  if (mean) prepare_output(mean, {d.n * groups}, DType::F64, "ref::group_norm", "mean");
  if (rstd) prepare_output(rstd, {d.n * groups}, DType::F64, "ref::group_norm", "rstd");
  const int64_t cg = d.c / groups, block = cg * d.s;
  const double *X = x.data<double>(), *G = gamma.data<double>(), *B = beta.data<double>();
  double* Y = y->data<double>();
  for (int64_t i = 0; i < d.n * groups; ++i) {
    // Block i = (n, group) is contiguous: channels [group * cg, (group + 1) * cg) of image n.
    const double* xb = X + i * block;
    double m = 0, v = 0;
    for (int64_t k = 0; k < block; ++k) m += xb[k];
    m /= static_cast<double>(block);
    for (int64_t k = 0; k < block; ++k) v += (xb[k] - m) * (xb[k] - m);
    v /= static_cast<double>(block);
    const double r = 1.0 / std::sqrt(v + static_cast<double>(eps));
    for (int64_t k = 0; k < block; ++k) {
      const int64_t ch = (i % groups) * cg + k / d.s;
      Y[i * block + k] = (xb[k] - m) * r * G[ch] + B[ch];
    }
    if (mean) mean->data<double>()[i] = m;
    if (rstd) rstd->data<double>()[i] = r;
  }
}

void group_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t groups) {
  ops::detail::GroupNormCheck d =
      ops::detail::check_group_norm_backward("ref::group_norm_backward", dy, x, gamma, mean, rstd, groups);
  require_f64(d.dtype, "ref::group_norm_backward");
  bool want_dx = prepare_grad(dx, x.shape(), DType::F64, "ref::group_norm_backward", "dx");
  bool want_dg = prepare_grad(dgamma, gamma.shape(), DType::F64, "ref::group_norm_backward", "dgamma");
  bool want_db = prepare_grad(dbeta, gamma.shape(), DType::F64, "ref::group_norm_backward", "dbeta");
  const int64_t cg = d.c / groups, block = cg * d.s;
  const double *X = x.data<double>(), *G = gamma.data<double>(), *DY = dy.data<double>();
  const double *M = mean.data<double>(), *S = rstd.data<double>();
  const double count = static_cast<double>(block);
  for (int64_t i = 0; i < d.n * groups; ++i) {
    auto channel = [&](int64_t k) { return (i % groups) * cg + k / d.s; };
    // As layer norm over the block: dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
    // dxhat = dy * gamma[channel].
    double mean_dxhat = 0, mean_dxhat_xhat = 0;
    for (int64_t k = 0; k < block; ++k) {
      const double xhat = (X[i * block + k] - M[i]) * S[i], dxhat = DY[i * block + k] * G[channel(k)];
      mean_dxhat += dxhat / count;
      mean_dxhat_xhat += dxhat * xhat / count;
    }
    for (int64_t k = 0; k < block; ++k) {
      const double xhat = (X[i * block + k] - M[i]) * S[i], g = DY[i * block + k];
      if (want_dx)
        dx->data<double>()[i * block + k] += S[i] * (g * G[channel(k)] - mean_dxhat - xhat * mean_dxhat_xhat);
      if (want_dg) dgamma->data<double>()[channel(k)] += g * xhat;
      if (want_db) dbeta->data<double>()[channel(k)] += g;
    }
  }
}

}  // namespace recur::ref
