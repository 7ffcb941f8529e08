// End-to-end pieces: the stacked RNN's gradients by central differences, inter-layer dropout,
// and bit-identical training for a fixed seed and thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "recur/core/thread_pool.h"
#include "recur/nn/layers.h"
#include "recur/nn/rnn.h"
#include "recur/ops/basic.h"
#include "recur/ops/loss.h"
#include "recur/ops/pool.h"
#include "recur/train/optimizer.h"
#include "test_util.h"

namespace recur {
namespace {

// Loss = sum(y * wy) + sum(hn * wh) (+ sum(cn * wc)) of a 2-layer bidirectional stack with
// initial states, accumulated in double.
struct StackProblem {
  nn::RNN rnn;
  PackedBatch pb;
  Tensor x, h0, c0, wy, wh, wc;
  bool lstm;

  StackProblem(ops::CellType cell, Rng& rng)
      : rnn(nn::RnnOptions{cell, 3, 4, 2, true, true, 0.0f}, rng),
        pb(PackedBatch::from_lengths({4, 2, 5})),
        lstm(cell == ops::CellType::LSTM) {
    x = test::randn({pb.tokens(), 3}, rng);
    h0 = test::randn({4, 3, 4}, rng, 0.5);
    c0 = test::randn({4, 3, 4}, rng, 0.5);
    wy = test::randn({pb.tokens(), 8}, rng);
    wh = test::randn({4, 3, 4}, rng);
    wc = test::randn({4, 3, 4}, rng);
  }

  double loss() {
    Tape tape;
    NoGrad ng(tape);
    nn::RnnOutput o = rnn.forward(tape, Var(x), pb, Var(h0), lstm ? Var(c0) : Var());
    return test::weighted_sum(o.y.value(), wy) + test::weighted_sum(o.hn.value(), wh) +
           (lstm ? test::weighted_sum(o.cn.value(), wc) : 0.0);
  }
};

// Central differences of a float computation: eps large enough to beat rounding, so the check is
// loose (2%) but still catches any wrong term in the stacked backward (ordering, directions,
// concat, states).
Tensor float_numeric_grad(StackProblem& p, Tensor& t, double eps = 1e-2) {
  Tensor g(t.shape(), DType::F64);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float keep = t.f32()[i];
    t.f32()[i] = static_cast<float>(keep + eps);
    double lp = p.loss();
    t.f32()[i] = static_cast<float>(keep - eps);
    double lm = p.loss();
    t.f32()[i] = keep;
    g.data<double>()[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

TEST(StackedRnnGradCheck, TwoLayerBidirectionalWithInitialStates) {
  for (auto cell : {ops::CellType::LSTM, ops::CellType::GRU, ops::CellType::RNN_TANH}) {
    SCOPED_TRACE(ops::cell_name(cell));
    Rng rng(21);
    StackProblem p(cell, rng);
    Tape tape;
    Var x(p.x, true), h0(p.h0, true), c0 = p.lstm ? Var(p.c0, true) : Var();
    nn::RnnOutput o = p.rnn.forward(tape, x, p.pb, h0, c0);
    std::vector<std::pair<Var, Tensor>> seeds{{o.y, p.wy}, {o.hn, p.wh}};
    if (p.lstm) seeds.emplace_back(o.cn, p.wc);
    tape.backward(seeds);
    EXPECT_ALL_CLOSE(x.grad(), float_numeric_grad(p, p.x), 2e-2, 2e-3);
    EXPECT_ALL_CLOSE(h0.grad(), float_numeric_grad(p, p.h0), 2e-2, 2e-3);
    if (p.lstm) {
      EXPECT_ALL_CLOSE(c0.grad(), float_numeric_grad(p, p.c0), 2e-2, 2e-3);
    }
    for (auto& [name, v] : p.rnn.named_parameters()) {
      SCOPED_TRACE(name);
      EXPECT_ALL_CLOSE(v.grad(), float_numeric_grad(p, v.value()), 2e-2, 2e-3);
    }
  }
}

TEST(StackedRnn, InterLayerDropoutIsSeededAndOnlyInTraining) {
  Rng rng(4);
  nn::RNN rnn({ops::CellType::LSTM, 3, 8, 3, true, false, 0.5f}, rng);
  PackedBatch pb = PackedBatch::from_lengths({5, 3});
  Var x(test::randn({pb.tokens(), 3}, rng));
  auto run = [&](uint64_t seed) {
    Tape tape;
    return rnn.forward(tape, x, pb, {}, {}, seed).y.value().clone();
  };
  Tensor a = run(1), b = run(1), c = run(2);
  EXPECT_ALL_CLOSE(a, b, 0, 0);
  EXPECT_FALSE(test::all_close(a, c, 1e-3, 1e-4));
  rnn.train(false);
  Tensor e1 = run(1), e2 = run(2);
  EXPECT_ALL_CLOSE(e1, e2, 0, 0);
  EXPECT_FALSE(test::all_close(a, e1, 1e-3, 1e-4));
}

// A model trained twice with the same seed and thread count ends with bit-identical parameters.
std::vector<Tensor> train_small(uint64_t seed) {
  Rng rng(seed);
  nn::RNN rnn({ops::CellType::GRU, 4, 16, 2, true, true, 0.2f}, rng);
  nn::Linear head(32, 3, rng);
  auto params = rnn.named_parameters();
  for (auto& p : head.named_parameters()) params.push_back(p);
  train::Adam opt(params, train::AdamOptions{.lr = 1e-2});
  for (int step = 0; step < 15; ++step) {
    std::vector<int64_t> lengths;
    for (int b = 0; b < 9; ++b) lengths.push_back(1 + static_cast<int64_t>(rng.below(12)));
    PackedBatch pb = PackedBatch::from_lengths(lengths);
    Tensor x = test::randn({pb.tokens(), 4}, rng);
    std::vector<int64_t> labels;
    for (int b = 0; b < 9; ++b) labels.push_back(static_cast<int64_t>(rng.below(3)));
    Tape tape;
    opt.zero_grad();
    nn::RnnOutput o = rnn.forward(tape, Var(x), pb, {}, {}, rng.next_seed());
    Var loss = cross_entropy(tape, head.forward(tape, mean_pool(tape, o.y, pb)), Tensor::from_i64({9}, labels));
    tape.backward(loss);
    train::clip_grad_norm(params, 1.0);
    opt.step();
  }
  std::vector<Tensor> out;
  for (auto& [n, v] : params) out.push_back(v.value().clone());
  return out;
}

TEST(Training, SameSeedAndThreadsGiveBitIdenticalParameters) {
  set_num_threads(2);
  auto a = train_small(9), b = train_small(9), c = train_small(10);
  ASSERT_EQ(a.size(), b.size());
  bool any_diff = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::memcmp(a[i].raw(), b[i].raw(), a[i].nbytes()), 0) << "parameter " << i;
    any_diff |= std::memcmp(a[i].raw(), c[i].raw(), a[i].nbytes()) != 0;
  }
  EXPECT_TRUE(any_diff) << "a different seed should train differently";
}

}  // namespace
}  // namespace recur
