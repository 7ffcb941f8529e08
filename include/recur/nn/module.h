#pragma once
/// \file Module: owns Parameters and child modules; state_dict names follow PyTorch.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "recur/core/tape.h"

namespace recur::nn {

class Module {
 public:
  virtual ~Module() = default;

  /// Parameters with their state_dict names, children's prefixed "child.", in registration order.
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<Var> parameters() const;
  /// Name -> tensor (sharing storage with the parameters).
  std::map<std::string, Tensor> state_dict() const;
  /// Copies values in. With strict, missing and unexpected names are an error listing them all;
  /// a shape or dtype mismatch is always an error naming the tensor.
  void load_state_dict(const std::map<std::string, Tensor>& sd, bool strict = true);
  void zero_grad();
  void train(bool on = true);
  bool is_training() const { return training_; }
  int64_t num_parameters() const;

 protected:
  Var& register_parameter(const std::string& name, Tensor init);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace recur::nn
