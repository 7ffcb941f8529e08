#include "recur/models/autoencoder.h"

#include "recur/core/error.h"
#include "recur/ops/basic.h"

namespace recur::models {

SequenceAutoencoder::SequenceAutoencoder(AutoencoderOptions options, Rng& init) : opt_(std::move(options)) {
  RECUR_CHECK(opt_.code > 0, "SequenceAutoencoder: the code width must be positive, got {}", opt_.code);
  opt_.encoder.outputs = opt_.code;
  opt_.decoder.condition = ConditionKind::Dense;
  opt_.decoder.condition_dim = opt_.code;
  encoder_ = register_module("encoder", std::make_shared<Seq2Vec>(opt_.encoder, init));
  decoder_ = register_module("decoder", std::make_shared<Vec2Seq>(opt_.decoder, init));
}

Var SequenceAutoencoder::encode(Tape& tape, const Tensor& ids, const PackedBatch& layout, uint64_t seed) {
  return tanh(tape, encoder_->forward(tape, ids, layout, seed));
}

Var SequenceAutoencoder::decode(Tape& tape, const Var& codes, const Tensor& target_in, const PackedBatch& target_layout,
                                uint64_t seed) {
  return decoder_->forward(tape, decoder_->condition(tape, codes), target_in, target_layout, seed ^ 0x9e3779b97f4a7c15ULL);
}

}  // namespace recur::models
