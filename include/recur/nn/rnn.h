#pragma once
/// \file Stacked, optionally bidirectional LSTM / GRU / Elman RNN over packed batches, with
/// PyTorch's parameter names and layouts (weight_ih_l{k}[_reverse], ...), so state_dicts move
/// between the two.
#include <cstdint>
#include <vector>

#include "recur/core/rng.h"
#include "recur/nn/module.h"
#include "recur/ops/rnn.h"

namespace recur::nn {

struct RnnOptions {
  ops::CellType cell = ops::CellType::LSTM;
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  bool bias = true;
  bool bidirectional = false;
  /// Dropout on the outputs of every layer but the last (training mode only).
  float dropout = 0.0f;
};

struct RnnOutput {
  Var y;   ///< packed (N, D*H); padded mode: (T, B, D*H)
  Var hn;  ///< (L*D, B, H), original batch order
  Var cn;  ///< (L*D, B, H), LSTM only
};

class RNN : public Module {
 public:
  /// Parameters are drawn from U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch.
  RNN(const RnnOptions& options, Rng& init);

  /// x: (N, input_size) packed per `pb`. h0, c0: (L*D, B, H) original order, or undefined (zeros).
  /// `dropout_seed` seeds the inter-layer dropout masks of this call.
  RnnOutput forward(Tape& tape, const Var& x, const PackedBatch& pb, const Var& h0 = {}, const Var& c0 = {},
                    uint64_t dropout_seed = 0);
  /// The static baseline: x padded (T, B, input_size) time-major; all T steps run for all B rows
  /// and `lengths` mask the steps past each end. Results equal forward() on the valid positions.
  RnnOutput forward_padded(Tape& tape, const Var& x, const std::vector<int64_t>& lengths, const Var& h0 = {},
                           const Var& c0 = {}, uint64_t dropout_seed = 0);

  const RnnOptions& options() const { return opt_; }
  int64_t directions() const { return opt_.bidirectional ? 2 : 1; }
  int64_t output_size() const { return directions() * opt_.hidden_size; }

 private:
  RnnOutput run(Tape& tape, const Var& x, const PackedBatch& pb, const std::vector<int64_t>& mask,
                const Var& h0, const Var& c0, uint64_t dropout_seed);
  struct LayerParams {
    Var w_ih, w_hh, b_ih, b_hh;
  };
  RnnOptions opt_;
  std::vector<LayerParams> layers_;  // index l * D + direction
};

}  // namespace recur::nn
