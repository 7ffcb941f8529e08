// Vec2Seq: gradients of the whole model (run in double) against central differences, for the
// parameters and for the dense condition itself; the condition reaching the outputs; step-by-step
// against teacher forcing; carried state across chunks; prompt priming; seeded and truncated
// sampling; a small learning task decoded greedily and with beam search; CPU against GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <set>
#include <string>

#include "recur/models/vec2seq.h"
#include "recur/ops/loss.h"
#include "recur/ops/norm.h"
#include "recur/train/optimizer.h"
#include "test_util.h"

namespace recur::models {
namespace {

using C = ops::CellType;
using K = ConditionKind;

struct Variant {
  const char* name;
  Vec2SeqOptions options;
};

Vec2SeqOptions options_of(C cell, K kind, bool init, bool concat, int64_t layers = 1, float dropout = 0.0f) {
  Vec2SeqOptions o;
  o.vocab = 8;
  o.embed = 5;
  o.cell = cell;
  o.hidden = 4;
  o.layers = layers;
  o.dropout = dropout;
  o.condition = kind;
  o.num_categories = 4;
  o.condition_dim = kind == K::None ? 0 : 3;
  o.init_state = init;
  o.concat_input = concat;
  return o;
}

const std::vector<Variant>& variants() {
  static const std::vector<Variant> all = [] {
    std::vector<Variant> v = {
        {"lstm dense init", options_of(C::LSTM, K::Dense, true, false)},
        {"gru dense concat", options_of(C::GRU, K::Dense, false, true)},
        {"lstm dense both L2", options_of(C::LSTM, K::Dense, true, true, 2)},
        {"gru category both dropout", options_of(C::GRU, K::Category, true, true, 2, 0.25f)},
        {"lstm category both", options_of(C::LSTM, K::Category, true, true)},
        {"lstm none", options_of(C::LSTM, K::None, false, false)},
        {"gru none tied", options_of(C::GRU, K::None, false, false)},
    };
    v.back().options.hidden = v.back().options.embed;
    v.back().options.tie_embeddings = true;
    return v;
  }();
  return all;
}

std::vector<std::vector<int64_t>> random_ids(Rng& rng, const std::vector<int64_t>& lengths, int64_t lo, int64_t hi) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t n : lengths) {
    out.emplace_back();
    for (int64_t i = 0; i < n; ++i)
      out.back().push_back(lo + static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(hi - lo)));
  }
  return out;
}

// The raw conditions of B rows: category ids and dense vectors (the model uses the one it needs).
struct Conditions {
  Tensor ids;  // (B) int64
  Var dense;   // (B, C), requires grad
};

Conditions random_conditions(const Vec2SeqOptions& o, int64_t B, Rng& rng, DType dtype) {
  Conditions c;
  std::vector<int64_t> ids;
  for (int64_t b = 0; b < B; ++b) ids.push_back(static_cast<int64_t>(rng.next_u64() % 4));
  c.ids = Tensor::from_i64({B}, ids);
  c.dense = Var(test::randn({B, std::max<int64_t>(o.condition_dim, 1)}, rng, 1.0, dtype), true);
  return c;
}

Var cond_of(const Vec2Seq& m, Tape& tape, const Conditions& c) {
  switch (m.options().condition) {
    case K::Category: return m.condition(tape, c.ids);
    case K::Dense: return m.condition(tape, c.dense);
    case K::None: break;
  }
  return Var();
}

// What generate() takes: ids, vectors or nothing.
Tensor raw_of(const Vec2Seq& m, const Conditions& c) {
  switch (m.options().condition) {
    case K::Category: return c.ids;
    case K::Dense: return c.dense.value();
    case K::None: break;
  }
  return Tensor();
}

// Packed row of step t of original sequence b.
int64_t at(const PackedBatch& layout, int64_t b, int64_t t) {
  return layout.row(t, layout.unsorted_indices[static_cast<size_t>(b)]);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// 1. Gradients.

double loss_of(const Vec2Seq& model, const Conditions& c, const TargetBatch& tb, Tape& tape, Var* loss_var = nullptr) {
  Var logits = model.forward(tape, cond_of(model, tape, c), tb.input, tb.layout, 17);
  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1f;
  Var loss = cross_entropy(tape, logits, tb.output, ce);
  if (loss_var) *loss_var = loss;
  return loss.value().item();
}

TEST(Vec2SeqTest, GradientsMatchCentralDifferences) {
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    Rng init(5), data(9);
    Vec2Seq model(v.options, init);
    model.cast(DType::F64);
    model.train(true);  // dropout masks are seeded, so the loss stays a function of the weights
    const Conditions c = random_conditions(v.options, 4, data, DType::F64);
    const TargetBatch tb = make_target_batch(random_ids(data, {3, 0, 4, 2}, 4, 8), 2, 3);
    Tape tape;
    Var loss;
    loss_of(model, c, tb, tape, &loss);
    tape.backward(loss);
    const double eps = 1e-5;
    auto check = [&](const std::string& name, Tensor& w, const Tensor& grad, int64_t i) {
      const double keep = w.data<double>()[i];
      w.data<double>()[i] = keep + eps;
      Tape t1;
      const double up = loss_of(model, c, tb, t1);
      w.data<double>()[i] = keep - eps;
      Tape t2;
      const double down = loss_of(model, c, tb, t2);
      w.data<double>()[i] = keep;
      const double numeric = (up - down) / (2 * eps), analytic = grad.data<double>()[i];
      EXPECT_NEAR(analytic, numeric, 1e-7 + 1e-5 * std::abs(numeric)) << name << "[" << i << "]";
      return numeric != 0.0;
    };
    Rng pick(3);
    for (auto& [name, p] : model.named_parameters()) {
      ASSERT_TRUE(p.has_grad()) << name;
      for (int k = 0; k < 4; ++k)
        check(name, p.value(), p.grad(),
              static_cast<int64_t>(pick.next_u64() % static_cast<uint64_t>(p.value().numel())));
    }
    if (v.options.condition == K::Dense) {
      // The condition is an input like an encoder's output: every element must get its gradient.
      ASSERT_TRUE(c.dense.has_grad());
      int nonzero = 0;
      for (int64_t i = 0; i < c.dense.value().numel(); ++i)
        nonzero += check("cond", c.dense.value(), c.dense.grad(), i);
      EXPECT_EQ(nonzero, c.dense.value().numel());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 2. The condition reaches the outputs; None has no condition parameters; bad options and inputs.

// Probabilities of the first step after <bos> for each row of `raw` conditions.
Tensor first_probs(const Vec2Seq& model, const Conditions& c, int64_t rows) {
  Tape tape;
  NoGrad ng(tape);
  Vec2SeqState s = model.start(tape, cond_of(model, tape, c), rows);
  return softmax(tape, model.step(tape, s, Tensor::full({rows}, 2, DType::I64), 0)).value();
}

double max_diff_rows(const Tensor& p, int64_t a, int64_t b) {
  const int64_t V = p.dim(1);
  double d = 0;
  for (int64_t v = 0; v < V; ++v) d = std::max(d, std::abs(p.item(a * V + v) - p.item(b * V + v)));
  return d;
}

TEST(Vec2SeqTest, ConditionChangesTheDistribution) {
  for (const Variant& v : variants()) {
    if (v.options.condition == K::None) continue;
    SCOPED_TRACE(v.name);
    Vec2SeqOptions o = v.options;
    o.hidden = 16;
    o.dropout = 0;
    Rng init(11), data(2);
    Vec2Seq model(o, init);
    model.train(false);
    Conditions c = random_conditions(o, 3, data, DType::F32);
    c.ids = Tensor::from_i64({3}, {0, 3, 0});
    // Row 2 repeats row 0's condition: the same distribution; row 1 differs clearly.
    float* dense = c.dense.value().f32();
    for (int64_t j = 0; j < o.condition_dim; ++j) dense[2 * o.condition_dim + j] = dense[j];
    const Tensor p = first_probs(model, c, 3);
    EXPECT_GT(max_diff_rows(p, 0, 1), 1e-2);
    EXPECT_LT(max_diff_rows(p, 0, 2), 1e-6);
  }
  // No condition: no condition parameters, and the recurrent input is the embedding alone.
  Rng init(1);
  Vec2SeqOptions o = options_of(C::LSTM, K::None, true, true);  // init/concat are ignored for None
  o.condition_dim = 3;
  Vec2Seq lm(o, init);
  for (const auto& [name, p] : lm.named_parameters()) {
    EXPECT_EQ(name.find("category"), std::string::npos) << name;
    EXPECT_EQ(name.find("init_"), std::string::npos) << name;
    if (name == "rnn.weight_ih_l0") {
      EXPECT_EQ(p.value().dim(1), o.embed);
    }
  }
  EXPECT_EQ(lm.condition_size(), 0);
  Tape tape;
  EXPECT_NE(error_of([&] { lm.start(tape, Var(Tensor::zeros({1, 3})), 1); }).find("None"), std::string::npos);
}

TEST(Vec2SeqTest, BadOptionsAndInputsAreClearErrors) {
  Rng init(1);
  std::string e = error_of([&] { Vec2Seq m(options_of(C::LSTM, K::Dense, false, false), init); });
  EXPECT_NE(e.find("init_state"), std::string::npos) << e;
  EXPECT_NE(e.find("Dense"), std::string::npos) << e;
  Vec2SeqOptions o = options_of(C::GRU, K::Category, true, false);
  o.num_categories = 0;
  e = error_of([&] { Vec2Seq m(o, init); });
  EXPECT_NE(e.find("num_categories > 0, got 0"), std::string::npos) << e;
  o = options_of(C::GRU, K::None, false, false);
  o.tie_embeddings = true;
  e = error_of([&] { Vec2Seq m(o, init); });
  EXPECT_NE(e.find("embed (5) == hidden (4)"), std::string::npos) << e;
  o.tie_embeddings = false;
  o.eos = 8;
  e = error_of([&] { Vec2Seq m(o, init); });
  EXPECT_NE(e.find("special id 8"), std::string::npos) << e;

  Vec2Seq cat(options_of(C::LSTM, K::Category, true, true), init);
  Tape tape;
  e = error_of([&] { cat.condition(tape, Tensor::from_i64({2}, {1, 4})); });
  EXPECT_NE(e.find("category 4"), std::string::npos) << e;
  EXPECT_NE(e.find("num_categories 4"), std::string::npos) << e;
  e = error_of([&] { cat.condition(tape, Var(Tensor::zeros({2, 3}))); });
  EXPECT_NE(e.find("Category"), std::string::npos) << e;

  Vec2Seq dense(options_of(C::LSTM, K::Dense, true, true), init);
  e = error_of([&] { dense.condition(tape, Var(Tensor::zeros({2, 5}))); });
  EXPECT_NE(e.find("(B, 3)"), std::string::npos) << e;
  EXPECT_NE(e.find("width 5"), std::string::npos) << e;
  const Var cond = dense.condition(tape, Var(Tensor::zeros({2, 3})));
  e = error_of([&] { dense.start(tape, cond, 3); });
  EXPECT_NE(e.find("(3, 3)"), std::string::npos) << e;
  Vec2SeqState s = dense.start(tape, cond, 2);
  EXPECT_THROW(dense.select(tape, s, {2}), Error);
  EXPECT_THROW(dense.step(tape, s, Tensor::from_i64({3}, {2, 2, 2}), 0), Error);
  PackedBatch layout;
  const Tensor ids = pack_ids({{2, 4}, {2}}, &layout);
  e = error_of([&] { dense.forward(tape, Var(), ids, layout, 0); });
  EXPECT_NE(e.find("needs the condition"), std::string::npos) << e;
  dense.train(false);
  GenerateOptions go;
  go.prompts = {{4}, {5}, {6}};
  e = error_of([&] { generate(dense, Tensor::zeros({2, 3}), 2, go); });
  EXPECT_NE(e.find("3 prompts for 2 rows"), std::string::npos) << e;
  go.prompts.clear();
  go.mode = DecodeMode::Beam;
  go.beam.beta = 0.2;
  e = error_of([&] { generate(dense, Tensor::zeros({2, 3}), 2, go); });
  EXPECT_NE(e.find("coverage penalty"), std::string::npos) << e;
  go.beam.beta = 0;
  e = error_of([&] { generate(dense, Tensor::from_i64({2}, {0, 1}), 2, go); });
  EXPECT_NE(e.find("(2, 3) floats"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// 3. step() against forward().

TEST(Vec2SeqTest, StepByStepMatchesTeacherForcing) {
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    Rng init(7), data(3);
    Vec2Seq model(v.options, init);
    model.train(false);
    const Conditions c = random_conditions(v.options, 4, data, DType::F32);
    const TargetBatch tb = make_target_batch(random_ids(data, {2, 0, 4, 3}, 4, 8), 2, 3);
    const PackedBatch& tl = tb.layout;
    Tape tape;
    NoGrad ng(tape);
    const Var cond = cond_of(model, tape, c);
    const Tensor whole = model.forward(tape, cond, tb.input, tl, 1).value();
    // Every row steps through its own inputs; rows past their end feed <pad> and are ignored.
    Vec2SeqState state = model.start(tape, cond, tl.batch());
    for (int64_t t = 0; t < tl.steps(); ++t) {
      std::vector<int64_t> tokens;
      for (int64_t b = 0; b < tl.batch(); ++b)
        tokens.push_back(t < tl.lengths[static_cast<size_t>(b)] ? tb.input.data<int64_t>()[at(tl, b, t)] : 0);
      const Tensor logits = model.step(tape, state, Tensor::from_i64({tl.batch()}, tokens), 1).value();
      for (int64_t b = 0; b < tl.batch(); ++b) {
        if (t >= tl.lengths[static_cast<size_t>(b)]) continue;
        for (int64_t k = 0; k < 8; ++k)
          EXPECT_NEAR(logits.f32()[b * 8 + k], whole.f32()[at(tl, b, t) * 8 + k], 1e-5) << "t " << t << " b " << b;
      }
    }
  }
}

TEST(Vec2SeqTest, SelectReordersRows) {
  Rng init(1), data(4);
  const Vec2SeqOptions o = options_of(C::LSTM, K::Dense, true, true, 2);
  Vec2Seq model(o, init);
  model.train(false);
  const Conditions c = random_conditions(o, 3, data, DType::F32);
  Tape tape;
  NoGrad ng(tape);
  Vec2SeqState state = model.start(tape, cond_of(model, tape, c), 3);
  model.step(tape, state, Tensor::from_i64({3}, {2, 2, 2}), 0);
  Vec2SeqState picked = model.select(tape, state, {2, 0, 0});
  ASSERT_EQ(picked.rows(), 3);
  const Tensor b = model.step(tape, picked, Tensor::from_i64({3}, {5, 4, 6}), 0).value();
  const Tensor full = model.step(tape, state, Tensor::from_i64({3}, {4, 0, 5}), 0).value();
  for (int64_t v = 0; v < 8; ++v) {
    EXPECT_NEAR(b.f32()[0 * 8 + v], full.f32()[2 * 8 + v], 1e-5);
    EXPECT_NEAR(b.f32()[1 * 8 + v], full.f32()[0 * 8 + v], 1e-5);
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Carrying the state across chunks.

TEST(Vec2SeqTest, ChunksCarryingTheStateEqualOneRun) {
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    Rng init(13), data(6);
    Vec2Seq model(v.options, init);
    model.train(false);
    const Conditions c = random_conditions(v.options, 3, data, DType::F32);
    std::vector<std::vector<int64_t>> seqs = random_ids(data, {5, 3, 6}, 4, 8), head, tail;
    for (auto& s : seqs) s.insert(s.begin(), 2);
    const std::vector<size_t> cut = {2, 1, 4};
    for (size_t b = 0; b < seqs.size(); ++b) {
      head.emplace_back(seqs[b].begin(), seqs[b].begin() + static_cast<std::ptrdiff_t>(cut[b]));
      tail.emplace_back(seqs[b].begin() + static_cast<std::ptrdiff_t>(cut[b]), seqs[b].end());
    }
    PackedBatch lw, lh, lt;
    const Tensor iw = pack_ids(seqs, &lw), ih = pack_ids(head, &lh), it = pack_ids(tail, &lt);
    Tape tape;
    NoGrad ng(tape);
    const Var cond = cond_of(model, tape, c);
    Vec2SeqState end_whole, mid, end;
    const Tensor whole = model.forward(tape, cond, iw, lw, 0, nullptr, &end_whole).value();
    const Tensor first = model.forward(tape, cond, ih, lh, 0, nullptr, &mid).value();
    // The second chunk takes its condition from the carried state (concat_input needs one).
    const Tensor second = model.forward(tape, Var(), it, lt, 0, &mid, &end).value();
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t t = 0; t < lw.lengths[static_cast<size_t>(b)]; ++t) {
        const int64_t k = static_cast<int64_t>(cut[static_cast<size_t>(b)]);
        const Tensor& part = t < k ? first : second;
        const int64_t row = t < k ? at(lh, b, t) : at(lt, b, t - k);
        for (int64_t j = 0; j < 8; ++j)
          EXPECT_NEAR(part.f32()[row * 8 + j], whole.f32()[at(lw, b, t) * 8 + j], 1e-5) << "b " << b << " t " << t;
      }
    EXPECT_ALL_CLOSE(end.h.value(), end_whole.h.value(), 1e-5, 1e-6);
    if (v.options.cell == C::LSTM) {
      EXPECT_ALL_CLOSE(end.c.value(), end_whole.c.value(), 1e-5, 1e-6);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 5. Prompts.

// Greedy by hand for one row: <bos> and the prompt through step(), then argmaxes until <eos>.
std::vector<int64_t> greedy_by_hand(const Vec2Seq& model, const Vec2SeqState& start, int64_t row,
                                    const std::vector<int64_t>& prompt, int64_t max_len) {
  Tape tape;
  NoGrad ng(tape);
  Vec2SeqState s = model.select(tape, start, {row});
  std::vector<int64_t> feed = {model.options().bos};
  feed.insert(feed.end(), prompt.begin(), prompt.end());
  Tensor logits;
  for (int64_t id : feed) logits = model.step(tape, s, Tensor::from_i64({1}, {id}), 0).value();
  std::vector<int64_t> out;
  while (static_cast<int64_t>(out.size()) < max_len) {
    const float* l = logits.f32();
    const int64_t next = std::max_element(l, l + logits.dim(1)) - l;
    out.push_back(next);
    if (next == model.options().eos) break;
    logits = model.step(tape, s, Tensor::from_i64({1}, {next}), 0).value();
  }
  return out;
}

TEST(Vec2SeqTest, PromptsPrimeTheState) {
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    Vec2SeqOptions o = v.options;
    o.hidden = o.tie_embeddings ? o.embed : 12;
    Rng init(21), data(8);
    Vec2Seq model(o, init);
    model.train(false);
    const Conditions c = random_conditions(o, 4, data, DType::F32);
    const std::vector<std::vector<int64_t>> prompts = {{4, 5, 6}, {}, {7}, {6, 6, 4, 5, 7}};
    Tape tape;
    NoGrad ng(tape);
    const Vec2SeqState start = model.start(tape, cond_of(model, tape, c), 4);
    GenerateOptions go;
    go.max_len = 6;
    go.prompts = prompts;
    const auto per_row = generate(model, raw_of(model, c), 4, go);
    go.prompts = {prompts[0]};
    const auto shared = generate(model, raw_of(model, c), 4, go);
    for (int64_t r = 0; r < 4; ++r) {
      const auto i = static_cast<size_t>(r);
      EXPECT_EQ(per_row[i][0].tokens, greedy_by_hand(model, start, r, prompts[i], 6)) << r;
      EXPECT_EQ(shared[i][0].tokens, greedy_by_hand(model, start, r, prompts[0], 6)) << r;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 6. Sampling.

TEST(Vec2SeqTest, SamplingIsSeededAndTruncated) {
  Vec2SeqOptions o = options_of(C::LSTM, K::Category, true, true);
  o.hidden = 16;
  Rng init(31);
  Vec2Seq model(o, init);
  model.train(false);
  GenerateOptions go;
  go.mode = DecodeMode::Sample;
  go.max_len = 8;
  const Tensor cats = Tensor::from_i64({6}, {0, 1, 2, 3, 0, 1});
  go.sampling.seed = 5;
  const auto a = generate(model, cats, 6, go), b = generate(model, cats, 6, go);
  go.sampling.seed = 6;
  const auto d = generate(model, cats, 6, go);
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i][0].tokens, b[i][0].tokens) << i;
    differs = differs || a[i][0].tokens != d[i][0].tokens;
  }
  EXPECT_TRUE(differs);

  // The first step's distribution for category 2, most likely first.
  Conditions c;
  c.ids = Tensor::from_i64({1}, {2});
  const Tensor p = first_probs(model, c, 1);
  std::vector<int64_t> order(8);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return p.f32()[x] > p.f32()[y]; });
  const int64_t n = 2000;
  const Tensor same = Tensor::full({n}, 2, DType::I64);
  go.max_len = 1;
  auto firsts = [&] {
    std::set<int64_t> seen;
    for (const auto& h : generate(model, same, n, go)) seen.insert(h[0].tokens.at(0));
    return seen;
  };
  go.sampling.top_k = 3;
  std::set<int64_t> seen = firsts(), want(order.begin(), order.begin() + 3);
  EXPECT_EQ(seen, want);  // only the top 3, and over 2000 draws each of them
  // A nucleus of exactly 4 tokens: top_p halfway between the mass of the top 3 and of the top 4.
  double mass[5] = {0, 0, 0, 0, 0};
  for (int i = 0; i < 4; ++i) mass[i + 1] = mass[i] + p.f32()[order[static_cast<size_t>(i)]];
  go.sampling.top_k = 0;
  go.sampling.top_p = (mass[3] + mass[4]) / 2;
  seen = firsts();
  want = std::set<int64_t>(order.begin(), order.begin() + 4);
  EXPECT_EQ(seen, want);
}

// ---------------------------------------------------------------------------------------------
// 7. Learning.

// Category c -> c+4, c+5, c+6, <eos>: greedy and beam search must both reproduce it exactly.
TEST(Vec2SeqTest, LearnsCategorySequences) {
  for (bool gru : {false, true}) {
    SCOPED_TRACE(gru ? "gru init" : "lstm both");
    Vec2SeqOptions o;
    o.vocab = 11;
    o.embed = 8;
    o.hidden = 24;
    o.cell = gru ? C::GRU : C::LSTM;
    o.condition = K::Category;
    o.num_categories = 5;
    o.condition_dim = 8;
    o.init_state = true;
    o.concat_input = !gru;
    Rng init(4);
    Vec2Seq model(o, init);
    std::vector<std::vector<int64_t>> targets;
    std::vector<int64_t> ids;
    for (int64_t c = 0; c < 5; ++c) {
      targets.push_back({c + 4, c + 5, c + 6});
      ids.push_back(c);
    }
    const TargetBatch tb = make_target_batch(targets, o.bos, o.eos);
    const Tensor cats = Tensor::from_i64({5}, ids);
    train::AdamOptions ao;
    ao.lr = 0.03;
    train::Adam adam(model.named_parameters(), ao);
    for (int step = 0; step < 150; ++step) {
      Tape tape;
      adam.zero_grad();
      Var logits = model.forward(tape, model.condition(tape, cats), tb.input, tb.layout, 0);
      Var loss = cross_entropy(tape, logits, tb.output);
      tape.backward(loss);
      adam.step();
    }
    model.train(false);
    GenerateOptions greedy, beam;
    greedy.max_len = beam.max_len = 8;
    beam.mode = DecodeMode::Beam;
    beam.beam.beam = 3;
    const auto g = generate(model, cats, 5, greedy), bm = generate(model, cats, 5, beam);
    for (size_t c = 0; c < 5; ++c) {
      std::vector<int64_t> want = targets[c];
      want.push_back(o.eos);
      EXPECT_EQ(g[c][0].tokens, want) << c;
      EXPECT_EQ(bm[c][0].tokens, want) << c;
    }
    // A prompt of the first target token continues the category's sequence.
    greedy.prompts = {{6}};
    const auto cont = generate(model, Tensor::from_i64({1}, {2}), 1, greedy);
    EXPECT_EQ(cont[0][0].tokens, (std::vector<int64_t>{7, 8, o.eos}));
  }
}

// ---------------------------------------------------------------------------------------------
// 8. GPU.

TEST(Vec2SeqTest, CudaMatchesCpu) {
  RECUR_REQUIRE_GPU();
  for (const Variant& v : variants()) {
    SCOPED_TRACE(v.name);
    Rng i1(8), i2(8), data(6);
    Vec2Seq cpu(v.options, i1), gpu(v.options, i2);
    gpu.to(Device::cuda(0));
    const Conditions cc = random_conditions(v.options, 4, data, DType::F32);
    Conditions gc = cc;
    gc.dense = Var(cc.dense.value().to(Device::cuda(0)), true);
    const TargetBatch tb = make_target_batch(random_ids(data, {3, 0, 4, 2}, 4, 8), 2, 3);
    double losses[2];
    Vec2Seq* models[2] = {&cpu, &gpu};
    const Conditions* conds[2] = {&cc, &gc};
    for (int k = 0; k < 2; ++k) {
      const Device dev = k == 0 ? Device::cpu() : Device::cuda(0);
      Tape tape;
      Var logits = models[k]->forward(tape, cond_of(*models[k], tape, *conds[k]), tb.input.to(dev), tb.layout, 3);
      Var loss = cross_entropy(tape, logits, tb.output.to(dev));
      losses[k] = loss.value().to(Device::cpu()).item();
      tape.backward(loss);
    }
    EXPECT_NEAR(losses[0], losses[1], 1e-5);
    auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
    for (size_t i = 0; i < pc.size(); ++i)
      EXPECT_ALL_CLOSE(pg[i].second.grad().to(Device::cpu()), pc[i].second.grad(), 1e-3, 1e-5) << pc[i].first;
    if (v.options.condition == K::Dense) {
      EXPECT_ALL_CLOSE(gc.dense.grad().to(Device::cpu()), cc.dense.grad(), 1e-3, 1e-5);
    }
    cpu.train(false);
    gpu.train(false);
    GenerateOptions go;
    go.max_len = 6;
    go.prompts = {{4, 5}, {}, {6}, {7, 7, 7}};
    const auto hc = generate(cpu, raw_of(cpu, cc), 4, go), hg = generate(gpu, raw_of(gpu, gc), 4, go);
    go.mode = DecodeMode::Beam;
    go.beam.beam = 3;
    const auto bc = generate(cpu, raw_of(cpu, cc), 4, go), bg = generate(gpu, raw_of(gpu, gc), 4, go);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(hg[i][0].tokens, hc[i][0].tokens) << i;
      EXPECT_NEAR(hg[i][0].log_prob, hc[i][0].log_prob, 1e-4) << i;
      EXPECT_EQ(bg[i][0].tokens, bc[i][0].tokens) << i;
    }
  }
}

}  // namespace
}  // namespace recur::models
