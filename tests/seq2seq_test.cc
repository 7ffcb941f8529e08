// Seq2Seq: the whole-sequence teacher-forcing path against the step-by-step path, gradients of the
// whole model (run in double) against central differences for every attention kind, bridge, cell
// and input feeding, padding never attended, batch independence, and CPU against GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "recur/models/seq2seq.h"
#include "recur/ops/loss.h"
#include "recur/train/optimizer.h"
#include "test_util.h"

namespace recur::models {
namespace {

struct Case {
  ops::CellType cell;
  nn::AttentionKind attention;
  Bridge bridge;
  bool input_feeding;
  bool bidirectional;
  int64_t encoder_layers, decoder_layers;
  bool tie;
};

std::string case_name(const Case& c) {
  return fmt::format("{} att{} bridge{} feed{} bi{} L{}/{} tie{}", ops::cell_name(c.cell), static_cast<int>(c.attention),
                     static_cast<int>(c.bridge), c.input_feeding, c.bidirectional, c.encoder_layers, c.decoder_layers,
                     c.tie);
}

Seq2SeqOptions options_of(const Case& c) {
  Seq2SeqOptions o;
  o.source_vocab = 9;
  o.target_vocab = 7;
  o.source_embed = 5;
  o.target_embed = 6;
  o.cell = c.cell;
  o.encoder_hidden = 4;
  o.encoder_layers = c.encoder_layers;
  o.bidirectional = c.bidirectional;
  o.decoder_layers = c.decoder_layers;
  o.decoder_hidden = c.bridge == Bridge::Copy ? (c.bidirectional ? 8 : 4) : 5;
  o.attention = c.attention;
  o.attention_hidden = 3;
  o.input_feeding = c.input_feeding;
  o.bridge = c.bridge;
  o.attentional = 6;
  o.tie_embeddings = c.tie;
  return o;
}

const std::vector<Case>& cases() {
  using A = nn::AttentionKind;
  using C = ops::CellType;
  static const std::vector<Case> all = {
      {C::LSTM, A::General, Bridge::Dense, false, true, 1, 1, false},
      {C::LSTM, A::Dot, Bridge::Copy, false, true, 2, 2, false},
      {C::GRU, A::Additive, Bridge::None, false, false, 1, 2, true},
      {C::LSTM, A::Additive, Bridge::Dense, true, true, 2, 1, false},
      {C::GRU, A::General, Bridge::Dense, true, true, 1, 1, true},
      {C::GRU, A::Dot, Bridge::Copy, true, false, 1, 1, false},
  };
  return all;
}

std::vector<std::vector<int64_t>> random_ids(Rng& rng, const std::vector<int64_t>& lengths, int64_t lo, int64_t hi) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t n : lengths) {
    out.emplace_back();
    for (int64_t i = 0; i < n; ++i) out.back().push_back(lo + static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(hi - lo)));
  }
  return out;
}

struct Data {
  Tensor source;
  PackedBatch source_layout;
  TargetBatch target;
  std::vector<std::vector<int64_t>> targets;
};

Data make_data(uint64_t seed) {
  Rng rng(seed);
  Data d;
  d.source = pack_ids(random_ids(rng, {3, 5, 1, 4}, 4, 9), &d.source_layout);
  d.targets = random_ids(rng, {2, 0, 4, 3}, 4, 7);
  d.target = make_target_batch(d.targets, 2, 3);
  return d;
}

TEST(Seq2SeqTest, StepByStepMatchesTeacherForcing) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_name(c));
    Rng init(7);
    Seq2Seq model(options_of(c), init);
    model.train(false);
    const Data d = make_data(3);
    Tape tape;
    NoGrad ng(tape);
    Encoded enc = model.encode(tape, d.source, d.source_layout, 1);
    const Tensor whole = model.forward(tape, enc, d.target.input, d.target.layout, 1).value();
    // Every sentence steps through its own inputs; rows past their end feed <pad> and are ignored.
    DecoderState state = model.start(tape, enc);
    const PackedBatch& tl = d.target.layout;
    for (int64_t t = 0; t < tl.steps(); ++t) {
      std::vector<int64_t> tokens;
      for (int64_t b = 0; b < tl.batch(); ++b)
        tokens.push_back(t < tl.lengths[static_cast<size_t>(b)]
                             ? d.target.input.data<int64_t>()[tl.row(t, tl.unsorted_indices[static_cast<size_t>(b)])]
                             : 0);
      const Tensor logits = model.step(tape, enc, state, Tensor::from_i64({tl.batch()}, tokens), 1).value();
      for (int64_t b = 0; b < tl.batch(); ++b) {
        if (t >= tl.lengths[static_cast<size_t>(b)]) continue;
        const int64_t row = tl.row(t, tl.unsorted_indices[static_cast<size_t>(b)]);
        for (int64_t v = 0; v < 7; ++v)
          EXPECT_NEAR(logits.f32()[b * 7 + v], whole.f32()[row * 7 + v], 1e-5) << "t " << t << " b " << b;
      }
    }
  }
}

// The loss of the model in double: every op runs its double-precision path.
double loss_of(Seq2Seq& model, const Data& d, Tape& tape, Var* loss_var = nullptr) {
  Encoded enc = model.encode(tape, d.source, d.source_layout, 11);
  Var logits = model.forward(tape, enc, d.target.input, d.target.layout, 11);
  CrossEntropyOptions ce;
  ce.label_smoothing = 0.1f;
  Var loss = cross_entropy(tape, logits, d.target.output, ce);
  if (loss_var) *loss_var = loss;
  return loss.value().item();
}

TEST(Seq2SeqTest, GradientsMatchCentralDifferences) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_name(c));
    Rng init(5);
    Seq2SeqOptions o = options_of(c);
    o.dropout = c.input_feeding ? 0.25f : 0.0f;  // the masks are seeded, so the loss stays a function
    Seq2Seq model(o, init);
    model.cast(DType::F64);
    model.train(true);
    const Data d = make_data(9);
    Tape tape;
    Var loss;
    loss_of(model, d, tape, &loss);
    tape.backward(loss);
    Rng pick(3);
    for (auto& [name, p] : model.named_parameters()) {
      ASSERT_TRUE(p.has_grad()) << name;
      Tensor& w = p.value();
      for (int k = 0; k < 3; ++k) {
        const int64_t i = static_cast<int64_t>(pick.next_u64() % static_cast<uint64_t>(w.numel()));
        const double keep = w.data<double>()[i], eps = 1e-5;
        w.data<double>()[i] = keep + eps;
        Tape t1;
        const double up = loss_of(model, d, t1);
        w.data<double>()[i] = keep - eps;
        Tape t2;
        const double down = loss_of(model, d, t2);
        w.data<double>()[i] = keep;
        const double numeric = (up - down) / (2 * eps), analytic = p.grad().data<double>()[i];
        EXPECT_NEAR(analytic, numeric, 1e-6 + 1e-5 * std::abs(numeric)) << name << "[" << i << "]";
      }
    }
  }
}

TEST(Seq2SeqTest, PaddingGetsNoAttentionAndBatchmatesDoNotMatter) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_name(c));
    Rng init(2);
    Seq2Seq model(options_of(c), init);
    model.train(false);
    const Data d = make_data(4);
    Tape tape;
    NoGrad ng(tape);
    Encoded enc = model.encode(tape, d.source, d.source_layout, 0);
    DecoderState state = model.start(tape, enc);
    Tensor weights;
    const Tensor first = model.step(tape, enc, state, Tensor::full({4}, 2, DType::I64), 0, &weights).value();
    ASSERT_EQ(weights.shape(), (Shape{4, 5}));
    for (int64_t b = 0; b < 4; ++b) {
      double sum = 0;
      for (int64_t s = 0; s < 5; ++s) {
        const float w = weights.f32()[b * 5 + s];
        if (s >= d.source_layout.lengths[static_cast<size_t>(b)]) EXPECT_EQ(w, 0.0f) << b << " " << s;
        else EXPECT_GT(w, 0.0f);
        sum += w;
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
    // Sentence 2 (one source token) alone gives the same first-step logits as in the batch.
    PackedBatch one;
    const Tensor src = pack_ids({{d.source.data<int64_t>()[d.source_layout.row(0, d.source_layout.unsorted_indices[2])]}},
                                &one);
    Encoded enc1 = model.encode(tape, src, one, 0);
    DecoderState s1 = model.start(tape, enc1);
    const Tensor alone = model.step(tape, enc1, s1, Tensor::full({1}, 2, DType::I64), 0).value();
    for (int64_t v = 0; v < 7; ++v) EXPECT_NEAR(alone.f32()[v], first.f32()[2 * 7 + v], 1e-5);
  }
}

TEST(Seq2SeqTest, SelectReordersRows) {
  Rng init(1);
  Seq2Seq model(options_of(cases()[3]), init);
  model.train(false);
  const Data d = make_data(5);
  Tape tape;
  NoGrad ng(tape);
  Encoded enc = model.encode(tape, d.source, d.source_layout, 0);
  DecoderState state = model.start(tape, enc);
  const Tensor a = model.step(tape, enc, state, Tensor::from_i64({4}, {4, 5, 6, 4}), 0).value();
  // Continue rows 3, 0, 0: the same as continuing each of them alone.
  DecoderState picked = model.select(tape, state, {3, 0, 0});
  EXPECT_EQ(picked.sentence, (std::vector<int64_t>{3, 0, 0}));
  const Tensor b = model.step(tape, enc, picked, Tensor::from_i64({3}, {5, 5, 6}), 0).value();
  const Tensor full = model.step(tape, enc, state, Tensor::from_i64({4}, {5, 0, 0, 5}), 0).value();
  for (int64_t v = 0; v < 7; ++v) {
    EXPECT_NEAR(b.f32()[0 * 7 + v], full.f32()[3 * 7 + v], 1e-5);
    EXPECT_NEAR(b.f32()[1 * 7 + v], full.f32()[0 * 7 + v], 1e-5);
  }
  (void)a;
  EXPECT_THROW(model.select(tape, state, {4}), Error);
}

// Reversing strings of 2-6 symbols: a task only attention solves quickly. A small model trained for
// a few hundred steps must get nearly all held-out strings right with greedy and beam decoding, and
// beam search with beam 1 must return exactly the greedy output.
TEST(Seq2SeqTest, LearnsToReverseAndDecodersAgree) {
  Rng rng(21);
  auto sample = [&](int64_t n) {
    std::vector<std::vector<int64_t>> src, tgt;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t len = 2 + static_cast<int64_t>(rng.next_u64() % 5);
      std::vector<int64_t> s;
      for (int64_t k = 0; k < len; ++k) s.push_back(4 + static_cast<int64_t>(rng.next_u64() % 6));
      src.push_back(s);
      tgt.emplace_back(s.rbegin(), s.rend());
    }
    return std::make_pair(src, tgt);
  };
  Seq2SeqOptions o;
  o.source_vocab = o.target_vocab = 10;
  o.source_embed = o.target_embed = 16;
  o.encoder_hidden = 32;
  o.decoder_hidden = 64;
  o.input_feeding = true;
  Rng init(4);
  Seq2Seq model(o, init);
  train::AdamOptions ao;
  ao.lr = 0.01;
  train::Adam adam(model.named_parameters(), ao);
  for (int step = 0; step < 300; ++step) {
    auto [src, tgt] = sample(32);
    PackedBatch sl;
    const Tensor s = pack_ids(src, &sl);
    const TargetBatch tb = make_target_batch(tgt, o.bos, o.eos);
    Tape tape;
    adam.zero_grad();
    Var loss = cross_entropy(tape, model.forward(tape, model.encode(tape, s, sl, 0), tb.input, tb.layout, 0), tb.output);
    tape.backward(loss);
    adam.step();
  }
  model.train(false);
  auto [src, tgt] = sample(100);
  TranslateOptions greedy, beam1, beam4;
  greedy.mode = DecodeMode::Greedy;
  beam1.beam.beam = 1;
  beam1.beam.alpha = 0;
  beam4.beam.beam = 4;
  beam4.keep_attention = true;
  const auto g = translate(model, src, greedy), b1 = translate(model, src, beam1), b4 = translate(model, src, beam4);
  int right_greedy = 0, right_beam = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    std::vector<int64_t> want = tgt[i];
    want.push_back(o.eos);
    EXPECT_EQ(b1[i][0].tokens, g[i][0].tokens) << i;
    EXPECT_NEAR(b1[i][0].log_prob, g[i][0].log_prob, 1e-4) << i;
    right_greedy += g[i][0].tokens == want;
    right_beam += b4[i][0].tokens == want;
    // One attention row per output token, each a distribution over the source.
    ASSERT_EQ(b4[i][0].attention.size(), b4[i][0].tokens.size());
    for (const auto& row : b4[i][0].attention) {
      ASSERT_EQ(row.size(), src[i].size());
      double sum = 0;
      for (float w : row) sum += w;
      EXPECT_NEAR(sum, 1.0, 1e-4);
    }
  }
  EXPECT_GE(right_greedy, 90);
  EXPECT_GE(right_beam, 90);
}

TEST(Seq2SeqTest, CudaMatchesCpu) {
  RECUR_REQUIRE_GPU();
  for (const Case& c : cases()) {
    SCOPED_TRACE(case_name(c));
    Rng i1(8), i2(8);
    Seq2Seq cpu(options_of(c), i1), gpu(options_of(c), i2);
    gpu.to(Device::cuda(0));
    const Data d = make_data(6);
    double losses[2];
    Seq2Seq* models[2] = {&cpu, &gpu};
    for (int k = 0; k < 2; ++k) {
      const Device dev = k == 0 ? Device::cpu() : Device::cuda(0);
      Tape tape;
      Encoded enc = models[k]->encode(tape, d.source.to(dev), d.source_layout, 3);
      Var logits = models[k]->forward(tape, enc, d.target.input.to(dev), d.target.layout, 3);
      Var loss = cross_entropy(tape, logits, d.target.output.to(dev));
      losses[k] = loss.value().to(Device::cpu()).item();
      tape.backward(loss);
    }
    EXPECT_NEAR(losses[0], losses[1], 1e-5);
    // Decoding on the GPU: the same beam-search output as on the CPU.
    cpu.train(false);
    gpu.train(false);
    TranslateOptions to;
    to.beam.beam = 3;
    to.beam.beta = 0.2;
    const std::vector<std::vector<int64_t>> src = {{4, 5, 6}, {7}, {8, 4, 4, 5, 6}};
    const auto hc = translate(cpu, src, to), hg = translate(gpu, src, to);
    for (size_t i = 0; i < src.size(); ++i) {
      EXPECT_EQ(hg[i][0].tokens, hc[i][0].tokens) << i;
      EXPECT_NEAR(hg[i][0].score, hc[i][0].score, 1e-4) << i;
    }
    cpu.train(true);
    gpu.train(true);
    auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
    for (size_t i = 0; i < pc.size(); ++i)
      EXPECT_ALL_CLOSE(pg[i].second.grad().to(Device::cpu()), pc[i].second.grad(), 1e-3, 1e-5) << pc[i].first;
  }
}

}  // namespace
}  // namespace recur::models
