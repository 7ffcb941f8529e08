#pragma once
/// \file Autograd: Var (a tensor with an optional gradient) and Tape (a list of coarse ops, each
/// with a hand-written backward, replayed in reverse).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "recur/core/tensor.h"

namespace recur {

/// A value in the graph. Copies share the same value and gradient. Parameters are Vars made with
/// requires_grad = true; they own their gradient tensor across steps.
class Var {
 public:
  Var() = default;
  explicit Var(Tensor value, bool requires_grad = false, std::string name = "");

  bool defined() const { return p_ != nullptr; }
  // Var is a handle (like shared_ptr): constness of the handle does not make the value const.
  Tensor& value() const { return p_->value; }
  bool requires_grad() const { return p_ && p_->requires_grad; }
  /// The gradient, allocated as zeros on first use.
  Tensor& grad() const;
  bool has_grad() const { return p_ && p_->grad.defined(); }
  /// Zeroes the gradient if there is one.
  void zero_grad() const;
  const std::string& name() const { return p_->name; }
  const Shape& shape() const { return p_->value.shape(); }
  bool same(const Var& o) const { return p_ == o.p_; }

 private:
  struct Impl {
    Tensor value;
    Tensor grad;
    bool requires_grad = false;
    std::string name;
  };
  std::shared_ptr<Impl> p_;
};

/// Records backward closures of the ops run through it. backward(loss) seeds d(loss)=1, runs the
/// closures newest first, then clears the tape. Each closure adds (+=) into its inputs' grads.
class Tape {
 public:
  bool enabled() const { return enabled_; }
  void set_enabled(bool on) { enabled_ = on; }
  /// True when an op with these inputs must record a backward closure.
  bool needs_grad(std::initializer_list<const Var*> inputs) const;
  void record(std::function<void()> backward);
  /// Backpropagates from a scalar loss (numel 1), then clears the tape.
  void backward(Var& loss);
  /// Backpropagates with an explicit output gradient (same shape as `out`).
  void backward(Var& out, const Tensor& dout);
  /// Backpropagates from several outputs at once, each with its gradient.
  void backward(const std::vector<std::pair<Var, Tensor>>& seeds);
  void clear() { ops_.clear(); }
  size_t size() const { return ops_.size(); }

 private:
  std::vector<std::function<void()>> ops_;
  bool enabled_ = true;
};

/// Scope in which ops record nothing (inference).
class NoGrad {
 public:
  explicit NoGrad(Tape& tape) : tape_(tape), was_(tape.enabled()) { tape_.set_enabled(false); }
  ~NoGrad() { tape_.set_enabled(was_); }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  Tape& tape_;
  bool was_;
};

/// A new Var for an op's output; requires_grad when `tracked`.
Var make_output(Tensor value, bool tracked);

}  // namespace recur
