// Modules on a GPU: Module::to / device(), state_dicts across devices, device-independent
// safetensors files and checkpoints (model and optimizer saved on a GPU, resumed on the CPU).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "recur/core/cuda.h"
#include "recur/nn/module.h"
#include "recur/train/checkpoint.h"
#include "recur/train/optimizer.h"
#include "recur/train/safetensors.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kRtol = 1e-5, kAtol = 1e-6;

Device gpu() { return Device::cuda(0); }

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("recur_cuda_module_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

class Child : public nn::Module {
 public:
  explicit Child(Rng& rng) { register_parameter("weight", test::randn({5, 3}, rng)); }
};

// Parameters of several sizes and both float dtypes, with a child (names "weight", "proj.weight").
class Model : public nn::Module {
 public:
  explicit Model(uint64_t seed) {
    Rng rng(seed);
    register_parameter("weight", test::randn({40, 120}, rng));
    register_parameter("bias", test::randn({7}, rng));
    register_parameter("scale", test::randn({3}, rng, 1.0, DType::F64));
    register_module("proj", std::make_shared<Child>(rng));
  }
};

class Empty : public nn::Module {};

bool same_values(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  return test::all_close(a, b, 0, 0);
}

// Writes a deterministic gradient (a function of the parameter value and the step) into every
// parameter, on the parameter's device.
void fill_grads(nn::Module& m, int64_t step) {
  int64_t k = 0;
  for (auto& [name, v] : m.named_parameters()) {
    Tensor p = v.value().cpu().to(DType::F64);
    Tensor g(p.shape(), DType::F64);
    for (int64_t i = 0; i < p.numel(); ++i, ++k) {
      const double target = std::sin(0.3 * static_cast<double>(step) + static_cast<double>(k % 97));
      g.data<double>()[i] = (0.5 + 0.1 * static_cast<double>(k % 5)) * (p.data<double>()[i] - target);
    }
    Tensor gd = g.to(v.value().dtype());
    if (v.has_grad() && v.grad().device() == v.value().device())
      v.grad().copy_from(gd);
    else
      v.grad() = gd.to(v.value().device());
  }
}

void train_steps(nn::Module& m, train::Optimizer& opt, int64_t from, int64_t to) {
  for (int64_t s = from; s < to; ++s) {
    fill_grads(m, s);
    train::clip_grad_norm(m.parameters(), 50.0);
    opt.step();
  }
}

void expect_modules_close(const nn::Module& a, const nn::Module& b, double rtol, double atol) {
  auto sb = b.state_dict();
  for (const auto& [name, t] : a.state_dict()) EXPECT_ALL_CLOSE(t, sb.at(name), rtol, atol) << name;
}

// --- without a GPU ---

TEST(ModuleDevice, CpuByDefault) {
  EXPECT_EQ(Model(1).device(), Device::cpu());
  EXPECT_EQ(Empty().device(), Device::cpu());
}

TEST(ModuleDevice, ToCpuIsANoOp) {
  Model m(1);
  Var w = m.named_parameters().front().second;
  w.grad().fill_(2.0);
  const void* value_ptr = w.value().raw();
  const void* grad_ptr = w.grad().raw();
  m.to(Device::cpu());
  EXPECT_EQ(m.device(), Device::cpu());
  EXPECT_EQ(w.value().raw(), value_ptr);
  EXPECT_EQ(w.grad().raw(), grad_ptr);
  EXPECT_FALSE(m.named_parameters()[1].second.has_grad());  // no gradient is allocated by to()
  Empty e;
  e.to(Device::cpu());
  EXPECT_EQ(e.device(), Device::cpu());
}

TEST(ModuleDevice, ToMissingGpuIsAnErrorAndChangesNothing) {
  if (cuda::available()) GTEST_SKIP() << "checks the error without a GPU";
  Model m(1);
  const Tensor before = m.state_dict().at("weight").clone();
  EXPECT_THROW(m.to(Device::cuda(0)), Error);
  EXPECT_EQ(m.device(), Device::cpu());
  EXPECT_TRUE(same_values(m.state_dict().at("weight"), before));
}

TEST(ModuleDevice, StateDictSharesStorage) {
  Model m(1);
  auto sd = m.state_dict();
  EXPECT_EQ(sd.at("proj.weight").raw(), m.named_parameters().back().second.value().raw());
}

// --- on a GPU ---

TEST(CudaModule, ToGpuAndBackKeepsValuesAndVars) {
  RECUR_REQUIRE_GPU();
  Model m(3);
  auto held = m.named_parameters();  // Var handles taken before the move
  std::map<std::string, Tensor> before;
  for (const auto& [name, t] : m.state_dict()) before[name] = t.clone();
  held[1].second.grad().fill_(0.25);  // "bias" has a gradient, the others none

  m.to(gpu());
  EXPECT_EQ(m.device(), gpu());
  for (const auto& [name, v] : held) {
    EXPECT_EQ(v.value().device(), gpu()) << name;
    EXPECT_TRUE(same_values(v.value(), before.at(name))) << name;
  }
  ASSERT_TRUE(held[1].second.has_grad());
  EXPECT_EQ(held[1].second.grad().device(), gpu());
  EXPECT_ALL_CLOSE(held[1].second.grad(), Tensor::full({7}, 0.25), 0, 0);
  EXPECT_FALSE(held[0].second.has_grad());
  for (const auto& [name, t] : m.state_dict()) EXPECT_EQ(t.device(), gpu()) << name;  // as they are

  m.to(Device::cpu());
  EXPECT_EQ(m.device(), Device::cpu());
  for (const auto& [name, t] : m.state_dict()) {
    EXPECT_TRUE(t.device().is_cpu()) << name;
    EXPECT_TRUE(same_values(t, before.at(name))) << name;
  }
  EXPECT_TRUE(held[1].second.grad().device().is_cpu());
}

TEST(CudaModule, LoadStateDictAcrossDevices) {
  RECUR_REQUIRE_GPU();
  Model src(4), on_gpu(5), on_cpu(6);
  on_gpu.to(gpu());
  on_gpu.load_state_dict(src.state_dict());  // CPU tensors into a GPU module
  EXPECT_EQ(on_gpu.device(), gpu());
  for (const auto& [name, t] : on_gpu.state_dict()) {
    EXPECT_EQ(t.device(), gpu()) << name;
    EXPECT_TRUE(same_values(t, src.state_dict().at(name))) << name;
  }
  on_cpu.load_state_dict(on_gpu.state_dict());  // GPU tensors into a CPU module
  EXPECT_EQ(on_cpu.device(), Device::cpu());
  for (const auto& [name, t] : on_cpu.state_dict()) EXPECT_TRUE(same_values(t, src.state_dict().at(name))) << name;
}

TEST(CudaModule, SafetensorsSavesGpuTensors) {
  RECUR_REQUIRE_GPU();
  TempDir dir;
  Model m(7);
  m.to(gpu());
  const std::string path = dir.file("gpu.safetensors");
  save_safetensors(path, m.state_dict(), json{{"origin", "gpu"}});
  SafetensorsFile f = load_safetensors(path);
  EXPECT_EQ(f.metadata.at("origin"), "gpu");
  ASSERT_EQ(f.tensors.size(), 4u);
  for (const auto& [name, t] : m.state_dict()) {
    EXPECT_TRUE(f.tensors.at(name).device().is_cpu());
    EXPECT_TRUE(same_values(f.tensors.at(name), t)) << name;
  }
}

// Saved on a GPU (model and Adam state), loaded into a CPU model: the same values, and training
// continued on the CPU follows training continued on the GPU.
TEST(CudaModule, CheckpointFromGpuResumesOnCpu) {
  RECUR_REQUIRE_GPU();
  TempDir dir;
  Model g(8);
  g.to(gpu());
  train::AdamW opt_g(g.named_parameters(), train::AdamWOptions{.lr = 0.01, .weight_decay = 0.05});
  train_steps(g, opt_g, 0, 4);
  const std::string path = dir.file("ckpt.safetensors");
  train::save_checkpoint(path, g, &opt_g, {{"steps", 4}});

  Model c(99);
  train::AdamW opt_c(c.named_parameters(), train::AdamWOptions{.lr = 0.01, .weight_decay = 0.05});
  EXPECT_EQ(train::load_checkpoint(path, c, &opt_c)["steps"], 4);
  EXPECT_EQ(c.device(), Device::cpu());
  for (const auto& [name, t] : g.state_dict()) EXPECT_TRUE(same_values(c.state_dict().at(name), t)) << name;
  train::OptimizerState sg = opt_g.state_dict(), sc = opt_c.state_dict();
  EXPECT_EQ(sg.scalars, sc.scalars);
  ASSERT_EQ(sg.slots.size(), sc.slots.size());
  for (const auto& [key, t] : sg.slots) EXPECT_TRUE(same_values(sc.slots.at(key), t)) << key;

  train_steps(g, opt_g, 4, 8);
  train_steps(c, opt_c, 4, 8);
  expect_modules_close(g, c, kRtol, kAtol);

  // And back: the CPU checkpoint loads into a GPU model, whose slots land on the GPU.
  const std::string path2 = dir.file("ckpt2.safetensors");
  train::save_checkpoint(path2, c, &opt_c, json::object());
  Model g2(100);
  g2.to(gpu());
  train::AdamW opt_g2(g2.named_parameters(), train::AdamWOptions{.lr = 0.01, .weight_decay = 0.05});
  train::load_checkpoint(path2, g2, &opt_g2);
  EXPECT_EQ(g2.device(), gpu());
  expect_modules_close(g2, c, 0, 0);
  train_steps(g2, opt_g2, 8, 10);
  train_steps(c, opt_c, 8, 10);
  expect_modules_close(g2, c, kRtol, kAtol);
}

// An optimizer created before Module::to keeps working: its slots follow the parameters.
TEST(CudaModule, OptimizerFollowsModuleToGpu) {
  RECUR_REQUIRE_GPU();
  Model a(9), b(9);
  train::Sgd opt_a(a.named_parameters(), train::SgdOptions{.lr = 0.02, .momentum = 0.9, .nesterov = true});
  train::Sgd opt_b(b.named_parameters(), train::SgdOptions{.lr = 0.02, .momentum = 0.9, .nesterov = true});
  train_steps(a, opt_a, 0, 2);
  train_steps(b, opt_b, 0, 2);
  b.to(gpu());
  train_steps(a, opt_a, 2, 5);
  train_steps(b, opt_b, 2, 5);
  EXPECT_EQ(b.device(), gpu());
  expect_modules_close(b, a, kRtol, kAtol);
  b.to(Device::cpu());
  train_steps(a, opt_a, 5, 6);
  train_steps(b, opt_b, 5, 6);
  expect_modules_close(b, a, kRtol, kAtol);
}

}  // namespace
}  // namespace recur
