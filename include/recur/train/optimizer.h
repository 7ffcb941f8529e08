#pragma once
/// \file Optimizers (SGD, Adam, AdamW) with PyTorch's update rules, and gradient clipping.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "recur/core/tape.h"

namespace recur::cuda {
struct OptimScratch;  // buffers of the fused GPU steps (src/cuda/optim.h)
}

namespace recur::train {

/// Parameters with their state_dict names, as Module::named_parameters() returns them.
using NamedParams = std::vector<std::pair<std::string, Var>>;

/// Everything an optimizer needs to resume exactly.
struct OptimizerState {
  /// Per-parameter slot tensors keyed "<param name>.<slot>", e.g. "weight_ih_l0.exp_avg".
  std::map<std::string, Tensor> slots;
  /// Scalar state: {"type": "adam", "lr": ..., "step": ..., "param_steps": {"<param name>": k}}.
  nlohmann::json scalars;
};

/// Base class: owns the parameter list and per-parameter state (slots are created lazily on a
/// parameter's first update, as in PyTorch). Parameters without a gradient are skipped by step().
///
/// Devices: slots live on their parameter's device (and follow it when the parameter moves, e.g.
/// after Module::to). A parameter's gradient must be on the parameter's device. On a GPU, step()
/// updates all parameters of that GPU with ONE fused multi-tensor kernel launch, queued on the
/// device's stream without waiting for it; the arithmetic follows the CPU loops (float32 for F32
/// parameters), so CPU and GPU agree to rounding. Parameters may be spread over several devices.
class Optimizer {
 public:
  Optimizer(NamedParams params, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Applies one update to every parameter that has a gradient.
  virtual void step() = 0;
  /// "sgd", "adam", "adamw": stored in checkpoints and checked on load.
  virtual const char* type() const = 0;

  /// Zeroes the gradients (they stay allocated, like PyTorch's zero_grad(set_to_none=False)).
  void zero_grad();
  void set_lr(double lr);
  double lr() const { return lr_; }
  /// Number of step() calls so far (restored by load_state_dict).
  int64_t step_count() const { return step_count_; }
  const NamedParams& params() const { return params_; }

  /// Device-independent: the slots are copies on the CPU whatever device the parameters are on.
  OptimizerState state_dict() const;
  /// Restores slots, per-parameter step counts, lr and step_count. Slots may be on any device;
  /// they are copied onto their parameter's device. Checks everything before
  /// changing anything: a different optimizer type, unknown or missing parameters or slots, and
  /// shape or dtype mismatches throw recur::Error naming the tensor.
  void load_state_dict(const OptimizerState& state);

 protected:
  struct ParamState {
    int64_t step = 0;  // updates this parameter has received; 0 means no slots yet
    std::map<std::string, Tensor> slots;
  };
  /// Slot names every stepped parameter carries, e.g. {"exp_avg", "exp_avg_sq"}.
  virtual std::vector<std::string> slot_names() const = 0;
  /// State of parameter i, creating zero-filled slots (like the parameter, on its device) on first
  /// use and moving existing slots onto the parameter's device when it has moved.
  ParamState& state_for(size_t i);
  /// -1 for a CPU parameter, else its GPU index; throws naming the parameter when its gradient is
  /// on another device or has another dtype or shape.
  int device_for_step(size_t i) const;
  /// The fused-step buffers, created on first use (CUDA builds only).
  cuda::OptimScratch& cuda_scratch();

  NamedParams params_;
  std::vector<ParamState> state_;
  double lr_;
  int64_t step_count_ = 0;
  std::shared_ptr<cuda::OptimScratch> cuda_scratch_;
};

/// torch.optim.SGD (dampening fixed at 0).
struct SgdOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  bool nesterov = false;      // needs momentum > 0
};

class Sgd : public Optimizer {
 public:
  Sgd(NamedParams params, const SgdOptions& options);
  void step() override;
  const char* type() const override { return "sgd"; }

 protected:
  std::vector<std::string> slot_names() const override;

 private:
  SgdOptions options_;
};

/// torch.optim.Adam hyperparameters (amsgrad is not supported).
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
};

/// torch.optim.Adam: weight decay is an L2 term added to the gradient.
class Adam : public Optimizer {
 public:
  Adam(NamedParams params, const AdamOptions& options);
  void step() override;
  const char* type() const override { return decay_ == Decay::Decoupled ? "adamw" : "adam"; }

 protected:
  enum class Decay { L2, Decoupled };
  Adam(NamedParams params, const AdamOptions& options, Decay decay);
  std::vector<std::string> slot_names() const override { return {"exp_avg", "exp_avg_sq"}; }

 private:
  AdamOptions options_;
  Decay decay_;
};

/// torch.optim.AdamW hyperparameters: as AdamOptions, but weight_decay defaults to 0.01.
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay
};

/// torch.optim.AdamW: decoupled weight decay, p *= 1 - lr * weight_decay before the Adam update.
class AdamW : public Adam {
 public:
  AdamW(NamedParams params, const AdamWOptions& options);
};

/// Scales all gradients together so that their global L2 norm is at most max_norm, as
/// torch.nn.utils.clip_grad_norm_: when norm + 1e-6 > max_norm every gradient is multiplied by
/// max_norm / (norm + 1e-6). The norm is summed in double: within a tensor in eight
/// interleaved partial sums (element i in sum i % 8) added in a fixed order, tensors in parameter
/// order; deterministic, and the same whatever the thread count.
/// Parameters without a gradient are skipped. Returns the norm before clipping; a non-finite norm
/// leaves the gradients untouched so that the caller can skip the step.
/// GPU gradients: the sum of squares is reduced on their device (in double; one wait for the
/// result per GPU) and the scaling runs there too; CPU and GPU gradients may be mixed.
double clip_grad_norm(const std::vector<Var>& params, double max_norm);
double clip_grad_norm(const NamedParams& params, double max_norm);

}  // namespace recur::train
