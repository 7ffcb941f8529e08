#pragma once
/// \file Seq2Vec: a sequence in, one vector out (class scores or a regression output).
///
/// embedding (token ids) or a linear projection (numeric / pixel rows) -> stacked (bi)LSTM/GRU/RNN
/// over a packed batch -> pooling over time -> MLP -> outputs.
#include <cstdint>
#include <memory>
#include <vector>

#include "recur/nn/layers.h"
#include "recur/nn/rnn.h"

namespace recur::models {

/// Last: the top layer's final states (both directions); Mean/Max over time; Attention: a softmax
/// over each sequence's steps of v . tanh(W y_t + b), weighting the outputs y_t.
enum class Pooling { Last, Mean, Max, Attention };

struct Seq2VecOptions {
  int64_t vocab_size = 0;    ///< > 0: inputs are token ids through an embedding of embed_dim
  int64_t embed_dim = 128;
  int64_t padding_idx = 0;
  int64_t input_size = 0;    ///< > 0: inputs are feature rows of this width
  int64_t input_proj = 0;    ///< > 0: a linear projection of the feature rows to this width first
  ops::CellType cell = ops::CellType::LSTM;
  int64_t hidden = 128;
  int64_t layers = 1;
  bool bidirectional = false;
  float rnn_dropout = 0.0f;  ///< between stacked layers
  Pooling pooling = Pooling::Last;
  std::vector<int64_t> mlp_hidden;  ///< widths of the ReLU layers of the head
  float dropout = 0.0f;      ///< on the pooled vector and after each head layer
  int64_t outputs = 2;       ///< classes, or regression outputs
};

class Seq2Vec : public nn::Module {
 public:
  Seq2Vec(const Seq2VecOptions& options, Rng& init);

  /// x: packed (N, input_size) float rows, or (N) / (N, 1) int64 ids for an embedding model. Returns
  /// (B, outputs) in the layout's original batch order. `seed` drives this call's dropout masks.
  Var forward(Tape& tape, const Tensor& x, const PackedBatch& layout, uint64_t seed);
  /// The same for a feature model (input_size > 0) whose rows come from another differentiable
  /// model (e.g. a CNN per video frame): gradients flow back into `x` (N, input_size).
  Var forward_features(Tape& tape, const Var& x, const PackedBatch& layout, uint64_t seed);

  const Seq2VecOptions& options() const { return opt_; }

 private:
  Seq2VecOptions opt_;
  std::shared_ptr<nn::Embedding> embed_;
  std::shared_ptr<nn::Linear> proj_;
  std::shared_ptr<nn::RNN> rnn_;
  std::shared_ptr<nn::Linear> attn_proj_, attn_score_;
  std::vector<std::shared_ptr<nn::Linear>> head_;
};

}  // namespace recur::models
