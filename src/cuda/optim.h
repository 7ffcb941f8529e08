#pragma once
// Optimizer steps and gradient clipping on a GPU (internal; host compiler only). Used by
// src/train/optimizer.cc in a CUDA build. Every function takes the tensors of ONE device and
// queues its work on cuda::stream(device); the optimizer steps launch one kernel for all of them.
#include <memory>
#include <vector>

#include "recur/core/tensor.h"

namespace recur::cuda {

/// Per-optimizer reusable buffers (a pinned host table and its device copy per GPU), so that a
/// step uploads its tensor table without a host-side synchronisation.
struct OptimScratch;
std::shared_ptr<OptimScratch> make_optim_scratch();

/// One parameter of an SGD step. `buf` is null without momentum.
struct SgdItem {
  Tensor* param;
  const Tensor* grad;
  Tensor* buf;
  bool first;  // the parameter's first step: the momentum buffer takes the (decayed) gradient
};
struct SgdArgs {
  double lr, momentum, weight_decay;
  bool nesterov;
};
void sgd_step(OptimScratch& scratch, int device, const std::vector<SgdItem>& items, const SgdArgs& args);

/// One parameter of an Adam/AdamW step, with its bias-correction scalars (computed on the host).
struct AdamItem {
  Tensor* param;
  const Tensor* grad;
  Tensor* exp_avg;
  Tensor* exp_avg_sq;
  double step_size;  // lr / (1 - beta1^k)
  double bc2_sqrt;   // sqrt(1 - beta2^k)
};
struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled;
};
void adam_step(OptimScratch& scratch, int device, const std::vector<AdamItem>& items, const AdamArgs& args);

/// Sum of the squares of every element of `grads` (F32/F64 tensors on `device`), reduced on the
/// device in double; waits for the result.
double grad_sum_of_squares(int device, const std::vector<const Tensor*>& grads);
/// grads *= coef on the device (float tensors by float(coef)), one launch.
void scale_grads(int device, const std::vector<Tensor*>& grads, double coef);

/// One moving average and its live parameter (same dtype and size, on `device`).
struct EmaItem {
  Tensor* avg;
  const Tensor* param;
};
/// avg += weight * (param - avg) for every item, one launch (ParamEma::update on a GPU).
void ema_update(int device, const std::vector<EmaItem>& items, double weight);

}  // namespace recur::cuda
