#include "recur/train/optimizer.h"

#include <cmath>
#include <cstring>
#include <set>

#include "recur/core/thread_pool.h"

#ifdef RECUR_HAS_CUDA
#include "../cuda/optim.h"
#endif

namespace recur::train {

namespace {

using nlohmann::json;

void check_float(const Var& v, const std::string& name, const char* who) {
  DType dt = v.value().dtype();
  RECUR_CHECK(dt == DType::F32 || dt == DType::F64, "{}: parameter '{}' has dtype {}, only F32 and F64 are trained",
              who, name, dtype_name(dt));
}

// PyTorch's single-tensor SGD: the scalars are applied in the parameter's own precision. One
// branch-free restrict loop per combination of weight decay, momentum kind (kMom: 0 none, 1 plain,
// 2 Nesterov) and first step, as for Adam below, so that each vectorises.
template <class T, bool kDecay, int kMom, bool kFirst>
void sgd_loop(T* __restrict p, const T* __restrict g, T* __restrict buf, int64_t n, T wd, T mom, T neg_lr) {
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if constexpr (kDecay) d = d + wd * p[i];
    if constexpr (kMom != 0) {
      const T b = kFirst ? d : buf[i] * mom + d;
      buf[i] = b;
      d = kMom == 2 ? d + mom * b : b;
    }
    p[i] = p[i] + neg_lr * d;
  }
}

template <class T, bool kDecay>
void sgd_dispatch(T* p, const T* g, T* buf, int64_t n, T wd, T mom, T neg_lr, int kind, bool first) {
  if (kind == 0) sgd_loop<T, kDecay, 0, false>(p, g, buf, n, wd, mom, neg_lr);
  else if (kind == 1 && first) sgd_loop<T, kDecay, 1, true>(p, g, buf, n, wd, mom, neg_lr);
  else if (kind == 1) sgd_loop<T, kDecay, 1, false>(p, g, buf, n, wd, mom, neg_lr);
  else if (first) sgd_loop<T, kDecay, 2, true>(p, g, buf, n, wd, mom, neg_lr);
  else sgd_loop<T, kDecay, 2, false>(p, g, buf, n, wd, mom, neg_lr);
}

template <class T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const SgdOptions& o, double lr, bool first) {
  const T wd = static_cast<T>(o.weight_decay), mom = static_cast<T>(o.momentum), neg_lr = static_cast<T>(-lr);
  const int kind = o.momentum == 0 ? 0 : o.nesterov ? 2 : 1;
  if (o.weight_decay != 0) sgd_dispatch<T, true>(p, g, buf, n, wd, mom, neg_lr, kind, first);
  else sgd_dispatch<T, false>(p, g, buf, n, wd, mom, neg_lr, kind, first);
}

struct AdamScalars {
  double lr, beta1, beta2, eps, weight_decay;
  double step_size, bias_correction2_sqrt;
  bool decoupled;
};

// PyTorch's single-tensor Adam/AdamW with bias correction; scalars computed in double as
// Python does, the elementwise math in the parameter's precision. One loop per kind of weight
// decay, without branches and with restrict pointers, so that each vectorises (with the decay
// test inside the loop, GCC 12 left some of its versions scalar: -fopt-info-vec).
enum class DecayMode { None, L2, Decoupled };

template <DecayMode kMode, class T>
void adam_loop(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t n,
               const AdamScalars& s) {
  const T b1 = static_cast<T>(s.beta1), b2 = static_cast<T>(s.beta2);
  const T one_b1 = static_cast<T>(1 - s.beta1), one_b2 = static_cast<T>(1 - s.beta2);
  const T wd = static_cast<T>(s.weight_decay), decay = static_cast<T>(1 - s.lr * s.weight_decay);
  const T neg_step = static_cast<T>(-s.step_size), bc2 = static_cast<T>(s.bias_correction2_sqrt);
  const T eps = static_cast<T>(s.eps);
  for (int64_t i = 0; i < n; ++i) {
    T pi = p[i], gi = g[i];
    if constexpr (kMode == DecayMode::Decoupled) pi = pi * decay;
    if constexpr (kMode == DecayMode::L2) gi = gi + wd * pi;
    const T mi = m[i] * b1 + one_b1 * gi;
    const T vi = v[i] * b2 + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const T denom = std::sqrt(vi) / bc2 + eps;
    p[i] = pi + neg_step * (mi / denom);
  }
}

template <class T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamScalars& s) {
  if (s.weight_decay == 0) adam_loop<DecayMode::None>(p, g, m, v, n, s);
  else if (s.decoupled) adam_loop<DecayMode::Decoupled>(p, g, m, v, n, s);
  else adam_loop<DecayMode::L2>(p, g, m, v, n, s);
}

// Elementwise updates of large parameters are split over the thread pool (each element is
// independent, so the result does not depend on the split); small ones run inline.
constexpr int64_t kUpdateGrain = 1 << 15;

template <class Fn>
void for_chunks(int64_t n, const Fn& fn) {
  thread_pool().parallel_for(n, kUpdateGrain, [&](int64_t begin, int64_t end) { fn(begin, end); });
}

// Sum of squares in double. Eight running sums, element i going to sum i % 8, combined in a
// fixed order at the end: vectorises (one AVX-512 register of doubles) and gives the same result
// whatever the machine or thread count.
using Double8 = double __attribute__((vector_size(64)));
template <class T>
struct Eight;  // eight lanes of T
template <>
struct Eight<float> {
  using type = float __attribute__((vector_size(32)));
};
template <>
struct Eight<double> {
  using type = Double8;
};

template <class T>
double sum_of_squares(const T* x, int64_t n) {
  using Vec8 = typename Eight<T>::type;
  Double8 acc{};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    Vec8 v;
    std::memcpy(&v, x + i, sizeof v);
    const Double8 d = __builtin_convertvector(v, Double8);
    acc += d * d;
  }
  for (int64_t k = 0; i < n; ++i, ++k) acc[k] += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

int64_t json_int(const json& j, const char* what, int64_t min) {
  RECUR_CHECK(j.is_number_integer() && j.get<int64_t>() >= min,
              "optimizer state: '{}' must be an integer >= {}, got {}", what, min, j.dump());
  return j.get<int64_t>();
}

}  // namespace

Optimizer::Optimizer(NamedParams params, double lr) : params_(std::move(params)), lr_(lr) {
  RECUR_CHECK(lr >= 0 && std::isfinite(lr), "optimizer: lr must be finite and >= 0, got {}", lr);
  std::set<std::string> seen;
  for (const auto& [name, v] : params_) {
    RECUR_CHECK(v.defined(), "optimizer: parameter '{}' is undefined", name);
    RECUR_CHECK(seen.insert(name).second, "optimizer: parameter name '{}' appears twice", name);
    check_float(v, name, "optimizer");
  }
  state_.resize(params_.size());
}

void Optimizer::zero_grad() {
  for (auto& [name, v] : params_) v.zero_grad();
}

void Optimizer::set_lr(double lr) {
  RECUR_CHECK(lr >= 0 && std::isfinite(lr), "optimizer: lr must be finite and >= 0, got {}", lr);
  lr_ = lr;
}

Optimizer::ParamState& Optimizer::state_for(size_t i) {
  ParamState& st = state_[i];
  const Tensor& value = params_[i].second.value();
  if (st.slots.empty()) {
    for (const std::string& s : slot_names()) st.slots[s] = Tensor::zeros(value.shape(), value.dtype(), value.device());
  } else {
    for (auto& [name, t] : st.slots)
      if (t.device() != value.device()) t = t.to(value.device());
  }
  return st;
}

int Optimizer::device_for_step(size_t i) const {
  const auto& [name, p] = params_[i];
  const Tensor& v = p.value();
  const Tensor& g = p.grad();
  RECUR_CHECK(g.device() == v.device(), "optimizer: parameter '{}' is on {} but its gradient is on {}", name,
              v.device().str(), g.device().str());
  RECUR_CHECK(g.dtype() == v.dtype() && g.numel() == v.numel(),
              "optimizer: parameter '{}' is {} {} but its gradient is {} {}", name, dtype_name(v.dtype()),
              v.shape_str(), dtype_name(g.dtype()), g.shape_str());
  return v.device().is_cuda() ? v.device().index : -1;
}

cuda::OptimScratch& Optimizer::cuda_scratch() {
#ifdef RECUR_HAS_CUDA
  if (!cuda_scratch_) cuda_scratch_ = cuda::make_optim_scratch();
  return *cuda_scratch_;
#else
  RECUR_FAIL("optimizer: this build has no CUDA backend");
#endif
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  json steps = json::object();
  for (size_t i = 0; i < params_.size(); ++i) {
    if (state_[i].step == 0) continue;
    steps[params_[i].first] = state_[i].step;
    for (const auto& [slot, t] : state_[i].slots)
      out.slots[params_[i].first + "." + slot] = t.device().is_cpu() ? t.clone() : t.cpu();
  }
  out.scalars = {{"type", type()}, {"lr", lr_}, {"step", step_count_}, {"param_steps", steps}};
  return out;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
  const json& s = state.scalars;
  RECUR_CHECK(s.is_object(), "optimizer state: scalars must be a JSON object, got {}", s.dump());
  RECUR_CHECK(s.contains("type") && s["type"].is_string(), "optimizer state: no 'type'");
  RECUR_CHECK(s["type"].get<std::string>() == type(), "optimizer state is for '{}', this optimizer is '{}'",
              s["type"].get<std::string>(), type());
  RECUR_CHECK(s.contains("lr") && s["lr"].is_number() && s["lr"].get<double>() >= 0,
              "optimizer state: 'lr' must be a number >= 0");
  RECUR_CHECK(s.contains("step") && s.contains("param_steps") && s["param_steps"].is_object(),
              "optimizer state: needs 'step' and a 'param_steps' object");
  int64_t step_count = json_int(s["step"], "step", 0);

  std::map<std::string, size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) index[params_[i].first] = i;
  std::vector<ParamState> fresh(params_.size());
  std::vector<std::string> missing, unexpected;
  std::set<std::string> expected_keys;
  for (const auto& [name, k] : s["param_steps"].items()) {
    auto it = index.find(name);
    if (it == index.end()) {
      unexpected.push_back(name);
      continue;
    }
    ParamState& st = fresh[it->second];
    st.step = json_int(k, "param_steps", 1);
    const Var& p = params_[it->second].second;
    for (const std::string& slot : slot_names()) {
      std::string key = name + "." + slot;
      expected_keys.insert(key);
      auto t = state.slots.find(key);
      if (t == state.slots.end()) {
        missing.push_back(key);
        continue;
      }
      RECUR_CHECK(t->second.shape() == p.shape() && t->second.dtype() == p.value().dtype(),
                  "optimizer state: '{}' is {} {}, the parameter is {} {}", key, dtype_name(t->second.dtype()),
                  t->second.shape_str(), dtype_name(p.value().dtype()), p.value().shape_str());
      Tensor copy(p.shape(), p.value().dtype(), p.value().device());
      copy.copy_from(t->second);
      st.slots[slot] = std::move(copy);
    }
  }
  for (const auto& [key, t] : state.slots)
    if (!expected_keys.count(key)) unexpected.push_back(key);
  RECUR_CHECK(missing.empty() && unexpected.empty(), "optimizer state: missing [{}]; unexpected [{}]",
              fmt::join(missing, ", "), fmt::join(unexpected, ", "));
  state_ = std::move(fresh);
  lr_ = s["lr"].get<double>();
  step_count_ = step_count;
}

Sgd::Sgd(NamedParams params, const SgdOptions& options) : Optimizer(std::move(params), options.lr), options_(options) {
  RECUR_CHECK(options.momentum >= 0, "SGD: momentum must be >= 0, got {}", options.momentum);
  RECUR_CHECK(options.weight_decay >= 0, "SGD: weight_decay must be >= 0, got {}", options.weight_decay);
  RECUR_CHECK(!options.nesterov || options.momentum > 0, "SGD: nesterov needs momentum > 0");
}

std::vector<std::string> Sgd::slot_names() const {
  if (options_.momentum == 0) return {};
  return {"momentum_buffer"};
}

void Sgd::step() {
#ifdef RECUR_HAS_CUDA
  std::map<int, std::vector<cuda::SgdItem>> gpu;  // device -> its parameters, one launch each
#endif
  for (size_t i = 0; i < params_.size(); ++i) {
    const Var& p = params_[i].second;
    if (!p.has_grad()) continue;
    const int device = device_for_step(i);
    ParamState& st = state_for(i);
    bool first = st.step == 0;
    Tensor* buf = options_.momentum != 0 ? &st.slots.at("momentum_buffer") : nullptr;
    Tensor& g = p.grad();
    Tensor& v = p.value();
    if (device >= 0) {
#ifdef RECUR_HAS_CUDA
      gpu[device].push_back({&v, &g, buf, first});
#else
      RECUR_FAIL("optimizer: parameter '{}' is on {}, but this build has no CUDA backend", params_[i].first,
                 v.device().str());
#endif
    } else if (v.dtype() == DType::F32) {
      float *pv = v.f32(), *pg = g.f32(), *pb = buf ? buf->f32() : nullptr;
      for_chunks(v.numel(), [&](int64_t b, int64_t e) {
        sgd_update(pv + b, pg + b, pb ? pb + b : nullptr, e - b, options_, lr_, first);
      });
    } else {
      double *pv = v.data<double>(), *pg = g.data<double>(), *pb = buf ? buf->data<double>() : nullptr;
      for_chunks(v.numel(), [&](int64_t b, int64_t e) {
        sgd_update(pv + b, pg + b, pb ? pb + b : nullptr, e - b, options_, lr_, first);
      });
    }
    st.step++;
  }
#ifdef RECUR_HAS_CUDA
  const cuda::SgdArgs args{lr_, options_.momentum, options_.weight_decay, options_.nesterov};
  for (const auto& [device, items] : gpu) cuda::sgd_step(cuda_scratch(), device, items, args);
#endif
  step_count_++;
}

Adam::Adam(NamedParams params, const AdamOptions& options) : Adam(std::move(params), options, Decay::L2) {}

Adam::Adam(NamedParams params, const AdamOptions& o, Decay decay)
    : Optimizer(std::move(params), o.lr), options_(o), decay_(decay) {
  const char* who = decay == Decay::Decoupled ? "AdamW" : "Adam";
  RECUR_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "{}: betas must be in [0, 1), got ({}, {})",
              who, o.beta1, o.beta2);
  RECUR_CHECK(o.eps >= 0, "{}: eps must be >= 0, got {}", who, o.eps);
  RECUR_CHECK(o.weight_decay >= 0, "{}: weight_decay must be >= 0, got {}", who, o.weight_decay);
}

void Adam::step() {
#ifdef RECUR_HAS_CUDA
  std::map<int, std::vector<cuda::AdamItem>> gpu;  // device -> its parameters, one launch each
#endif
  for (size_t i = 0; i < params_.size(); ++i) {
    const Var& p = params_[i].second;
    if (!p.has_grad()) continue;
    const int device = device_for_step(i);
    ParamState& st = state_for(i);
    st.step++;
    const double k = static_cast<double>(st.step);
    AdamScalars s{
        lr_, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, 0, 0, decay_ == Decay::Decoupled};
    s.step_size = lr_ / (1 - std::pow(options_.beta1, k));
    s.bias_correction2_sqrt = std::sqrt(1 - std::pow(options_.beta2, k));
    Tensor& g = p.grad();
    Tensor& v = p.value();
    Tensor& m1 = st.slots.at("exp_avg");
    Tensor& m2 = st.slots.at("exp_avg_sq");
    if (device >= 0) {
#ifdef RECUR_HAS_CUDA
      gpu[device].push_back({&v, &g, &m1, &m2, s.step_size, s.bias_correction2_sqrt});
#else
      RECUR_FAIL("optimizer: parameter '{}' is on {}, but this build has no CUDA backend", params_[i].first,
                 v.device().str());
#endif
    } else if (v.dtype() == DType::F32) {
      float *pv = v.f32(), *pg = g.f32(), *pm = m1.f32(), *ps = m2.f32();
      for_chunks(v.numel(), [&](int64_t b, int64_t e) { adam_update(pv + b, pg + b, pm + b, ps + b, e - b, s); });
    } else {
      double *pv = v.data<double>(), *pg = g.data<double>(), *pm = m1.data<double>(), *ps = m2.data<double>();
      for_chunks(v.numel(), [&](int64_t b, int64_t e) { adam_update(pv + b, pg + b, pm + b, ps + b, e - b, s); });
    }
  }
#ifdef RECUR_HAS_CUDA
  const cuda::AdamArgs args{lr_, options_.beta1, options_.beta2, options_.eps, options_.weight_decay,
                            decay_ == Decay::Decoupled};
  for (const auto& [device, items] : gpu) cuda::adam_step(cuda_scratch(), device, items, args);
#endif
  step_count_++;
}

AdamW::AdamW(NamedParams params, const AdamWOptions& o)
    : Adam(std::move(params), AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}, Decay::Decoupled) {}

double clip_grad_norm(const std::vector<Var>& params, double max_norm) {
  RECUR_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got {}", max_norm);
  double sum = 0;
  std::map<int, std::vector<Tensor*>> gpu;  // device -> its gradients, reduced and scaled there
  for (const Var& p : params) {
    if (!p.has_grad()) continue;
    Tensor& g = p.grad();
    RECUR_CHECK(g.dtype() == DType::F32 || g.dtype() == DType::F64,
                "clip_grad_norm: gradient of '{}' has dtype {}, expected F32 or F64", p.name(), dtype_name(g.dtype()));
    if (g.device().is_cuda()) {
      gpu[g.device().index].push_back(&g);
    } else if (g.dtype() == DType::F32) {
      sum += sum_of_squares(g.f32(), g.numel());
    } else {
      sum += sum_of_squares(g.data<double>(), g.numel());
    }
  }
#ifdef RECUR_HAS_CUDA
  for (const auto& [device, grads] : gpu)
    sum += cuda::grad_sum_of_squares(device, std::vector<const Tensor*>(grads.begin(), grads.end()));
#else
  RECUR_CHECK(gpu.empty(), "clip_grad_norm: GPU gradients, but this build has no CUDA backend");
#endif
  const double norm = std::sqrt(sum);
  const double coef = max_norm / (norm + 1e-6);
  if (!std::isfinite(norm) || coef >= 1) return norm;
  for (const Var& p : params) {
    if (!p.has_grad()) continue;
    Tensor& g = p.grad();
    if (g.device().is_cuda()) continue;
    if (g.dtype() == DType::F32) {
      float* x = g.f32();
      const float c = static_cast<float>(coef);
      for_chunks(g.numel(), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x[i] *= c;
      });
    } else {
      double* x = g.data<double>();
      for_chunks(g.numel(), [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) x[i] *= coef;
      });
    }
  }
#ifdef RECUR_HAS_CUDA
  for (const auto& [device, grads] : gpu) cuda::scale_grads(device, grads, coef);
#endif
  return norm;
}

double clip_grad_norm(const NamedParams& params, double max_norm) {
  std::vector<Var> vars;
  vars.reserve(params.size());
  for (const auto& [name, v] : params) vars.push_back(v);
  return clip_grad_norm(vars, max_norm);
}

}  // namespace recur::train
