#include "recur/models/seq2vec.h"

#include "recur/ops/attention_pool.h"
#include "recur/ops/basic.h"
#include "recur/ops/pool.h"

namespace recur::models {

Seq2Vec::Seq2Vec(const Seq2VecOptions& options, Rng& init) : opt_(options) {
  RECUR_CHECK((opt_.vocab_size > 0) != (opt_.input_size > 0),
              "Seq2Vec: set exactly one of vocab_size ({}) and input_size ({})", opt_.vocab_size, opt_.input_size);
  RECUR_CHECK(opt_.outputs > 0, "Seq2Vec: outputs must be positive, got {}", opt_.outputs);
  int64_t width = 0;
  if (opt_.vocab_size > 0) {
    embed_ = register_module("embed", std::make_shared<nn::Embedding>(opt_.vocab_size, opt_.embed_dim, init,
                                                                       opt_.padding_idx));
    width = opt_.embed_dim;
  } else if (opt_.input_proj > 0) {
    proj_ = register_module("proj", std::make_shared<nn::Linear>(opt_.input_size, opt_.input_proj, init));
    width = opt_.input_proj;
  } else {
    width = opt_.input_size;
  }
  nn::RnnOptions ro{opt_.cell, width, opt_.hidden, opt_.layers, true, opt_.bidirectional, opt_.rnn_dropout};
  rnn_ = register_module("rnn", std::make_shared<nn::RNN>(ro, init));
  int64_t in = rnn_->output_size();
  if (opt_.pooling == Pooling::Attention) {
    attn_proj_ = register_module("attn_proj", std::make_shared<nn::Linear>(in, opt_.hidden, init));
    attn_score_ = register_module("attn_score", std::make_shared<nn::Linear>(opt_.hidden, 1, init, false));
  }
  for (size_t i = 0; i < opt_.mlp_hidden.size(); ++i) {
    head_.push_back(register_module("head" + std::to_string(i), std::make_shared<nn::Linear>(in, opt_.mlp_hidden[i], init)));
    in = opt_.mlp_hidden[i];
  }
  head_.push_back(register_module("out", std::make_shared<nn::Linear>(in, opt_.outputs, init)));
}

Var Seq2Vec::forward(Tape& tape, const Tensor& x, const PackedBatch& layout, uint64_t seed) {
  Var h;
  if (embed_) {
    RECUR_CHECK(x.dtype() == DType::I64 && (x.ndim() == 1 || (x.ndim() == 2 && x.dim(1) == 1)),
                "Seq2Vec: an embedding model takes (N) or (N, 1) int64 ids, got {} {}", x.shape_str(),
                dtype_name(x.dtype()));
    h = embed_->forward(tape, x.view({x.dim(0)}));
  } else {
    RECUR_CHECK(x.ndim() == 2 && x.dim(1) == opt_.input_size, "Seq2Vec: expected (N, {}) feature rows, got {}",
                opt_.input_size, x.shape_str());
    h = Var(x);
  }
  return forward_features(tape, h, layout, seed);
}

Var Seq2Vec::forward_features(Tape& tape, const Var& x, const PackedBatch& layout, uint64_t seed) {
  const bool training = is_training();
  Var h = x;
  if (!embed_) {
    RECUR_CHECK(h.value().ndim() == 2 && h.value().dim(1) == opt_.input_size,
                "Seq2Vec: expected (N, {}) feature rows, got {}", opt_.input_size, h.value().shape_str());
    if (proj_) h = proj_->forward(tape, h);
  }
  nn::RnnOutput r = rnn_->forward(tape, h, layout, {}, {}, mix64(seed));
  Var pooled;
  switch (opt_.pooling) {
    case Pooling::Mean: pooled = mean_pool(tape, r.y, layout); break;
    case Pooling::Max: pooled = max_pool(tape, r.y, layout); break;
    case Pooling::Attention: {
      Var scores = attn_score_->forward(tape, tanh(tape, attn_proj_->forward(tape, r.y)));
      pooled = attention_pool(tape, r.y, reshape(tape, scores, {layout.tokens()}), layout);
      break;
    }
    case Pooling::Last: {
      // The final states of the top layer, both directions: for the backward direction that is
      // its state after reading the whole sequence, which gather_last_step would miss.
      const int64_t L = opt_.layers, D = rnn_->directions(), B = layout.batch(), H = opt_.hidden;
      std::vector<Var> parts = split(tape, reshape(tape, r.hn, {L * D * B, H}),
                                     std::vector<int64_t>(static_cast<size_t>(L * D), B), 0);
      pooled = D == 1 ? parts.back() : concat(tape, {parts[static_cast<size_t>((L - 1) * D)], parts.back()}, 1);
      break;
    }
  }
  Var out = dropout(tape, pooled, opt_.dropout, mix64(seed + 1), training);
  for (size_t i = 0; i + 1 < head_.size(); ++i)
    out = dropout(tape, relu(tape, head_[i]->forward(tape, out)), opt_.dropout, mix64(seed + 2 + i), training);
  return head_.back()->forward(tape, out);
}

}  // namespace recur::models
