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
  /// Name -> tensor, as they are: sharing storage with the parameters and on the module's device
  /// (GPU tensors for a module on a GPU; save_safetensors copies them to the host itself).
  std::map<std::string, Tensor> state_dict() const;
  /// Copies values in, from any device onto each parameter's device (a CPU state_dict loads into a
  /// module on a GPU and vice versa). With strict, missing and unexpected names are an error
  /// listing them all; a shape or dtype mismatch is always an error naming the tensor.
  void load_state_dict(const std::map<std::string, Tensor>& sd, bool strict = true);
  /// Moves every parameter value, and its gradient when allocated, to `device` (a no-op for those
  /// already there). The Vars keep their identity, so optimizers and other holders of the
  /// parameters see the moved tensors; an optimizer's existing slots follow on its next step.
  /// Subclasses holding tensors other than parameters override it and call Module::to.
  virtual void to(Device device);
  /// Converts every parameter value (and allocated gradient) to `dtype`: F64 on the CPU runs a
  /// model through the ops' double-precision references, for whole-model gradient checks.
  void cast(DType dtype);
  /// The device of the first parameter; the CPU for a module without parameters.
  Device device() const;
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
