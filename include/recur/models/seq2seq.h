#pragma once
/// \file Seq2Seq: an attentional encoder-decoder (Luong et al. 2015; Bahdanau et al. 2015).
///
/// source ids -> embedding -> stacked (bi)LSTM/GRU encoder over a packed batch -> keys;
/// bridge: the encoder's final states -> the decoder's initial states;
/// target ids -> embedding (+ the previous attentional vector with input feeding) -> stacked
/// LSTM/GRU decoder -> attention over the sentence's own keys (never padding: the keys are packed)
/// -> attentional vector h~ = tanh(W_c [context; h]) -> output layer (optionally tied to the target
/// embedding) -> logits.
///
/// Training (teacher forcing) without input feeding runs the decoder over the whole packed target
/// batch as one recurrent op and attends for every target token at once; with input feeding, and
/// when decoding, it runs step by step through step(). Both paths give the same logits.
#include <cstdint>
#include <memory>
#include <vector>

#include "recur/decode/search.h"
#include "recur/nn/attention.h"
#include "recur/nn/layers.h"
#include "recur/nn/rnn.h"

namespace recur::models {

/// How the decoder's initial states come from the encoder: zeros; Dense: tanh of a linear map of
/// the top encoder layer's final states (both directions concatenated), one map for h and one for
/// c; Copy: decoder layer l starts from the final states of encoder layer (Le - Ld + l), both
/// directions concatenated (needs decoder_hidden == directions * encoder_hidden and Ld <= Le).
enum class Bridge { None, Dense, Copy };

struct Seq2SeqOptions {
  int64_t source_vocab = 0;
  int64_t target_vocab = 0;
  int64_t source_embed = 64;
  int64_t target_embed = 64;
  ops::CellType cell = ops::CellType::LSTM;
  int64_t encoder_hidden = 128;  ///< per direction
  int64_t encoder_layers = 1;
  bool bidirectional = true;
  int64_t decoder_hidden = 256;
  int64_t decoder_layers = 1;
  nn::AttentionKind attention = nn::AttentionKind::General;
  int64_t attention_hidden = 0;  ///< Additive: width of the score layer (0: key size)
  /// Feed the previous attentional vector into the decoder's input (Luong's input feeding).
  bool input_feeding = false;
  Bridge bridge = Bridge::Dense;
  int64_t attentional = 0;  ///< width of h~ (0: decoder_hidden)
  /// The output layer's weight is the target embedding (needs target_embed == attentional width).
  bool tie_embeddings = false;
  float dropout = 0.0f;  ///< on embeddings, between stacked layers, on keys and on h~ (training)
  int64_t pad = 0, bos = 2, eos = 3;
};

/// What the encoder gives the decoder.
struct Encoded {
  Var keys;              ///< (Ns, key_size) packed per `layout`: the top encoder layer's outputs
  PackedBatch layout;    ///< the source layout
  Var projected_keys;    ///< additive attention: W_k keys, computed once for every decoder step
  Var h0, c0;            ///< (Ld, B, Hd) the decoder's initial states, original order (undefined: zeros)
};

/// The decoder's running state for R rows (sentences or hypotheses).
struct DecoderState {
  Var h, c;                       ///< (Ld, R, Hd); c for LSTM only
  Var feed;                       ///< (R, attentional) the previous h~ (input feeding), zeros at first
  std::vector<int64_t> sentence;  ///< (R) the source sentence (batch index) each row attends
};

class Seq2Seq : public nn::Module {
 public:
  Seq2Seq(const Seq2SeqOptions& options, Rng& init);

  /// source: (Ns) int64 ids packed per `source_layout`. `seed` drives the dropout masks.
  Encoded encode(Tape& tape, const Tensor& source, const PackedBatch& source_layout, uint64_t seed) const;

  /// Teacher forcing: target_in (Nt) int64 ids packed per `target_layout` (each sentence's <bos>
  /// y1 .. yn; the layout's batch index b is source sentence b). Returns logits (Nt, target_vocab)
  /// packed per target_layout, predicting y1 .. yn <eos>.
  Var forward(Tape& tape, const Encoded& enc, const Tensor& target_in, const PackedBatch& target_layout,
              uint64_t seed) const;

  /// The decoder's state before the first token, one row per sentence of `enc` (original order).
  DecoderState start(Tape& tape, const Encoded& enc) const;
  /// Keeps rows `rows` of the state, in that order (a row may repeat: beam search's parents).
  DecoderState select(Tape& tape, const DecoderState& state, const std::vector<int64_t>& rows) const;
  /// One decoder step: tokens (R) int64 ids (on the model's device), one per state row. Advances
  /// `state` and returns logits (R, target_vocab). `attention`, when given, is assigned (R, S) F32
  /// on the CPU: each row's weights over its sentence's source steps (zeros past its end).
  Var step(Tape& tape, const Encoded& enc, DecoderState& state, const Tensor& tokens, uint64_t seed,
           Tensor* attention = nullptr) const;

  const Seq2SeqOptions& options() const { return opt_; }
  int64_t key_size() const;
  int64_t attentional_size() const;

 private:
  // Logits of decoder outputs y (R, Hd) attending per row sentence; also returns h~ via `att`.
  Var head(Tape& tape, const Encoded& enc, const Var& y, const std::vector<int64_t>& sentence, uint64_t seed,
           Var* att, Tensor* attention) const;

  Seq2SeqOptions opt_;
  std::shared_ptr<nn::Embedding> src_embed_, tgt_embed_;
  std::shared_ptr<nn::RNN> encoder_, decoder_;
  std::shared_ptr<nn::Linear> bridge_h_, bridge_c_;
  std::shared_ptr<nn::Attention> attention_;
  std::shared_ptr<nn::Linear> combine_, out_;
  Var out_bias_;  // tied output layer: the bias beside the shared embedding
};

/// Teacher-forcing tensors of a batch of target sentences (each without <bos>/<eos>): inputs
/// <bos> y1 .. yn, outputs y1 .. yn <eos>, both packed per one layout whose batch order is the
/// sentences' order.
struct TargetBatch {
  Tensor input, output;  ///< (Nt) int64 each
  PackedBatch layout;
};
TargetBatch make_target_batch(const std::vector<std::vector<int64_t>>& targets, int64_t bos, int64_t eos);

/// Source ids packed: (Ns) int64 and the layout. Empty sources are an error (callers give an
/// empty sentence one <unk> or skip it).
Tensor pack_ids(const std::vector<std::vector<int64_t>>& seqs, PackedBatch* layout);

/// How translate() decodes.
enum class DecodeMode { Greedy, Beam, Sample };
struct TranslateOptions {
  DecodeMode mode = DecodeMode::Beam;
  decode::BeamOptions beam;
  decode::SamplingOptions sampling;
  /// Per sentence: at most floor(max_len_ratio * source length) + max_len_constant output tokens,
  /// <eos> included (decode::max_lengths).
  double max_len_ratio = 2.0;
  int64_t max_len_constant = 10;
  /// Keep each hypothesis' attention (steps x source length) in Hypothesis::attention.
  bool keep_attention = false;
};

/// Decodes a batch of source sentences (ids without <bos>/<eos>, each non-empty) with the model in
/// evaluation mode on its own device. Returns per sentence its hypotheses (one for greedy and
/// sampling, beam.n_best for beam search), best first; tokens end with the model's <eos> unless cut
/// at the maximum length.
std::vector<std::vector<decode::Hypothesis>> translate(const Seq2Seq& model,
                                                       const std::vector<std::vector<int64_t>>& sources,
                                                       const TranslateOptions& options);

}  // namespace recur::models
