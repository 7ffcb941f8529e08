// CUDA paths of the image ops (recur/ops/conv.h) against their CPU float paths: conv2d (through
// cuDNN when the build has it, and through im2col + cuBLAS), max/average pooling and group norm,
// forward and backward on random inputs over several geometries (stride 2, padding, dilation 2,
// non-square kernels, 1x1, C = 1 and 3, several images, with and without bias). Backward starts
// from non-zero gradients, so that "adds into" is checked too. Last, a small differentiable chain
// conv -> group_norm -> relu -> max_pool2d -> global_avg_pool2d gives the same gradients on both
// devices. Every test skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops_test_util.h"
#include "recur/core/tape.h"
#include "recur/ops/basic.h"
#include "recur/ops/conv.h"
#ifdef RECUR_HAS_CUDA
#include "../src/cuda/conv_select.h"
#endif

namespace recur {

namespace {

using test::randn;

// GEMM-like sums and reductions: float32 on both sides, different summation orders.
constexpr double kRed = 1e-4;

Tensor gpu(const Tensor& t) { return t.to(Device::cuda(0)); }
bool on_gpu(const Tensor& t) { return t.defined() && t.device() == Device::cuda(0); }

std::vector<int64_t> i64_values(const Tensor& t) {
  Tensor c = t.cpu();
  const int64_t* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

// The conv2d implementations of this build: im2col + cuBLAS always, cuDNN when compiled in.
std::vector<bool> conv_paths() {
#ifdef RECUR_HAS_CUDA
  if (cuda::conv_cudnn_compiled()) return {true, false};
#endif
  return {false};
}

// Selects the cuDNN (true) or im2col path for the scope.
class ConvPath {
 public:
  explicit ConvPath([[maybe_unused]] bool cudnn) {
#ifdef RECUR_HAS_CUDA
    prev_ = cuda::conv_uses_cudnn();
    cuda::set_conv_use_cudnn(cudnn);
#endif
  }
  ~ConvPath() {
#ifdef RECUR_HAS_CUDA
    cuda::set_conv_use_cudnn(prev_);
#endif
  }
  ConvPath(const ConvPath&) = delete;
  ConvPath& operator=(const ConvPath&) = delete;

 private:
  bool prev_ = false;
};

std::string last_path() {
#ifdef RECUR_HAS_CUDA
  return cuda::last_conv_path();
#else
  return "";
#endif
}

struct ConvCase {
  const char* name;
  int64_t n, c, h, w, o, kh, kw;
  ops::Conv2dOptions opt;
  bool bias;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases{
      {"3x3 pad 1, C=3", 2, 3, 9, 11, 5, 3, 3, ops::Conv2dOptions::square(1, 1), true},
      {"3x3 stride 2 pad 1", 3, 4, 10, 9, 6, 3, 3, ops::Conv2dOptions::square(2, 1), true},
      {"3x3 dilation 2", 2, 3, 12, 10, 4, 3, 3, ops::Conv2dOptions::square(1, 2, 2), false},
      {"2x5 mixed stride/pad/dilation", 2, 3, 9, 13, 5, 2, 5, ops::Conv2dOptions{2, 1, 1, 2, 1, 2}, true},
      {"1x1", 3, 8, 7, 6, 5, 1, 1, ops::Conv2dOptions::square(1), true},
      {"1x1 stride 2", 2, 4, 7, 7, 3, 1, 1, ops::Conv2dOptions::square(2), false},
      {"5x5 pad 2, C=1", 4, 1, 8, 8, 3, 5, 5, ops::Conv2dOptions::square(1, 2), true},
      {"3x3 valid, 9 images", 9, 3, 6, 6, 4, 3, 3, ops::Conv2dOptions::square(1, 0), true},
      {"4x4 stride 3, C=3, no bias", 2, 3, 13, 11, 7, 4, 4, ops::Conv2dOptions::square(3, 1), false},
  };
  return cases;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// conv2d

TEST(CudaConv, Conv2dForwardBackwardMatchCpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(301);
  for (bool cudnn : conv_paths()) {
    ConvPath path(cudnn);
    SCOPED_TRACE(cudnn ? "cuDNN" : "im2col");
    for (const ConvCase& k : conv_cases()) {
      SCOPED_TRACE(k.name);
      const double wscale = 1.0 / std::sqrt(static_cast<double>(k.c * k.kh * k.kw));
      Tensor x = randn({k.n, k.c, k.h, k.w}, rng), w = randn({k.o, k.c, k.kh, k.kw}, rng, wscale);
      Tensor b = k.bias ? randn({k.o}, rng) : Tensor();
      Tensor xg = gpu(x), wg = gpu(w), bg = k.bias ? gpu(b) : Tensor();

      Tensor y, yg;
      ops::conv2d_forward(&y, x, w, b, k.opt);
      ops::conv2d_forward(&yg, xg, wg, bg, k.opt);
      ASSERT_TRUE(on_gpu(yg));
      EXPECT_EQ(last_path(), cudnn ? "cudnn" : "im2col");
      ASSERT_EQ(yg.shape(), y.shape());
      EXPECT_ALL_CLOSE(yg, y, kRed, kRed);

      // Gradients start non-zero: backward adds.
      Tensor dy = randn(y.shape(), rng);
      Tensor dx = randn(x.shape(), rng), dw = randn(w.shape(), rng), db = randn({k.o}, rng);
      Tensor dyg = gpu(dy), dxg = gpu(dx), dwg = gpu(dw), dbg = gpu(db);
      ops::conv2d_backward(&dx, &dw, k.bias ? &db : nullptr, dy, x, w, k.opt);
      ops::conv2d_backward(&dxg, &dwg, k.bias ? &dbg : nullptr, dyg, xg, wg, k.opt);
      EXPECT_EQ(last_path(), cudnn ? "cudnn" : "im2col");
      EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
      EXPECT_ALL_CLOSE(dwg, dw, kRed, kRed);
      EXPECT_ALL_CLOSE(dbg, db, kRed, kRed);

      // One gradient at a time (the other slots null).
      Tensor dx1 = randn(x.shape(), rng), dw1 = randn(w.shape(), rng), db1 = randn({k.o}, rng);
      Tensor dx1g = gpu(dx1), dw1g = gpu(dw1), db1g = gpu(db1);
      ops::conv2d_backward(&dx1, nullptr, nullptr, dy, x, w, k.opt);
      ops::conv2d_backward(&dx1g, nullptr, nullptr, dyg, xg, wg, k.opt);
      ops::conv2d_backward(nullptr, &dw1, nullptr, dy, x, w, k.opt);
      ops::conv2d_backward(nullptr, &dw1g, nullptr, dyg, xg, wg, k.opt);
      ops::conv2d_backward(nullptr, nullptr, &db1, dy, x, w, k.opt);
      ops::conv2d_backward(nullptr, nullptr, &db1g, dyg, xg, wg, k.opt);
      EXPECT_ALL_CLOSE(dx1g, dx1, kRed, kRed);
      EXPECT_ALL_CLOSE(dw1g, dw1, kRed, kRed);
      EXPECT_ALL_CLOSE(db1g, db1, kRed, kRed);
    }
  }
}

TEST(CudaConv, Conv2dUndefinedGradientsAreAllocatedOnTheGpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(302);
  for (bool cudnn : conv_paths()) {
    ConvPath path(cudnn);
    SCOPED_TRACE(cudnn ? "cuDNN" : "im2col");
    const auto opt = ops::Conv2dOptions::square(2, 1);
    Tensor x = randn({2, 3, 8, 7}, rng), w = randn({4, 3, 3, 3}, rng, 0.2), b = randn({4}, rng);
    Tensor y;
    ops::conv2d_forward(&y, x, w, b, opt);
    Tensor dy = randn(y.shape(), rng);
    Tensor dx, dw, db, dxg, dwg, dbg;
    ops::conv2d_backward(&dx, &dw, &db, dy, x, w, opt);
    ops::conv2d_backward(&dxg, &dwg, &dbg, gpu(dy), gpu(x), gpu(w), opt);
    EXPECT_TRUE(on_gpu(dxg));
    EXPECT_TRUE(on_gpu(dwg));
    EXPECT_TRUE(on_gpu(dbg));
    EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
    EXPECT_ALL_CLOSE(dwg, dw, kRed, kRed);
    EXPECT_ALL_CLOSE(dbg, db, kRed, kRed);
  }
}

// A larger convolution (cuDNN picks other algorithms, the im2col path batches 16 images in one
// strided GEMM); both must still agree with the CPU.
TEST(CudaConv, Conv2dLargerBatchMatchesCpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(303);
  const auto opt = ops::Conv2dOptions::square(1, 1);
  Tensor x = randn({16, 16, 32, 32}, rng), w = randn({32, 16, 3, 3}, rng, 1.0 / 12.0), b = randn({32}, rng);
  Tensor y;
  ops::conv2d_forward(&y, x, w, b, opt);
  Tensor dy = randn(y.shape(), rng);
  Tensor dx = randn(x.shape(), rng), dw = randn(w.shape(), rng), db = randn({32}, rng);
  Tensor dx0 = dx.clone(), dw0 = dw.clone(), db0 = db.clone();
  ops::conv2d_backward(&dx, &dw, &db, dy, x, w, opt);
  for (bool cudnn : conv_paths()) {
    ConvPath path(cudnn);
    SCOPED_TRACE(cudnn ? "cuDNN" : "im2col");
    Tensor yg;
    ops::conv2d_forward(&yg, gpu(x), gpu(w), gpu(b), opt);
    EXPECT_ALL_CLOSE(yg, y, kRed, kRed);
    Tensor dxg = gpu(dx0), dwg = gpu(dw0), dbg = gpu(db0);
    ops::conv2d_backward(&dxg, &dwg, &dbg, gpu(dy), gpu(x), gpu(w), opt);
    EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
    // dw sums 16 * 32 * 32 products per entry.
    EXPECT_ALL_CLOSE(dwg, dw, kRed, 1e-3);
    EXPECT_ALL_CLOSE(dbg, db, kRed, 1e-3);
  }
}

// Column matrices above the im2col path's buffer budget (2^25 floats): 360 x 36864 floats per
// image fit twice, so 3 images run as a chunk of 2 and a chunk of 1, and every offset of the
// second chunk (im2col, the GEMMs, col2im) is exercised. Non-square kernel, dilation on one axis.
TEST(CudaConv, Conv2dIm2colSplitsTheBatchOverColumnBuffers) {
  RECUR_REQUIRE_GPU();
  Rng rng(304);
  const ops::Conv2dOptions opt{1, 1, 2, 2, 1, 2};  // stride 1, pad 2 x 2, dilation 1 x 2
  const int64_t n = 3, c = 24, h = 192, w = 192, o = 4, kh = 5, kw = 3;
  const double wscale = 1.0 / std::sqrt(static_cast<double>(c * kh * kw));
  Tensor x = randn({n, c, h, w}, rng), wt = randn({o, c, kh, kw}, rng, wscale), b = randn({o}, rng);
  Tensor y;
  ops::conv2d_forward(&y, x, wt, b, opt);
  ASSERT_EQ(y.shape(), (Shape{n, o, h, w}));
  Tensor dy = randn(y.shape(), rng);
  Tensor dx = randn(x.shape(), rng), dw = randn(wt.shape(), rng), db = randn({o}, rng);
  Tensor dx0 = dx.clone(), dw0 = dw.clone(), db0 = db.clone();
  ops::conv2d_backward(&dx, &dw, &db, dy, x, wt, opt);
  for (bool cudnn : conv_paths()) {
    ConvPath path(cudnn);
    SCOPED_TRACE(cudnn ? "cuDNN" : "im2col");
    Tensor yg;
    ops::conv2d_forward(&yg, gpu(x), gpu(wt), gpu(b), opt);
    EXPECT_EQ(last_path(), cudnn ? "cudnn" : "im2col");
    EXPECT_ALL_CLOSE(yg, y, kRed, kRed);
    Tensor dxg = gpu(dx0), dwg = gpu(dw0), dbg = gpu(db0);
    ops::conv2d_backward(&dxg, &dwg, &dbg, gpu(dy), gpu(x), gpu(wt), opt);
    EXPECT_EQ(last_path(), cudnn ? "cudnn" : "im2col");
    EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
    // dw and dbias sum 3 * 192 * 192 products per entry.
    EXPECT_ALL_CLOSE(dwg, dw, kRed, 1e-2);
    EXPECT_ALL_CLOSE(dbg, db, kRed, 1e-2);
  }
}

// ---------------------------------------------------------------------------------------------
// pooling

namespace {

struct PoolCase {
  const char* name;
  Shape x;
  ops::Pool2dOptions opt;
};

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases{
      {"2x2 stride 2", {2, 3, 8, 9}, ops::Pool2dOptions::square(2, 2)},
      {"3x3 stride 2 pad 1", {2, 3, 9, 10}, ops::Pool2dOptions::square(3, 2, 1)},
      {"3x3 stride 1 pad 1 (overlapping)", {1, 2, 7, 7}, ops::Pool2dOptions::square(3, 1, 1)},
      {"3x2 mixed, C=1", {3, 1, 8, 7}, ops::Pool2dOptions{3, 2, 2, 1, 1, 0}},
      {"4x4 stride 2 pad 2, 5 images", {5, 4, 11, 6}, ops::Pool2dOptions::square(4, 2, 2)},
  };
  return cases;
}

// Values on a coarse grid, so that windows hold ties (the first maximum must win).
Tensor with_ties(const Shape& s, Rng& rng) {
  Tensor t = randn(s, rng);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::round(p[i] * 1.5f);
  return t;
}

}  // namespace

TEST(CudaConv, MaxPool2dMatchesCpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(311);
  for (const PoolCase& k : pool_cases()) {
    for (bool ties : {false, true}) {
      SCOPED_TRACE(std::string(k.name) + (ties ? ", ties" : ""));
      Tensor x = ties ? with_ties(k.x, rng) : randn(k.x, rng);
      Tensor xg = gpu(x);
      Tensor y, arg, yg, argg;
      ops::max_pool2d_forward(&y, &arg, x, k.opt);
      ops::max_pool2d_forward(&yg, &argg, xg, k.opt);
      ASSERT_TRUE(on_gpu(yg));
      ASSERT_TRUE(on_gpu(argg));
      ASSERT_EQ(yg.shape(), y.shape());
      EXPECT_ALL_CLOSE(yg, y, 0.0, 0.0);
      EXPECT_EQ(i64_values(argg), i64_values(arg));

      // Without argmax (inference).
      Tensor y2g;
      ops::max_pool2d_forward(&y2g, nullptr, xg, k.opt);
      EXPECT_ALL_CLOSE(y2g, y, 0.0, 0.0);

      Tensor dy = randn(y.shape(), rng), dx = randn(k.x, rng);
      Tensor dxg = gpu(dx);
      ops::max_pool2d_backward(&dx, dy, arg, k.x, k.opt);
      ops::max_pool2d_backward(&dxg, gpu(dy), argg, k.x, k.opt);
      EXPECT_ALL_CLOSE(dxg, dx, 1e-5, 1e-5);
    }
  }
}

TEST(CudaConv, AvgPool2dMatchesCpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(312);
  for (const PoolCase& k : pool_cases()) {
    SCOPED_TRACE(k.name);
    Tensor x = randn(k.x, rng);
    Tensor y, yg;
    ops::avg_pool2d_forward(&y, x, k.opt);
    ops::avg_pool2d_forward(&yg, gpu(x), k.opt);
    ASSERT_TRUE(on_gpu(yg));
    ASSERT_EQ(yg.shape(), y.shape());
    EXPECT_ALL_CLOSE(yg, y, 1e-5, 1e-5);

    Tensor dy = randn(y.shape(), rng), dx = randn(k.x, rng);
    Tensor dxg = gpu(dx);
    ops::avg_pool2d_backward(&dx, dy, k.x, k.opt);
    ops::avg_pool2d_backward(&dxg, gpu(dy), k.x, k.opt);
    EXPECT_ALL_CLOSE(dxg, dx, 1e-5, 1e-5);
  }
}

// ---------------------------------------------------------------------------------------------
// group norm

TEST(CudaConv, GroupNormMatchesCpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(321);
  struct Case {
    Shape x;
    int64_t groups;
  };
  const std::vector<Case> cases{
      {{2, 6, 5, 7}, 3},    // 2 channels per group
      {{3, 4, 4, 4}, 1},    // layer-norm-like: one group
      {{2, 4, 3, 5}, 4},    // instance-norm-like: one channel per group
      {{4, 6, 10}, 2},      // (N, C, L)
      {{3, 6}, 3},          // (N, C): two values per group
      {{2, 8, 33, 31}, 2},  // groups larger than a block
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(shape_str(k.x) + " groups " + std::to_string(k.groups));
    const int64_t C = k.x[1], N = k.x[0];
    Tensor x = randn(k.x, rng, 2.0);
    x.add_(Tensor::full(k.x, 0.5));  // a non-zero mean
    Tensor gamma = randn({C}, rng), beta = randn({C}, rng);
    Tensor xg = gpu(x), gg = gpu(gamma), bg = gpu(beta);

    Tensor y, mean, rstd, yg, meang, rstdg;
    ops::group_norm_forward(&y, &mean, &rstd, x, gamma, beta, k.groups);
    ops::group_norm_forward(&yg, &meang, &rstdg, xg, gg, bg, k.groups);
    ASSERT_TRUE(on_gpu(yg));
    ASSERT_TRUE(on_gpu(meang));
    ASSERT_TRUE(on_gpu(rstdg));
    EXPECT_EQ(meang.numel(), N * k.groups);
    EXPECT_ALL_CLOSE(yg, y, kRed, kRed);
    EXPECT_ALL_CLOSE(meang, mean, kRed, kRed);
    EXPECT_ALL_CLOSE(rstdg, rstd, kRed, kRed);

    // Without saved statistics (inference).
    Tensor y2g;
    ops::group_norm_forward(&y2g, nullptr, nullptr, xg, gg, bg, k.groups);
    EXPECT_ALL_CLOSE(y2g, y, kRed, kRed);

    Tensor dy = randn(k.x, rng);
    Tensor dx = randn(k.x, rng), dgam = randn({C}, rng), dbet = randn({C}, rng);
    Tensor dyg = gpu(dy), dxg = gpu(dx), dgamg = gpu(dgam), dbetg = gpu(dbet);
    ops::group_norm_backward(&dx, &dgam, &dbet, dy, x, gamma, mean, rstd, k.groups);
    ops::group_norm_backward(&dxg, &dgamg, &dbetg, dyg, xg, gg, meang, rstdg, k.groups);
    EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
    EXPECT_ALL_CLOSE(dgamg, dgam, kRed, kRed);
    EXPECT_ALL_CLOSE(dbetg, dbet, kRed, kRed);

    // One slot at a time.
    Tensor dx1 = randn(k.x, rng), dg1 = randn({C}, rng), db1 = randn({C}, rng);
    Tensor dx1g = gpu(dx1), dg1g = gpu(dg1), db1g = gpu(db1);
    ops::group_norm_backward(&dx1, nullptr, nullptr, dy, x, gamma, mean, rstd, k.groups);
    ops::group_norm_backward(&dx1g, nullptr, nullptr, dyg, xg, gg, meang, rstdg, k.groups);
    ops::group_norm_backward(nullptr, &dg1, nullptr, dy, x, gamma, mean, rstd, k.groups);
    ops::group_norm_backward(nullptr, &dg1g, nullptr, dyg, xg, gg, meang, rstdg, k.groups);
    ops::group_norm_backward(nullptr, nullptr, &db1, dy, x, gamma, mean, rstd, k.groups);
    ops::group_norm_backward(nullptr, nullptr, &db1g, dyg, xg, gg, meang, rstdg, k.groups);
    EXPECT_ALL_CLOSE(dx1g, dx1, kRed, kRed);
    EXPECT_ALL_CLOSE(dg1g, dg1, kRed, kRed);
    EXPECT_ALL_CLOSE(db1g, db1, kRed, kRed);
  }
}

// ---------------------------------------------------------------------------------------------
// the differentiable wrappers

TEST(CudaConv, TapeChainGradientsMatchCpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(331);
  const Shape xs{3, 3, 12, 10};
  Tensor x = randn(xs, rng), w = randn({6, 3, 3, 3}, rng, 0.3), b = randn({6}, rng, 0.1);
  Tensor gamma = randn({6}, rng, 0.2), beta = randn({6}, rng, 0.2);
  gamma.add_(Tensor::full({6}, 1.0));
  Tensor weights = randn({3, 6}, rng);  // the loss: sum(pooled * weights)

  struct Grads {
    Tensor loss, x, w, b, gamma, beta;
  };
  auto run = [&](Device dev) {
    Tape tape;
    Var xv(x.to(dev), true), wv(w.to(dev), true), bv(b.to(dev), true);
    Var gv(gamma.to(dev), true), betav(beta.to(dev), true);
    Var wts(weights.to(dev), false);
    Var h = conv2d(tape, xv, wv, bv, ops::Conv2dOptions::square(1, 1));
    h = group_norm(tape, h, gv, betav, 3);
    h = relu(tape, h);
    h = max_pool2d(tape, h, ops::Pool2dOptions::square(2, 2));
    Var pooled = global_avg_pool2d(tape, h);  // (3, 6)
    Var loss = sum(tape, mul(tape, pooled, wts));
    tape.backward(loss);
    return Grads{loss.value(), xv.grad(), wv.grad(), bv.grad(), gv.grad(), betav.grad()};
  };
  const Grads cpu = run(Device::cpu());
  for (bool cudnn : conv_paths()) {
    ConvPath path(cudnn);
    SCOPED_TRACE(cudnn ? "cuDNN" : "im2col");
    const Grads g = run(Device::cuda(0));
    ASSERT_TRUE(on_gpu(g.x));
    EXPECT_ALL_CLOSE(g.loss, cpu.loss, kRed, kRed);
    EXPECT_ALL_CLOSE(g.x, cpu.x, kRed, kRed);
    EXPECT_ALL_CLOSE(g.w, cpu.w, kRed, kRed);
    EXPECT_ALL_CLOSE(g.b, cpu.b, kRed, kRed);
    EXPECT_ALL_CLOSE(g.gamma, cpu.gamma, kRed, kRed);
    EXPECT_ALL_CLOSE(g.beta, cpu.beta, kRed, kRed);
  }
}

}  // namespace recur
