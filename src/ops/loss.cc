#include "recur/ops/loss.h"

#include "../cpu/loss_cpu.h"
#include "checks.h"
#include "recur/ops/util.h"

namespace recur::ops {

namespace detail {

CrossEntropyDims check_cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& opt) {
  DType dt = check_float_inputs("cross_entropy", {{"logits", &logits}});
  check_index_tensor(targets, "cross_entropy", "targets");
  check_same_device("cross_entropy", {{"logits", &logits}, {"targets", &targets}});
  RECUR_CHECK(logits.ndim() == 2 && logits.dim(1) >= 1, "cross_entropy: logits must be (N, C) with C >= 1, got {}",
              logits.shape_str());
  RECUR_CHECK(targets.shape() == Shape{logits.dim(0)}, "cross_entropy: targets {} do not match logits {} (expected ({}))",
              targets.shape_str(), logits.shape_str(), logits.dim(0));
  RECUR_CHECK(opt.label_smoothing >= 0.0f && opt.label_smoothing <= 1.0f,
              "cross_entropy: label_smoothing = {} is not in [0, 1]", opt.label_smoothing);
  int64_t C = logits.dim(1);
  // GPU targets are validated on a host copy (a sync; clear errors matter more than speed here).
  const Tensor host_targets = targets.cpu();
  const int64_t* t = host_targets.data<int64_t>();
  for (int64_t i = 0; i < targets.numel(); ++i)
    RECUR_CHECK(t[i] == opt.ignore_index || (t[i] >= 0 && t[i] < C),
                "cross_entropy: target {} in row {} is out of range for {} classes (ignore_index {})", t[i], i, C,
                opt.ignore_index);
  return {logits.dim(0), C, dt};
}

void check_scalar_grad(const char* op, const Tensor& dloss, DType dtype, const Tensor* input) {
  check_float_inputs(op, {{"dloss", &dloss}});
  check_same_device(op, {{"input", input}, {"dloss", &dloss}});
  RECUR_CHECK(dloss.numel() == 1 && dloss.dtype() == dtype, "{}: dloss must be a {} scalar, got {} {}", op,
              dtype_name(dtype), dloss.shape_str(), dtype_name(dloss.dtype()));
}

}  // namespace detail

void cross_entropy_forward(Tensor* loss, Tensor* logp, const Tensor& logits, const Tensor& targets,
                           const CrossEntropyOptions& opt) {
  detail::CrossEntropyDims d = detail::check_cross_entropy(logits, targets, opt);
  if (d.dtype == DType::F64) return ref::cross_entropy_forward(loss, logp, logits, targets, opt);
  const Device dev = logits.device();
  prepare_output(loss, {}, d.dtype, "cross_entropy", "loss", dev);
  Tensor scratch;
  Tensor* lp = logp ? logp : &scratch;
  prepare_output(lp, logits.shape(), d.dtype, "cross_entropy", "logp", dev);
  RECUR_IF_CUDA(logits, cuda::cross_entropy_forward(*loss, *lp, logits, targets, d.n, d.classes, opt.ignore_index,
                                                    opt.label_smoothing));
  loss->f32()[0] = cpu::cross_entropy_forward(lp->f32(), logits.f32(), targets.data<int64_t>(), d.n, d.classes,
                                              opt.ignore_index, opt.label_smoothing);
}

void cross_entropy_backward(Tensor* dlogits, const Tensor& dloss, const Tensor& logp, const Tensor& targets,
                            const CrossEntropyOptions& opt) {
  detail::CrossEntropyDims d = detail::check_cross_entropy(logp, targets, opt);
  detail::check_scalar_grad("cross_entropy_backward", dloss, d.dtype, &logp);
  if (d.dtype == DType::F64) return ref::cross_entropy_backward(dlogits, dloss, logp, targets, opt);
  if (!prepare_grad(dlogits, logp.shape(), d.dtype, "cross_entropy_backward", "dlogits", logp.device())) return;
  RECUR_IF_CUDA(logp, cuda::cross_entropy_backward(*dlogits, dloss, logp, targets, d.n, d.classes, opt.ignore_index,
                                                   opt.label_smoothing));
  cpu::cross_entropy_backward(dlogits->f32(), dloss.f32()[0], logp.f32(), targets.data<int64_t>(), d.n, d.classes,
                              opt.ignore_index, opt.label_smoothing);
}

namespace detail {
DType check_mse(const Tensor& pred, const Tensor& target) {
  DType dt = check_same_shapes("mse", {{"pred", &pred}, {"target", &target}});
  RECUR_CHECK(pred.numel() > 0, "mse: empty input {}", pred.shape_str());
  return dt;
}
}  // namespace detail

void mse_forward(Tensor* loss, const Tensor& pred, const Tensor& target) {
  DType dt = detail::check_mse(pred, target);
  if (dt == DType::F64) return ref::mse_forward(loss, pred, target);
  prepare_output(loss, {}, dt, "mse", "loss", pred.device());
  RECUR_IF_CUDA(pred, cuda::mse_forward(*loss, pred, target));
  loss->f32()[0] = cpu::mse_forward(pred.f32(), target.f32(), pred.numel());
}

void mse_backward(Tensor* dpred, const Tensor& dloss, const Tensor& pred, const Tensor& target) {
  DType dt = detail::check_mse(pred, target);
  detail::check_scalar_grad("mse_backward", dloss, dt, &pred);
  if (dt == DType::F64) return ref::mse_backward(dpred, dloss, pred, target);
  if (!prepare_grad(dpred, pred.shape(), dt, "mse_backward", "dpred", pred.device())) return;
  RECUR_IF_CUDA(pred, cuda::mse_backward(*dpred, dloss, pred, target));
  cpu::mse_backward(dpred->f32(), dloss.f32()[0], pred.f32(), target.f32(), pred.numel());
}

}  // namespace recur::ops

namespace recur {

Var cross_entropy(Tape& tape, const Var& logits, const Tensor& targets, const CrossEntropyOptions& opt) {
  Tensor loss, logp;
  ops::cross_entropy_forward(&loss, &logp, value_of(logits, "cross_entropy", "logits"), targets, opt);
  bool tracked = tape.needs_grad({&logits});
  Var out = make_output(loss, tracked);
  if (tracked)
    tape.record([logits, out, logp, targets, opt]() {
      ops::cross_entropy_backward(&logits.grad(), out.grad(), logp, targets, opt);
    });
  return out;
}

Var mse(Tape& tape, const Var& pred, const Tensor& target) {
  Tensor loss;
  ops::mse_forward(&loss, value_of(pred, "mse", "pred"), target);
  bool tracked = tape.needs_grad({&pred});
  Var out = make_output(loss, tracked);
  if (tracked)
    tape.record([pred, out, target]() { ops::mse_backward(&pred.grad(), out.grad(), pred.value(), target); });
  return out;
}

}  // namespace recur
