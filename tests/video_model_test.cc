// VideoClassifier: packing frames, TimeDistributed on ragged clips, whole-model gradients, the
// order-blind baseline, a frozen CNN, learning the direction of motion, CPU vs GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops_test_util.h"
#include "recur/models/video.h"
#include "recur/ops/loss.h"
#include "recur/ops/norm.h"
#include "recur/train/optimizer.h"
#include "test_util.h"

namespace recur::models {
namespace {

using test::randn;

VideoClassifierOptions small_options(Temporal temporal = Temporal::Rnn) {
  VideoClassifierOptions o;
  o.cnn.in_channels = 1;
  o.cnn.height = 8;
  o.cnn.width = 8;
  o.cnn.channels = {4, 4};
  o.cnn.norm_groups = 2;
  o.cnn.features = 6;
  o.temporal = temporal;
  o.cell = ops::CellType::LSTM;
  o.hidden = 5;
  o.mlp_hidden = {7};
  o.classes = 3;
  return o;
}

std::vector<Tensor> random_clips(const std::vector<int64_t>& lengths, Rng& rng, int64_t c, int64_t h, int64_t w,
                                 DType dt = DType::F32) {
  std::vector<Tensor> clips;
  for (int64_t t : lengths) clips.push_back(randn({t, c, h, w}, rng, 1.0, dt));
  return clips;
}

TEST(VideoModelTest, PackFramesFollowsThePackedLayout) {
  Rng rng(1);
  const auto clips = random_clips({2, 4, 3}, rng, 1, 2, 3);
  PackedBatch pb;
  const Tensor packed = pack_frames(clips, &pb);
  ASSERT_EQ(packed.shape(), (Shape{9, 1, 2, 3}));
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j) {
      const int64_t b = pb.sorted_indices[static_cast<size_t>(j)], row = pb.row(t, j);
      for (int64_t k = 0; k < 6; ++k)
        EXPECT_EQ(packed.f32()[row * 6 + k], clips[static_cast<size_t>(b)].f32()[t * 6 + k]) << t << " " << j;
    }
  std::vector<Tensor> bad = clips;
  bad[1] = Tensor({4, 1, 3, 3});
  EXPECT_THROWS_WITH(pack_frames(bad, &pb), "clip 1", "(4, 1, 3, 3)");
  bad[1] = Tensor({0, 1, 2, 3});
  EXPECT_THROWS_WITH(pack_frames(bad, &pb), "clip 1", "T >= 1");
}

// TimeDistributed: the batch of ragged clips gives each clip what it gets on its own.
TEST(VideoModelTest, RaggedBatchEqualsClipsOneByOne) {
  for (Temporal temporal : {Temporal::Rnn, Temporal::MeanFeatures}) {
    Rng init(2), data(3);
    VideoClassifier model(small_options(temporal), init);
    model.train(false);
    const auto clips = random_clips({3, 1, 5, 2}, data, 1, 8, 8);
    PackedBatch pb;
    const Tensor frames = pack_frames(clips, &pb);
    Tape tape;
    NoGrad ng(tape);
    const Tensor all = model.forward(tape, frames, pb, 0).value();
    ASSERT_EQ(all.shape(), (Shape{4, 3}));
    for (size_t b = 0; b < clips.size(); ++b) {
      PackedBatch one;
      const Tensor f = pack_frames({clips[b]}, &one);
      const Tensor y = model.forward(tape, f, one, 0).value();
      for (int64_t k = 0; k < 3; ++k)
        EXPECT_NEAR(y.f32()[k], all.f32()[static_cast<int64_t>(b) * 3 + k], 1e-5) << "clip " << b;
    }
  }
}

double loss_of(VideoClassifier& model, const Tensor& frames, const PackedBatch& pb, const Tensor& labels, Tape& tape,
               Var* out = nullptr) {
  Var loss = cross_entropy(tape, model.forward(tape, frames, pb, 4), labels);
  if (out) *out = loss;
  return loss.value().item();
}

TEST(VideoModelTest, GradientsMatchCentralDifferences) {
  for (Temporal temporal : {Temporal::Rnn, Temporal::MeanFeatures}) {
    SCOPED_TRACE(temporal == Temporal::Rnn ? "rnn" : "mean");
    VideoClassifierOptions o = small_options(temporal);
    o.cnn.dropout = 0.2f;  // seeded masks: the loss stays a function of the weights
    Rng init(5), data(9);
    VideoClassifier model(o, init);
    model.cast(DType::F64);
    PackedBatch pb;
    const Tensor frames = pack_frames(random_clips({3, 2, 4}, data, 1, 8, 8, DType::F64), &pb);
    const Tensor labels = Tensor::from_i64({3}, {0, 2, 1});
    Tape tape;
    Var loss;
    loss_of(model, frames, pb, labels, tape, &loss);
    tape.backward(loss);
    Rng pick(3);
    int checked = 0;
    for (auto& [name, p] : model.named_parameters()) {
      ASSERT_TRUE(p.has_grad()) << name;
      for (int k = 0; k < 3; ++k) {
        const int64_t i = static_cast<int64_t>(pick.next_u64() % static_cast<uint64_t>(p.value().numel()));
        double* w = p.value().data<double>();
        const double keep = w[i], eps = 1e-5;
        w[i] = keep + eps;
        Tape t1;
        const double up = loss_of(model, frames, pb, labels, t1);
        w[i] = keep - eps;
        Tape t2;
        const double down = loss_of(model, frames, pb, labels, t2);
        w[i] = keep;
        const double numeric = (up - down) / (2 * eps);
        EXPECT_NEAR(p.grad().data<double>()[i], numeric, 1e-6 + 1e-4 * std::abs(numeric)) << name << "[" << i << "]";
        ++checked;
      }
    }
    EXPECT_GT(checked, 30);
  }
}

TEST(VideoModelTest, OnlyTheRecurrentModelSeesFrameOrder) {
  Rng data(11);
  const auto clips = random_clips({5}, data, 1, 8, 8);
  Tensor reversed({5, 1, 8, 8});
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t k = 0; k < 64; ++k) reversed.f32()[t * 64 + k] = clips[0].f32()[(4 - t) * 64 + k];
  for (Temporal temporal : {Temporal::Rnn, Temporal::MeanFeatures}) {
    Rng init(12);
    VideoClassifier model(small_options(temporal), init);
    model.train(false);
    Tape tape;
    NoGrad ng(tape);
    PackedBatch pb;
    const Tensor a = model.forward(tape, pack_frames(clips, &pb), pb, 0).value();
    const Tensor b = model.forward(tape, pack_frames({reversed}, &pb), pb, 0).value();
    double diff = 0;
    for (int64_t k = 0; k < 3; ++k) diff = std::max(diff, std::abs(static_cast<double>(a.f32()[k] - b.f32()[k])));
    if (temporal == Temporal::Rnn) EXPECT_GT(diff, 1e-4);
    else EXPECT_LT(diff, 1e-5);
  }
}

TEST(VideoModelTest, FrozenCnnGetsNoGradients) {
  VideoClassifierOptions o = small_options();
  o.freeze_cnn = true;
  Rng init(5), data(9);
  VideoClassifier model(o, init);
  PackedBatch pb;
  const Tensor frames = pack_frames(random_clips({2, 3}, data, 1, 8, 8), &pb);
  Tape tape;
  Var loss;
  loss_of(model, frames, pb, Tensor::from_i64({2}, {0, 1}), tape, &loss);
  tape.backward(loss);
  int trainable = 0;
  for (auto& [name, p] : model.trainable_parameters()) {
    EXPECT_NE(name.rfind("cnn.", 0), 0u) << name;
    EXPECT_TRUE(p.has_grad()) << name;
    ++trainable;
  }
  EXPECT_GT(trainable, 0);
  for (auto& [name, p] : model.cnn().named_parameters()) EXPECT_FALSE(p.has_grad()) << name;
}

TEST(VideoModelTest, BadOptionsAreClearErrors) {
  Rng init(1);
  VideoClassifierOptions o = small_options();
  o.cnn.channels = {6};
  o.cnn.norm_groups = 4;
  EXPECT_THROWS_WITH(VideoClassifier(o, init), "6 channels", "4 norm groups");
  o = small_options();
  o.cnn.channels = {4, 4, 4, 4};
  EXPECT_THROWS_WITH(VideoClassifier(o, init), "too small");
  o = small_options();
  o.cnn.kernel = 2;
  EXPECT_THROWS_WITH(VideoClassifier(o, init), "kernel 2");
  VideoClassifier model(small_options(), init);
  Tape tape;
  PackedBatch pb = PackedBatch::from_lengths({2});
  EXPECT_THROWS_WITH(model.forward(tape, Tensor({2, 1, 9, 8}), pb, 0), "(N, 1, 8, 8)", "(2, 1, 9, 8)");
  EXPECT_THROWS_WITH(model.forward(tape, Tensor({3, 1, 8, 8}), pb, 0), "layout of 2 frames");
}

// A bright dot moving right or left on 8x8 frames, starting anywhere: only the order of the
// frames tells the two apart. The recurrent model learns it; the order-blind one cannot.
std::vector<Tensor> moving_dots(Rng& rng, int64_t n, std::vector<int64_t>* labels) {
  std::vector<Tensor> clips;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = static_cast<int64_t>(rng.below(2)), T = 3 + static_cast<int64_t>(rng.below(4));
    const int64_t row = static_cast<int64_t>(rng.below(8)), start = static_cast<int64_t>(rng.below(static_cast<uint64_t>(8 - T + 1)));
    Tensor c = Tensor::zeros({T, 1, 8, 8});
    for (int64_t t = 0; t < T; ++t) {
      const int64_t col = label == 1 ? start + t : start + T - 1 - t;
      c.f32()[t * 64 + row * 8 + col] = 3.0f;
    }
    clips.push_back(c);
    labels->push_back(label);
  }
  return clips;
}

double train_and_score(Temporal temporal) {
  VideoClassifierOptions o = small_options(temporal);
  o.classes = 2;
  o.cnn.channels = {8};
  o.cnn.features = 16;
  o.hidden = 16;
  o.mlp_hidden = {};
  Rng init(7), data(8);
  VideoClassifier model(o, init);
  train::AdamOptions ao;
  ao.lr = 0.01;
  train::Adam opt(model.named_parameters(), ao);
  for (int step = 0; step < 150; ++step) {
    std::vector<int64_t> labels;
    const auto clips = moving_dots(data, 16, &labels);
    PackedBatch pb;
    const Tensor frames = pack_frames(clips, &pb);
    model.zero_grad();
    Tape tape;
    Var loss = cross_entropy(tape, model.forward(tape, frames, pb, static_cast<uint64_t>(step)),
                             Tensor::from_i64({16}, labels));
    tape.backward(loss);
    opt.step();
  }
  model.train(false);
  std::vector<int64_t> labels;
  const auto clips = moving_dots(data, 200, &labels);
  PackedBatch pb;
  Tape tape;
  NoGrad ng(tape);
  const Tensor logits = model.forward(tape, pack_frames(clips, &pb), pb, 0).value();
  int right = 0;
  for (int64_t i = 0; i < 200; ++i) right += (logits.f32()[i * 2 + 1] > logits.f32()[i * 2]) == (labels[static_cast<size_t>(i)] == 1);
  return right / 200.0;
}

TEST(VideoModelTest, LearnsTheDirectionOfMotionOnlyWithTheRnn) {
  EXPECT_GE(train_and_score(Temporal::Rnn), 0.95);
  EXPECT_LE(train_and_score(Temporal::MeanFeatures), 0.65);
}

TEST(VideoModelTest, CudaMatchesCpu) {
  RECUR_REQUIRE_GPU();
  for (Temporal temporal : {Temporal::Rnn, Temporal::MeanFeatures}) {
    Rng i1(8), i2(8), data(6);
    VideoClassifier cpu(small_options(temporal), i1), gpu(small_options(temporal), i2);
    gpu.to(Device::cuda(0));
    PackedBatch pb;
    const Tensor frames = pack_frames(random_clips({3, 1, 4}, data, 1, 8, 8), &pb);
    const Tensor labels = Tensor::from_i64({3}, {2, 0, 1});
    Tape tc, tg;
    Var lc, lg;
    loss_of(cpu, frames, pb, labels, tc, &lc);
    loss_of(gpu, frames.to(Device::cuda(0)), pb, labels.to(Device::cuda(0)), tg, &lg);
    EXPECT_NEAR(lc.value().item(), lg.value().to(Device::cpu()).item(), 1e-5);
    tc.backward(lc);
    tg.backward(lg);
    auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
    for (size_t i = 0; i < pc.size(); ++i)
      EXPECT_ALL_CLOSE(pg[i].second.grad().to(Device::cpu()), pc[i].second.grad(), 1e-3, 1e-5) << pc[i].first;
  }
}

}  // namespace
}  // namespace recur::models
