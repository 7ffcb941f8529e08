#pragma once
/// \file Vec2Seq: a conditioned recurrent generator (vector-to-sequence), e.g. Karpathy's char-RNN,
/// image/style-conditioned captioning decoders, the decoder of a sequence autoencoder.
///
/// condition (a category id through a learned table, a dense vector, or nothing) ->
///   init_state:   h0 = tanh(W_h v + b_h), c0 = tanh(W_c v + b_c) for every decoder layer;
///   concat_input: every step's input is [embed(token); v];
/// token ids -> embedding -> stacked LSTM/GRU over a packed batch -> output layer (optionally tied
/// to the embedding) -> logits. With ConditionKind::None it is a plain language model.
///
/// Training (teacher forcing) runs the whole packed batch as one recurrent op; decoding runs through
/// step(). Both give the same logits.
#include <cstdint>
#include <memory>
#include <vector>

#include "recur/decode/search.h"
#include "recur/models/seq2seq.h"
#include "recur/nn/layers.h"
#include "recur/nn/rnn.h"

namespace recur::models {

/// Where the conditioning vector comes from: nowhere (an unconditioned language model), a learned
/// embedding of a category id, or a dense vector given by the caller (e.g. an encoder's output).
enum class ConditionKind { None, Category, Dense };

struct Vec2SeqOptions {
  int64_t vocab = 0;
  int64_t embed = 64;  ///< token embedding width
  ops::CellType cell = ops::CellType::LSTM;
  int64_t hidden = 256;
  int64_t layers = 1;
  float dropout = 0.0f;  ///< on the embeddings, between stacked layers and on the top outputs (training)
  ConditionKind condition = ConditionKind::None;
  int64_t num_categories = 0;  ///< Category: the number of ids
  int64_t condition_dim = 0;   ///< Category: the table's width; Dense: the input vector's width
  /// The condition initialises every layer's h (and c) through tanh(W v + b). Ignored for None.
  bool init_state = true;
  /// The condition is concatenated to every step's input embedding. Ignored for None.
  bool concat_input = false;
  /// The output layer's weight is the token embedding (needs embed == hidden).
  bool tie_embeddings = false;
  int64_t pad = 0, unk = 1, bos = 2, eos = 3;
};

/// The generator's running state for R rows (sequences or hypotheses).
struct Vec2SeqState {
  Var h, c;  ///< (L, R, H); c for LSTM only
  Var cond;  ///< (R, C) the rows' conditions with concat_input, else undefined
  int64_t rows() const { return h.defined() ? h.value().dim(1) : 0; }
};

class Vec2Seq : public nn::Module {
 public:
  Vec2Seq(const Vec2SeqOptions& options, Rng& init);

  /// Category: categories (B) int64 ids (any device) -> (B, condition_dim) from the learned table.
  Var condition(Tape& tape, const Tensor& categories) const;
  /// Dense: vectors (B, condition_dim) on the model's device and dtype, returned as the condition
  /// itself, so gradients flow back into whatever produced it (an encoder in front).
  Var condition(Tape& tape, const Var& vectors) const;

  /// Teacher forcing. cond: (B, C) from condition(), undefined for None (and not needed when
  /// `initial` already carries everything). input (N) int64 ids packed per `layout` (batch index b
  /// is row b of cond): <bos> y1 .. yn, or any continuation of a stream when `initial` carries its
  /// state. Returns logits (N, vocab) packed per layout. `initial`, when given, replaces the
  /// conditioned initial state ((L, B, H) rows in the layout's original order; its `cond` is used
  /// when `cond` is undefined); `final_state`, when given, is assigned each sequence's last state.
  /// `seed` drives the dropout masks.
  Var forward(Tape& tape, const Var& cond, const Tensor& input, const PackedBatch& layout, uint64_t seed,
              const Vec2SeqState* initial = nullptr, Vec2SeqState* final_state = nullptr) const;

  /// The state before the first token for `rows` rows; cond (rows, C) or undefined for None.
  Vec2SeqState start(Tape& tape, const Var& cond, int64_t rows) const;
  /// Keeps rows `rows` of the state, in that order (a row may repeat: beam search's parents).
  Vec2SeqState select(Tape& tape, const Vec2SeqState& state, const std::vector<int64_t>& rows) const;
  /// One step: tokens (R) int64 ids on the model's device, one per state row. Advances `state` and
  /// returns logits (R, vocab).
  Var step(Tape& tape, Vec2SeqState& state, const Tensor& tokens, uint64_t seed) const;
  /// Feeds row r the ids tokens[r] (any length, 0 included) and returns the advanced state (one
  /// recurrent op over the packed non-empty rows; empty rows keep their state).
  Vec2SeqState prime(Tape& tape, const Vec2SeqState& state, const std::vector<std::vector<int64_t>>& tokens,
                     uint64_t seed) const;

  const Vec2SeqOptions& options() const { return opt_; }
  /// The width of the condition vector (0 for None).
  int64_t condition_size() const;
  DType dtype() const;

 private:
  bool conditioned() const { return opt_.condition != ConditionKind::None; }
  bool init_state() const { return conditioned() && opt_.init_state; }
  bool concat_input() const { return conditioned() && opt_.concat_input; }
  Var head(Tape& tape, const Var& y, uint64_t seed) const;

  Vec2SeqOptions opt_;
  std::shared_ptr<nn::Embedding> embed_, category_;
  std::shared_ptr<nn::RNN> rnn_;
  std::shared_ptr<nn::Linear> init_h_, init_c_, out_;
  Var out_bias_;  // tied output layer: the bias beside the shared embedding
};

/// How generate() decodes.
struct GenerateOptions {
  DecodeMode mode = DecodeMode::Greedy;
  decode::BeamOptions beam;
  decode::SamplingOptions sampling;
  /// The longest output per row (tokens, <eos> included), prompt excluded.
  int64_t max_len = 50;
  /// Empty (every row starts right after <bos>), one prompt shared by every row, or one per row.
  /// A row's prompt is fed after <bos> and generation continues after it.
  std::vector<std::vector<int64_t>> prompts;
};

/// Generates `rows` sequences with the model in evaluation mode on its own device. conditions:
/// Category (rows) int64 ids; Dense (rows, C) floats (any device); None: undefined. Returns per row
/// its hypotheses (one for greedy and sampling, beam.n_best for beam search), best first; tokens
/// exclude the prompt and end with <eos> unless cut at max_len.
std::vector<std::vector<decode::Hypothesis>> generate(const Vec2Seq& model, const Tensor& conditions, int64_t rows,
                                                      const GenerateOptions& options);

}  // namespace recur::models
