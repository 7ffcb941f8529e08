// Optimizers and gradient clipping on a GPU against the same code on the CPU: identical
// parameters and gradients on both, several steps, parameters and slots compared. Also the
// device rules that hold without a GPU (slots on the parameter's device, CPU state_dicts).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "recur/core/cuda.h"
#include "recur/train/ema.h"
#include "recur/train/optimizer.h"
#include "test_util.h"

namespace recur::train {
namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-6;

Device gpu() { return Device::cuda(0); }

struct ParamSpec {
  Shape shape;
  DType dtype = DType::F32;
  int first_grad_step = 0;  // the parameter has no gradient before this step
};

// The same parameters twice: once on the CPU, once on the GPU.
struct Twin {
  NamedParams cpu, gpu;
};

Twin make_twin(const std::vector<ParamSpec>& specs, uint64_t seed) {
  Rng rng(seed);
  Twin t;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::string name = "p";
    name += std::to_string(i);
    Tensor init = test::randn(specs[i].shape, rng, 1.0, specs[i].dtype);
    t.cpu.emplace_back(name, Var(init.clone(), true, name));
    t.gpu.emplace_back(name, Var(init.to(gpu()), true, name));
  }
  return t;
}

// Writes the same fresh random gradient into both twins (GPU gradients live on the GPU).
void set_grad(const Var& cpu, const Var& on_gpu, const Tensor& g) {
  cpu.grad().copy_from(g);
  if (on_gpu.has_grad() && on_gpu.grad().device() == gpu())
    on_gpu.grad().copy_from(g);
  else
    on_gpu.grad() = g.to(gpu());
}

void expect_twins_close(const Twin& t, const Optimizer& cpu_opt, const Optimizer& gpu_opt, int step) {
  for (size_t i = 0; i < t.cpu.size(); ++i) {
    const Tensor& gv = t.gpu[i].second.value();
    EXPECT_EQ(gv.device(), gpu()) << t.gpu[i].first;
    EXPECT_ALL_CLOSE(gv, t.cpu[i].second.value(), kRtol, kAtol) << t.cpu[i].first << " after step " << step;
  }
  OptimizerState sc = cpu_opt.state_dict(), sg = gpu_opt.state_dict();
  EXPECT_EQ(sc.scalars, sg.scalars) << "step " << step;
  ASSERT_EQ(sc.slots.size(), sg.slots.size()) << "step " << step;
  for (const auto& [key, slot] : sc.slots) {
    ASSERT_TRUE(sg.slots.count(key)) << key;
    const Tensor& s = sg.slots.at(key);
    EXPECT_TRUE(s.device().is_cpu()) << key << ": state_dict slots must be host copies";
    EXPECT_ALL_CLOSE(s, slot, kRtol, kAtol) << key << " after step " << step;
  }
}

using MakeOpt = std::function<std::unique_ptr<Optimizer>(NamedParams)>;

// Runs `steps` steps on both twins with new random gradients each step and compares everything
// after every step. Parameters get their first gradient at their first_grad_step.
void run_twins(const std::vector<ParamSpec>& specs, const MakeOpt& make, int steps = 5, uint64_t seed = 7) {
  Twin t = make_twin(specs, seed);
  auto cpu_opt = make(t.cpu);
  auto gpu_opt = make(t.gpu);
  Rng rng(seed + 1000);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < specs.size(); ++i) {
      if (s < specs[i].first_grad_step) continue;
      Tensor g = test::randn(specs[i].shape, rng, 0.5, specs[i].dtype);
      set_grad(t.cpu[i].second, t.gpu[i].second, g);
    }
    cpu_opt->step();
    gpu_opt->step();
    expect_twins_close(t, *cpu_opt, *gpu_opt, s);
    for (size_t i = 0; i < specs.size(); ++i)
      if (s < specs[i].first_grad_step) {
        EXPECT_FALSE(t.gpu[i].second.has_grad()) << t.gpu[i].first;
      }
  }
  EXPECT_EQ(gpu_opt->step_count(), steps);
}

// Several tensors of different sizes (one spanning several chunks of 4096), a double one in the
// same launch, and one that gets its first gradient late (its own step count / first step).
std::vector<ParamSpec> mixed_specs() {
  return {{{64, 130}}, {{7}}, {{3, 5}, DType::F64}, {{4097}}, {{2, 3}, DType::F32, 2}, {{1}}};
}

// The moving average of the weights on a GPU (one multi-tensor launch) against the CPU loop: the
// same parameter values each step, averages compared after every update and after a swap.
TEST(CudaEma, MatchesCpuAndSwaps) {
  RECUR_REQUIRE_GPU();
  Twin t = make_twin(mixed_specs(), 11);
  ParamEma cpu_ema(t.cpu, 0.9), gpu_ema(t.gpu, 0.9);
  Rng rng(12);
  for (int s = 0; s < 6; ++s) {
    for (size_t i = 0; i < t.cpu.size(); ++i) {
      Tensor v = test::randn(t.cpu[i].second.shape(), rng, 1.0, t.cpu[i].second.value().dtype());
      t.cpu[i].second.value().copy_from(v);
      t.gpu[i].second.value().copy_from(v.to(gpu()));
    }
    cpu_ema.update();
    gpu_ema.update();
    const auto a = cpu_ema.state_dict(), b = gpu_ema.state_dict();
    for (const auto& [name, avg] : a) {
      EXPECT_TRUE(b.at(name).device().is_cpu()) << name;
      EXPECT_ALL_CLOSE(b.at(name), avg, kRtol, kAtol) << name << " after update " << s;
    }
  }
  cpu_ema.swap();
  gpu_ema.swap();
  for (size_t i = 0; i < t.cpu.size(); ++i) {
    EXPECT_EQ(t.gpu[i].second.value().device(), gpu());
    EXPECT_ALL_CLOSE(t.gpu[i].second.value(), t.cpu[i].second.value(), kRtol, kAtol) << t.cpu[i].first;
  }
}

TEST(CudaOptim, SgdPlainMatchesCpu) {
  RECUR_REQUIRE_GPU();
  run_twins(mixed_specs(), [](NamedParams p) { return std::make_unique<Sgd>(std::move(p), SgdOptions{.lr = 0.1}); });
}

TEST(CudaOptim, SgdMomentumWeightDecayMatchesCpu) {
  RECUR_REQUIRE_GPU();
  run_twins(mixed_specs(), [](NamedParams p) {
    return std::make_unique<Sgd>(std::move(p), SgdOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01});
  });
}

TEST(CudaOptim, SgdNesterovMatchesCpu) {
  RECUR_REQUIRE_GPU();
  run_twins(mixed_specs(), [](NamedParams p) {
    return std::make_unique<Sgd>(std::move(p),
                                 SgdOptions{.lr = 0.03, .momentum = 0.8, .weight_decay = 0.02, .nesterov = true});
  });
}

TEST(CudaOptim, AdamMatchesCpu) {
  RECUR_REQUIRE_GPU();
  run_twins(mixed_specs(), [](NamedParams p) {
    return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 0.01, .weight_decay = 0.05});
  });
}

TEST(CudaOptim, AdamBetasEpsMatchesCpu) {
  RECUR_REQUIRE_GPU();
  run_twins(mixed_specs(), [](NamedParams p) {
    return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 0.02, .beta1 = 0.8, .beta2 = 0.95, .eps = 1e-3});
  });
}

TEST(CudaOptim, AdamWMatchesCpu) {
  RECUR_REQUIRE_GPU();
  run_twins(mixed_specs(), [](NamedParams p) {
    return std::make_unique<AdamW>(std::move(p), AdamWOptions{.lr = 0.01, .beta2 = 0.99, .weight_decay = 0.1});
  });
}

// More chunks than blocks in one launch (the grid-stride path) and lr changes between steps.
TEST(CudaOptim, ManyChunksAndLrChanges) {
  RECUR_REQUIRE_GPU();
  const std::vector<ParamSpec> specs = {{{2100, 4096}}, {{5}}, {{1000, 33}}};
  Twin t = make_twin(specs, 3);
  AdamW cpu_opt(t.cpu, AdamWOptions{.lr = 0.01});
  AdamW gpu_opt(t.gpu, AdamWOptions{.lr = 0.01});
  Rng rng(5);
  for (int s = 0; s < 3; ++s) {
    for (size_t i = 0; i < specs.size(); ++i)
      set_grad(t.cpu[i].second, t.gpu[i].second, test::randn(specs[i].shape, rng));
    cpu_opt.set_lr(0.01 / (s + 1));
    gpu_opt.set_lr(0.01 / (s + 1));
    cpu_opt.step();
    gpu_opt.step();
  }
  expect_twins_close(t, cpu_opt, gpu_opt, 2);
}

// A gradient on another device than its parameter is an error naming the parameter.
TEST(CudaOptim, GradientOnOtherDeviceIsAnError) {
  RECUR_REQUIRE_GPU();
  Var p(Tensor::zeros({3}).to(gpu()), true, "w");
  p.grad() = Tensor::zeros({3});  // on the CPU
  Sgd sgd({{"w", p}}, SgdOptions{.lr = 0.1});
  try {
    sgd.step();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'w'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

// State saved from GPU parameters (host copies) resumes on the CPU, and CPU state on the GPU:
// the continued runs agree with an uninterrupted CPU run.
TEST(CudaOptim, StateDictMovesBetweenDevices) {
  RECUR_REQUIRE_GPU();
  const std::vector<ParamSpec> specs = {{{33, 17}}, {{9}, DType::F64}};
  auto make = [](NamedParams p) { return std::make_unique<Adam>(std::move(p), AdamOptions{.lr = 0.01}); };
  Twin t = make_twin(specs, 11);
  auto cpu_opt = make(t.cpu);
  auto gpu_opt = make(t.gpu);
  Rng rng(12);
  std::vector<std::vector<Tensor>> grads(6);
  for (auto& step : grads)
    for (const ParamSpec& s : specs) step.push_back(test::randn(s.shape, rng, 1.0, s.dtype));
  auto run = [&](const NamedParams& cpu_p, const NamedParams& gpu_p, Optimizer& c, Optimizer& g, int from, int to) {
    for (int s = from; s < to; ++s) {
      for (size_t i = 0; i < specs.size(); ++i) set_grad(cpu_p[i].second, gpu_p[i].second, grads[s][i]);
      c.step();
      g.step();
    }
  };
  run(t.cpu, t.gpu, *cpu_opt, *gpu_opt, 0, 3);

  // Swap: the CPU state goes to a GPU copy of the CPU parameters, the GPU state to CPU copies.
  Twin swapped;
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string& name = t.cpu[i].first;
    swapped.cpu.emplace_back(name, Var(t.gpu[i].second.value().cpu(), true, name));
    swapped.gpu.emplace_back(name, Var(t.cpu[i].second.value().to(gpu()), true, name));
  }
  auto cpu_from_gpu = make(swapped.cpu);
  auto gpu_from_cpu = make(swapped.gpu);
  OptimizerState from_gpu = gpu_opt->state_dict(), from_cpu = cpu_opt->state_dict();
  for (const auto& [k, v] : from_gpu.slots) EXPECT_TRUE(v.device().is_cpu()) << k;
  cpu_from_gpu->load_state_dict(from_gpu);
  gpu_from_cpu->load_state_dict(from_cpu);
  EXPECT_EQ(cpu_from_gpu->step_count(), 3);

  run(t.cpu, t.gpu, *cpu_opt, *gpu_opt, 3, 6);
  run(swapped.cpu, swapped.gpu, *cpu_from_gpu, *gpu_from_cpu, 3, 6);
  for (size_t i = 0; i < specs.size(); ++i) {
    EXPECT_ALL_CLOSE(swapped.cpu[i].second.value(), t.cpu[i].second.value(), kRtol, kAtol) << i;
    EXPECT_ALL_CLOSE(swapped.gpu[i].second.value(), t.cpu[i].second.value(), kRtol, kAtol) << i;
    EXPECT_EQ(swapped.gpu[i].second.value().device(), gpu());
  }
  // A GPU state_dict (device slots) also loads: slots are copied onto the parameter's device.
  OptimizerState dev_state = gpu_opt->state_dict();
  for (auto& [k, v] : dev_state.slots) v = v.to(gpu());
  auto cpu_from_dev = make(swapped.cpu);
  cpu_from_dev->load_state_dict(dev_state);
  for (const auto& [k, v] : cpu_from_dev->state_dict().slots) EXPECT_ALL_CLOSE(v, dev_state.slots.at(k), 0, 0) << k;
}

// --- clip_grad_norm ---

struct ClipTwin {
  std::vector<Var> cpu, gpu;
};

ClipTwin make_clip_twin(const std::vector<ParamSpec>& specs, uint64_t seed, double scale) {
  Rng rng(seed);
  ClipTwin t;
  for (size_t i = 0; i < specs.size(); ++i) {
    std::string name = "g";
    name += std::to_string(i);
    Var c(Tensor::zeros(specs[i].shape, specs[i].dtype), true, name);
    Var g(Tensor::zeros(specs[i].shape, specs[i].dtype).to(gpu()), true, name);
    if (specs[i].first_grad_step == 0) set_grad(c, g, test::randn(specs[i].shape, rng, scale, specs[i].dtype));
    t.cpu.push_back(c);
    t.gpu.push_back(g);
  }
  return t;
}

TEST(CudaClip, NormAndClippedGradsMatchCpu) {
  RECUR_REQUIRE_GPU();
  // One parameter without a gradient (first_grad_step 1): skipped on both.
  const std::vector<ParamSpec> specs = {{{300, 41}}, {{3}, DType::F64}, {{8}, DType::F32, 1}, {{2500, 4000}}};
  ClipTwin t = make_clip_twin(specs, 21, 0.1);
  const double n_cpu = clip_grad_norm(t.cpu, 1.0);
  const double n_gpu = clip_grad_norm(t.gpu, 1.0);
  EXPECT_GT(n_cpu, 1.0);
  EXPECT_NEAR(n_gpu, n_cpu, 1e-12 * n_cpu);
  for (size_t i = 0; i < specs.size(); ++i) {
    ASSERT_EQ(t.gpu[i].has_grad(), t.cpu[i].has_grad()) << i;
    if (!t.cpu[i].has_grad()) continue;
    EXPECT_EQ(t.gpu[i].grad().device(), gpu());
    EXPECT_ALL_CLOSE(t.gpu[i].grad(), t.cpu[i].grad(), 1e-6, 1e-9) << i;
  }
  // After clipping the norm is max_norm (up to the 1e-6 guard).
  EXPECT_NEAR(clip_grad_norm(t.gpu, 1e9), 1.0, 1e-5);
}

TEST(CudaClip, BelowMaxNormLeavesGradsUnchanged) {
  RECUR_REQUIRE_GPU();
  const std::vector<ParamSpec> specs = {{{10, 10}}, {{5}, DType::F64}};
  ClipTwin t = make_clip_twin(specs, 22, 0.01);
  std::vector<Tensor> before;
  for (const Var& v : t.gpu) before.push_back(v.grad().cpu());
  const double n_cpu = clip_grad_norm(t.cpu, 100.0);
  const double n_gpu = clip_grad_norm(t.gpu, 100.0);
  EXPECT_NEAR(n_gpu, n_cpu, 1e-12 * n_cpu);
  for (size_t i = 0; i < t.gpu.size(); ++i) EXPECT_ALL_CLOSE(t.gpu[i].grad(), before[i], 0, 0) << i;
}

TEST(CudaClip, NonFiniteNormLeavesGradsUntouched) {
  RECUR_REQUIRE_GPU();
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    const std::vector<ParamSpec> specs = {{{6000}}, {{4}}};
    ClipTwin t = make_clip_twin(specs, 23, 10.0);
    Tensor g0 = t.gpu[0].grad().cpu();
    g0.f32()[4321] = static_cast<float>(bad);
    t.gpu[0].grad().copy_from(g0);
    const Tensor g1 = t.gpu[1].grad().cpu();
    const double n = clip_grad_norm(t.gpu, 1.0);
    EXPECT_FALSE(std::isfinite(n)) << n;
    if (std::isnan(bad)) {
      EXPECT_TRUE(std::isnan(n));
    }
    EXPECT_ALL_CLOSE(t.gpu[1].grad(), g1, 0, 0);
    const Tensor after = t.gpu[0].grad().cpu();
    EXPECT_EQ(after.f32()[0], g0.f32()[0]);
    EXPECT_EQ(after.f32()[5999], g0.f32()[5999]);
  }
}

TEST(CudaClip, MixedCpuAndGpuGradients) {
  RECUR_REQUIRE_GPU();
  const std::vector<ParamSpec> specs = {{{50, 3}}, {{7}}, {{4, 4}, DType::F64}};
  ClipTwin t = make_clip_twin(specs, 24, 1.0);
  std::vector<Var> mixed = {t.cpu[0], t.gpu[1], t.gpu[2]};
  ClipTwin ref = make_clip_twin(specs, 24, 1.0);
  const double n_ref = clip_grad_norm(ref.cpu, 0.5);
  const double n_mixed = clip_grad_norm(mixed, 0.5);
  EXPECT_NEAR(n_mixed, n_ref, 1e-12 * n_ref);
  for (size_t i = 0; i < mixed.size(); ++i) EXPECT_ALL_CLOSE(mixed[i].grad(), ref.cpu[i].grad(), 1e-6, 1e-9) << i;
}

// --- without a GPU ---

TEST(OptimDevice, CpuStateDictSlotsAreCpuCopies) {
  Var p(Tensor::from({3}, {1, 2, 3}), true, "w");
  p.grad().fill_(0.5);
  Adam adam({{"w", p}}, AdamOptions{.lr = 0.1});
  adam.step();
  OptimizerState st = adam.state_dict();
  ASSERT_EQ(st.slots.size(), 2u);
  for (const auto& [k, v] : st.slots) EXPECT_TRUE(v.device().is_cpu()) << k;
  // A copy, not the live slot: changing it does not change the optimizer.
  const float before = static_cast<float>(st.slots.at("w.exp_avg").item(0));
  st.slots.at("w.exp_avg").fill_(42.0);
  EXPECT_EQ(static_cast<float>(adam.state_dict().slots.at("w.exp_avg").item(0)), before);
  // Loading takes copies too.
  Adam other({{"w", p}}, AdamOptions{.lr = 0.1});
  other.load_state_dict(st);
  st.slots.at("w.exp_avg").fill_(7.0);
  EXPECT_EQ(other.state_dict().slots.at("w.exp_avg").item(0), 42.0);
}

TEST(OptimDevice, GradientDtypeMismatchIsAnError) {
  Var p(Tensor::from({2}, {1, 2}), true, "w");
  p.grad() = Tensor::zeros({2}, DType::F64);
  Sgd sgd({{"w", p}}, SgdOptions{.lr = 0.1});
  EXPECT_THROW(sgd.step(), Error);
}

}  // namespace
}  // namespace recur::train
