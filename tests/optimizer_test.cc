// Optimizers against naive double-precision references written from PyTorch's update formulas,
// gradient clipping and learning-rate schedules.
#include "recur/train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>

#include "recur/core/thread_pool.h"
#include "recur/train/ema.h"
#include "recur/train/schedule.h"
#include "test_util.h"

namespace recur::train {
namespace {

// Deterministic pseudo-gradient for element i at step s given the current parameter value:
// a quadratic pull towards a moving target plus a wiggle, so that signs change over the steps.
double grad_of(double p, int64_t i, int64_t s) {
  const double a = 0.5 + 0.25 * static_cast<double>(i % 4);
  const double target = std::sin(0.7 * static_cast<double>(s) + static_cast<double>(i));
  return a * (p - target) + 0.1 * std::cos(1.3 * static_cast<double>(s * 7 + i));
}

// PyTorch torch.optim.SGD (dampening 0), in double.
struct RefSgd {
  SgdOptions o;
  std::vector<double> buf;
  bool has_buf = false;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    if (buf.empty()) buf.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      double d = g[i] + o.weight_decay * p[i];
      if (o.momentum != 0) {
        buf[i] = has_buf ? o.momentum * buf[i] + d : d;
        d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
      }
      p[i] -= o.lr * d;
    }
    has_buf = true;
  }
};

// PyTorch torch.optim.Adam / AdamW with bias correction, in double.
struct RefAdam {
  AdamOptions o;
  bool decoupled = false;
  std::vector<double> m, v;
  int64_t t = 0;
  void step(std::vector<double>& p, const std::vector<double>& g) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(t));
    const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(t));
    for (size_t i = 0; i < p.size(); ++i) {
      double gi = g[i];
      if (decoupled)
        p[i] *= 1 - o.lr * o.weight_decay;
      else
        gi += o.weight_decay * p[i];
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
      const double m_hat = m[i] / bc1, v_hat = v[i] / bc2;
      p[i] -= o.lr * m_hat / (std::sqrt(v_hat) + o.eps);
    }
  }
};

std::vector<double> initial_values(int64_t n) {
  Rng rng(42);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = rng.normal();
  return v;
}

// Runs `steps` updates of `opt` (over one parameter of dtype `dt`) and of the reference, both
// fed gradients computed from their own current values, and returns the worst relative error.
double compare(DType dt, int steps, const std::function<std::unique_ptr<Optimizer>(NamedParams)>& make,
               const std::function<void(std::vector<double>&, const std::vector<double>&)>& ref_step) {
  const int64_t n = 13;
  std::vector<double> ref = initial_values(n);
  Var p(Tensor::from_f64({n}, ref).to(dt), true, "w");
  std::unique_ptr<Optimizer> opt = make({{"w", p}});
  double worst = 0;
  for (int s = 0; s < steps; ++s) {
    std::vector<double> g_ref(static_cast<size_t>(n));
    Tensor g = Tensor::zeros({n}, DType::F64);
    for (int64_t i = 0; i < n; ++i) {
      g_ref[static_cast<size_t>(i)] = grad_of(ref[static_cast<size_t>(i)], i, s);
      g.data<double>()[i] = grad_of(p.value().item(i), i, s);
    }
    p.grad().copy_from(g.to(dt));
    opt->step();
    ref_step(ref, g_ref);
    for (int64_t i = 0; i < n; ++i) {
      double r = ref[static_cast<size_t>(i)];
      worst = std::max(worst, std::abs(p.value().item(i) - r) / (std::abs(r) + 1e-3));
    }
  }
  return worst;
}

struct SgdCase {
  const char* name;
  SgdOptions options;
};
void PrintTo(const SgdCase& c, std::ostream* os) { *os << c.name; }

class OptimSgd : public ::testing::TestWithParam<SgdCase> {};

TEST_P(OptimSgd, MatchesDoubleReference) {
  const SgdOptions o = GetParam().options;
  auto make = [&](NamedParams ps) { return std::make_unique<Sgd>(std::move(ps), o); };
  for (DType dt : {DType::F64, DType::F32}) {
    RefSgd ref{o};
    double err = compare(dt, 12, make, [&](auto& p, const auto& g) { ref.step(p, g); });
    EXPECT_LT(err, dt == DType::F64 ? 1e-12 : 1e-4) << dtype_name(dt);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Optim, OptimSgd,
    ::testing::Values(SgdCase{"plain", {.lr = 0.1}}, SgdCase{"momentum", {.lr = 0.05, .momentum = 0.9}},
                      SgdCase{"nesterov", {.lr = 0.05, .momentum = 0.9, .nesterov = true}},
                      SgdCase{"weight_decay", {.lr = 0.1, .weight_decay = 0.05}},
                      SgdCase{"momentum_weight_decay_nesterov",
                              {.lr = 0.03, .momentum = 0.8, .weight_decay = 0.01, .nesterov = true}}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

struct AdamCase {
  const char* name;
  AdamOptions options;
  bool decoupled;
};
void PrintTo(const AdamCase& c, std::ostream* os) { *os << c.name; }

class OptimAdam : public ::testing::TestWithParam<AdamCase> {};

TEST_P(OptimAdam, MatchesDoubleReference) {
  const AdamCase c = GetParam();
  auto make = [&](NamedParams ps) -> std::unique_ptr<Optimizer> {
    if (!c.decoupled) return std::make_unique<Adam>(std::move(ps), c.options);
    const AdamOptions& a = c.options;
    return std::make_unique<AdamW>(std::move(ps), AdamWOptions{a.lr, a.beta1, a.beta2, a.eps, a.weight_decay});
  };
  for (DType dt : {DType::F64, DType::F32}) {
    RefAdam ref{c.options, c.decoupled};
    double err = compare(dt, 15, make, [&](auto& p, const auto& g) { ref.step(p, g); });
    EXPECT_LT(err, dt == DType::F64 ? 1e-12 : 1e-4) << dtype_name(dt);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Optim, OptimAdam,
    ::testing::Values(AdamCase{"adam", {.lr = 0.01}, false},
                      AdamCase{"adam_betas_eps", {.lr = 0.02, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-3}, false},
                      AdamCase{"adam_l2", {.lr = 0.01, .weight_decay = 0.1}, false},
                      AdamCase{"adamw", {.lr = 0.01, .weight_decay = 0.1}, true},
                      AdamCase{"adamw_large_decay", {.lr = 0.05, .beta2 = 0.9, .weight_decay = 0.5}, true}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Optim, AdamFirstStepIsLrTimesSign) {
  // After one step with bias correction m_hat = g and v_hat = g^2, so the update is lr*g/(|g|+eps).
  AdamOptions o{.lr = 0.1, .eps = 1e-8};
  Var p(Tensor::from_f64({3}, {1.0, -2.0, 0.5}), true, "w");
  p.grad().copy_from(Tensor::from_f64({3}, {3.0, -0.25, 1e-3}));
  Adam adam({{"w", p}}, o);
  adam.step();
  const double g[3] = {3.0, -0.25, 1e-3}, p0[3] = {1.0, -2.0, 0.5};
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(p.value().item(i), p0[i] - o.lr * g[i] / (std::abs(g[i]) + o.eps), 1e-12);
}

TEST(Optim, AdamWDefaultsAndDecoupledDecayWithZeroGrad) {
  EXPECT_EQ(AdamWOptions().weight_decay, 1e-2);
  // With a zero gradient the Adam part is zero and only the decay p *= 1 - lr*wd remains.
  AdamWOptions o{.lr = 0.1};
  Var p(Tensor::from_f64({2}, {2.0, -4.0}), true, "w");
  p.grad().zero_();
  AdamW opt({{"w", p}}, o);
  opt.step();
  EXPECT_DOUBLE_EQ(p.value().item(0), 2.0 * (1 - 0.1 * 1e-2));
  EXPECT_DOUBLE_EQ(p.value().item(1), -4.0 * (1 - 0.1 * 1e-2));
  EXPECT_STREQ(opt.type(), "adamw");
}

TEST(Optim, ParametersWithoutGradAreSkipped) {
  Var a(Tensor::from({2}, {1, 2}), true, "a");
  Var b(Tensor::from({2}, {3, 4}), true, "b");
  a.grad().fill_(1.0);
  Adam opt({{"a", a}, {"b", b}}, AdamOptions{.lr = 0.1, .weight_decay = 0.1});
  opt.step();
  EXPECT_FALSE(b.has_grad());
  EXPECT_EQ(b.value().to_vector(), (std::vector<float>{3, 4}));
  EXPECT_NE(a.value().to_vector(), (std::vector<float>{1, 2}));
  OptimizerState st = opt.state_dict();
  EXPECT_EQ(st.slots.size(), 2u);
  EXPECT_TRUE(st.slots.count("a.exp_avg"));
  EXPECT_TRUE(st.slots.count("a.exp_avg_sq"));
  EXPECT_EQ(st.scalars["param_steps"], nlohmann::json({{"a", 1}}));
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(Optim, ZeroGradAndLr) {
  Var a(Tensor::from({2}, {1, 2}), true, "a");
  a.grad().fill_(3.0);
  Sgd opt({{"a", a}}, SgdOptions{.lr = 0.5});
  opt.zero_grad();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{0, 0}));
  opt.set_lr(0.25);
  EXPECT_EQ(opt.lr(), 0.25);
  EXPECT_THROW(opt.set_lr(-1), Error);
}

TEST(Optim, InvalidOptionsThrow) {
  Var a(Tensor::from({1}, {1}), true, "a");
  EXPECT_THROW(Sgd({{"a", a}}, SgdOptions{.nesterov = true}), Error);
  EXPECT_THROW(Sgd({{"a", a}}, SgdOptions{.momentum = -0.1}), Error);
  EXPECT_THROW(Adam({{"a", a}}, AdamOptions{.beta1 = 1.0}), Error);
  EXPECT_THROW(Adam({{"a", a}, {"a", a}}, AdamOptions{}), Error);
  Var ids(Tensor::from_i64({1}, {1}), true, "ids");
  EXPECT_THROW(Adam({{"ids", ids}}, AdamOptions{}), Error);
}

TEST(Optim, StateDictRoundTripContinuesIdentically) {
  auto run = [](Optimizer& opt, Var& p, int from, int to) {
    for (int s = from; s < to; ++s) {
      for (int64_t i = 0; i < p.value().numel(); ++i)
        p.grad().f32()[i] = static_cast<float>(grad_of(p.value().item(i), i, s));
      opt.step();
    }
  };
  const std::vector<float> init = {0.5f, -1.0f, 2.0f, 0.1f};
  Var p1(Tensor::from({4}, init), true, "w"), p2(Tensor::from({4}, init), true, "w");
  SgdOptions o{.lr = 0.05, .momentum = 0.9, .nesterov = true};
  Sgd a({{"w", p1}}, o), b({{"w", p2}}, o);
  run(a, p1, 0, 6);
  run(b, p2, 0, 3);
  OptimizerState st = b.state_dict();
  Var p3(p2.value().clone(), true, "w");
  Sgd c({{"w", p3}}, o);
  c.load_state_dict(st);
  EXPECT_EQ(c.step_count(), 3);
  run(c, p3, 3, 6);
  EXPECT_EQ(p3.value().to_vector(), p1.value().to_vector());
}

TEST(Optim, LoadStateDictRejectsMismatches) {
  Var p(Tensor::from({3}, {1, 2, 3}), true, "w");
  p.grad().fill_(1.0);
  Adam adam({{"w", p}}, AdamOptions{});
  adam.step();
  const OptimizerState good = adam.state_dict();
  auto expect_error = [](const std::function<void()>& f, std::vector<std::string> words) {
    try {
      f();
      ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
      for (const auto& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
    }
  };
  Var q(Tensor::from({3}, {1, 2, 3}), true, "w");
  {
    Sgd sgd({{"w", q}}, SgdOptions{.momentum = 0.9});
    expect_error([&] { sgd.load_state_dict(good); }, {"adam", "sgd"});
  }
  Adam fresh({{"w", q}}, AdamOptions{});
  OptimizerState st = good;
  st.slots.erase("w.exp_avg_sq");
  expect_error([&] { fresh.load_state_dict(st); }, {"missing", "w.exp_avg_sq"});
  st = good;
  st.slots["w.extra"] = Tensor::zeros({3});
  expect_error([&] { fresh.load_state_dict(st); }, {"unexpected", "w.extra"});
  st = good;
  st.scalars["param_steps"]["other"] = 2;
  expect_error([&] { fresh.load_state_dict(st); }, {"unexpected", "other"});
  st = good;
  st.slots["w.exp_avg"] = Tensor::zeros({4});
  expect_error([&] { fresh.load_state_dict(st); }, {"w.exp_avg", "(4,)", "(3,)"});
  st = good;
  st.scalars["step"] = "three";
  expect_error([&] { fresh.load_state_dict(st); }, {"step"});
  EXPECT_EQ(fresh.step_count(), 0);
  EXPECT_EQ(fresh.state_dict().slots.size(), 0u);  // nothing changed by the failed loads
}

TEST(Optim, ClipGradNormMatchesPyTorchRule) {
  Var a(Tensor::from({2}, {0, 0}), true, "a"), b(Tensor::from({3}, {0, 0, 0}), true, "b");
  Var c(Tensor::from({1}, {0}), true, "c");  // no gradient: ignored
  a.grad().copy_from(Tensor::from({2}, {3, -4}));
  b.grad().copy_from(Tensor::from({3}, {1, 2, -2}));
  const double norm = std::sqrt(9.0 + 16 + 1 + 4 + 4);
  EXPECT_DOUBLE_EQ(clip_grad_norm(std::vector<Var>{a, b, c}, 10.0), norm);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{3, -4}));  // below max_norm: untouched
  EXPECT_DOUBLE_EQ(clip_grad_norm(NamedParams{{"a", a}, {"b", b}, {"c", c}}, 2.0), norm);
  const double coef = 2.0 / (norm + 1e-6);
  EXPECT_FLOAT_EQ(a.grad().item(0), static_cast<float>(3 * coef));
  EXPECT_FLOAT_EQ(b.grad().item(2), static_cast<float>(-2 * coef));
  EXPECT_FALSE(c.has_grad());
  EXPECT_NEAR(clip_grad_norm(std::vector<Var>{a, b}, 100.0), 2.0, 1e-5);
  b.grad().f32()[0] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isinf(clip_grad_norm(std::vector<Var>{a, b}, 1.0)));
  EXPECT_THROW(clip_grad_norm(std::vector<Var>{a}, 0.0), Error);
}

// Large parameters are updated in chunks spread over the thread pool, and the clipping norm is
// summed in eight interleaved lanes: both must give the same numbers on 1 and on 3 threads, and
// agree with the double-precision references.
TEST(Optim, LargeParametersGiveTheSameResultOnAnyThreadCount) {
  const int64_t n = 200003;  // several chunks, and not a multiple of 8
  const int threads_before = num_threads();
  const AdamOptions o{.lr = 0.01, .weight_decay = 0.05};
  std::vector<std::vector<float>> values, grads;
  std::vector<double> norms;
  for (int threads : {1, 3}) {
    set_num_threads(threads);
    Var p(Tensor::from_f64({n}, initial_values(n)).to(DType::F32), true, "w");
    Adam opt({{"w", p}}, o);
    double norm = 0;
    for (int s = 0; s < 3; ++s) {
      for (int64_t i = 0; i < n; ++i) p.grad().f32()[i] = static_cast<float>(grad_of(p.value().item(i), i, s));
      norm = clip_grad_norm(std::vector<Var>{p}, 1.0);
      opt.step();
    }
    values.push_back(p.value().to_vector());
    grads.push_back(p.grad().to_vector());
    norms.push_back(norm);
  }
  set_num_threads(threads_before);
  EXPECT_EQ(values[0], values[1]);
  EXPECT_EQ(grads[0], grads[1]);
  EXPECT_EQ(norms[0], norms[1]);

  // The same three steps in double, clipping included.
  std::vector<double> ref = initial_values(n);
  RefAdam adam{o, false};
  double ref_norm = 0;
  for (int s = 0; s < 3; ++s) {
    std::vector<double> g(static_cast<size_t>(n));
    double sq = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double gi = static_cast<float>(grad_of(ref[static_cast<size_t>(i)], i, s));
      g[static_cast<size_t>(i)] = gi;
      sq += gi * gi;
    }
    ref_norm = std::sqrt(sq);
    for (double& gi : g) gi *= std::min(1.0, 1.0 / (ref_norm + 1e-6));
    adam.step(ref, g);
  }
  EXPECT_NEAR(norms[0], ref_norm, 1e-4 * ref_norm);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = ref[static_cast<size_t>(i)];
    worst = std::max(worst, std::abs(values[0][static_cast<size_t>(i)] - r) / (std::abs(r) + 1e-3));
  }
  EXPECT_LT(worst, 1e-3);
}

TEST(Optim, ClipGradNormSumsEveryElement) {
  // Odd sizes exercise the lanes' tails; one large element in each position of the last lane.
  for (int64_t n : {1, 7, 8, 9, 17, 1001}) {
    Var a(Tensor::zeros({n}, DType::F32), true, "a");
    Var b(Tensor::zeros({n}, DType::F64), true, "b");
    double expect = 0;
    for (int64_t i = 0; i < n; ++i) {
      a.grad().f32()[i] = static_cast<float>(i % 5) - 2.0f;
      b.grad().data<double>()[i] = 0.5 * static_cast<double>(i % 3);
      expect += std::pow(static_cast<double>(i % 5) - 2.0, 2) + std::pow(0.5 * static_cast<double>(i % 3), 2);
    }
    a.grad().f32()[n - 1] = 100.0f;
    expect += 100.0 * 100.0 - std::pow(static_cast<double>((n - 1) % 5) - 2.0, 2);
    EXPECT_NEAR(clip_grad_norm(std::vector<Var>{a, b}, 1e9), std::sqrt(expect), 1e-9) << n;
  }
}

TEST(Schedule, ConstantWithWarmupFromZero) {
  LrScheduleOptions o{.kind = LrScheduleKind::Constant, .base_lr = 0.1, .warmup_steps = 10};
  EXPECT_EQ(lr_at(o, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 5), 0.05);
  EXPECT_DOUBLE_EQ(lr_at(o, 9), 0.09);
  EXPECT_DOUBLE_EQ(lr_at(o, 10), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(o, 1000000), 0.1);
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.1);
}

TEST(Schedule, StepDecay) {
  LrScheduleOptions o{.kind = LrScheduleKind::Step, .base_lr = 1.0, .warmup_steps = 2, .step_size = 3, .gamma = 0.5};
  EXPECT_DOUBLE_EQ(lr_at(o, 1), 0.5);  // warmup
  EXPECT_DOUBLE_EQ(lr_at(o, 2), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 4), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 5), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(o, 7), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(o, 8), 0.25);
  EXPECT_DOUBLE_EQ(lr_at(o, 2 + 3 * 10), std::pow(0.5, 10));
  o.step_size = 0;
  EXPECT_THROW(lr_at(o, 5), Error);
}

TEST(Schedule, CosineEndpoints) {
  LrScheduleOptions o{
      .kind = LrScheduleKind::Cosine, .base_lr = 0.2, .warmup_steps = 10, .total_steps = 110, .min_lr = 0.02};
  EXPECT_EQ(lr_at(o, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr_at(o, 10), 0.2);
  EXPECT_DOUBLE_EQ(lr_at(o, 60), 0.11);  // halfway: (base + min) / 2
  EXPECT_DOUBLE_EQ(lr_at(o, 35), 0.02 + 0.18 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25)));
  EXPECT_DOUBLE_EQ(lr_at(o, 110), 0.02);
  EXPECT_DOUBLE_EQ(lr_at(o, 500), 0.02);
  EXPECT_GT(lr_at(o, 109), 0.02);
  for (int64_t s = 11; s < 110; ++s) EXPECT_LT(lr_at(o, s), lr_at(o, s - 1));  // monotone decay
  o.total_steps = 10;
  EXPECT_THROW(lr_at(o, 20), Error);
  EXPECT_THROW(lr_at(LrScheduleOptions{}, -1), Error);
}

// Moving average of the weights: float parameters (one large enough to be split over the pool, a
// double one) moved by a few Adam steps; after every step the averages must match the double
// reference fed with the same parameter values, with TensorFlow's warm-up of the decay.
TEST(Ema, MatchesDoubleReferenceWithWarmup) {
  set_num_threads(2);
  Rng rng(5);
  NamedParams params = {{"big", Var(test::randn({300, 257}, rng), true, "big")},
                        {"small", Var(test::randn({7}, rng, 1.0, DType::F64), true, "small")}};
  Adam opt(params, AdamOptions{.lr = 0.05});
  ParamEma ema(params, 0.9);
  EXPECT_DOUBLE_EQ(ema.decay_at(0), 0.1);
  EXPECT_DOUBLE_EQ(ema.decay_at(8), 0.5);
  EXPECT_DOUBLE_EQ(ema.decay_at(1000), 0.9);
  std::vector<std::vector<double>> ref;
  auto values = [](const Var& v) {
    std::vector<double> out(static_cast<size_t>(v.value().numel()));
    for (size_t i = 0; i < out.size(); ++i) out[i] = v.value().item(static_cast<int64_t>(i));
    return out;
  };
  for (const auto& [name, v] : params) ref.push_back(values(v));
  for (int64_t s = 0; s < 120; ++s) {
    opt.zero_grad();
    for (const auto& [name, v] : params) {
      const int64_t n = v.value().numel();
      for (int64_t i = 0; i < n; ++i) {
        const double g = grad_of(v.value().item(i), i, s);
        if (v.value().dtype() == DType::F32) v.grad().f32()[i] = static_cast<float>(g);
        else v.grad().data<double>()[i] = g;
      }
    }
    opt.step();
    const double d = ema.decay_at(ema.updates());
    ema.update();
    for (size_t k = 0; k < params.size(); ++k) ema_reference_update(ref[k], values(params[k].second), d);
  }
  EXPECT_EQ(ema.updates(), 120);
  const std::map<std::string, Tensor> avg = ema.state_dict();
  for (size_t k = 0; k < params.size(); ++k) {
    const Tensor& a = avg.at(params[k].first);
    EXPECT_TRUE(a.device().is_cpu());
    double worst = 0, moved = 0;
    for (size_t i = 0; i < ref[k].size(); ++i) {
      worst = std::max(worst, std::abs(a.item(static_cast<int64_t>(i)) - ref[k][i]));
      moved = std::max(moved, std::abs(ref[k][i] - params[k].second.value().item(static_cast<int64_t>(i))));
    }
    EXPECT_LT(worst, a.dtype() == DType::F32 ? 2e-5 : 1e-12) << params[k].first;
    EXPECT_GT(moved, 1e-3) << params[k].first << ": the average must lag the live weights";
  }
}

TEST(Ema, SwapExchangesAndSwapsBack) {
  Rng rng(6);
  NamedParams params = {{"w", Var(test::randn({4, 5}, rng), true, "w")}};
  ParamEma ema(params, 0.5);
  const std::vector<float> start = params[0].second.value().to_vector();
  params[0].second.value().fill_(2.0);
  ema.update();  // d_0 = 0.1: avg = start + 0.9 * (2 - start)
  const std::vector<float> live = params[0].second.value().to_vector();
  ema.swap();
  const std::vector<float> swapped = params[0].second.value().to_vector();
  for (size_t i = 0; i < start.size(); ++i) EXPECT_FLOAT_EQ(swapped[i], start[i] + 0.9f * (2.0f - start[i]));
  EXPECT_EQ(ema.state_dict().at("w").to_vector(), live);
  ema.swap();
  EXPECT_EQ(params[0].second.value().to_vector(), live);
  EXPECT_EQ(ema.state_dict().at("w").to_vector(), swapped);
}

TEST(Ema, BadDecayAndStateAreClearErrors) {
  Rng rng(7);
  NamedParams params = {{"w", Var(test::randn({3}, rng), true, "w")}, {"b", Var(test::randn({2}, rng), true, "b")}};
  EXPECT_THROW(ParamEma(params, 0.0), Error);
  EXPECT_THROW(ParamEma(params, 1.0), Error);
  ParamEma ema(params, 0.99);
  ema.update();
  std::map<std::string, Tensor> sd = ema.state_dict();
  const std::vector<float> before = sd.at("w").to_vector();
  auto message = [&](const std::map<std::string, Tensor>& t, const nlohmann::json& j) {
    try {
      ema.load_state_dict(t, j);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ParamEma other(params, 0.9);
  EXPECT_NE(message(sd, other.scalars()).find("decay 0.9"), std::string::npos);
  std::map<std::string, Tensor> missing = sd;
  missing.erase("b");
  missing["x"] = Tensor::zeros({2});
  const std::string m = message(missing, ema.scalars());
  EXPECT_NE(m.find("missing tensors [b]"), std::string::npos) << m;
  EXPECT_NE(m.find("unexpected tensors [x]"), std::string::npos) << m;
  std::map<std::string, Tensor> shape = sd;
  shape["w"] = Tensor::zeros({4});
  EXPECT_NE(message(shape, ema.scalars()).find("'w'"), std::string::npos);
  EXPECT_NE(message(sd, nlohmann::json{{"decay", 0.99}}).find("updates"), std::string::npos);
  EXPECT_EQ(ema.state_dict().at("w").to_vector(), before);  // failed loads change nothing
  EXPECT_EQ(ema.updates(), 1);
}

}  // namespace
}  // namespace recur::train
