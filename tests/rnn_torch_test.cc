// recur's stacked RNN layers against PyTorch fixtures (tests/fixtures/make_rnn_fixtures.py):
// outputs, final states and every gradient, from a state_dict written outside recur.
#include <gtest/gtest.h>

#include "recur/nn/rnn.h"
#include "recur/train/safetensors.h"
#include "test_util.h"

namespace recur {
namespace {

ops::CellType parse_cell(const std::string& s) {
  if (s == "lstm") return ops::CellType::LSTM;
  if (s == "gru") return ops::CellType::GRU;
  if (s == "rnn_tanh") return ops::CellType::RNN_TANH;
  if (s == "rnn_relu") return ops::CellType::RNN_RELU;
  throw Error("unknown cell " + s);
}

class TorchFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchFixture, OutputsStatesAndGradientsMatch) {
  SafetensorsFile f = load_safetensors(std::string(RECUR_FIXTURE_DIR) + "/" + GetParam() + ".safetensors");
  auto& t = f.tensors;
  nn::RnnOptions o;
  o.cell = parse_cell(f.metadata.at("cell"));
  o.num_layers = std::stoll(f.metadata.at("layers"));
  o.bidirectional = f.metadata.at("bidirectional") == "1";
  o.input_size = std::stoll(f.metadata.at("input_size"));
  o.hidden_size = std::stoll(f.metadata.at("hidden_size"));
  Rng rng(0);
  nn::RNN rnn(o, rng);
  std::map<std::string, Tensor> sd;
  for (auto& [name, p] : rnn.named_parameters()) sd[name] = t.at(name);
  rnn.load_state_dict(sd);
  const bool lstm = o.cell == ops::CellType::LSTM;

  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < t.at("lengths").numel(); ++i) lengths.push_back(t.at("lengths").data<int64_t>()[i]);
  Tape tape;
  Var x(t.at("x").clone(), true), h0(t.at("h0").clone(), true);
  Var c0 = lstm ? Var(t.at("c0").clone(), true) : Var();
  PackedBatch pb = PackedBatch::from_lengths(lengths);
  Var packed = pack_padded(tape, x, pb);
  nn::RnnOutput out = rnn.forward(tape, packed, pb, h0, c0);

  EXPECT_ALL_CLOSE(unpack_to_padded(out.y.value(), pb), t.at("out"), 1e-5, 1e-6);
  EXPECT_ALL_CLOSE(out.hn.value(), t.at("hn"), 1e-5, 1e-6);
  if (lstm) {
    EXPECT_ALL_CLOSE(out.cn.value(), t.at("cn"), 1e-5, 1e-6);
  }
  PackedBatch tmp;
  std::vector<std::pair<Var, Tensor>> seeds{{out.y, pack_padded(t.at("w_out"), lengths, &tmp)}, {out.hn, t.at("w_hn")}};
  if (lstm) seeds.emplace_back(out.cn, t.at("w_cn"));
  tape.backward(seeds);
  EXPECT_ALL_CLOSE(x.grad(), t.at("grad.x"), 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(h0.grad(), t.at("grad.h0"), 1e-4, 1e-5);
  if (lstm) {
    EXPECT_ALL_CLOSE(c0.grad(), t.at("grad.c0"), 1e-4, 1e-5);
  }
  for (auto& [name, p] : rnn.named_parameters()) {
    SCOPED_TRACE(name);
    EXPECT_ALL_CLOSE(p.grad(), t.at("grad." + name), 1e-4, 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(PyTorch, TorchFixture,
                         ::testing::Values("torch_lstm_2layer_bi", "torch_gru_2layer_bi", "torch_rnn_tanh_2layer_bi",
                                           "torch_rnn_relu_1layer", "torch_lstm_1layer_uni"));

// The static (padded + masked) stacked path equals the packed one, forward and backward.
TEST(RnnModule, PaddedEqualsPackedStackedBidirectional) {
  for (auto cell : {ops::CellType::LSTM, ops::CellType::GRU}) {
    nn::RnnOptions o{cell, 4, 5, 2, true, true, 0.0f};
    Rng rng(3);
    nn::RNN rnn(o, rng);
    std::vector<int64_t> lengths{3, 6, 2, 6};
    const int64_t T = 6, B = 4;
    Tensor xv = test::randn({T, B, 4}, rng);
    Tensor w = test::randn({T, B, 10}, rng);
    Tensor wh = test::randn({4, B, 5}, rng);
    auto run = [&](bool padded) {
      Tape tape;
      rnn.zero_grad();
      Var x(xv.clone(), true);
      PackedBatch pb = PackedBatch::from_lengths(lengths);
      nn::RnnOutput out;
      Var ypad;
      if (padded) {
        out = rnn.forward_padded(tape, x, lengths);
        ypad = out.y;
      } else {
        out = rnn.forward(tape, pack_padded(tape, x, pb), pb);
        ypad = unpack_to_padded(tape, out.y, pb);
      }
      // Weights zeroed at padding so both losses see only valid positions.
      Tensor wm = unpack_to_padded(pack_padded(w, lengths, &pb), pb);
      Tensor y = ypad.value().clone();
      tape.backward({{ypad, wm}, {out.hn, wh}});
      std::vector<Tensor> r{y, out.hn.value(), x.grad().clone()};
      for (auto& p : rnn.parameters()) r.push_back(p.grad().clone());
      return r;
    };
    auto a = run(false), b = run(true);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_ALL_CLOSE(b[i], a[i], 1e-4, 1e-5) << "tensor " << i;
  }
}

TEST(RnnModule, BadShapesAreNamed) {
  Rng rng(1);
  nn::RNN rnn({ops::CellType::GRU, 3, 4, 2, true, false, 0.0f}, rng);
  Tape tape;
  PackedBatch pb = PackedBatch::from_lengths({2, 2});
  Var x(Tensor::zeros({4, 3}));
  Var h0(Tensor::zeros({1, 2, 4}));
  try {
    rnn.forward(tape, x, pb, h0);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("h0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(2, 2, 4)"), std::string::npos) << e.what();
  }
  Var c0(Tensor::zeros({2, 2, 4}));
  EXPECT_THROW(rnn.forward(tape, x, pb, Var(), c0), Error);
}

}  // namespace
}  // namespace recur
