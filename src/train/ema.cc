#include "recur/train/ema.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "recur/core/thread_pool.h"

#ifdef RECUR_HAS_CUDA
#include "../cuda/optim.h"
#endif

namespace recur::train {

namespace {

constexpr int64_t kEmaGrain = 1 << 15;

template <class T>
void ema_cpu(T* avg, const T* p, int64_t n, T w) {
  thread_pool().parallel_for(n, kEmaGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) avg[i] = avg[i] + w * (p[i] - avg[i]);
  });
}

}  // namespace

ParamEma::ParamEma(NamedParams params, double decay) : params_(std::move(params)), decay_(decay) {
  RECUR_CHECK(decay > 0 && decay < 1, "ParamEma: decay must be in (0, 1), got {}", decay);
  avg_.reserve(params_.size());
  for (const auto& [name, v] : params_) {
    const DType dt = v.value().dtype();
    RECUR_CHECK(dt == DType::F32 || dt == DType::F64, "ParamEma: parameter '{}' has dtype {}, only F32 and F64 are averaged",
                name, dtype_name(dt));
    avg_.push_back(v.value().clone());
  }
}

double ParamEma::decay_at(int64_t k) const {
  return std::min(decay_, (1.0 + static_cast<double>(k)) / (10.0 + static_cast<double>(k)));
}

void ParamEma::update() {
  const double w = 1.0 - decay_at(updates_);
#ifdef RECUR_HAS_CUDA
  std::map<int, std::vector<cuda::EmaItem>> gpu;
#endif
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second.value();
    Tensor& a = avg_[i];
    if (a.device() != p.device()) a = a.to(p.device());  // the model moved (Module::to)
    if (p.device().is_cuda()) {
#ifdef RECUR_HAS_CUDA
      gpu[p.device().index].push_back({&a, &p});
      continue;
#else
      RECUR_FAIL("ParamEma: parameter '{}' is on {}, but this build has no CUDA backend", params_[i].first,
                 p.device().str());
#endif
    }
    if (p.dtype() == DType::F32)
      ema_cpu(a.f32(), p.f32(), p.numel(), static_cast<float>(w));
    else
      ema_cpu(a.data<double>(), p.data<double>(), p.numel(), w);
  }
#ifdef RECUR_HAS_CUDA
  for (const auto& [device, items] : gpu) cuda::ema_update(device, items, w);
#endif
  ++updates_;
}

void ParamEma::swap() {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second.value();
    if (avg_[i].device() != p.device()) avg_[i] = avg_[i].to(p.device());
    Tensor live = p.clone();
    p.copy_from(avg_[i]);
    avg_[i].copy_from(live);
  }
}

std::map<std::string, Tensor> ParamEma::state_dict() const {
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i) out.emplace(params_[i].first, avg_[i].cpu().clone());
  return out;
}

nlohmann::json ParamEma::scalars() const { return {{"decay", decay_}, {"updates", updates_}}; }

void ParamEma::check_state_dict(const std::map<std::string, Tensor>& tensors, const nlohmann::json& scalars) const {
  RECUR_CHECK(scalars.is_object() && scalars.contains("decay") && scalars.contains("updates") &&
                  scalars["decay"].is_number() && scalars["updates"].is_number_integer(),
              "moving average: the state needs a number 'decay' and an integer 'updates', got {}", scalars.dump());
  const double decay = scalars["decay"].get<double>();
  RECUR_CHECK(decay == decay_, "moving average: saved with decay {}, configured {}", decay, decay_);
  const int64_t updates = scalars["updates"].get<int64_t>();
  RECUR_CHECK(updates >= 0, "moving average: negative update count {}", updates);
  std::vector<std::string> missing, unexpected;
  std::set<std::string> known;
  for (const auto& [name, v] : params_) {
    known.insert(name);
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      continue;
    }
    RECUR_CHECK(it->second.shape() == v.shape() && it->second.dtype() == v.value().dtype(),
                "moving average of '{}': {} {} saved, the parameter is {} {}", name, dtype_name(it->second.dtype()),
                it->second.shape_str(), dtype_name(v.value().dtype()), v.value().shape_str());
  }
  for (const auto& [name, t] : tensors)
    if (!known.count(name)) unexpected.push_back(name);
  RECUR_CHECK(missing.empty() && unexpected.empty(), "moving average: missing tensors [{}]; unexpected tensors [{}]",
              fmt::join(missing, ", "), fmt::join(unexpected, ", "));
}

void ParamEma::load_state_dict(const std::map<std::string, Tensor>& tensors, const nlohmann::json& scalars) {
  check_state_dict(tensors, scalars);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second.value();
    avg_[i] = tensors.at(params_[i].first).to(p.device()).clone();
  }
  updates_ = scalars["updates"].get<int64_t>();
}

void ema_reference_update(std::vector<double>& avg, const std::vector<double>& param, double d) {
  RECUR_CHECK(avg.size() == param.size(), "ema_reference_update: {} averages, {} parameters", avg.size(), param.size());
  for (size_t i = 0; i < avg.size(); ++i) avg[i] += (1.0 - d) * (param[i] - avg[i]);
}

}  // namespace recur::train
