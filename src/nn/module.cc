#include "recur/nn/module.h"

#include <set>

#include "recur/core/cuda.h"

namespace recur::nn {

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out = params_;
  for (const auto& [cname, child] : children_)
    for (auto& [pname, v] : child->named_parameters()) out.emplace_back(cname + "." + pname, v);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [n, v] : named_parameters()) out.push_back(v);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> sd;
  for (auto& [n, v] : named_parameters()) sd[n] = v.value();
  return sd;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& sd, bool strict) {
  auto named = named_parameters();
  std::vector<std::string> missing, unexpected;
  std::set<std::string> known;
  for (auto& [n, v] : named) {
    known.insert(n);
    if (!sd.count(n)) missing.push_back(n);
  }
  for (auto& [n, t] : sd)
    if (!known.count(n)) unexpected.push_back(n);
  if (strict)
    RECUR_CHECK(missing.empty() && unexpected.empty(),
                "load_state_dict: missing tensors [{}]; unexpected tensors [{}]", fmt::join(missing, ", "),
                fmt::join(unexpected, ", "));
  for (auto& [n, v] : named) {
    auto it = sd.find(n);
    if (it == sd.end()) continue;
    const Tensor& src = it->second;
    RECUR_CHECK(src.shape() == v.value().shape(), "load_state_dict: '{}' has shape {} in the file, the model expects {}",
                n, src.shape_str(), v.value().shape_str());
    RECUR_CHECK(src.dtype() == v.value().dtype(), "load_state_dict: '{}' has dtype {} in the file, the model expects {}",
                n, dtype_name(src.dtype()), dtype_name(v.value().dtype()));
    v.value().copy_from(src);
  }
}

void Module::to(Device device) {
  cuda::require(device);
  for (auto& [n, v] : named_parameters()) {
    if (v.value().device() != device) v.value() = v.value().to(device);
    if (v.has_grad() && v.grad().device() != device) v.grad() = v.grad().to(device);
  }
}

void Module::cast(DType dtype) {
  for (auto& [n, v] : named_parameters()) {
    if (v.value().dtype() != dtype) v.value() = v.value().to(dtype);
    if (v.has_grad() && v.grad().dtype() != dtype) v.grad() = v.grad().to(dtype);
  }
}

Device Module::device() const {
  auto named = named_parameters();
  return named.empty() ? Device::cpu() : named.front().second.value().device();
}

void Module::zero_grad() {
  for (auto& [n, v] : named_parameters()) v.zero_grad();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, v] : named_parameters()) n += v.value().numel();
  return n;
}

Var& Module::register_parameter(const std::string& name, Tensor init) {
  for (auto& [n, v] : params_) RECUR_CHECK(n != name, "parameter '{}' registered twice", name);
  params_.emplace_back(name, Var(std::move(init), true, name));
  return params_.back().second;
}

}  // namespace recur::nn
