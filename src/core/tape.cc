#include "recur/core/tape.h"

namespace recur {

Var::Var(Tensor value, bool requires_grad, std::string name) : p_(std::make_shared<Impl>()) {
  p_->value = std::move(value);
  p_->requires_grad = requires_grad;
  p_->name = std::move(name);
}

Tensor& Var::grad() const {
  RECUR_CHECK(p_ != nullptr, "grad() of an undefined Var");
  if (!p_->grad.defined()) p_->grad = Tensor::zeros(p_->value.shape(), p_->value.dtype(), p_->value.device());
  return p_->grad;
}

void Var::zero_grad() const {
  if (p_ && p_->grad.defined()) p_->grad.zero_();
}

bool Tape::needs_grad(std::initializer_list<const Var*> inputs) const {
  if (!enabled_) return false;
  for (const Var* v : inputs)
    if (v && v->requires_grad()) return true;
  return false;
}

void Tape::record(std::function<void()> backward) { ops_.push_back(std::move(backward)); }

void Tape::backward(Var& loss) {
  RECUR_CHECK(loss.value().numel() == 1, "backward(loss) needs a scalar loss, got shape {}",
              loss.value().shape_str());
  backward(loss, Tensor::full(loss.value().shape(), 1.0, loss.value().dtype(), loss.value().device()));
}

void Tape::backward(Var& out, const Tensor& dout) { backward({{out, dout}}); }

void Tape::backward(const std::vector<std::pair<Var, Tensor>>& seeds) {
  for (const auto& [out, dout] : seeds) {
    RECUR_CHECK(out.requires_grad(), "backward: the output does not depend on any parameter");
    out.value().check_shape(dout.shape(), "backward: output gradient");
    out.grad().add_(dout);
  }
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) (*it)();
  ops_.clear();
}

Var make_output(Tensor value, bool tracked) { return Var(std::move(value), tracked); }

}  // namespace recur
