// End-to-end pieces: the stacked RNN's gradients against central differences of a double-precision
// stack built from the reference layers, inter-layer dropout,
// and bit-identical training for a fixed seed and thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>

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

// A 2-layer bidirectional stack with initial states, and the same stack evaluated in double
// precision from the reference layers: central differences of that double stack are the oracle
// for the float module's backward (ordering, directions, concat, states).
struct StackProblem {
  nn::RNN rnn;
  PackedBatch pb;
  Tensor x, h0, c0, wy, wh, wc;  // F64 copies drive the double stack
  std::map<std::string, Tensor> p64;
  bool lstm;

  StackProblem(ops::CellType cell, Rng& rng)
      : rnn(nn::RnnOptions{cell, 3, 4, 2, true, true, 0.0f}, rng),
        pb(PackedBatch::from_lengths({4, 2, 5})),
        lstm(cell == ops::CellType::LSTM) {
    x = test::randn({pb.tokens(), 3}, rng, 1.0, DType::F64);
    h0 = test::randn({4, 3, 4}, rng, 0.5, DType::F64);
    c0 = test::randn({4, 3, 4}, rng, 0.5, DType::F64);
    wy = test::randn({pb.tokens(), 8}, rng, 1.0, DType::F64);
    wh = test::randn({4, 3, 4}, rng, 1.0, DType::F64);
    wc = test::randn({4, 3, 4}, rng, 1.0, DType::F64);
    // Round the module's float parameters to double so both stacks hold the same values.
    for (auto& [name, v] : rnn.named_parameters()) p64[name] = v.value().to(DType::F64);
    auto to_float = [](Tensor& t) { t = t.to(DType::F32).to(DType::F64); };
    to_float(x), to_float(h0), to_float(c0);
  }

  // The loss of the double-precision stack.
  double loss64() {
    const int64_t H = 4, B = 3;
    Tensor input = x;
    double total = 0;
    for (int64_t l = 0; l < 2; ++l) {
      Tensor out({pb.tokens(), 2 * H}, DType::F64);
      for (int64_t d = 0; d < 2; ++d) {
        const std::string sfx = "_l" + std::to_string(l) + (d ? "_reverse" : "");
        ops::RnnWeights w{&p64.at("weight_ih" + sfx), &p64.at("weight_hh" + sfx), &p64.at("bias_ih" + sfx),
                          &p64.at("bias_hh" + sfx)};
        const int64_t k = l * 2 + d;
        Tensor h0k = h0.view({4 * B, H}).rows(k * B, (k + 1) * B).clone();
        Tensor c0k = c0.view({4 * B, H}).rows(k * B, (k + 1) * B).clone();
        Tensor y, hn, cn;
        ref::rnn_layer_forward(&y, &hn, lstm ? &cn : nullptr, input, pb, w, &h0k, lstm ? &c0k : nullptr,
                               ops::RnnLayerOptions{rnn.options().cell, d == 1, {}});
        for (int64_t r = 0; r < pb.tokens(); ++r)
          for (int64_t u = 0; u < H; ++u) out.data<double>()[r * 2 * H + d * H + u] = y.data<double>()[r * H + u];
        total += test::weighted_sum(hn, wh.view({4 * B, H}).rows(k * B, (k + 1) * B));
        if (lstm) total += test::weighted_sum(cn, wc.view({4 * B, H}).rows(k * B, (k + 1) * B));
      }
      input = out;
    }
    return total + test::weighted_sum(input, wy);
  }
};

TEST(StackedRnnGradCheck, TwoLayerBidirectionalWithInitialStates) {
  for (auto cell : {ops::CellType::LSTM, ops::CellType::GRU, ops::CellType::RNN_TANH}) {
    SCOPED_TRACE(ops::cell_name(cell));
    Rng rng(21);
    StackProblem p(cell, rng);
    Tape tape;
    Var x(p.x.to(DType::F32), true), h0(p.h0.to(DType::F32), true);
    Var c0 = p.lstm ? Var(p.c0.to(DType::F32), true) : Var();
    nn::RnnOutput o = p.rnn.forward(tape, x, p.pb, h0, c0);
    EXPECT_NEAR(test::weighted_sum(o.y.value(), p.wy) + test::weighted_sum(o.hn.value(), p.wh) +
                    (p.lstm ? test::weighted_sum(o.cn.value(), p.wc) : 0.0),
                p.loss64(), 1e-4);
    std::vector<std::pair<Var, Tensor>> seeds{{o.y, p.wy.to(DType::F32)}, {o.hn, p.wh.to(DType::F32)}};
    if (p.lstm) seeds.emplace_back(o.cn, p.wc.to(DType::F32));
    tape.backward(seeds);
    auto numeric = [&](Tensor& t) { return test::numeric_grad([&] { return p.loss64(); }, t); };
    EXPECT_ALL_CLOSE(x.grad(), numeric(p.x), 1e-4, 1e-5);
    EXPECT_ALL_CLOSE(h0.grad(), numeric(p.h0), 1e-4, 1e-5);
    if (p.lstm) {
      EXPECT_ALL_CLOSE(c0.grad(), numeric(p.c0), 1e-4, 1e-5);
    }
    for (auto& [name, v] : p.rnn.named_parameters()) {
      SCOPED_TRACE(name);
      EXPECT_ALL_CLOSE(v.grad(), numeric(p.p64.at(name)), 1e-4, 1e-5);
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
