// Naive double-precision references of the losses: the spec for src/cpu/loss_cpu.cc.
#include <cmath>
#include <limits>

#include "../checks.h"
#include "recur/ops/loss.h"

namespace recur::ref {

using ops::detail::require_f64;
using ops::prepare_grad;
using ops::prepare_output;

void cross_entropy_forward(Tensor* loss, Tensor* logp, const Tensor& logits, const Tensor& targets,
                           const CrossEntropyOptions& opt) {
  ops::detail::CrossEntropyDims d = ops::detail::check_cross_entropy(logits, targets, opt);
  require_f64(d.dtype, "ref::cross_entropy");
  prepare_output(loss, {}, DType::F64, "ref::cross_entropy", "loss");
  Tensor scratch;
  Tensor* lp = logp ? logp : &scratch;
  prepare_output(lp, logits.shape(), DType::F64, "ref::cross_entropy", "logp");
  const double* Z = logits.data<double>();
  const int64_t* T = targets.data<int64_t>();
  double* LP = lp->data<double>();
  double eps = opt.label_smoothing, total = 0;
  int64_t kept = 0;
  for (int64_t i = 0; i < d.n; ++i) {
    const double* z = Z + i * d.classes;
    double m = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t c = 0; c < d.classes; ++c) m = std::max(m, z[c]);
    for (int64_t c = 0; c < d.classes; ++c) s += std::exp(z[c] - m);
    for (int64_t c = 0; c < d.classes; ++c) LP[i * d.classes + c] = z[c] - m - std::log(s);
    if (T[i] == opt.ignore_index) continue;
    // PyTorch: (1 - eps) * nll + eps * (mean over classes of -logp).
    double smooth = 0;
    for (int64_t c = 0; c < d.classes; ++c) smooth -= LP[i * d.classes + c];
    total += (1 - eps) * -LP[i * d.classes + T[i]] + eps * smooth / static_cast<double>(d.classes);
    ++kept;
  }
  loss->data<double>()[0] = kept ? total / static_cast<double>(kept) : 0.0;
}

void cross_entropy_backward(Tensor* dlogits, const Tensor& dloss, const Tensor& logp, const Tensor& targets,
                            const CrossEntropyOptions& opt) {
  ops::detail::CrossEntropyDims d = ops::detail::check_cross_entropy(logp, targets, opt);
  require_f64(d.dtype, "ref::cross_entropy_backward");
  ops::detail::check_scalar_grad("ref::cross_entropy_backward", dloss, DType::F64);
  if (!prepare_grad(dlogits, logp.shape(), DType::F64, "ref::cross_entropy_backward", "dlogits")) return;
  const int64_t* T = targets.data<int64_t>();
  int64_t kept = 0;
  for (int64_t i = 0; i < d.n; ++i) kept += T[i] != opt.ignore_index;
  if (kept == 0) return;
  double g = dloss.data<double>()[0] / static_cast<double>(kept), eps = opt.label_smoothing;
  const double* LP = logp.data<double>();
  double* D = dlogits->data<double>();
  // d(-logp_k)/dz_c = softmax_c - [c == k]; the target distribution is (1-eps) onehot + eps/C.
  for (int64_t i = 0; i < d.n; ++i) {
    if (T[i] == opt.ignore_index) continue;
    for (int64_t c = 0; c < d.classes; ++c) {
      double target_prob = (c == T[i] ? 1 - eps : 0.0) + eps / static_cast<double>(d.classes);
      D[i * d.classes + c] += g * (std::exp(LP[i * d.classes + c]) - target_prob);
    }
  }
}

void mse_forward(Tensor* loss, const Tensor& pred, const Tensor& target) {
  require_f64(ops::detail::check_mse(pred, target), "ref::mse");
  prepare_output(loss, {}, DType::F64, "ref::mse", "loss");
  const double *P = pred.data<double>(), *T = target.data<double>();
  double s = 0;
  for (int64_t i = 0; i < pred.numel(); ++i) s += (P[i] - T[i]) * (P[i] - T[i]);
  loss->data<double>()[0] = s / static_cast<double>(pred.numel());
}

void mse_backward(Tensor* dpred, const Tensor& dloss, const Tensor& pred, const Tensor& target) {
  require_f64(ops::detail::check_mse(pred, target), "ref::mse_backward");
  ops::detail::check_scalar_grad("ref::mse_backward", dloss, DType::F64);
  if (!prepare_grad(dpred, pred.shape(), DType::F64, "ref::mse_backward", "dpred")) return;
  const double *P = pred.data<double>(), *T = target.data<double>();
  double g = 2 * dloss.data<double>()[0] / static_cast<double>(pred.numel());
  for (int64_t i = 0; i < pred.numel(); ++i) dpred->data<double>()[i] += g * (P[i] - T[i]);
}

}  // namespace recur::ref
