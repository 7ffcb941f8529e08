// One recurrent layer: reference gradient checks, fast packed path vs reference, packed vs
// static (padded + masked), and streaming chunk by chunk.
#include <gtest/gtest.h>

#include <cmath>

#include <cstring>

#include "recur/core/thread_pool.h"
#include "recur/ops/rnn.h"
#include "test_util.h"

namespace recur {
namespace {

using ops::CellType;

struct LayerCase {
  CellType cell;
  bool reverse;
  int64_t batch;  // FastMatchesReference's batch: 6 (one micro-tile), 13 (a full tile and a ragged one) or
                  // 1 (one sentence: matrix-vector steps on the unpacked W_hh, in alternating directions)
};

std::string case_name(const ::testing::TestParamInfo<LayerCase>& info) {
  return std::string(ops::cell_name(info.param.cell)) + (info.param.reverse ? "_reverse" : "_forward") +
         "_b" + std::to_string(info.param.batch);
}

struct Params {
  Tensor w_ih, w_hh, b_ih, b_hh;
  ops::RnnWeights weights() const { return {&w_ih, &w_hh, &b_ih, &b_hh}; }
  Params to(DType dt) const { return {w_ih.to(dt), w_hh.to(dt), b_ih.to(dt), b_hh.to(dt)}; }
};

Params random_params(CellType cell, int64_t I, int64_t H, Rng& rng, DType dt = DType::F32) {
  int64_t GH = ops::gate_count(cell) * H;
  double s = 2.0 / std::sqrt(static_cast<double>(I + H));  // keeps pre-activations O(1)
  return {test::randn({GH, I}, rng, s, dt), test::randn({GH, H}, rng, s, dt), test::randn({GH}, rng, s, dt),
          test::randn({GH}, rng, s, dt)};
}

class RnnLayer : public ::testing::TestWithParam<LayerCase> {};

// The reference's analytic BPTT against central differences, in double.
TEST_P(RnnLayer, ReferenceGradCheck) {
  const auto [cell, reverse, batch] = GetParam();
  Rng rng(7);
  const int64_t I = 3, H = 4;
  PackedBatch pb = PackedBatch::from_lengths({3, 5, 1, 4});
  Params p = random_params(cell, I, H, rng, DType::F64);
  Tensor x = test::randn({pb.tokens(), I}, rng, 1.0, DType::F64);
  Tensor h0 = test::randn({pb.batch(), H}, rng, 0.5, DType::F64);
  Tensor c0 = test::randn({pb.batch(), H}, rng, 0.5, DType::F64);
  const bool lstm = cell == CellType::LSTM;
  ops::RnnLayerOptions opt{cell, reverse, {}};
  Tensor wy = test::randn({pb.tokens(), H}, rng, 1.0, DType::F64);
  Tensor wh = test::randn({pb.batch(), H}, rng, 1.0, DType::F64);
  Tensor wc = test::randn({pb.batch(), H}, rng, 1.0, DType::F64);
  auto loss = [&]() {
    Tensor y, hn, cn;
    ref::rnn_layer_forward(&y, &hn, lstm ? &cn : nullptr, x, pb, p.weights(), &h0, lstm ? &c0 : nullptr, opt);
    return test::weighted_sum(y, wy) + test::weighted_sum(hn, wh) + (lstm ? test::weighted_sum(cn, wc) : 0.0);
  };
  Tensor dx = Tensor::zeros(x.shape(), DType::F64), dh0 = Tensor::zeros(h0.shape(), DType::F64),
         dc0 = Tensor::zeros(c0.shape(), DType::F64);
  Params g{Tensor::zeros(p.w_ih.shape(), DType::F64), Tensor::zeros(p.w_hh.shape(), DType::F64),
           Tensor::zeros(p.b_ih.shape(), DType::F64), Tensor::zeros(p.b_hh.shape(), DType::F64)};
  ref::rnn_layer_backward(&dx, &dh0, &dc0, {&g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh}, &wy, &wh, lstm ? &wc : nullptr, x,
                          pb, p.weights(), &h0, lstm ? &c0 : nullptr, opt);
  EXPECT_ALL_CLOSE(dx, test::numeric_grad(loss, x), 1e-6, 1e-7);
  EXPECT_ALL_CLOSE(dh0, test::numeric_grad(loss, h0), 1e-6, 1e-7);
  if (lstm) {
    EXPECT_ALL_CLOSE(dc0, test::numeric_grad(loss, c0), 1e-6, 1e-7);
  }
  EXPECT_ALL_CLOSE(g.w_ih, test::numeric_grad(loss, p.w_ih), 1e-6, 1e-7);
  EXPECT_ALL_CLOSE(g.w_hh, test::numeric_grad(loss, p.w_hh), 1e-6, 1e-7);
  EXPECT_ALL_CLOSE(g.b_ih, test::numeric_grad(loss, p.b_ih), 1e-6, 1e-7);
  EXPECT_ALL_CLOSE(g.b_hh, test::numeric_grad(loss, p.b_hh), 1e-6, 1e-7);
}

// Everything the fast layer produces, for comparison.
struct Result {
  Tensor y, hn, cn, dx, dh0, dc0;
  Params g;
};

Result run_fast(CellType cell, const ops::RnnLayerOptions& opt, const Tensor& x, const PackedBatch& pb,
                const Params& p, const Tensor& h0, const Tensor& c0, const Tensor& dy, const Tensor& dhn,
                const Tensor& dcn) {
  const bool lstm = cell == CellType::LSTM;
  Result r;
  ops::RnnCache cache;
  ops::rnn_layer_forward(&r.y, &r.hn, lstm ? &r.cn : nullptr, &cache, x, pb, p.weights(), &h0,
                         lstm ? &c0 : nullptr, opt);
  r.dx = Tensor::zeros(x.shape());
  r.dh0 = Tensor::zeros(h0.shape());
  r.dc0 = Tensor::zeros(c0.shape());
  r.g = {Tensor::zeros(p.w_ih.shape()), Tensor::zeros(p.w_hh.shape()), Tensor::zeros(p.b_ih.shape()),
         Tensor::zeros(p.b_hh.shape())};
  ops::rnn_layer_backward(&r.dx, &r.dh0, &r.dc0, {&r.g.w_ih, &r.g.w_hh, &r.g.b_ih, &r.g.b_hh}, &dy, &dhn,
                          lstm ? &dcn : nullptr, cache, x, r.y, pb, p.weights(), opt);
  return r;
}

TEST_P(RnnLayer, FastMatchesReference) {
  const auto [cell, reverse, batch] = GetParam();
  Rng rng(11);
  const int64_t I = 7, H = 70;  // two threads get slices of 32 and 38 units: full and partial panels
  const bool lstm = cell == CellType::LSTM;
  std::vector<int64_t> lengths{6, 2, 9, 9, 1, 4, 3, 9, 5, 7, 2, 8, 1};
  lengths.resize(static_cast<size_t>(batch));
  PackedBatch pb = PackedBatch::from_lengths(lengths);
  Params p = random_params(cell, I, H, rng);
  Tensor x = test::randn({pb.tokens(), I}, rng);
  Tensor h0 = test::randn({pb.batch(), H}, rng, 0.5), c0 = test::randn({pb.batch(), H}, rng, 0.5);
  Tensor dy = test::randn({pb.tokens(), H}, rng), dhn = test::randn({pb.batch(), H}, rng),
         dcn = test::randn({pb.batch(), H}, rng);
  ops::RnnLayerOptions opt{cell, reverse, {}};
  Result f = run_fast(cell, opt, x, pb, p, h0, c0, dy, dhn, dcn);

  Params pd = p.to(DType::F64);
  Tensor xd = x.to(DType::F64), h0d = h0.to(DType::F64), c0d = c0.to(DType::F64);
  Tensor y, hn, cn;
  ref::rnn_layer_forward(&y, &hn, lstm ? &cn : nullptr, xd, pb, pd.weights(), &h0d, lstm ? &c0d : nullptr, opt);
  const double rt = 1e-4, at = 2e-5;
  EXPECT_ALL_CLOSE(f.y, y, rt, at);
  EXPECT_ALL_CLOSE(f.hn, hn, rt, at);
  if (lstm) {
    EXPECT_ALL_CLOSE(f.cn, cn, rt, at);
  }
  Tensor dx = Tensor::zeros(xd.shape(), DType::F64), dh0 = Tensor::zeros(h0d.shape(), DType::F64),
         dc0 = Tensor::zeros(c0d.shape(), DType::F64);
  Params g{Tensor::zeros(p.w_ih.shape(), DType::F64), Tensor::zeros(p.w_hh.shape(), DType::F64),
           Tensor::zeros(p.b_ih.shape(), DType::F64), Tensor::zeros(p.b_hh.shape(), DType::F64)};
  Tensor dyd = dy.to(DType::F64), dhnd = dhn.to(DType::F64), dcnd = dcn.to(DType::F64);
  ref::rnn_layer_backward(&dx, &dh0, &dc0, {&g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh}, &dyd, &dhnd,
                          lstm ? &dcnd : nullptr, xd, pb, pd.weights(), &h0d, lstm ? &c0d : nullptr, opt);
  const double grt = 2e-4, gat = 1e-4;
  EXPECT_ALL_CLOSE(f.dx, dx, grt, gat);
  EXPECT_ALL_CLOSE(f.dh0, dh0, grt, gat);
  if (lstm) {
    EXPECT_ALL_CLOSE(f.dc0, dc0, grt, gat);
  }
  EXPECT_ALL_CLOSE(f.g.w_ih, g.w_ih, grt, gat);
  EXPECT_ALL_CLOSE(f.g.w_hh, g.w_hh, grt, gat);
  EXPECT_ALL_CLOSE(f.g.b_ih, g.b_ih, grt, gat);
  EXPECT_ALL_CLOSE(f.g.b_hh, g.b_hh, grt, gat);
}

// The static (padded, masked) mode gives the packed results on the valid positions.
TEST_P(RnnLayer, PackedEqualsPaddedMasked) {
  const auto [cell, reverse, batch] = GetParam();
  Rng rng(5);
  const int64_t I = 5, H = 6, T = 7;
  const bool lstm = cell == CellType::LSTM;
  std::vector<int64_t> lengths{4, 7, 1, 7, 3};
  const int64_t B = static_cast<int64_t>(lengths.size());
  Params p = random_params(cell, I, H, rng);
  Tensor xpad = test::randn({T, B, I}, rng);
  Tensor h0 = test::randn({B, H}, rng, 0.5), c0 = test::randn({B, H}, rng, 0.5);
  Tensor dypad = test::randn({T, B, H}, rng), dhn = test::randn({B, H}, rng), dcn = test::randn({B, H}, rng);

  PackedBatch pb;
  Tensor x = pack_padded(xpad, lengths, &pb);
  PackedBatch tmp;
  Tensor dy = pack_padded(dypad, lengths, &tmp);
  Result packed = run_fast(cell, {cell, reverse, {}}, x, pb, p, h0, c0, dy, dhn, dcn);

  PackedBatch fixed = PackedBatch::fixed(T, B);
  ops::RnnLayerOptions masked{cell, reverse, lengths};
  Result padded = run_fast(cell, masked, xpad.view({T * B, I}), fixed, p, h0, c0, dypad.view({T * B, H}), dhn, dcn);

  EXPECT_ALL_CLOSE(unpack_to_padded(packed.y, pb), padded.y.view({T, B, H}), 1e-5, 1e-6);
  EXPECT_ALL_CLOSE(packed.hn, padded.hn, 1e-5, 1e-6);
  if (lstm) {
    EXPECT_ALL_CLOSE(packed.cn, padded.cn, 1e-5, 1e-6);
  }
  // Gradients w.r.t. padding inputs are zero; valid ones match.
  EXPECT_ALL_CLOSE(unpack_to_padded(packed.dx, pb), padded.dx.view({T, B, I}), 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(packed.dh0, padded.dh0, 1e-4, 1e-5);
  if (lstm) {
    EXPECT_ALL_CLOSE(packed.dc0, padded.dc0, 1e-4, 1e-5);
  }
  EXPECT_ALL_CLOSE(packed.g.w_ih, padded.g.w_ih, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(packed.g.w_hh, padded.g.w_hh, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(packed.g.b_ih, padded.g.b_ih, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(packed.g.b_hh, padded.g.b_hh, 1e-4, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cells, RnnLayer,
                         ::testing::Values(LayerCase{CellType::LSTM, false, 6},
                                           LayerCase{CellType::LSTM, false, 13},
                                           LayerCase{CellType::LSTM, true, 6},
                                           LayerCase{CellType::LSTM, true, 13},
                                           LayerCase{CellType::GRU, false, 6},
                                           LayerCase{CellType::GRU, false, 13},
                                           LayerCase{CellType::GRU, true, 6},
                                           LayerCase{CellType::GRU, true, 13},
                                           LayerCase{CellType::RNN_TANH, false, 6},
                                           LayerCase{CellType::RNN_TANH, false, 13},
                                           LayerCase{CellType::RNN_TANH, true, 6},
                                           LayerCase{CellType::RNN_TANH, true, 13},
                                           LayerCase{CellType::LSTM, false, 1},
                                           LayerCase{CellType::GRU, true, 1},
                                           LayerCase{CellType::RNN_RELU, false, 6},
                                           LayerCase{CellType::RNN_RELU, false, 13},
                                           LayerCase{CellType::RNN_RELU, true, 6},
                                           LayerCase{CellType::RNN_RELU, true, 13}),
                         case_name);

// Online inference: running a batch in time chunks, carrying (h, c), equals one call.
TEST(RnnLayerStreaming, ChunksEqualWholeSequence) {
  for (CellType cell : {CellType::LSTM, CellType::GRU, CellType::RNN_TANH}) {
    Rng rng(3);
    const int64_t I = 4, H = 5, B = 3, T = 10;
    const bool lstm = cell == CellType::LSTM;
    Params p = random_params(cell, I, H, rng);
    Tensor xpad = test::randn({T, B, I}, rng);
    PackedBatch whole = PackedBatch::fixed(T, B);
    Tensor y, hn, cn;
    ops::RnnLayerOptions opt{cell, false, {}};
    ops::rnn_layer_forward(&y, &hn, lstm ? &cn : nullptr, nullptr, xpad.view({T * B, I}), whole, p.weights(),
                           nullptr, nullptr, opt);
    Tensor h = Tensor::zeros({B, H}), c = Tensor::zeros({B, H});
    int64_t t0 = 0;
    for (int64_t len : {3, 1, 4, 2}) {
      PackedBatch chunk = PackedBatch::fixed(len, B);
      Tensor yc, hc, cc;
      ops::rnn_layer_forward(&yc, &hc, lstm ? &cc : nullptr, nullptr, xpad.rows(t0, t0 + len).view({len * B, I}),
                             chunk, p.weights(), &h, lstm ? &c : nullptr, opt);
      EXPECT_ALL_CLOSE(yc, y.rows(t0 * B, (t0 + len) * B), 0, 0) << ops::cell_name(cell);
      h = hc;
      if (lstm) c = cc;
      t0 += len;
    }
    EXPECT_ALL_CLOSE(h, hn, 0, 0);
    if (lstm) {
      EXPECT_ALL_CLOSE(c, cn, 0, 0);
    }
  }
}

TEST(RnnLayerErrors, ShapesAreNamed) {
  Rng rng(1);
  Params p = random_params(CellType::LSTM, 3, 4, rng);
  PackedBatch pb = PackedBatch::from_lengths({2, 1});
  Tensor x = test::randn({3, 5}, rng);  // wrong input width
  Tensor y, hn, cn;
  try {
    ops::rnn_layer_forward(&y, &hn, &cn, nullptr, x, pb, p.weights(), nullptr, nullptr, {});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight_ih"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(16, 5)"), std::string::npos) << e.what();
  }
  Tensor x2 = test::randn({4, 3}, rng);  // 4 rows, 3 tokens
  EXPECT_THROW(ops::rnn_layer_forward(&y, &hn, &cn, nullptr, x2, pb, p.weights(), nullptr, nullptr, {}), Error);
}

}  // namespace
}  // namespace recur

namespace recur {
namespace {

// A unit's arithmetic does not depend on which thread computes it: 1 and 2 threads agree exactly,
// forward and backward, for a batch of one (the matrix-vector path) and a ragged batch.
TEST(RnnLayerThreads, OneAndTwoThreadsGiveIdenticalResults) {
  const int before = num_threads();
  for (int64_t B : {1, 5}) {
    Rng rng(8);
    const int64_t I = 24, H = 64;
    std::vector<int64_t> lengths{6, 3, 9, 1, 4};
    lengths.resize(static_cast<size_t>(B));
    PackedBatch pb = PackedBatch::from_lengths(lengths);
    const int64_t GH = 4 * H;
    Tensor w_ih = test::randn({GH, I}, rng, 0.2), w_hh = test::randn({GH, H}, rng, 0.2);
    Tensor b_ih = test::randn({GH}, rng, 0.2), b_hh = test::randn({GH}, rng, 0.2);
    Tensor x = test::randn({pb.tokens(), I}, rng), dy = test::randn({pb.tokens(), H}, rng);
    auto run = [&](int threads) {
      set_num_threads(threads);
      ops::RnnCache cache;
      Tensor y, hn, cn;
      ops::RnnWeights w{&w_ih, &w_hh, &b_ih, &b_hh};
      ops::rnn_layer_forward(&y, &hn, &cn, &cache, x, pb, w, nullptr, nullptr, {});
      Tensor dx = Tensor::zeros(x.shape()), dw = Tensor::zeros(w_hh.shape());
      ops::rnn_layer_backward(&dx, nullptr, nullptr, {nullptr, &dw, nullptr, nullptr}, &dy, nullptr, nullptr, cache, x,
                              y, pb, w, {});
      return std::vector<Tensor>{y, hn, cn, dx, dw};
    };
    auto one = run(1), two = run(2);
    for (size_t i = 0; i < one.size(); ++i)
      EXPECT_EQ(std::memcmp(one[i].raw(), two[i].raw(), one[i].nbytes()), 0) << "B " << B << " tensor " << i;
  }
  set_num_threads(before);
}

}  // namespace
}  // namespace recur
