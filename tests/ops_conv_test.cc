// conv2d, max_pool2d, avg_pool2d, group_norm: reference gradients vs central differences, known
// values, fast float kernels vs the reference over many geometries and thread counts, gradient
// accumulation, a whole conv -> group norm -> relu -> pools chain on the tape, bad input, and the
// nn::Conv2d / nn::GroupNorm modules.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops_test_util.h"
#include "recur/core/tape.h"
#include "recur/core/thread_pool.h"
#include "recur/nn/conv.h"
#include "recur/ops/basic.h"
#include "recur/ops/conv.h"

namespace recur {

using ops::Conv2dOptions;
using ops::Pool2dOptions;
using test::f64;
using test::grad_matches;
using test::rand64;
using test::weighted_sum;

namespace {

// Restores the pool size on scope exit.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : before_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(before_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int before_;
};

struct ConvCase {
  Shape x, w;
  Conv2dOptions opt;
  bool bias;
};

std::string describe(const ConvCase& c) {
  return fmt::format("x {} w {} stride ({}, {}) pad ({}, {}) dil ({}, {}) bias {}", shape_str(c.x), shape_str(c.w),
                     c.opt.stride_h, c.opt.stride_w, c.opt.pad_h, c.opt.pad_w, c.opt.dil_h, c.opt.dil_w, c.bias);
}

// Geometries covering the fast path's branches: stride 1/2, padding, dilation, non-square kernels
// and inputs, 1x1 kernels (direct and stacked), one and three channels, several images (stacked
// into one GEMM when small, spread over threads when many).
std::vector<ConvCase> conv_cases() {
  return {
      {{2, 1, 7, 7}, {4, 1, 3, 3}, Conv2dOptions::square(1, 1), true},
      {{3, 3, 9, 8}, {5, 3, 3, 3}, Conv2dOptions::square(2, 1), false},
      {{2, 3, 10, 11}, {4, 3, 3, 3}, Conv2dOptions::square(1, 2, 2), true},
      {{2, 3, 8, 12}, {6, 3, 2, 5}, Conv2dOptions{2, 1, 0, 2, 1, 1}, true},
      {{2, 3, 6, 5}, {4, 3, 1, 1}, Conv2dOptions{}, true},             // 1x1, direct
      {{9, 3, 4, 4}, {2, 3, 1, 1}, Conv2dOptions{}, false},            // 1x1, stacked images
      {{2, 2, 7, 7}, {3, 2, 1, 1}, Conv2dOptions::square(2, 0), true},  // 1x1 strided
      {{11, 1, 5, 6}, {3, 1, 3, 3}, Conv2dOptions::square(1, 1), true},  // many small images
      {{5, 4, 9, 9}, {8, 4, 3, 3}, Conv2dOptions{1, 2, 2, 1, 2, 1}, true},
      {{1, 3, 4, 4}, {2, 3, 4, 4}, Conv2dOptions{}, true},  // kernel = image: one output
      {{4, 16, 16, 16}, {16, 16, 3, 3}, Conv2dOptions::square(1, 1), true},
  };
}

void expect_conv_fast_matches_reference(const ConvCase& c, Rng& rng) {
  SCOPED_TRACE(describe(c));
  Tensor x = test::randn(c.x, rng), w = test::randn(c.w, rng, 0.3);
  Tensor b = c.bias ? test::randn({c.w[0]}, rng) : Tensor();
  Tensor y32, y64;
  ops::conv2d_forward(&y32, x, w, b, c.opt);
  ref::conv2d_forward(&y64, f64(x), f64(w), c.bias ? f64(b) : Tensor(), c.opt);
  ASSERT_EQ(y32.shape(), y64.shape());
  EXPECT_ALL_CLOSE(y32, y64, 1e-4, 1e-4);
  // Gradients start non-zero: backward must add.
  Tensor dy = test::randn(y32.shape(), rng);
  Tensor dx32 = Tensor::full(c.x, 0.5), dw32 = Tensor::full(c.w, -0.25), db32 = Tensor::full({c.w[0]}, 1.0);
  Tensor dx64 = f64(dx32), dw64 = f64(dw32), db64 = f64(db32);
  ops::conv2d_backward(&dx32, &dw32, c.bias ? &db32 : nullptr, dy, x, w, c.opt);
  ref::conv2d_backward(&dx64, &dw64, c.bias ? &db64 : nullptr, f64(dy), f64(x), f64(w), c.opt);
  EXPECT_ALL_CLOSE(dx32, dx64, 1e-4, 1e-4);
  EXPECT_ALL_CLOSE(dw32, dw64, 1e-4, 1e-3);
  EXPECT_ALL_CLOSE(db32, db64, 1e-4, 1e-3);
}

struct PoolCase {
  Shape x;
  Pool2dOptions opt;
};

std::vector<PoolCase> pool_cases() {
  return {
      {{2, 3, 8, 8}, Pool2dOptions::square(2, 2)},
      {{2, 2, 9, 7}, Pool2dOptions::square(3, 2, 1)},
      {{1, 3, 6, 9}, Pool2dOptions{2, 3, 1, 2, 1, 1}},
      {{3, 1, 5, 5}, Pool2dOptions::square(3, 1)},
      {{2, 4, 7, 6}, Pool2dOptions{7, 6, 7, 6, 0, 0}},  // one window: global pooling
  };
}

std::string describe(const PoolCase& c) {
  return fmt::format("x {} kernel ({}, {}) stride ({}, {}) pad ({}, {})", shape_str(c.x), c.opt.kernel_h,
                     c.opt.kernel_w, c.opt.stride_h, c.opt.stride_w, c.opt.pad_h, c.opt.pad_w);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// conv2d

TEST(OpsConv2d, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(31);
  const std::vector<ConvCase> cases = {
      {{2, 3, 5, 6}, {4, 3, 3, 2}, Conv2dOptions{2, 1, 1, 0, 1, 2}, true},
      {{1, 2, 6, 6}, {3, 2, 3, 3}, Conv2dOptions::square(1, 2, 2), true},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(describe(c));
    Tensor x = rand64(c.x, rng), w = rand64(c.w, rng), b = rand64({c.w[0]}, rng);
    Tensor y;
    ref::conv2d_forward(&y, x, w, b, c.opt);
    Tensor wy = rand64(y.shape(), rng);
    auto loss = [&] {
      Tensor out;
      ref::conv2d_forward(&out, x, w, b, c.opt);
      return weighted_sum(out, wy);
    };
    Tensor dx, dw, db;
    ref::conv2d_backward(&dx, &dw, &db, wy, x, w, c.opt);
    EXPECT_TRUE(grad_matches(loss, x, dx));
    EXPECT_TRUE(grad_matches(loss, w, dw));
    EXPECT_TRUE(grad_matches(loss, b, db));
  }
}

TEST(OpsConv2d, KnownValues) {
  // x = 1..9 in a 3x3 image, a 2x2 kernel of ones: each output sums a 2x2 patch.
  Tensor x = Tensor::from({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Tensor w = Tensor::full({1, 1, 2, 2}, 1.0), b = Tensor::from({1}, {0.5f}), y;
  ops::conv2d_forward(&y, x, w, b, Conv2dOptions{});
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  const std::vector<float> want = {12.5f, 16.5f, 24.5f, 28.5f};
  for (int64_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y.item(i), want[static_cast<size_t>(i)]);
  // Padding 1, stride 2: windows at rows/cols -1 and 1; zeros outside the image.
  Tensor y2;
  ops::conv2d_forward(&y2, x, w, Tensor(), Conv2dOptions::square(2, 1));
  ASSERT_EQ(y2.shape(), (Shape{1, 1, 2, 2}));
  const std::vector<float> want2 = {1, 2 + 3, 4 + 7, 5 + 6 + 8 + 9};
  for (int64_t i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y2.item(i), want2[static_cast<size_t>(i)]);
  // Dilation 2 on the 3x3 image: the four corners.
  Tensor y3;
  ops::conv2d_forward(&y3, x, w, Tensor(), Conv2dOptions::square(1, 0, 2));
  ASSERT_EQ(y3.shape(), (Shape{1, 1, 1, 1}));
  EXPECT_FLOAT_EQ(y3.item(0), 1 + 3 + 7 + 9);
}

TEST(OpsConv2d, FastMatchesReference) {
  Rng rng(32);
  for (const ConvCase& c : conv_cases()) expect_conv_fast_matches_reference(c, rng);
}

TEST(OpsConv2d, FastMatchesReferenceOnOneAndThreeThreads) {
  for (int threads : {1, 3}) {
    SCOPED_TRACE(fmt::format("{} threads", threads));
    ThreadCount scope(threads);
    Rng rng(33);
    for (const ConvCase& c : conv_cases()) expect_conv_fast_matches_reference(c, rng);
  }
}

TEST(OpsConv2d, F64GoesToTheReference) {
  Rng rng(34);
  Tensor x = rand64({2, 3, 6, 6}, rng), w = rand64({4, 3, 3, 3}, rng), b = rand64({4}, rng);
  Tensor y_ops, y_ref;
  ops::conv2d_forward(&y_ops, x, w, b, Conv2dOptions::square(1, 1));
  ref::conv2d_forward(&y_ref, x, w, b, Conv2dOptions::square(1, 1));
  EXPECT_EQ(y_ops.dtype(), DType::F64);
  EXPECT_ALL_CLOSE(y_ops, y_ref, 0, 0);
}

TEST(OpsConv2d, BackwardAddsAndSkipsNullGradients) {
  Rng rng(35);
  Tensor x = test::randn({3, 2, 6, 5}, rng), w = test::randn({4, 2, 3, 3}, rng), b = test::randn({4}, rng);
  const Conv2dOptions opt = Conv2dOptions::square(1, 1);
  Tensor y;
  ops::conv2d_forward(&y, x, w, b, opt);
  Tensor dy = test::randn(y.shape(), rng);
  Tensor dx, dw, db;
  ops::conv2d_backward(&dx, &dw, &db, dy, x, w, opt);
  Tensor dx2 = dx.clone(), dw2 = dw.clone(), db2 = db.clone();
  ops::conv2d_backward(&dx2, &dw2, &db2, dy, x, w, opt);
  for (auto [twice, once] : {std::pair{dx2, dx}, std::pair{dw2, dw}, std::pair{db2, db}})
    for (int64_t i = 0; i < once.numel(); ++i) EXPECT_NEAR(twice.item(i), 2 * once.item(i), 1e-4);
  // Only dw wanted: dx and dbias untouched.
  Tensor dw3;
  ops::conv2d_backward(nullptr, &dw3, nullptr, dy, x, w, opt);
  EXPECT_ALL_CLOSE(dw3, dw, 1e-6, 1e-6);
}

TEST(OpsConv2d, ErrorsNameShapes) {
  Tensor x = Tensor::zeros({2, 3, 8, 8}), y;
  EXPECT_THROWS_WITH(ops::conv2d_forward(&y, x, Tensor::zeros({4, 2, 3, 3}), Tensor(), Conv2dOptions{}), "conv2d",
                     "(2, 3, 8, 8)", "(4, 2, 3, 3)", "channels");
  EXPECT_THROWS_WITH(ops::conv2d_forward(&y, x, Tensor::zeros({4, 3, 9, 3}), Tensor(), Conv2dOptions{}), "conv2d",
                     "(2, 3, 8, 8)", "(4, 3, 9, 3)", "larger");
  // Dilation makes a 3x3 kernel span 9 rows.
  EXPECT_THROWS_WITH(ops::conv2d_forward(&y, x, Tensor::zeros({4, 3, 3, 3}), Tensor(), Conv2dOptions::square(1, 0, 4)),
                     "larger", "(4, 3, 3, 3)");
  EXPECT_THROWS_WITH(ops::conv2d_forward(&y, Tensor::zeros({3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor(),
                                         Conv2dOptions{}),
                     "conv2d", "(3, 8, 8)", "4-D");
  EXPECT_THROWS_WITH(ops::conv2d_forward(&y, x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({3}), Conv2dOptions{}),
                     "bias", "(3,)", "(4, 3, 3, 3)");
  EXPECT_THROWS_WITH(
      ops::conv2d_forward(&y, x, Tensor::zeros({4, 3, 3, 3}), Tensor(), Conv2dOptions::square(0)), "stride");
  EXPECT_THROWS_WITH(
      ops::conv2d_forward(&y, x, Tensor::zeros({4, 3, 3, 3}), Tensor(), Conv2dOptions{1, 1, -1, 0, 1, 1}), "padding");
  EXPECT_THROWS_WITH(ops::conv2d_forward(&y, x, Tensor::zeros({4, 3, 3, 3}, DType::F64), Tensor(), Conv2dOptions{}),
                     "conv2d");
  Tensor dx;
  EXPECT_THROWS_WITH(ops::conv2d_backward(&dx, nullptr, nullptr, Tensor::zeros({2, 4, 5, 5}), x,
                                          Tensor::zeros({4, 3, 3, 3}), Conv2dOptions{}),
                     "conv2d_backward", "dy (2, 4, 5, 5)", "(2, 4, 6, 6)");
  EXPECT_THROWS_WITH(ops::conv2d_geometry("probe", {1, 1, 2, 2}, {1, 1, 3, 3}, Conv2dOptions{}), "probe",
                     "(1, 1, 2, 2)", "(1, 1, 3, 3)");
  const ops::Conv2dGeom g = ops::conv2d_geometry("probe", {1, 1, 2, 2}, {1, 1, 3, 3}, Conv2dOptions::square(1, 1));
  EXPECT_EQ(g.oh, 2);
  EXPECT_EQ(g.ow, 2);
}

// ---------------------------------------------------------------------------------------------
// max_pool2d and avg_pool2d

TEST(OpsMaxPool2d, KnownValuesAndArgmax) {
  Tensor x = Tensor::from({1, 1, 3, 4}, {1, 5, 2, 0,  //
                                         3, 4, 9, 9,  //
                                         7, 6, 8, 1});
  Tensor y, argmax;
  ops::max_pool2d_forward(&y, &argmax, x, Pool2dOptions::square(2, 2));
  ASSERT_EQ(y.shape(), (Shape{1, 1, 1, 2}));
  EXPECT_FLOAT_EQ(y.item(0), 5);
  EXPECT_FLOAT_EQ(y.item(1), 9);
  EXPECT_EQ(argmax.data<int64_t>()[0], 1);
  EXPECT_EQ(argmax.data<int64_t>()[1], 6);  // first of the tied 9s
  // Padding is -inf, never a winner even against negative values.
  Tensor neg = Tensor::full({1, 1, 2, 2}, -3.0), yn, an;
  ops::max_pool2d_forward(&yn, &an, neg, Pool2dOptions::square(2, 1, 1));
  ASSERT_EQ(yn.shape(), (Shape{1, 1, 3, 3}));
  for (int64_t i = 0; i < 9; ++i) EXPECT_FLOAT_EQ(yn.item(i), -3);
  EXPECT_EQ(an.data<int64_t>()[0], 0);
  EXPECT_EQ(an.data<int64_t>()[8], 3);
  Tensor dx = Tensor::full({1, 1, 3, 4}, 1.0);
  ops::max_pool2d_backward(&dx, Tensor::from({1, 1, 1, 2}, {10, 20}), argmax, x.shape(), Pool2dOptions::square(2, 2));
  EXPECT_FLOAT_EQ(dx.item(1), 11);
  EXPECT_FLOAT_EQ(dx.item(6), 21);
  EXPECT_FLOAT_EQ(dx.item(7), 1);
}

TEST(OpsMaxPool2d, ReferenceGradientMatchesCentralDifferences) {
  Rng rng(41);
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(describe(c));
    Tensor x = rand64(c.x, rng), y, argmax;
    ref::max_pool2d_forward(&y, &argmax, x, c.opt);
    Tensor wy = rand64(y.shape(), rng), dx;
    ref::max_pool2d_backward(&dx, wy, argmax, x.shape(), c.opt);
    auto loss = [&] {
      Tensor out;
      ref::max_pool2d_forward(&out, nullptr, x, c.opt);
      return weighted_sum(out, wy);
    };
    EXPECT_TRUE(grad_matches(loss, x, dx));
  }
}

TEST(OpsMaxPool2d, FastMatchesReference) {
  Rng rng(42);
  for (int threads : {1, 3}) {
    ThreadCount scope(threads);
    for (const PoolCase& c : pool_cases()) {
      SCOPED_TRACE(describe(c));
      Tensor x = test::randn(c.x, rng), y32, a32, y64, a64;
      ops::max_pool2d_forward(&y32, &a32, x, c.opt);
      ref::max_pool2d_forward(&y64, &a64, f64(x), c.opt);
      EXPECT_ALL_CLOSE(y32, y64, 0, 1e-6);
      ASSERT_EQ(a32.shape(), a64.shape());
      for (int64_t i = 0; i < a32.numel(); ++i) ASSERT_EQ(a32.data<int64_t>()[i], a64.data<int64_t>()[i]) << i;
      Tensor dy = test::randn(y32.shape(), rng), dx32 = Tensor::full(c.x, 0.5), dx64 = f64(dx32);
      ops::max_pool2d_backward(&dx32, dy, a32, c.x, c.opt);
      ref::max_pool2d_backward(&dx64, f64(dy), a64, c.x, c.opt);
      EXPECT_ALL_CLOSE(dx32, dx64, 1e-5, 1e-5);
    }
  }
}

TEST(OpsMaxPool2d, ErrorsNameShapes) {
  Tensor x = Tensor::zeros({2, 3, 4, 4}), y;
  EXPECT_THROWS_WITH(ops::max_pool2d_forward(&y, nullptr, Tensor::zeros({3, 4, 4}), Pool2dOptions{}), "max_pool2d",
                     "(3, 4, 4)");
  EXPECT_THROWS_WITH(ops::max_pool2d_forward(&y, nullptr, x, Pool2dOptions::square(5, 1)), "max_pool2d", "(2, 3, 4, 4)",
                     "larger");
  EXPECT_THROWS_WITH(ops::max_pool2d_forward(&y, nullptr, x, Pool2dOptions::square(2, 2, 2)), "padding");
  Tensor dx;
  Tensor bad_argmax = Tensor::from_i64({2, 3, 2, 2}, std::vector<int64_t>(24, 16));
  EXPECT_THROWS_WITH(
      ops::max_pool2d_backward(&dx, Tensor::zeros({2, 3, 2, 2}), bad_argmax, x.shape(), Pool2dOptions{}), "argmax 16");
  EXPECT_THROWS_WITH(ops::max_pool2d_backward(&dx, Tensor::zeros({2, 3, 3, 2}), bad_argmax, x.shape(), Pool2dOptions{}),
                     "dy (2, 3, 3, 2)", "(2, 3, 2, 2)");
}

TEST(OpsAvgPool2d, KnownValuesCountPadding) {
  // 2x2 ones, 2x2 window, stride 1, padding 1: corners see one real value out of four.
  Tensor x = Tensor::full({1, 1, 2, 2}, 1.0), y;
  ops::avg_pool2d_forward(&y, x, Pool2dOptions::square(2, 1, 1));
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  const std::vector<float> want = {0.25f, 0.5f, 0.25f, 0.5f, 1.0f, 0.5f, 0.25f, 0.5f, 0.25f};
  for (int64_t i = 0; i < 9; ++i) EXPECT_FLOAT_EQ(y.item(i), want[static_cast<size_t>(i)]);
}

TEST(OpsAvgPool2d, ReferenceGradientMatchesCentralDifferences) {
  Rng rng(43);
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(describe(c));
    Tensor x = rand64(c.x, rng), y;
    ref::avg_pool2d_forward(&y, x, c.opt);
    Tensor wy = rand64(y.shape(), rng), dx;
    ref::avg_pool2d_backward(&dx, wy, x.shape(), c.opt);
    auto loss = [&] {
      Tensor out;
      ref::avg_pool2d_forward(&out, x, c.opt);
      return weighted_sum(out, wy);
    };
    EXPECT_TRUE(grad_matches(loss, x, dx));
  }
}

TEST(OpsAvgPool2d, FastMatchesReference) {
  Rng rng(44);
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(describe(c));
    Tensor x = test::randn(c.x, rng), y32, y64;
    ops::avg_pool2d_forward(&y32, x, c.opt);
    ref::avg_pool2d_forward(&y64, f64(x), c.opt);
    EXPECT_ALL_CLOSE(y32, y64, 1e-5, 1e-5);
    Tensor dy = test::randn(y32.shape(), rng), dx32 = Tensor::full(c.x, 0.5), dx64 = f64(dx32);
    ops::avg_pool2d_backward(&dx32, dy, c.x, c.opt);
    ref::avg_pool2d_backward(&dx64, f64(dy), c.x, c.opt);
    EXPECT_ALL_CLOSE(dx32, dx64, 1e-5, 1e-5);
  }
}

// ---------------------------------------------------------------------------------------------
// group_norm

TEST(OpsGroupNorm, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(51);
  for (int64_t groups : {1, 2, 4}) {
    SCOPED_TRACE(fmt::format("{} groups", groups));
    Tensor x = rand64({2, 4, 3, 2}, rng), g = rand64({4}, rng), b = rand64({4}, rng), wy = rand64({2, 4, 3, 2}, rng);
    auto loss = [&] {
      Tensor y;
      ref::group_norm_forward(&y, nullptr, nullptr, x, g, b, groups);
      return weighted_sum(y, wy);
    };
    Tensor y, mean, rstd, dx, dg, db;
    ref::group_norm_forward(&y, &mean, &rstd, x, g, b, groups);
    ASSERT_EQ(mean.shape(), Shape{2 * groups});
    ref::group_norm_backward(&dx, &dg, &db, wy, x, g, mean, rstd, groups);
    EXPECT_TRUE(grad_matches(loss, x, dx));
    EXPECT_TRUE(grad_matches(loss, g, dg));
    EXPECT_TRUE(grad_matches(loss, b, db));
  }
}

TEST(OpsGroupNorm, KnownValues) {
  // One group of (1, 2, 2): values 1..4 over both channels, biased variance 1.25.
  Tensor x = Tensor::from({1, 2, 2}, {1, 2, 3, 4}), g = Tensor::from({2}, {1, 2}), b = Tensor::from({2}, {0, 1});
  Tensor y, mean, rstd;
  ops::group_norm_forward(&y, &mean, &rstd, x, g, b, 1);
  const double s = 1.0 / std::sqrt(1.25 + 1e-5);
  EXPECT_NEAR(y.item(0), -1.5 * s, 1e-5);
  EXPECT_NEAR(y.item(1), -0.5 * s, 1e-5);
  EXPECT_NEAR(y.item(2), 2 * 0.5 * s + 1, 1e-5);
  EXPECT_NEAR(y.item(3), 2 * 1.5 * s + 1, 1e-5);
  EXPECT_NEAR(mean.item(0), 2.5, 1e-6);
  EXPECT_NEAR(rstd.item(0), s, 1e-5);
  // groups == C: each channel on its own (instance norm).
  Tensor yi, mi;
  ops::group_norm_forward(&yi, &mi, nullptr, x, Tensor::full({2}, 1.0), Tensor::zeros({2}), 2);
  EXPECT_NEAR(mi.item(0), 1.5, 1e-6);
  EXPECT_NEAR(mi.item(1), 3.5, 1e-6);
  EXPECT_NEAR(yi.item(0), -0.5 / std::sqrt(0.25 + 1e-5), 1e-4);
}

TEST(OpsGroupNorm, FastMatchesReference) {
  Rng rng(52);
  struct Case {
    Shape x;
    int64_t groups;
    double offset;
  };
  const std::vector<Case> cases = {
      {{3, 6, 5, 7}, 1, 0.0}, {{3, 6, 5, 7}, 2, 4.0}, {{3, 6, 5, 7}, 6, -3.0},
      {{2, 8, 33}, 4, 10.0},  {{5, 4}, 2, 0.0},       {{2, 16, 16, 16}, 4, 1.0},
  };
  for (int threads : {1, 3}) {
    ThreadCount scope(threads);
    for (const Case& c : cases) {
      SCOPED_TRACE(fmt::format("x {} groups {} threads {}", shape_str(c.x), c.groups, threads));
      const int64_t ch = c.x[1];
      Tensor x = test::randn(c.x, rng, 2.0);
      for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += static_cast<float>(c.offset);
      Tensor g = test::randn({ch}, rng), b = test::randn({ch}, rng), dy = test::randn(c.x, rng);
      Tensor y32, m32, r32, y64, m64, r64;
      ops::group_norm_forward(&y32, &m32, &r32, x, g, b, c.groups);
      ref::group_norm_forward(&y64, &m64, &r64, f64(x), f64(g), f64(b), c.groups);
      EXPECT_ALL_CLOSE(y32, y64, 1e-4, 1e-4);
      EXPECT_ALL_CLOSE(m32, m64, 1e-5, 1e-5);
      EXPECT_ALL_CLOSE(r32, r64, 1e-4, 1e-5);
      Tensor dx32 = Tensor::full(c.x, 0.5), dg32 = Tensor::full({ch}, 0.5), db32 = Tensor::full({ch}, 0.5);
      Tensor dx64 = f64(dx32), dg64 = f64(dg32), db64 = f64(db32);
      ops::group_norm_backward(&dx32, &dg32, &db32, dy, x, g, m32, r32, c.groups);
      ref::group_norm_backward(&dx64, &dg64, &db64, f64(dy), f64(x), f64(g), m64, r64, c.groups);
      EXPECT_ALL_CLOSE(dx32, dx64, 1e-4, 1e-4);
      EXPECT_ALL_CLOSE(dg32, dg64, 1e-4, 1e-3);
      EXPECT_ALL_CLOSE(db32, db64, 1e-4, 1e-3);
    }
  }
}

TEST(OpsGroupNorm, ErrorsNameShapes) {
  Tensor x = Tensor::zeros({2, 6, 4, 4}), y;
  EXPECT_THROWS_WITH(ops::group_norm_forward(&y, nullptr, nullptr, x, Tensor::zeros({6}), Tensor::zeros({6}), 4),
                     "group_norm", "4 groups", "6 channels", "(2, 6, 4, 4)");
  EXPECT_THROWS_WITH(ops::group_norm_forward(&y, nullptr, nullptr, x, Tensor::zeros({5}), Tensor::zeros({6}), 3),
                     "gamma (5,)", "(2, 6, 4, 4)");
  EXPECT_THROWS_WITH(ops::group_norm_forward(&y, nullptr, nullptr, Tensor::zeros({6}), Tensor::zeros({6}),
                                             Tensor::zeros({6}), 3),
                     "(6,)", "2-D");
  Tensor dx;
  EXPECT_THROWS_WITH(ops::group_norm_backward(&dx, nullptr, nullptr, x, x, Tensor::zeros({6}), Tensor::zeros({4}),
                                              Tensor::zeros({4}), 3),
                     "mean (4,)", "(6)");
}

// ---------------------------------------------------------------------------------------------
// The autograd wrappers, chained as in a CNN block

TEST(OpsConvTape, ChainGradientsMatchCentralDifferences) {
  Rng rng(61);
  Tensor x = rand64({2, 2, 7, 6}, rng), w = rand64({4, 2, 3, 3}, rng, 0.5), b = rand64({4}, rng);
  Tensor gamma = rand64({4}, rng), beta = rand64({4}, rng), wy = rand64({2, 4}, rng);
  const Conv2dOptions conv_opt = Conv2dOptions::square(1, 1);
  // Vars share the tensors' storage, so perturbing a tensor perturbs the Var the chain reads.
  auto chain = [&](Tape& tape, const Var& vx, const Var& vw, const Var& vb, const Var& vg, const Var& vbeta) {
    Var h = conv2d(tape, vx, vw, vb, conv_opt);
    h = group_norm(tape, h, vg, vbeta, 2);
    h = relu(tape, h);
    h = max_pool2d(tape, h, Pool2dOptions::square(2, 2));
    return global_avg_pool2d(tape, h);
  };
  auto loss = [&] {
    Tape tape;
    Var out = chain(tape, Var(x), Var(w), Var(b), Var(gamma), Var(beta));
    return weighted_sum(out.value(), wy);
  };
  Var vx(x, true), vw(w, true), vb(b, true), vg(gamma, true), vbeta(beta, true);
  Tape tape;
  Var out = chain(tape, vx, vw, vb, vg, vbeta);
  ASSERT_EQ(out.shape(), (Shape{2, 4}));
  tape.backward(out, wy);
  EXPECT_TRUE(grad_matches(loss, x, vx.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(grad_matches(loss, w, vw.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(grad_matches(loss, b, vb.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(grad_matches(loss, gamma, vg.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(grad_matches(loss, beta, vbeta.grad(), 1e-5, 1e-6));
}

TEST(OpsConvTape, FloatChainMatchesDoubleAndSkipsBias) {
  Rng rng(62);
  Tensor x = test::randn({3, 1, 12, 10}, rng), w = test::randn({8, 1, 3, 3}, rng, 0.5);
  const Conv2dOptions opt = Conv2dOptions::square(2, 1);
  Var x32(x), w32(w, true), x64(f64(x)), w64(f64(w), true);
  Tape t32, t64;
  Var o32 = global_avg_pool2d(t32, avg_pool2d(t32, conv2d(t32, x32, w32, Var(), opt), Pool2dOptions::square(2, 1)));
  Var o64 = global_avg_pool2d(t64, avg_pool2d(t64, conv2d(t64, x64, w64, Var(), opt), Pool2dOptions::square(2, 1)));
  EXPECT_ALL_CLOSE(o32.value(), o64.value(), 1e-4, 1e-5);
  Tensor dy = test::randn({3, 8}, rng);
  t32.backward(o32, dy);
  t64.backward(o64, f64(dy));
  EXPECT_ALL_CLOSE(w32.grad(), w64.grad(), 1e-4, 1e-5);
  EXPECT_FALSE(x32.has_grad());
  // No input needs a gradient: nothing is recorded.
  Tape t;
  global_avg_pool2d(t, conv2d(t, x32, Var(w), Var(), opt));
  EXPECT_EQ(t.size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// nn modules

TEST(NnConv2d, ParameterShapesAndInitBounds) {
  Rng rng(71);
  nn::Conv2d conv(3, 16, 3, Conv2dOptions::square(1, 1), rng);
  auto params = conv.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].first, "weight");
  EXPECT_EQ(params[1].first, "bias");
  EXPECT_EQ(params[0].second.shape(), (Shape{16, 3, 3, 3}));
  EXPECT_EQ(params[1].second.shape(), (Shape{16}));
  const double bound = 1.0 / std::sqrt(27.0);
  for (const auto& [name, v] : params) {
    double lo = 1e9, hi = -1e9;
    for (int64_t i = 0; i < v.value().numel(); ++i) {
      lo = std::min(lo, v.value().item(i));
      hi = std::max(hi, v.value().item(i));
    }
    SCOPED_TRACE(name);
    EXPECT_GE(lo, -bound);
    EXPECT_LE(hi, bound);
    // Spread over the range, not a constant or a narrower one.
    EXPECT_LT(lo, -0.5 * bound);
    EXPECT_GT(hi, 0.5 * bound);
  }
  Tape tape;
  Var y = conv.forward(tape, Var(Tensor::zeros({2, 3, 8, 9})));
  EXPECT_EQ(y.shape(), (Shape{2, 16, 8, 9}));
  // Zero input: the output is the bias at every position.
  EXPECT_NEAR(y.value().item(5 * 72 + 7), params[1].second.value().item(5), 1e-7);

  nn::Conv2d no_bias(1, 4, 5, Conv2dOptions::square(2), rng, false);
  ASSERT_EQ(no_bias.named_parameters().size(), 1u);
  EXPECT_EQ(no_bias.forward(tape, Var(Tensor::zeros({1, 1, 9, 9}))).shape(), (Shape{1, 4, 3, 3}));
}

TEST(NnConv2d, CastToF64RunsTheReference) {
  Rng rng(72);
  nn::Conv2d conv(2, 3, 3, Conv2dOptions::square(1, 1), rng);
  nn::GroupNorm norm(3, 3);
  Tensor x = test::randn({2, 2, 5, 5}, rng);
  Tape tape;
  Var y32 = norm.forward(tape, conv.forward(tape, Var(x)));
  conv.cast(DType::F64);
  norm.cast(DType::F64);
  EXPECT_EQ(conv.weight().value().dtype(), DType::F64);
  Var y64 = norm.forward(tape, conv.forward(tape, Var(f64(x))));
  EXPECT_EQ(y64.value().dtype(), DType::F64);
  EXPECT_ALL_CLOSE(y32.value(), y64.value(), 1e-4, 1e-4);
}

TEST(NnGroupNorm, ParametersAndForward) {
  nn::GroupNorm norm(2, 6);
  auto params = norm.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].first, "weight");
  EXPECT_EQ(params[1].first, "bias");
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(params[0].second.value().item(i), 1.0);
    EXPECT_EQ(params[1].second.value().item(i), 0.0);
  }
  Rng rng(73);
  Tensor x = test::randn({2, 6, 3, 3}, rng), want;
  ops::group_norm_forward(&want, nullptr, nullptr, x, Tensor::full({6}, 1.0), Tensor::zeros({6}), 2);
  Tape tape;
  Var y = norm.forward(tape, Var(x));
  EXPECT_ALL_CLOSE(y.value(), want, 0, 0);
  EXPECT_THROWS_WITH(nn::GroupNorm(4, 6), "GroupNorm(4, 6)");
}

}  // namespace recur
