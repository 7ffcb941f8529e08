// Whole models on a GPU against the same models on the CPU: a few training steps of Seq2Vec
// (embedding / feature rows, stacked bidirectional GRU/LSTM, every pooling, dropout, Adam, clipping)
// give the same losses and parameters; a GPU-trained model loads on the CPU with equal outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "recur/core/cuda.h"
#include "recur/models/seq2vec.h"
#include "recur/ops/loss.h"
#include "recur/train/checkpoint.h"
#include "recur/train/optimizer.h"
#include "test_util.h"

namespace recur {
namespace {

struct ModelCase {
  bool ids;
  ops::CellType cell;
  models::Pooling pooling;
  int64_t layers;
};

std::string model_case_name(const ::testing::TestParamInfo<ModelCase>& info) {
  const char* pool[] = {"last", "mean", "max", "attention"};
  return std::string(info.param.ids ? "ids_" : "rows_") + ops::cell_name(info.param.cell) + "_" +
         pool[static_cast<int>(info.param.pooling)] + "_l" + std::to_string(info.param.layers);
}

models::Seq2VecOptions options_for(const ModelCase& c) {
  models::Seq2VecOptions o;
  if (c.ids) {
    o.vocab_size = 50;
    o.embed_dim = 12;
  } else {
    o.input_size = 9;
    o.input_proj = 10;
  }
  o.cell = c.cell;
  o.hidden = 16;
  o.layers = c.layers;
  o.bidirectional = true;
  o.rnn_dropout = c.layers > 1 ? 0.2f : 0.0f;
  o.pooling = c.pooling;
  o.mlp_hidden = {14};
  o.dropout = 0.1f;
  o.outputs = 3;
  return o;
}

struct Batch {
  Tensor x, labels;
  PackedBatch pb;
};

Batch random_batch(const ModelCase& c, Rng& rng) {
  Batch b;
  std::vector<int64_t> lengths;
  for (int i = 0; i < 6; ++i) lengths.push_back(1 + static_cast<int64_t>(rng.below(9)));
  b.pb = PackedBatch::from_lengths(lengths);
  if (c.ids) {
    b.x = Tensor({b.pb.tokens(), 1}, DType::I64);
    for (int64_t i = 0; i < b.pb.tokens(); ++i) b.x.data<int64_t>()[i] = static_cast<int64_t>(rng.below(50));
  } else {
    b.x = test::randn({b.pb.tokens(), 9}, rng);
  }
  b.labels = Tensor({6}, DType::I64);
  for (int i = 0; i < 6; ++i) b.labels.data<int64_t>()[i] = static_cast<int64_t>(rng.below(3));
  return b;
}

class CudaSeq2Vec : public ::testing::TestWithParam<ModelCase> {};

TEST_P(CudaSeq2Vec, TrainingStepsMatchCpu) {
  RECUR_REQUIRE_GPU();
  const ModelCase mc = GetParam();
  Rng init_a(21), init_b(21);
  models::Seq2Vec cpu(options_for(mc), init_a), gpu(options_for(mc), init_b);
  gpu.to(Device::cuda(0));
  train::AdamOptions ao;
  ao.lr = 3e-3;
  train::Adam opt_c(cpu.named_parameters(), ao), opt_g(gpu.named_parameters(), ao);
  Rng data(5);
  for (int step = 0; step < 4; ++step) {
    Batch b = random_batch(mc, data);
    double losses[2];
    for (int k = 0; k < 2; ++k) {
      models::Seq2Vec& m = k ? gpu : cpu;
      train::Optimizer& opt = k ? static_cast<train::Optimizer&>(opt_g) : opt_c;
      const Device dev = k ? Device::cuda(0) : Device::cpu();
      Tape tape;
      opt.zero_grad();
      Var out = m.forward(tape, b.x.to(dev), b.pb, 100 + static_cast<uint64_t>(step));
      Var loss = cross_entropy(tape, out, b.labels.to(dev));
      losses[k] = loss.value().item();
      tape.backward(loss);
      train::clip_grad_norm(m.named_parameters(), 1.0);
      opt.step();
    }
    EXPECT_NEAR(losses[1], losses[0], 1e-4 * std::max(1.0, std::fabs(losses[0]))) << "step " << step;
  }
  auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    EXPECT_TRUE(pg[i].second.value().device().is_cuda()) << pg[i].first;
    EXPECT_ALL_CLOSE(pg[i].second.value(), pc[i].second.value(), 1e-3, 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, CudaSeq2Vec,
                         ::testing::Values(ModelCase{true, ops::CellType::GRU, models::Pooling::Max, 1},
                                           ModelCase{true, ops::CellType::LSTM, models::Pooling::Attention, 2},
                                           ModelCase{false, ops::CellType::GRU, models::Pooling::Last, 2},
                                           ModelCase{false, ops::CellType::LSTM, models::Pooling::Mean, 1},
                                           ModelCase{false, ops::CellType::RNN_TANH, models::Pooling::Last, 1}),
                         model_case_name);

// A model trained on the GPU, saved, loads into a CPU model and gives the same outputs.
TEST(CudaSeq2VecCheckpoint, GpuTrainedModelServesOnCpu) {
  RECUR_REQUIRE_GPU();
  const ModelCase mc{true, ops::CellType::LSTM, models::Pooling::Attention, 2};
  Rng init(3);
  models::Seq2Vec gpu(options_for(mc), init);
  gpu.to(Device::cuda(0));
  train::Adam opt(gpu.named_parameters(), {});
  Rng data(8);
  for (int step = 0; step < 3; ++step) {
    Batch b = random_batch(mc, data);
    Tape tape;
    opt.zero_grad();
    Var loss = cross_entropy(tape, gpu.forward(tape, b.x.to(Device::cuda(0)), b.pb, 7), b.labels.to(Device::cuda(0)));
    tape.backward(loss);
    opt.step();
  }
  const std::string path = (std::filesystem::temp_directory_path() / "recur_cuda_model_test.safetensors").string();
  train::save_checkpoint(path, gpu, &opt, nlohmann::json{{"epoch", 1}});
  Rng other(99);
  models::Seq2Vec cpu(options_for(mc), other);
  train::load_checkpoint(path, cpu, nullptr);
  std::filesystem::remove(path);
  gpu.train(false);
  cpu.train(false);
  Batch b = random_batch(mc, data);
  Tape tape;
  NoGrad ng(tape);
  Tensor yg = gpu.forward(tape, b.x.to(Device::cuda(0)), b.pb, 0).value();
  Tensor yc = cpu.forward(tape, b.x, b.pb, 0).value();
  EXPECT_ALL_CLOSE(yg, yc, 1e-4, 1e-5);
}

}  // namespace
}  // namespace recur
