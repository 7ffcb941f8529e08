// `recur demo`: trains a small LSTM classifier on generated variable-length sequences and prints
// the falling loss. Later issues replace it with real tasks.
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "recur/core/thread_pool.h"
#include "recur/nn/layers.h"
#include "recur/nn/rnn.h"
#include "recur/ops/loss.h"
#include "recur/ops/pool.h"
#include "recur/train/checkpoint.h"
#include "recur/train/optimizer.h"

namespace recur::cli {

namespace {

struct DemoSettings {
  int epochs = 12;
  int threads = 2;
  uint64_t seed = 1;
  std::string out = "out/demo";
};

// Task: each step reads one of {+1, -1} (one-hot); the label is 1 when +1 is the majority.
// Lengths vary from 4 to 40, so the model must count over a variable horizon.
struct Batch {
  Tensor x;  // (N, 2) packed
  PackedBatch pb;
  Tensor labels;  // (B) int64
};

Batch make_batch(Rng& rng, int64_t B) {
  std::vector<Tensor> seqs;
  std::vector<int64_t> labels;
  for (int64_t b = 0; b < B; ++b) {
    int64_t L = 4 + 2 * static_cast<int64_t>(rng.below(19));  // even lengths: no ties... except equal counts
    Tensor s = Tensor::zeros({L, 2});
    int64_t plus = 0;
    for (int64_t t = 0; t < L; ++t) {
      bool p = rng.uniform() < 0.5;
      plus += p;
      s.f32()[t * 2 + (p ? 0 : 1)] = 1.0f;
    }
    // Break ties by flipping the last step, so every label is defined.
    if (2 * plus == L) {
      s.f32()[(L - 1) * 2] = 1.0f - s.f32()[(L - 1) * 2];
      s.f32()[(L - 1) * 2 + 1] = 1.0f - s.f32()[(L - 1) * 2 + 1];
      plus += s.f32()[(L - 1) * 2] > 0 ? 1 : -1;
    }
    seqs.push_back(s);
    labels.push_back(2 * plus > L ? 1 : 0);
  }
  Batch batch;
  batch.x = pack_sequences(seqs, &batch.pb);
  batch.labels = Tensor::from_i64({B}, labels);
  return batch;
}

class DemoModel : public nn::Module {
 public:
  explicit DemoModel(Rng& rng)
      : rnn_(register_module("rnn", std::make_shared<nn::RNN>(nn::RnnOptions{ops::CellType::LSTM, 2, 32, 1}, rng))),
        head_(register_module("head", std::make_shared<nn::Linear>(32, 2, rng))) {}
  Var forward(Tape& tape, const Batch& b) {
    nn::RnnOutput out = rnn_->forward(tape, Var(b.x), b.pb);
    return head_->forward(tape, gather_last_step(tape, out.y, b.pb));
  }

 private:
  std::shared_ptr<nn::RNN> rnn_;
  std::shared_ptr<nn::Linear> head_;
};

void run_demo(const DemoSettings& s) {
  set_num_threads(s.threads);
  Rng rng(s.seed);
  DemoModel model(rng);
  train::Adam opt(model.named_parameters(), train::AdamOptions{.lr = 1e-2});
  Batch valid = make_batch(rng, 512);
  std::cout << fmt::format("demo: LSTM(2 -> 32) + linear head, {} parameters; majority vote over sequences of 4-40 steps",
                           model.num_parameters())
            << std::endl;
  auto t0 = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= s.epochs; ++epoch) {
    double loss_sum = 0;
    const int steps = 25;
    for (int i = 0; i < steps; ++i) {
      Batch b = make_batch(rng, 64);
      Tape tape;
      model.zero_grad();
      Var loss = cross_entropy(tape, model.forward(tape, b), b.labels);
      loss_sum += loss.value().item();
      tape.backward(loss);
      train::clip_grad_norm(model.parameters(), 5.0);
      opt.step();
    }
    Tape tape;
    NoGrad ng(tape);
    Var logits = model.forward(tape, valid);
    int64_t right = 0;
    for (int64_t r = 0; r < 512; ++r) {
      int64_t guess = logits.value().f32()[r * 2 + 1] > logits.value().f32()[r * 2] ? 1 : 0;
      right += guess == valid.labels.data<int64_t>()[r];
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << fmt::format("epoch {:2d}  train loss {:.4f}  valid accuracy {:5.1f}%  ({:.1f} s)", epoch,
                             loss_sum / steps, 100.0 * static_cast<double>(right) / 512, secs)
              << std::endl;
  }
  std::filesystem::create_directories(s.out);
  std::string path = s.out + "/demo.safetensors";
  train::save_checkpoint(path, model, &opt, nlohmann::json{{"task", "demo-majority"}, {"hidden", 32}});
  std::cout << "checkpoint: " << path << std::endl;
}

}  // namespace

void add_demo(CLI::App& app) {
  auto s = std::make_shared<DemoSettings>();
  CLI::App* demo = app.add_subcommand("demo", "Train a small LSTM on generated data and print the falling loss");
  demo->add_option("--epochs", s->epochs, "Epochs")->check(CLI::PositiveNumber);
  demo->add_option("--threads", s->threads, "Threads")->check(CLI::PositiveNumber);
  demo->add_option("--seed", s->seed, "Seed");
  demo->add_option("--out", s->out, "Directory for the checkpoint");
  demo->callback([s] { run_demo(*s); });
}

}  // namespace recur::cli
