#pragma once
/// \file A sequence autoencoder: a recurrent encoder (Seq2Vec) squeezes a sequence into one code
/// vector, tanh(W pooled + b), and a Vec2Seq decoder conditioned on that code rebuilds the sequence
/// (Dai & Le 2015's sequence autoencoder, with the code as the only path between the two).
#include <cstdint>
#include <memory>
#include <vector>

#include "recur/models/seq2vec.h"
#include "recur/models/vec2seq.h"

namespace recur::models {

struct AutoencoderOptions {
  Seq2VecOptions encoder;  ///< vocab_size, embed_dim, cell, hidden, layers, bidirectional, pooling; outputs = code
  Vec2SeqOptions decoder;  ///< vocab, embed, cell, hidden, layers; condition Dense of width code
  int64_t code = 64;       ///< the width of the code vector
};

class SequenceAutoencoder : public nn::Module {
 public:
  /// Sets encoder.outputs and decoder.condition/condition_dim from `code`.
  SequenceAutoencoder(AutoencoderOptions options, Rng& init);

  /// ids (N) int64 packed per `layout` -> codes (B, code) in the layout's original order, in (-1, 1).
  Var encode(Tape& tape, const Tensor& ids, const PackedBatch& layout, uint64_t seed);
  /// Teacher forcing: codes (B, code); target_in (Nt) <bos> y1 .. yn packed per target_layout
  /// (batch index b is code row b). Returns logits (Nt, vocab) predicting y1 .. yn <eos>.
  Var decode(Tape& tape, const Var& codes, const Tensor& target_in, const PackedBatch& target_layout, uint64_t seed);

  const AutoencoderOptions& options() const { return opt_; }
  const Vec2Seq& decoder() const { return *decoder_; }
  Vec2Seq& decoder() { return *decoder_; }

 private:
  AutoencoderOptions opt_;
  std::shared_ptr<Seq2Vec> encoder_;
  std::shared_ptr<Vec2Seq> decoder_;
};

}  // namespace recur::models
