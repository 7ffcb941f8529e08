#pragma once
// A small real model and data set for the data-parallel tests (in-process and under mpirun): an
// LSTM over variable-length sequences with a per-token linear classifier, trained with
// cross-entropy averaged over the tokens of a batch.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "recur/core/rng.h"
#include "recur/core/tape.h"
#include "recur/dist/data_parallel.h"
#include "recur/nn/layers.h"
#include "recur/nn/rnn.h"
#include "recur/ops/loss.h"
#include "recur/seq/packed.h"

namespace recur::disttest {

struct ToyModel : nn::Module {
  std::shared_ptr<nn::RNN> rnn;
  std::shared_ptr<nn::Linear> head;
  explicit ToyModel(uint64_t seed) {
    Rng rng(seed);
    rnn = register_module("rnn", std::make_shared<nn::RNN>(nn::RnnOptions{ops::CellType::LSTM, 3, 6, 1}, rng));
    head = register_module("head", std::make_shared<nn::Linear>(6, 4, rng));
  }
};

struct ToySequence {
  Tensor x;       // (L, 3) float
  Tensor labels;  // (L, 1) int64 in [0, 4)
  int64_t length() const { return x.dim(0); }
};

inline std::vector<ToySequence> toy_data(int64_t count, uint64_t seed, int64_t max_len = 9) {
  Rng rng(seed);
  std::vector<ToySequence> out;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t len = 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_len)));
    std::vector<float> xs;
    std::vector<int64_t> ys;
    for (int64_t t = 0; t < len * 3; ++t) xs.push_back(static_cast<float>(rng.normal()));
    for (int64_t t = 0; t < len; ++t) ys.push_back(static_cast<int64_t>(rng.below(4)));
    out.push_back({Tensor::from({len, 3}, xs), Tensor::from_i64({len, 1}, ys)});
  }
  return out;
}

inline std::vector<dist::ShardItem> toy_items(const std::vector<ToySequence>& data) {
  std::vector<dist::ShardItem> items;
  for (size_t i = 0; i < data.size(); ++i) items.push_back({static_cast<int64_t>(i), data[i].length()});
  return items;
}

/// Forward + backward of the token-mean cross-entropy over sequences `ids` (non-empty); adds into
/// the model's gradients and returns the loss.
inline double toy_step(ToyModel& model, const std::vector<ToySequence>& data, const std::vector<int64_t>& ids) {
  std::vector<Tensor> xs, ys;
  for (int64_t i : ids) {
    xs.push_back(data[static_cast<size_t>(i)].x);
    ys.push_back(data[static_cast<size_t>(i)].labels);
  }
  PackedBatch pb, pb_labels;
  Tensor x = pack_sequences(xs, &pb);
  Tensor y = pack_sequences(ys, &pb_labels).view({-1});
  Tape tape;
  nn::RnnOutput out = model.rnn->forward(tape, Var(x), pb);
  Var loss = cross_entropy(tape, model.head->forward(tape, out.y), y);
  const double value = loss.value().item();
  tape.backward(loss);
  return value;
}

/// Gradients by parameter name (copies).
inline std::vector<Tensor> grads_of(const nn::Module& m) {
  std::vector<Tensor> g;
  for (const auto& [name, v] : m.named_parameters()) g.push_back(v.grad().clone());
  return g;
}

/// max |a - b| / max |b| over all tensors.
inline double max_rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double diff = 0, scale = 1e-12;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t k = 0; k < a[i].numel(); ++k) {
      diff = std::max(diff, std::abs(a[i].item(k) - b[i].item(k)));
      scale = std::max(scale, std::abs(b[i].item(k)));
    }
  return diff / scale;
}

}  // namespace recur::disttest
