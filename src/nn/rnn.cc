#include "recur/nn/rnn.h"

#include <cmath>

#include "recur/ops/basic.h"

namespace recur::nn {

RNN::RNN(const RnnOptions& options, Rng& init) : opt_(options) {
  RECUR_CHECK(opt_.input_size > 0 && opt_.hidden_size > 0 && opt_.num_layers > 0,
              "RNN: input_size {}, hidden_size {} and num_layers {} must be positive", opt_.input_size,
              opt_.hidden_size, opt_.num_layers);
  RECUR_CHECK(opt_.dropout >= 0.0f && opt_.dropout < 1.0f, "RNN: dropout {} not in [0, 1)", opt_.dropout);
  const int64_t H = opt_.hidden_size, GH = ops::gate_count(opt_.cell) * H;
  const double bound = 1.0 / std::sqrt(static_cast<double>(H));
  auto uniform = [&](Shape s) {
    Tensor t(std::move(s));
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = static_cast<float>((2 * init.uniform() - 1) * bound);
    return t;
  };
  for (int64_t l = 0; l < opt_.num_layers; ++l) {
    for (int64_t d = 0; d < directions(); ++d) {
      const std::string sfx = "_l" + std::to_string(l) + (d ? "_reverse" : "");
      const int64_t in = l == 0 ? opt_.input_size : output_size();
      LayerParams p;
      p.w_ih = register_parameter("weight_ih" + sfx, uniform({GH, in}));
      p.w_hh = register_parameter("weight_hh" + sfx, uniform({GH, H}));
      if (opt_.bias) {
        p.b_ih = register_parameter("bias_ih" + sfx, uniform({GH}));
        p.b_hh = register_parameter("bias_hh" + sfx, uniform({GH}));
      }
      layers_.push_back(p);
    }
  }
}

RnnOutput RNN::forward(Tape& tape, const Var& x, const PackedBatch& pb, const Var& h0, const Var& c0,
                       uint64_t dropout_seed) {
  return run(tape, x, pb, {}, h0, c0, dropout_seed);
}

RnnOutput RNN::forward_padded(Tape& tape, const Var& x, const std::vector<int64_t>& lengths, const Var& h0,
                              const Var& c0, uint64_t dropout_seed) {
  RECUR_CHECK(x.value().ndim() == 3, "RNN::forward_padded: x must be (T, B, I), got {}", x.value().shape_str());
  const int64_t T = x.value().dim(0), B = x.value().dim(1);
  RECUR_CHECK(static_cast<int64_t>(lengths.size()) == B, "RNN::forward_padded: {} lengths for a batch of {}",
              lengths.size(), B);
  for (int64_t L : lengths)
    RECUR_CHECK(L >= 1 && L <= T, "RNN::forward_padded: length {} outside [1, {}]", L, T);
  Var flat = reshape(tape, x, {T * B, x.value().dim(2)});
  RnnOutput out = run(tape, flat, PackedBatch::fixed(T, B), lengths, h0, c0, dropout_seed);
  out.y = reshape(tape, out.y, {T, B, output_size()});
  return out;
}

RnnOutput RNN::run(Tape& tape, const Var& x, const PackedBatch& pb, const std::vector<int64_t>& mask, const Var& h0,
                   const Var& c0, uint64_t dropout_seed) {
  const int64_t L = opt_.num_layers, D = directions(), H = opt_.hidden_size, B = pb.batch();
  const bool lstm = opt_.cell == ops::CellType::LSTM;
  RECUR_CHECK(x.value().ndim() == 2 && x.value().dim(1) == opt_.input_size,
              "RNN: input must be (N, {}), got {}", opt_.input_size, x.value().shape_str());
  auto states = [&](const Var& s, const char* what) {
    std::vector<Var> parts;
    if (!s.defined()) return parts;
    s.value().check_shape({L * D, B, H}, what);
    Var flat = reshape(tape, s, {L * D * B, H});
    return split(tape, flat, std::vector<int64_t>(static_cast<size_t>(L * D), B), 0);
  };
  std::vector<Var> h0s = states(h0, "RNN h0"), c0s;
  if (c0.defined()) {
    RECUR_CHECK(lstm, "RNN: c0 given to a {} (only LSTM has a cell state)", ops::cell_name(opt_.cell));
    c0s = states(c0, "RNN c0");
  }
  std::vector<Var> hns, cns;
  Var input = x;
  for (int64_t l = 0; l < L; ++l) {
    std::vector<Var> outs;
    for (int64_t d = 0; d < D; ++d) {
      const size_t k = static_cast<size_t>(l * D + d);
      const LayerParams& p = layers_[k];
      ops::RnnLayerOptions lo{opt_.cell, d == 1, mask};
      RnnLayerOutput r = rnn_layer(tape, input, pb, p.w_ih, p.w_hh, p.b_ih, p.b_hh, h0s.empty() ? Var() : h0s[k],
                                   c0s.empty() ? Var() : c0s[k], lo);
      outs.push_back(r.y);
      hns.push_back(r.hn);
      if (lstm) cns.push_back(r.cn);
    }
    input = D == 1 ? outs[0] : concat(tape, outs, 1);
    if (l + 1 < L && opt_.dropout > 0.0f && is_training())
      input = dropout(tape, input, opt_.dropout, mix64(dropout_seed + static_cast<uint64_t>(l)), true);
  }
  RnnOutput out;
  out.y = input;
  out.hn = reshape(tape, concat(tape, hns, 0), {L * D, B, H});
  if (lstm) out.cn = reshape(tape, concat(tape, cns, 0), {L * D, B, H});
  return out;
}

}  // namespace recur::nn
