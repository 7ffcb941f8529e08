#pragma once
/// \file An exponential moving average of the parameters (Marian's exponential smoothing, the EMA
/// model of timm or torch.optim.swa_utils.get_ema_multi_avg_fn): a smoothed copy of the weights
/// that is usually a little better on held-out data than the weights of the last step.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "recur/train/optimizer.h"

namespace recur::train {

/// After every optimizer step, update() moves each average towards its parameter:
///   avg += (1 - d_k) * (param - avg),   d_k = min(decay, (1 + k) / (10 + k)),
/// k being the number of earlier updates (TensorFlow's ExponentialMovingAverage with num_updates:
/// the early average is not dominated by the random initial weights). The averages start as copies
/// of the parameters and live on each parameter's device; float parameters are averaged in float,
/// on a GPU with one multi-tensor kernel launch per device.
class ParamEma {
 public:
  /// `decay` in (0, 1).
  ParamEma(NamedParams params, double decay);
  ParamEma(const ParamEma&) = delete;
  ParamEma& operator=(const ParamEma&) = delete;

  void update();
  /// Exchanges the averages and the parameters' values (a second call swaps back): validate and
  /// save with the averaged weights between two calls.
  void swap();
  /// The decay update number k uses.
  double decay_at(int64_t k) const;
  int64_t updates() const { return updates_; }
  double decay() const { return decay_; }

  /// CPU copies of the averages keyed by parameter name.
  std::map<std::string, Tensor> state_dict() const;
  /// {"decay": d, "updates": k}.
  nlohmann::json scalars() const;
  /// Throws recur::Error naming the tensor or value unless load_state_dict would succeed: every
  /// parameter's average with its shape and dtype, no others, and the same decay.
  void check_state_dict(const std::map<std::string, Tensor>& tensors, const nlohmann::json& scalars) const;
  /// Restores averages and the update count, after check_state_dict (nothing changes on an error).
  void load_state_dict(const std::map<std::string, Tensor>& tensors, const nlohmann::json& scalars);

 private:
  NamedParams params_;
  std::vector<Tensor> avg_;
  double decay_;
  int64_t updates_ = 0;
};

/// The naive double-precision reference of one update: avg += (1 - d) * (param - avg).
void ema_reference_update(std::vector<double>& avg, const std::vector<double>& param, double d);

}  // namespace recur::train
