#include "recur/models/vec2seq.h"

#include "recur/core/rng.h"
#include "recur/nn/attention.h"
#include "recur/ops/basic.h"
#include "recur/ops/norm.h"
#include "state_util.h"

namespace recur::models {

using detail::i64_on;
using detail::layers_first;

namespace {

const char* kind_name(ConditionKind k) {
  switch (k) {
    case ConditionKind::None: return "None";
    case ConditionKind::Category: return "Category";
    case ConditionKind::Dense: return "Dense";
  }
  return "?";
}

void check_ids(const Tensor& ids, int64_t n, const char* what) {
  RECUR_CHECK(ids.dtype() == DType::I64 && ids.ndim() == 1 && ids.dim(0) == n,
              "Vec2Seq: {} must be ({}) int64, got {} {}", what, n, ids.shape_str(), dtype_name(ids.dtype()));
}

}  // namespace

Vec2Seq::Vec2Seq(const Vec2SeqOptions& options, Rng& init) : opt_(options) {
  RECUR_CHECK(opt_.vocab > 0 && opt_.embed > 0 && opt_.hidden > 0 && opt_.layers > 0,
              "Vec2Seq: sizes must be positive (vocab {}, embed {}, hidden {}, layers {})", opt_.vocab, opt_.embed,
              opt_.hidden, opt_.layers);
  RECUR_CHECK(opt_.cell == ops::CellType::LSTM || opt_.cell == ops::CellType::GRU,
              "Vec2Seq: the cell must be an LSTM or a GRU, got {}", ops::cell_name(opt_.cell));
  RECUR_CHECK(opt_.dropout >= 0.0f && opt_.dropout < 1.0f, "Vec2Seq: dropout {} not in [0, 1)", opt_.dropout);
  for (int64_t id : {opt_.pad, opt_.unk, opt_.bos, opt_.eos})
    RECUR_CHECK(id >= 0 && id < opt_.vocab,
                "Vec2Seq: special id {} outside the vocabulary [0, {}) (pad {}, unk {}, bos {}, eos {})",
                id, opt_.vocab, opt_.pad, opt_.unk, opt_.bos, opt_.eos);
  if (conditioned()) {
    RECUR_CHECK(opt_.init_state || opt_.concat_input,
                "Vec2Seq: condition {} is used nowhere: set init_state and/or concat_input (both false)",
                kind_name(opt_.condition));
    RECUR_CHECK(opt_.condition_dim > 0, "Vec2Seq: condition {} needs condition_dim > 0, got {}",
                kind_name(opt_.condition), opt_.condition_dim);
  }
  if (opt_.condition == ConditionKind::Category)
    RECUR_CHECK(opt_.num_categories > 0, "Vec2Seq: condition Category needs num_categories > 0, got {}",
                opt_.num_categories);
  if (opt_.tie_embeddings)
    RECUR_CHECK(opt_.embed == opt_.hidden, "Vec2Seq: tied embeddings need embed ({}) == hidden ({})", opt_.embed,
                opt_.hidden);
  const int64_t C = condition_size(), L = opt_.layers, H = opt_.hidden;
  embed_ = register_module("embed", std::make_shared<nn::Embedding>(opt_.vocab, opt_.embed, init, opt_.pad));
  if (opt_.condition == ConditionKind::Category)
    category_ = register_module("category", std::make_shared<nn::Embedding>(opt_.num_categories, C, init));
  if (init_state()) {
    init_h_ = register_module("init_h", std::make_shared<nn::Linear>(C, L * H, init));
    if (opt_.cell == ops::CellType::LSTM)
      init_c_ = register_module("init_c", std::make_shared<nn::Linear>(C, L * H, init));
  }
  nn::RnnOptions ro{opt_.cell, opt_.embed + (concat_input() ? C : 0), H, L, true, false, opt_.dropout};
  rnn_ = register_module("rnn", std::make_shared<nn::RNN>(ro, init));
  if (opt_.tie_embeddings)
    out_bias_ = register_parameter("out_bias", Tensor::zeros({opt_.vocab}));
  else
    out_ = register_module("out", std::make_shared<nn::Linear>(H, opt_.vocab, init));
}

int64_t Vec2Seq::condition_size() const { return conditioned() ? opt_.condition_dim : 0; }

DType Vec2Seq::dtype() const { return embed_->weight().value().dtype(); }

Var Vec2Seq::condition(Tape& tape, const Tensor& categories) const {
  RECUR_CHECK(opt_.condition == ConditionKind::Category,
              "Vec2Seq: category ids given to a model whose condition is {}", kind_name(opt_.condition));
  RECUR_CHECK(categories.dtype() == DType::I64 && categories.ndim() == 1,
              "Vec2Seq: categories must be (B) int64, got {} {}", categories.shape_str(),
              dtype_name(categories.dtype()));
  const Tensor host = categories.to(Device::cpu());
  for (int64_t i = 0; i < host.numel(); ++i) {
    const int64_t id = host.data<int64_t>()[i];
    RECUR_CHECK(id >= 0 && id < opt_.num_categories,
                "Vec2Seq: category {} (row {}) outside [0, {}) (num_categories {})",
                id, i, opt_.num_categories, opt_.num_categories);
  }
  return category_->forward(tape, categories.to(device()));
}

Var Vec2Seq::condition(Tape& tape, const Var& vectors) const {
  (void)tape;
  RECUR_CHECK(opt_.condition == ConditionKind::Dense, "Vec2Seq: dense vectors given to a model whose condition is {}",
              kind_name(opt_.condition));
  RECUR_CHECK(vectors.defined(), "Vec2Seq: undefined dense condition");
  const Tensor& v = vectors.value();
  RECUR_CHECK(v.ndim() == 2 && v.dim(1) == opt_.condition_dim,
              "Vec2Seq: dense conditions must be (B, {}) (condition_dim), got {} (width {})", opt_.condition_dim,
              v.shape_str(), v.ndim() == 2 ? v.dim(1) : -1);
  RECUR_CHECK(v.dtype() == dtype() && v.device() == device(),
              "Vec2Seq: dense conditions must be {} on {} like the model, got {} on {}", dtype_name(dtype()),
              device().str(), dtype_name(v.dtype()), v.device().str());
  return vectors;
}

Var Vec2Seq::head(Tape& tape, const Var& y, uint64_t seed) const {
  Var h = dropout(tape, y, opt_.dropout, mix64(seed + 3), is_training());
  return opt_.tie_embeddings ? linear(tape, h, embed_->weight(), out_bias_) : out_->forward(tape, h);
}

Var Vec2Seq::forward(Tape& tape, const Var& cond_in, const Tensor& input, const PackedBatch& layout, uint64_t seed,
                     const Vec2SeqState* initial, Vec2SeqState* final_state) const {
  check_ids(input, layout.tokens(), "input ids (packed tokens)");
  const int64_t B = layout.batch(), L = opt_.layers, H = opt_.hidden;
  RECUR_CHECK(conditioned() || !cond_in.defined(), "Vec2Seq: a condition given to a model with condition None");
  const Var cond = cond_in.defined() ? cond_in : (initial ? initial->cond : Var());
  if (concat_input() || (init_state() && !initial))
    RECUR_CHECK(cond.defined(), "Vec2Seq: condition {} needs the condition vectors (B = {})",
                kind_name(opt_.condition), B);
  if (cond.defined())
    RECUR_CHECK(cond.value().ndim() == 2 && cond.value().dim(0) == B && cond.value().dim(1) == condition_size(),
                "Vec2Seq: conditions must be ({}, {}), got {}", B, condition_size(), cond.value().shape_str());
  Var h0, c0;
  if (initial) {
    RECUR_CHECK(initial->h.defined(), "Vec2Seq: the initial state has no h");
    initial->h.value().check_shape({L, B, H}, "Vec2Seq initial h");
    h0 = initial->h;
    c0 = initial->c;
  } else if (init_state()) {
    h0 = layers_first(tape, tanh(tape, init_h_->forward(tape, cond)), L, B, H);
    if (init_c_) c0 = layers_first(tape, tanh(tape, init_c_->forward(tape, cond)), L, B, H);
  }
  Var x = dropout(tape, embed_->forward(tape, input.to(device())), opt_.dropout, mix64(seed + 1), is_training());
  // Every packed row takes its own sequence's condition: a row gather whose backward reaches cond.
  if (concat_input())
    x = concat(tape, {x, embedding(tape, i64_on(nn::row_sequences(layout), device()), cond)}, 1);
  nn::RnnOutput r = rnn_->forward(tape, x, layout, h0, c0, mix64(seed + 2));
  if (final_state) {
    final_state->h = r.hn;
    final_state->c = r.cn;
    final_state->cond = concat_input() ? cond : Var();
  }
  return head(tape, r.y, seed);
}

Vec2SeqState Vec2Seq::start(Tape& tape, const Var& cond, int64_t rows) const {
  RECUR_CHECK(rows > 0, "Vec2Seq: start needs at least one row, got {}", rows);
  const int64_t L = opt_.layers, H = opt_.hidden;
  if (conditioned()) {
    RECUR_CHECK(cond.defined(), "Vec2Seq: condition {} needs the condition vectors for {} rows",
                kind_name(opt_.condition), rows);
    RECUR_CHECK(cond.value().ndim() == 2 && cond.value().dim(0) == rows && cond.value().dim(1) == condition_size(),
                "Vec2Seq: conditions must be ({}, {}), got {}", rows, condition_size(), cond.value().shape_str());
  } else {
    RECUR_CHECK(!cond.defined(), "Vec2Seq: a condition given to a model with condition None");
  }
  Vec2SeqState s;
  const bool lstm = opt_.cell == ops::CellType::LSTM;
  if (init_state()) {
    s.h = layers_first(tape, tanh(tape, init_h_->forward(tape, cond)), L, rows, H);
    if (lstm) s.c = layers_first(tape, tanh(tape, init_c_->forward(tape, cond)), L, rows, H);
  } else {
    s.h = Var(Tensor::zeros({L, rows, H}, dtype(), device()));
    if (lstm) s.c = Var(Tensor::zeros({L, rows, H}, dtype(), device()));
  }
  if (concat_input()) s.cond = cond;
  return s;
}

Vec2SeqState Vec2Seq::select(Tape& tape, const Vec2SeqState& state, const std::vector<int64_t>& rows) const {
  const int64_t R = state.rows(), n = static_cast<int64_t>(rows.size());
  const int64_t L = opt_.layers, H = opt_.hidden;
  RECUR_CHECK(n > 0, "Vec2Seq: selecting no rows of a state with {} rows", R);
  const Device dev = state.h.value().device();
  std::vector<int64_t> idx(static_cast<size_t>(L * n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = rows[static_cast<size_t>(i)];
    RECUR_CHECK(r >= 0 && r < R, "Vec2Seq: selecting row {} of a state with {} rows", r, R);
    for (int64_t l = 0; l < L; ++l) idx[static_cast<size_t>(l * n + i)] = l * R + r;
  }
  const Tensor per_layer = i64_on(idx, dev);
  auto gather = [&](const Var& s) {
    return reshape(tape, embedding(tape, per_layer, reshape(tape, s, {L * R, H})), {L, n, H});
  };
  Vec2SeqState out;
  out.h = gather(state.h);
  if (state.c.defined()) out.c = gather(state.c);
  if (state.cond.defined()) out.cond = embedding(tape, i64_on(rows, dev), state.cond);
  return out;
}

Var Vec2Seq::step(Tape& tape, Vec2SeqState& state, const Tensor& tokens, uint64_t seed) const {
  const int64_t R = state.rows();
  check_ids(tokens, R, "step tokens (one per state row)");
  Var x = dropout(tape, embed_->forward(tape, tokens.to(device())), opt_.dropout, mix64(seed + 1), is_training());
  if (concat_input()) {
    RECUR_CHECK(state.cond.defined(), "Vec2Seq: the state carries no condition (concat_input needs it)");
    x = concat(tape, {x, state.cond}, 1);
  }
  nn::RnnOutput r = rnn_->forward(tape, x, PackedBatch::fixed(1, R), state.h, state.c, mix64(seed + 2));
  state.h = r.hn;
  state.c = r.cn;
  return head(tape, r.y, seed);
}

Vec2SeqState Vec2Seq::prime(Tape& tape, const Vec2SeqState& state, const std::vector<std::vector<int64_t>>& tokens,
                            uint64_t seed) const {
  const int64_t R = state.rows();
  RECUR_CHECK(static_cast<int64_t>(tokens.size()) == R, "Vec2Seq: {} token lists to prime a state of {} rows",
              tokens.size(), R);
  std::vector<int64_t> busy, idle;
  std::vector<std::vector<int64_t>> seqs;
  for (int64_t r = 0; r < R; ++r) {
    const auto& t = tokens[static_cast<size_t>(r)];
    if (t.empty()) {
      idle.push_back(r);
      continue;
    }
    for (int64_t id : t)
      RECUR_CHECK(id >= 0 && id < opt_.vocab, "Vec2Seq: token {} (row {}) outside the vocabulary [0, {})", id, r,
                  opt_.vocab);
    busy.push_back(r);
    seqs.push_back(t);
  }
  if (busy.empty()) return state;
  PackedBatch layout;
  const Tensor ids = pack_ids(seqs, &layout);
  const Vec2SeqState from = select(tape, state, busy);
  Vec2SeqState fed;
  forward(tape, Var(), ids, layout, seed, &from, &fed);
  if (idle.empty()) return fed;  // busy is 0 .. R-1 in order
  // Rows [busy..., idle...] side by side, then back to the original order.
  const Vec2SeqState rest = select(tape, state, idle);
  Vec2SeqState both;
  both.h = concat(tape, {fed.h, rest.h}, 1);
  if (fed.c.defined()) both.c = concat(tape, {fed.c, rest.c}, 1);
  if (fed.cond.defined()) both.cond = concat(tape, {fed.cond, rest.cond}, 0);
  std::vector<int64_t> order(static_cast<size_t>(R));
  for (size_t i = 0; i < busy.size(); ++i) order[static_cast<size_t>(busy[i])] = static_cast<int64_t>(i);
  for (size_t i = 0; i < idle.size(); ++i) order[static_cast<size_t>(idle[i])] = static_cast<int64_t>(busy.size() + i);
  return select(tape, both, order);
}

std::vector<std::vector<decode::Hypothesis>> generate(const Vec2Seq& model, const Tensor& conditions, int64_t rows,
                                                      const GenerateOptions& options) {
  RECUR_CHECK(!model.is_training(), "generate: the model must be in evaluation mode (model.train(false))");
  RECUR_CHECK(rows >= 0, "generate: {} rows", rows);
  RECUR_CHECK(options.max_len >= 1, "generate: max_len must be >= 1, got {}", options.max_len);
  const size_t np = options.prompts.size();
  RECUR_CHECK(np == 0 || np == 1 || static_cast<int64_t>(np) == rows,
              "generate: {} prompts for {} rows (give none, one shared, or one per row)", np, rows);
  // Coverage penalties and kept alignments need attention weights, which this model has none of.
  RECUR_CHECK(options.mode != DecodeMode::Beam || (options.beam.beta == 0 && !options.beam.keep_attention),
              "generate: Vec2Seq has no attention for the coverage penalty (beta {}) or keep_attention ({})",
              options.beam.beta, options.beam.keep_attention);
  if (rows == 0) return {};
  const Vec2SeqOptions& mo = model.options();
  const Device dev = model.device();
  Tape tape;
  NoGrad no_grad(tape);
  Var cond;
  switch (mo.condition) {
    case ConditionKind::None:
      RECUR_CHECK(!conditions.defined(), "generate: conditions {} given to a model with condition None",
                  conditions.shape_str());
      break;
    case ConditionKind::Category:
      RECUR_CHECK(conditions.defined() && conditions.ndim() == 1 && conditions.dim(0) == rows,
                  "generate: Category conditions must be ({}) int64 ids, got {}", rows,
                  conditions.defined() ? conditions.shape_str() : "none");
      cond = model.condition(tape, conditions);
      break;
    case ConditionKind::Dense: {
      RECUR_CHECK(conditions.defined() && conditions.ndim() == 2 && conditions.dim(0) == rows &&
                      (conditions.dtype() == DType::F32 || conditions.dtype() == DType::F64),
                  "generate: Dense conditions must be ({}, {}) floats, got {} {}", rows, mo.condition_dim,
                  conditions.defined() ? conditions.shape_str() : "none",
                  conditions.defined() ? dtype_name(conditions.dtype()) : "");
      Tensor v = conditions.dtype() == model.dtype() ? conditions : conditions.to(model.dtype());
      cond = model.condition(tape, Var(v.to(dev)));
      break;
    }
  }
  // A prompt p1 .. pk primes the state with <bos> p1 .. p(k-1); pk is then the first token fed, in
  // place of the decoders' <bos>, so that the first scored step predicts what follows the prompt.
  std::vector<std::vector<int64_t>> feed(static_cast<size_t>(rows));
  std::vector<int64_t> first(static_cast<size_t>(rows), mo.bos);
  for (int64_t r = 0; r < rows; ++r) {
    if (np == 0) break;
    const auto& p = options.prompts[np == 1 ? 0 : static_cast<size_t>(r)];
    if (p.empty()) continue;
    auto& f = feed[static_cast<size_t>(r)];
    f.push_back(mo.bos);
    f.insert(f.end(), p.begin(), p.end() - 1);
    first[static_cast<size_t>(r)] = p.back();
    RECUR_CHECK(p.back() >= 0 && p.back() < mo.vocab, "generate: prompt token {} (row {}) outside [0, {})", p.back(), r,
                mo.vocab);
  }
  const Vec2SeqState primed = model.prime(tape, model.start(tape, cond, rows), feed, 0);
  Vec2SeqState state;
  bool started = false;
  decode::StepFn step = [&](const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens) {
    std::vector<int64_t> ids = tokens;
    if (!started)
      for (size_t i = 0; i < ids.size(); ++i) ids[i] = first[static_cast<size_t>(parents[i])];
    state = model.select(tape, started ? state : primed, parents);
    started = true;
    Var logits = model.step(tape, state, i64_on(ids, dev), 0);
    Tensor lp = log_softmax(tape, logits).value().to(Device::cpu());
    return lp.dtype() == DType::F32 ? lp : lp.to(DType::F32);
  };
  decode::DecodeOptions dopt;
  dopt.bos = mo.bos;
  dopt.eos = mo.eos;
  dopt.max_len.assign(static_cast<size_t>(rows), options.max_len);
  if (options.mode == DecodeMode::Beam) return decode::beam_search(step, rows, dopt, options.beam);
  std::vector<decode::Hypothesis> one = options.mode == DecodeMode::Sample
                                            ? decode::sample(step, rows, dopt, options.sampling)
                                            : decode::greedy(step, rows, dopt);
  std::vector<std::vector<decode::Hypothesis>> out;
  out.reserve(one.size());
  for (auto& h : one) out.push_back({std::move(h)});
  return out;
}

}  // namespace recur::models
