#include "recur/models/seq2seq.h"

#include "recur/core/rng.h"
#include "recur/ops/basic.h"
#include "recur/ops/norm.h"
#include "state_util.h"

namespace recur::models {

using detail::i64_on;
using detail::layers_first;

namespace {

int64_t directions(const Seq2SeqOptions& o) { return o.bidirectional ? 2 : 1; }

}  // namespace

Seq2Seq::Seq2Seq(const Seq2SeqOptions& options, Rng& init) : opt_(options) {
  RECUR_CHECK(opt_.source_vocab > 0 && opt_.target_vocab > 0, "Seq2Seq: vocabularies must be non-empty ({} and {})",
              opt_.source_vocab, opt_.target_vocab);
  RECUR_CHECK(opt_.encoder_hidden > 0 && opt_.decoder_hidden > 0 && opt_.encoder_layers > 0 &&
                  opt_.decoder_layers > 0 && opt_.source_embed > 0 && opt_.target_embed > 0,
              "Seq2Seq: sizes must be positive (encoder {}x{}, decoder {}x{}, embeddings {} and {})",
              opt_.encoder_layers, opt_.encoder_hidden, opt_.decoder_layers, opt_.decoder_hidden, opt_.source_embed,
              opt_.target_embed);
  RECUR_CHECK(opt_.cell == ops::CellType::LSTM || opt_.cell == ops::CellType::GRU,
              "Seq2Seq: the cell must be an LSTM or a GRU, got {}", ops::cell_name(opt_.cell));
  const int64_t K = key_size(), A = attentional_size(), Hd = opt_.decoder_hidden, Ld = opt_.decoder_layers;
  if (opt_.bridge == Bridge::Copy)
    RECUR_CHECK(Hd == K && Ld <= opt_.encoder_layers,
                "Seq2Seq: the copy bridge needs decoder_hidden ({}) == encoder output size ({}) and decoder_layers "
                "({}) <= encoder_layers ({})",
                Hd, K, Ld, opt_.encoder_layers);
  if (opt_.tie_embeddings)
    RECUR_CHECK(opt_.target_embed == A,
                "Seq2Seq: tied embeddings need target_embed ({}) == the attentional width ({})", opt_.target_embed, A);
  src_embed_ = register_module("src_embed", std::make_shared<nn::Embedding>(opt_.source_vocab, opt_.source_embed,
                                                                             init, opt_.pad));
  tgt_embed_ = register_module("tgt_embed", std::make_shared<nn::Embedding>(opt_.target_vocab, opt_.target_embed,
                                                                             init, opt_.pad));
  nn::RnnOptions eo{opt_.cell, opt_.source_embed, opt_.encoder_hidden, opt_.encoder_layers, true,
                    opt_.bidirectional, opt_.dropout};
  encoder_ = register_module("encoder", std::make_shared<nn::RNN>(eo, init));
  const int64_t dec_in = opt_.target_embed + (opt_.input_feeding ? A : 0);
  nn::RnnOptions dopt{opt_.cell, dec_in, Hd, Ld, true, false, opt_.dropout};
  decoder_ = register_module("decoder", std::make_shared<nn::RNN>(dopt, init));
  if (opt_.bridge == Bridge::Dense) {
    bridge_h_ = register_module("bridge_h", std::make_shared<nn::Linear>(K, Ld * Hd, init));
    if (opt_.cell == ops::CellType::LSTM)
      bridge_c_ = register_module("bridge_c", std::make_shared<nn::Linear>(K, Ld * Hd, init));
  }
  nn::AttentionOptions ao{opt_.attention, Hd, K, opt_.attention_hidden};
  attention_ = register_module("attention", std::make_shared<nn::Attention>(ao, init));
  combine_ = register_module("combine", std::make_shared<nn::Linear>(K + Hd, A, init, false));
  if (opt_.tie_embeddings)
    out_bias_ = register_parameter("out_bias", Tensor::zeros({opt_.target_vocab}));
  else
    out_ = register_module("out", std::make_shared<nn::Linear>(A, opt_.target_vocab, init));
}

int64_t Seq2Seq::key_size() const { return directions(opt_) * opt_.encoder_hidden; }
int64_t Seq2Seq::attentional_size() const { return opt_.attentional > 0 ? opt_.attentional : opt_.decoder_hidden; }

Encoded Seq2Seq::encode(Tape& tape, const Tensor& source, const PackedBatch& layout, uint64_t seed) const {
  RECUR_CHECK(source.dtype() == DType::I64 && source.ndim() == 1 && source.dim(0) == layout.tokens(),
              "Seq2Seq: source ids must be (N) int64 for {} packed tokens, got {} {}", layout.tokens(),
              source.shape_str(), dtype_name(source.dtype()));
  const bool training = is_training();
  Var e = dropout(tape, src_embed_->forward(tape, source), opt_.dropout, mix64(seed + 1), training);
  nn::RnnOutput r = encoder_->forward(tape, e, layout, {}, {}, mix64(seed + 2));
  Encoded enc;
  enc.layout = layout;
  enc.keys = dropout(tape, r.y, opt_.dropout, mix64(seed + 3), training);
  enc.projected_keys = attention_->project_keys(tape, enc.keys);
  if (opt_.bridge == Bridge::None) return enc;
  const int64_t D = directions(opt_), Le = opt_.encoder_layers, B = layout.batch(), He = opt_.encoder_hidden;
  const int64_t Ld = opt_.decoder_layers, Hd = opt_.decoder_hidden;
  const bool lstm = opt_.cell == ops::CellType::LSTM;
  // Final states per (layer, direction): (B, He) each; a layer's directions side by side.
  auto layer_states = [&](const Var& s) {
    std::vector<Var> parts = split(tape, reshape(tape, s, {Le * D * B, He}),
                                   std::vector<int64_t>(static_cast<size_t>(Le * D), B), 0);
    std::vector<Var> layers;
    for (int64_t l = 0; l < Le; ++l) {
      const auto i = static_cast<size_t>(l * D);
      layers.push_back(D == 1 ? parts[i] : concat(tape, {parts[i], parts[i + 1]}, 1));
    }
    return layers;
  };
  std::vector<Var> hs = layer_states(r.hn), cs;
  if (lstm) cs = layer_states(r.cn);
  if (opt_.bridge == Bridge::Dense) {
    enc.h0 = layers_first(tape, tanh(tape, bridge_h_->forward(tape, hs.back())), Ld, B, Hd);
    if (lstm) enc.c0 = layers_first(tape, tanh(tape, bridge_c_->forward(tape, cs.back())), Ld, B, Hd);
  } else {
    std::vector<Var> h(hs.end() - Ld, hs.end());
    enc.h0 = reshape(tape, concat(tape, h, 0), {Ld, B, Hd});
    if (lstm) {
      std::vector<Var> c(cs.end() - Ld, cs.end());
      enc.c0 = reshape(tape, concat(tape, c, 0), {Ld, B, Hd});
    }
  }
  return enc;
}

Var Seq2Seq::head(Tape& tape, const Encoded& enc, const Var& y, const std::vector<int64_t>& sentence, uint64_t seed,
                  Var* att, Tensor* attention) const {
  Var context = attention_->forward_rows(tape, y, sentence, enc.keys, enc.layout, attention, enc.projected_keys);
  Var h = dropout(tape, tanh(tape, combine_->forward(tape, concat(tape, {context, y}, 1))), opt_.dropout,
                  mix64(seed + 4), is_training());
  if (att) *att = h;
  return opt_.tie_embeddings ? linear(tape, h, tgt_embed_->weight(), out_bias_) : out_->forward(tape, h);
}

Var Seq2Seq::forward(Tape& tape, const Encoded& enc, const Tensor& target_in, const PackedBatch& tl,
                     uint64_t seed) const {
  RECUR_CHECK(target_in.dtype() == DType::I64 && target_in.ndim() == 1 && target_in.dim(0) == tl.tokens(),
              "Seq2Seq: target ids must be (N) int64 for {} packed tokens, got {} {}", tl.tokens(),
              target_in.shape_str(), dtype_name(target_in.dtype()));
  RECUR_CHECK(tl.batch() == enc.layout.batch(), "Seq2Seq: {} target sentences for {} source sentences", tl.batch(),
              enc.layout.batch());
  if (!opt_.input_feeding) {
    Var x = dropout(tape, tgt_embed_->forward(tape, target_in), opt_.dropout, mix64(seed + 5), is_training());
    nn::RnnOutput r = decoder_->forward(tape, x, tl, enc.h0, enc.c0, mix64(seed + 6));
    return head(tape, enc, r.y, nn::row_sequences(tl), seed, nullptr, nullptr);
  }
  // Input feeding makes every step depend on the previous step's attention: run step by step, the
  // rows in the target layout's sorted order so that step t's rows are the first batch_sizes[t].
  DecoderState state = select(tape, start(tape, enc), tl.sorted_indices);
  std::vector<Var> logits;
  for (int64_t t = 0; t < tl.steps(); ++t) {
    const int64_t n = tl.batch_sizes[static_cast<size_t>(t)];
    if (static_cast<int64_t>(state.sentence.size()) > n) {
      std::vector<int64_t> keep(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) keep[static_cast<size_t>(i)] = i;
      state = select(tape, state, keep);
    }
    const int64_t off = tl.offsets[static_cast<size_t>(t)];
    logits.push_back(step(tape, enc, state, target_in.rows(off, off + n), mix64(seed ^ mix64(static_cast<uint64_t>(t)))));
  }
  return logits.size() == 1 ? logits[0] : concat(tape, logits, 0);
}

DecoderState Seq2Seq::start(Tape& tape, const Encoded& enc) const {
  (void)tape;
  const int64_t B = enc.layout.batch(), Ld = opt_.decoder_layers, Hd = opt_.decoder_hidden;
  const Device dev = enc.keys.value().device();
  const DType dt = enc.keys.value().dtype();
  DecoderState s;
  s.h = enc.h0.defined() ? enc.h0 : Var(Tensor::zeros({Ld, B, Hd}, dt, dev));
  if (opt_.cell == ops::CellType::LSTM) s.c = enc.c0.defined() ? enc.c0 : Var(Tensor::zeros({Ld, B, Hd}, dt, dev));
  if (opt_.input_feeding) s.feed = Var(Tensor::zeros({B, attentional_size()}, dt, dev));
  s.sentence.resize(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) s.sentence[static_cast<size_t>(b)] = b;
  return s;
}

DecoderState Seq2Seq::select(Tape& tape, const DecoderState& state, const std::vector<int64_t>& rows) const {
  const int64_t R = static_cast<int64_t>(state.sentence.size()), n = static_cast<int64_t>(rows.size());
  const int64_t Ld = opt_.decoder_layers, Hd = opt_.decoder_hidden;
  const Device dev = state.h.value().device();
  std::vector<int64_t> idx(static_cast<size_t>(Ld * n));
  DecoderState out;
  out.sentence.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows[static_cast<size_t>(i)];
    RECUR_CHECK(r >= 0 && r < R, "Seq2Seq: selecting row {} of a decoder state with {} rows", r, R);
    out.sentence[static_cast<size_t>(i)] = state.sentence[static_cast<size_t>(r)];
    for (int64_t l = 0; l < Ld; ++l) idx[static_cast<size_t>(l * n + i)] = l * R + r;
  }
  const Tensor per_layer = i64_on(idx, dev);
  auto gather = [&](const Var& s) {
    return reshape(tape, embedding(tape, per_layer, reshape(tape, s, {Ld * R, Hd})), {Ld, n, Hd});
  };
  out.h = gather(state.h);
  if (state.c.defined()) out.c = gather(state.c);
  if (state.feed.defined()) out.feed = embedding(tape, i64_on(rows, dev), state.feed);
  return out;
}

Var Seq2Seq::step(Tape& tape, const Encoded& enc, DecoderState& state, const Tensor& tokens, uint64_t seed,
                  Tensor* attention) const {
  const int64_t R = static_cast<int64_t>(state.sentence.size());
  RECUR_CHECK(tokens.dtype() == DType::I64 && tokens.ndim() == 1 && tokens.dim(0) == R,
              "Seq2Seq: step tokens must be (R) int64 for a state of {} rows, got {} {}", R, tokens.shape_str(),
              dtype_name(tokens.dtype()));
  Var x = dropout(tape, tgt_embed_->forward(tape, tokens), opt_.dropout, mix64(seed + 5), is_training());
  if (opt_.input_feeding) x = concat(tape, {x, state.feed}, 1);
  nn::RnnOutput r = decoder_->forward(tape, x, PackedBatch::fixed(1, R), state.h, state.c, mix64(seed + 6));
  state.h = r.hn;
  state.c = r.cn;
  Var att;
  Var logits = head(tape, enc, r.y, state.sentence, seed, &att, attention);
  if (opt_.input_feeding) state.feed = att;
  return logits;
}

Tensor pack_ids(const std::vector<std::vector<int64_t>>& seqs, PackedBatch* layout) {
  RECUR_CHECK(!seqs.empty(), "pack_ids: no sequences");
  std::vector<int64_t> lengths;
  lengths.reserve(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    RECUR_CHECK(!seqs[i].empty(), "pack_ids: sequence {} of {} is empty", i, seqs.size());
    lengths.push_back(static_cast<int64_t>(seqs[i].size()));
  }
  *layout = PackedBatch::from_lengths(lengths);
  std::vector<int64_t> ids(static_cast<size_t>(layout->tokens()));
  for (int64_t t = 0; t < layout->steps(); ++t)
    for (int64_t j = 0; j < layout->batch_sizes[static_cast<size_t>(t)]; ++j)
      ids[static_cast<size_t>(layout->row(t, j))] =
          seqs[static_cast<size_t>(layout->sorted_indices[static_cast<size_t>(j)])][static_cast<size_t>(t)];
  return Tensor::from_i64({layout->tokens()}, ids);
}

TargetBatch make_target_batch(const std::vector<std::vector<int64_t>>& targets, int64_t bos, int64_t eos) {
  std::vector<std::vector<int64_t>> in, out;
  in.reserve(targets.size());
  out.reserve(targets.size());
  for (const auto& y : targets) {
    in.push_back({bos});
    in.back().insert(in.back().end(), y.begin(), y.end());
    out.push_back(y);
    out.back().push_back(eos);
  }
  TargetBatch b;
  b.input = pack_ids(in, &b.layout);
  PackedBatch same;
  b.output = pack_ids(out, &same);
  return b;
}

std::vector<std::vector<decode::Hypothesis>> translate(const Seq2Seq& model,
                                                       const std::vector<std::vector<int64_t>>& sources,
                                                       const TranslateOptions& options) {
  RECUR_CHECK(!model.is_training(), "translate: the model must be in evaluation mode (model.train(false))");
  if (sources.empty()) return {};
  const Device dev = model.device();
  Tape tape;
  NoGrad no_grad(tape);
  PackedBatch layout;
  const Tensor src = pack_ids(sources, &layout).to(dev);
  const Encoded enc = model.encode(tape, src, layout, 0);
  DecoderState state;
  bool first = true;
  // Reorders the state by the decoder's parents (sentences at the first step), feeds the tokens.
  auto advance = [&](const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens, Tensor* attention) {
    state = model.select(tape, first ? model.start(tape, enc) : state, parents);
    first = false;
    const Tensor ids = Tensor::from_i64({static_cast<int64_t>(tokens.size())}, tokens).to(dev);
    Var logits = model.step(tape, enc, state, ids, 0, attention);
    return log_softmax(tape, logits).value().to(Device::cpu());
  };
  decode::DecodeOptions dopt;
  dopt.bos = model.options().bos;
  dopt.eos = model.options().eos;
  std::vector<int64_t> lengths;
  for (const auto& s : sources) lengths.push_back(static_cast<int64_t>(s.size()));
  dopt.max_len = decode::max_lengths(lengths, options.max_len_ratio, options.max_len_constant, 0);
  dopt.source_len = lengths;
  const int64_t B = static_cast<int64_t>(sources.size());
  auto plain = [&](const std::vector<int64_t>& p, const std::vector<int64_t>& t) { return advance(p, t, nullptr); };
  auto with_attention = [&](const std::vector<int64_t>& p, const std::vector<int64_t>& t) {
    decode::StepOutput out;
    out.log_probs = advance(p, t, &out.attention);
    return out;
  };
  if (options.mode == DecodeMode::Beam) {
    decode::BeamOptions bo = options.beam;
    bo.keep_attention = bo.keep_attention || options.keep_attention;
    if (bo.beta > 0 || bo.keep_attention) return decode::beam_search(decode::AttentionStepFn(with_attention), B, dopt, bo);
    return decode::beam_search(decode::StepFn(plain), B, dopt, bo);
  }
  std::vector<decode::Hypothesis> one;
  if (options.mode == DecodeMode::Sample)
    one = decode::sample(plain, B, dopt, options.sampling);
  else if (options.keep_attention)
    one = decode::greedy(decode::AttentionStepFn(with_attention), B, dopt, decode::GreedyOptions{true});
  else
    one = decode::greedy(decode::StepFn(plain), B, dopt);
  std::vector<std::vector<decode::Hypothesis>> out;
  for (auto& h : one) out.push_back({std::move(h)});
  return out;
}

}  // namespace recur::models
