// CUDA paths of the non-recurrent ops against their CPU float paths: every op forward and backward
// on random inputs with odd, ragged sizes, outputs and every gradient compared; backward kernels
// start from non-zero gradients, so that "adds into" is checked too. Also: device mixing and bad
// ids/targets on a GPU are refused with clear errors. Every test skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops_test_util.h"
#include "recur/core/tape.h"
#include "recur/ops/attention_pool.h"
#include "recur/ops/basic.h"
#include "recur/ops/loss.h"
#include "recur/ops/norm.h"
#include "recur/ops/pool.h"

namespace recur {

namespace {

using test::randn;

// Elementwise ops; reductions (GEMMs, sums, softmax, losses, layer norm, pools) get kRed.
constexpr double kTol = 1e-5;
constexpr double kRed = 1e-4;

Tensor gpu(const Tensor& t) { return t.to(Device::cuda(0)); }

bool on_gpu(const Tensor& t) { return t.defined() && t.device() == Device::cuda(0); }

// Random ids in [0, V), with `padding` at every 5th position when padding >= 0.
Tensor random_ids(int64_t n, int64_t vocab, int64_t padding, Rng& rng) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = padding >= 0 && i % 5 == 2 ? padding : static_cast<int64_t>(rng.below(vocab));
  return Tensor::from_i64({n}, v);
}

const std::vector<int64_t> kLengths{5, 9, 1, 9, 3, 7, 2};  // unequal, with ties and a length-1 sequence
constexpr int64_t kHidden = 129;

}  // namespace

// ---------------------------------------------------------------------------------------------
// basic

TEST(CudaOps, Linear) {
  RECUR_REQUIRE_GPU();
  Rng rng(101);
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "bias" : "no bias");
    for (const Shape& xs : {Shape{37, 129}, Shape{3, 7, 129}}) {
      Tensor x = randn(xs, rng), w = randn({65, 129}, rng, 0.3), b = randn({65}, rng);
      Shape ys = xs;
      ys.back() = 65;
      Tensor dy = randn(ys, rng);
      Tensor xg = gpu(x), wg = gpu(w), bg = gpu(b), dyg = gpu(dy);

      Tensor y, yg;
      ops::linear_forward(&y, x, w, bias ? &b : nullptr);
      ops::linear_forward(&yg, xg, wg, bias ? &bg : nullptr);
      EXPECT_TRUE(on_gpu(yg));
      EXPECT_ALL_CLOSE(yg, y, kRed, kRed);

      // Gradients start non-zero: backward adds.
      Tensor dx = randn(xs, rng), dw = randn({65, 129}, rng), db = randn({65}, rng);
      Tensor dxg = gpu(dx), dwg = gpu(dw), dbg = gpu(db);
      ops::linear_backward(&dx, &dw, bias ? &db : nullptr, dy, x, w);
      ops::linear_backward(&dxg, &dwg, bias ? &dbg : nullptr, dyg, xg, wg);
      EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
      EXPECT_ALL_CLOSE(dwg, dw, kRed, kRed);
      EXPECT_ALL_CLOSE(dbg, db, kRed, kRed);

      // Undefined slots are allocated on the GPU.
      Tensor dx2, dx2g;
      ops::linear_backward(&dx2, nullptr, nullptr, dy, x, w);
      ops::linear_backward(&dx2g, nullptr, nullptr, dyg, xg, wg);
      EXPECT_TRUE(on_gpu(dx2g));
      EXPECT_ALL_CLOSE(dx2g, dx2, kRed, kRed);
    }
  }
}

TEST(CudaOps, Embedding) {
  RECUR_REQUIRE_GPU();
  Rng rng(102);
  for (int64_t padding : {int64_t{-1}, int64_t{7}}) {
    SCOPED_TRACE(padding);
    const int64_t V = 53, D = 129;
    Tensor ids = random_ids(37, V, padding, rng).view({37});
    Tensor ids2d = random_ids(4 * 9, V, padding, rng).view({4, 9});
    for (const Tensor& id : {ids, ids2d}) {
      Tensor w = randn({V, D}, rng), idg = gpu(id), wg = gpu(w);
      Tensor y, yg;
      ops::embedding_forward(&y, id, w, padding);
      ops::embedding_forward(&yg, idg, wg, padding);
      EXPECT_TRUE(on_gpu(yg));
      EXPECT_ALL_CLOSE(yg, y, kTol, kTol);

      Shape ys = id.shape();
      ys.push_back(D);
      Tensor dy = randn(ys, rng), dw = randn({V, D}, rng);
      Tensor dyg = gpu(dy), dwg = gpu(dw);
      ops::embedding_backward(&dw, dy, id, padding);
      ops::embedding_backward(&dwg, dyg, idg, padding);
      EXPECT_ALL_CLOSE(dwg, dw, kTol, kTol);
    }
  }
}

TEST(CudaOps, AddMul) {
  RECUR_REQUIRE_GPU();
  Rng rng(103);
  const Shape s{37, 129};
  Tensor a = randn(s, rng), b = randn(s, rng), dy = randn(s, rng);
  Tensor ag = gpu(a), bg = gpu(b), dyg = gpu(dy);
  Tensor y, yg;
  ops::add_forward(&y, a, b);
  ops::add_forward(&yg, ag, bg);
  EXPECT_ALL_CLOSE(yg, y, kTol, kTol);
  Tensor z, zg;
  ops::mul_forward(&z, a, b);
  ops::mul_forward(&zg, ag, bg);
  EXPECT_ALL_CLOSE(zg, z, kTol, kTol);

  Tensor da = randn(s, rng), db = randn(s, rng);
  Tensor dag = gpu(da), dbg = gpu(db);
  ops::add_backward(&da, &db, dy);
  ops::add_backward(&dag, &dbg, dyg);
  EXPECT_ALL_CLOSE(dag, da, kTol, kTol);
  EXPECT_ALL_CLOSE(dbg, db, kTol, kTol);
  ops::mul_backward(&da, &db, dy, a, b);
  ops::mul_backward(&dag, &dbg, dyg, ag, bg);
  EXPECT_ALL_CLOSE(dag, da, kTol, kTol);
  EXPECT_ALL_CLOSE(dbg, db, kTol, kTol);
  // One slot null, one undefined.
  Tensor dnew, dnewg;
  ops::mul_backward(nullptr, &dnew, dy, a, b);
  ops::mul_backward(nullptr, &dnewg, dyg, ag, bg);
  EXPECT_TRUE(on_gpu(dnewg));
  EXPECT_ALL_CLOSE(dnewg, dnew, kTol, kTol);
}

TEST(CudaOps, TanhSigmoidRelu) {
  RECUR_REQUIRE_GPU();
  Rng rng(104);
  struct Case {
    const char* name;
    void (*fwd)(Tensor*, const Tensor&);
    void (*bwd)(Tensor*, const Tensor&, const Tensor&);
  };
  const Case cases[] = {{"tanh", ops::tanh_forward, ops::tanh_backward},
                        {"sigmoid", ops::sigmoid_forward, ops::sigmoid_backward},
                        {"relu", ops::relu_forward, ops::relu_backward}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Shape s{37, 129};
    Tensor x = randn(s, rng, 4.0), dy = randn(s, rng), dx = randn(s, rng);  // wide x: both sigmoid branches
    Tensor xg = gpu(x), dyg = gpu(dy), dxg = gpu(dx);
    Tensor y, yg;
    c.fwd(&y, x);
    c.fwd(&yg, xg);
    EXPECT_ALL_CLOSE(yg, y, kTol, kTol);
    c.bwd(&dx, dy, y);
    c.bwd(&dxg, dyg, yg);
    EXPECT_ALL_CLOSE(dxg, dx, kTol, kTol);
  }
}

TEST(CudaOps, ConcatSplit) {
  RECUR_REQUIRE_GPU();
  Rng rng(105);
  struct Case {
    std::vector<Shape> shapes;
    int64_t axis;
  };
  const Case cases[] = {
      {{{5, 3, 7}, {5, 4, 7}, {5, 1, 7}}, 1},
      {{{2, 3, 7}, {5, 3, 7}}, 0},
      {{{37, 129}, {37, 1}, {37, 64}}, -1},
      {{{6, 2, 3}, {6, 2, 5}}, 2},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.axis);
    std::vector<Tensor> xs, xsg;
    std::vector<int64_t> sizes;
    const int64_t ax = c.axis < 0 ? c.axis + static_cast<int64_t>(c.shapes[0].size()) : c.axis;
    for (const Shape& s : c.shapes) {
      xs.push_back(randn(s, rng));
      xsg.push_back(gpu(xs.back()));
      sizes.push_back(s[static_cast<size_t>(ax)]);
    }
    Tensor y, yg;
    ops::concat_forward(&y, xs, c.axis);
    ops::concat_forward(&yg, xsg, c.axis);
    EXPECT_TRUE(on_gpu(yg));
    EXPECT_ALL_CLOSE(yg, y, kTol, kTol);

    // concat backward: gradient 0 pre-filled, gradient 1 undefined, the last one skipped (null).
    Tensor dy = randn(y.shape(), rng), dyg = gpu(dy);
    std::vector<Tensor> dxs(xs.size()), dxsg(xs.size());
    dxs[0] = randn(xs[0].shape(), rng);
    dxsg[0] = gpu(dxs[0]);
    std::vector<Tensor*> slots, slotsg;
    for (size_t i = 0; i < xs.size(); ++i) {
      const bool skip = i + 1 == xs.size() && xs.size() > 2;
      slots.push_back(skip ? nullptr : &dxs[i]);
      slotsg.push_back(skip ? nullptr : &dxsg[i]);
    }
    ops::concat_backward(slots, dy, sizes, c.axis);
    ops::concat_backward(slotsg, dyg, sizes, c.axis);
    for (size_t i = 0; i < xs.size(); ++i) {
      if (!slots[i]) continue;
      EXPECT_TRUE(on_gpu(dxsg[i]));
      EXPECT_ALL_CLOSE(dxsg[i], dxs[i], kTol, kTol);
    }

    std::vector<Tensor> ys, ysg;
    ops::split_forward(&ys, y, sizes, c.axis);
    ops::split_forward(&ysg, yg, sizes, c.axis);
    ASSERT_EQ(ysg.size(), ys.size());
    for (size_t i = 0; i < ys.size(); ++i) {
      EXPECT_TRUE(on_gpu(ysg[i]));
      EXPECT_ALL_CLOSE(ysg[i], ys[i], kTol, kTol);
      EXPECT_ALL_CLOSE(ysg[i], xs[i], kTol, kTol);  // split undoes concat
    }
    std::vector<Tensor> dys, dysg;
    for (const Tensor& t : ys) {
      dys.push_back(randn(t.shape(), rng));
      dysg.push_back(gpu(dys.back()));
    }
    Tensor dx = randn(y.shape(), rng), dxg = gpu(dx);
    ops::split_backward(&dx, dys, c.axis);
    ops::split_backward(&dxg, dysg, c.axis);
    EXPECT_ALL_CLOSE(dxg, dx, kTol, kTol);
  }
}

TEST(CudaOps, DropoutMaskMatchesCpu) {
  RECUR_REQUIRE_GPU();
  Rng rng(106);
  for (float p : {0.3f, 0.9f, 1.0f}) {
    SCOPED_TRACE(p);
    const Shape s{37, 129};
    const uint64_t seed = 0x1234abcdULL + static_cast<uint64_t>(p * 100);
    Tensor x = randn(s, rng), xg = gpu(x);
    Tensor y, yg;
    ops::dropout_forward(&y, x, p, seed, true);
    ops::dropout_forward(&yg, xg, p, seed, true);
    EXPECT_ALL_CLOSE(yg, y, kTol, kTol);
    // The same mask, element for element.
    const Tensor yh = yg.cpu();
    int64_t mismatched = 0, dropped = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      mismatched += (y.f32()[i] == 0.0f) != (yh.f32()[i] == 0.0f);
      dropped += y.f32()[i] == 0.0f;
    }
    EXPECT_EQ(mismatched, 0);
    EXPECT_GT(dropped, 0);

    Tensor dy = randn(s, rng), dx = randn(s, rng);
    Tensor dyg = gpu(dy), dxg = gpu(dx);
    ops::dropout_backward(&dx, dy, p, seed, true);
    ops::dropout_backward(&dxg, dyg, p, seed, true);
    EXPECT_ALL_CLOSE(dxg, dx, kTol, kTol);
  }
  // Eval mode: identity forward, pass-through backward.
  Tensor x = randn({5, 129}, rng), xg = gpu(x);
  Tensor yg;
  ops::dropout_forward(&yg, xg, 0.5f, 7, false);
  EXPECT_TRUE(on_gpu(yg));
  EXPECT_ALL_CLOSE(yg, x, 0, 0);
  Tensor dxg;
  ops::dropout_backward(&dxg, xg, 0.5f, 7, false);
  EXPECT_ALL_CLOSE(dxg, x, 0, 0);
}

TEST(CudaOps, SumScaleReshape) {
  RECUR_REQUIRE_GPU();
  Rng rng(107);
  const Shape s{37, 129};
  Tensor x = randn(s, rng);
  // Same graph on both devices; gradient slots pre-set on the value's device.
  auto run = [&](Device dev, Tensor* loss, Tensor* grad) {
    Tape tape;
    Var xv(x.to(dev), true);
    xv.grad() = Tensor::zeros(s, DType::F32, dev);
    Var scaled = scale(tape, xv, -1.75f);
    Var flat = reshape(tape, scaled, {37 * 129});
    Var total = sum(tape, flat);
    total.grad() = Tensor::zeros({}, DType::F32, dev);
    // Intermediate gradients, allocated lazily by the tape, are set up front on the device too.
    scaled.grad() = Tensor::zeros(s, DType::F32, dev);
    flat.grad() = Tensor::zeros({37 * 129}, DType::F32, dev);
    tape.backward(total, Tensor::full({}, 0.625, DType::F32, dev));
    *loss = total.value();
    *grad = xv.grad();
  };
  Tensor loss, grad, lossg, gradg;
  run(Device::cpu(), &loss, &grad);
  run(Device::cuda(0), &lossg, &gradg);
  EXPECT_TRUE(on_gpu(lossg));
  EXPECT_TRUE(on_gpu(gradg));
  EXPECT_ALL_CLOSE(lossg, loss, kRed, kRed);
  EXPECT_ALL_CLOSE(gradg, grad, kTol, kTol);
  EXPECT_NEAR(gradg.item(0), -1.75 * 0.625, 1e-6);
}

// ---------------------------------------------------------------------------------------------
// norm

TEST(CudaOps, LayerNorm) {
  RECUR_REQUIRE_GPU();
  Rng rng(108);
  for (const Shape& s : {Shape{37, 129}, Shape{3, 5, 1031}, Shape{9, 3}}) {
    SCOPED_TRACE(shape_str(s));
    const int64_t D = s.back();
    Tensor x = randn(s, rng, 2.0), gamma = randn({D}, rng), beta = randn({D}, rng);
    Tensor xg = gpu(x), gg = gpu(gamma), bg = gpu(beta);
    Tensor y, mean, rstd, yg, meang, rstdg;
    ops::layer_norm_forward(&y, &mean, &rstd, x, gamma, beta, 1e-5f);
    ops::layer_norm_forward(&yg, &meang, &rstdg, xg, gg, bg, 1e-5f);
    EXPECT_TRUE(on_gpu(yg) && on_gpu(meang) && on_gpu(rstdg));
    EXPECT_ALL_CLOSE(yg, y, kRed, kRed);
    EXPECT_ALL_CLOSE(meang, mean, kRed, kRed);
    EXPECT_ALL_CLOSE(rstdg, rstd, kRed, kRed);

    Tensor dy = randn(s, rng), dx = randn(s, rng), dgam = randn({D}, rng), dbet = randn({D}, rng);
    Tensor dyg = gpu(dy), dxg = gpu(dx), dgamg = gpu(dgam), dbetg = gpu(dbet);
    ops::layer_norm_backward(&dx, &dgam, &dbet, dy, x, gamma, mean, rstd);
    ops::layer_norm_backward(&dxg, &dgamg, &dbetg, dyg, xg, gg, meang, rstdg);
    EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
    EXPECT_ALL_CLOSE(dgamg, dgam, kRed, kRed);
    EXPECT_ALL_CLOSE(dbetg, dbet, kRed, kRed);

    // Forward without mean/rstd, backward with only dgamma.
    Tensor y2g, dgonly, dgonlyg;
    ops::layer_norm_forward(&y2g, nullptr, nullptr, xg, gg, bg, 1e-5f);
    EXPECT_ALL_CLOSE(y2g, y, kRed, kRed);
    ops::layer_norm_backward(nullptr, &dgonly, nullptr, dy, x, gamma, mean, rstd);
    ops::layer_norm_backward(nullptr, &dgonlyg, nullptr, dyg, xg, gg, meang, rstdg);
    EXPECT_TRUE(on_gpu(dgonlyg));
    EXPECT_ALL_CLOSE(dgonlyg, dgonly, kRed, kRed);
  }
}

TEST(CudaOps, SoftmaxLogSoftmax) {
  RECUR_REQUIRE_GPU();
  Rng rng(109);
  struct Case {
    const char* name;
    void (*fwd)(Tensor*, const Tensor&);
    void (*bwd)(Tensor*, const Tensor&, const Tensor&);
  };
  const Case cases[] = {{"softmax", ops::softmax_forward, ops::softmax_backward},
                        {"log_softmax", ops::log_softmax_forward, ops::log_softmax_backward}};
  for (const Case& c : cases) {
    for (const Shape& s : {Shape{37, 129}, Shape{4, 5, 1031}, Shape{7, 1}}) {
      SCOPED_TRACE(std::string(c.name) + " " + shape_str(s));
      Tensor x = randn(s, rng, 3.0), dy = randn(s, rng), dx = randn(s, rng);
      Tensor xg = gpu(x), dyg = gpu(dy), dxg = gpu(dx);
      Tensor y, yg;
      c.fwd(&y, x);
      c.fwd(&yg, xg);
      EXPECT_ALL_CLOSE(yg, y, kRed, kRed);
      c.bwd(&dx, dy, y);
      c.bwd(&dxg, dyg, yg);
      EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// losses

TEST(CudaOps, CrossEntropy) {
  RECUR_REQUIRE_GPU();
  Rng rng(110);
  const int64_t N = 37, C = 129;
  for (float eps : {0.0f, 0.1f}) {
    for (bool all_ignored : {false, true}) {
      SCOPED_TRACE(std::to_string(eps) + (all_ignored ? " all ignored" : ""));
      CrossEntropyOptions opt;
      opt.label_smoothing = eps;
      opt.ignore_index = -100;
      std::vector<int64_t> t(N);
      for (int64_t i = 0; i < N; ++i)
        t[static_cast<size_t>(i)] = all_ignored || i % 6 == 1 ? -100 : static_cast<int64_t>(rng.below(C));
      Tensor targets = Tensor::from_i64({N}, t), targetsg = gpu(targets);
      Tensor logits = randn({N, C}, rng, 2.0), logitsg = gpu(logits);
      Tensor loss, logp, lossg, logpg;
      ops::cross_entropy_forward(&loss, &logp, logits, targets, opt);
      ops::cross_entropy_forward(&lossg, &logpg, logitsg, targetsg, opt);
      EXPECT_TRUE(on_gpu(lossg) && on_gpu(logpg));
      EXPECT_EQ(lossg.shape(), Shape{});
      EXPECT_ALL_CLOSE(lossg, loss, kRed, kRed);
      EXPECT_ALL_CLOSE(logpg, logp, kRed, kRed);
      if (!all_ignored) {
        EXPECT_GT(loss.item(0), 0.0);
      }
      // Without a logp slot too.
      Tensor loss2g;
      ops::cross_entropy_forward(&loss2g, nullptr, logitsg, targetsg, opt);
      EXPECT_ALL_CLOSE(loss2g, loss, kRed, kRed);

      Tensor dloss = Tensor::full({}, 0.7), dloss_g = gpu(dloss);
      Tensor dl = randn({N, C}, rng), dlg = gpu(dl);
      ops::cross_entropy_backward(&dl, dloss, logp, targets, opt);
      ops::cross_entropy_backward(&dlg, dloss_g, logpg, targetsg, opt);
      EXPECT_ALL_CLOSE(dlg, dl, kRed, kRed);
    }
  }
}

TEST(CudaOps, Mse) {
  RECUR_REQUIRE_GPU();
  Rng rng(111);
  for (const Shape& s : {Shape{37, 129}, Shape{1}, Shape{3, 1000, 7}}) {
    SCOPED_TRACE(shape_str(s));
    Tensor pred = randn(s, rng), target = randn(s, rng);
    Tensor predg = gpu(pred), targetg = gpu(target);
    Tensor loss, lossg;
    ops::mse_forward(&loss, pred, target);
    ops::mse_forward(&lossg, predg, targetg);
    EXPECT_TRUE(on_gpu(lossg));
    EXPECT_ALL_CLOSE(lossg, loss, kRed, kRed);
    Tensor dloss = Tensor::full({}, -1.3), dlossg = gpu(dloss);
    Tensor dp = randn(s, rng), dpg = gpu(dp);
    ops::mse_backward(&dp, dloss, pred, target);
    ops::mse_backward(&dpg, dlossg, predg, targetg);
    EXPECT_ALL_CLOSE(dpg, dp, kTol, kTol);
  }
}

// ---------------------------------------------------------------------------------------------
// pools

TEST(CudaOps, MeanAndLastStepPools) {
  RECUR_REQUIRE_GPU();
  Rng rng(112);
  PackedBatch pb = PackedBatch::from_lengths(kLengths);
  struct Case {
    const char* name;
    void (*fwd)(Tensor*, const Tensor&, const PackedBatch&);
    void (*bwd)(Tensor*, const Tensor&, const PackedBatch&);
  };
  const Case cases[] = {{"mean_pool", ops::mean_pool_forward, ops::mean_pool_backward},
                        {"gather_last_step", ops::gather_last_step_forward, ops::gather_last_step_backward}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = randn({pb.tokens(), kHidden}, rng), xg = gpu(x);
    Tensor y, yg;
    c.fwd(&y, x, pb);
    c.fwd(&yg, xg, pb);
    EXPECT_TRUE(on_gpu(yg));
    EXPECT_ALL_CLOSE(yg, y, kRed, kRed);
    Tensor dy = randn({pb.batch(), kHidden}, rng), dx = randn({pb.tokens(), kHidden}, rng);
    Tensor dyg = gpu(dy), dxg = gpu(dx);
    c.bwd(&dx, dy, pb);
    c.bwd(&dxg, dyg, pb);
    EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
    Tensor fresh, freshg;
    c.bwd(&fresh, dy, pb);
    c.bwd(&freshg, dyg, pb);
    EXPECT_TRUE(on_gpu(freshg));
    EXPECT_ALL_CLOSE(freshg, fresh, kRed, kRed);
  }
}

TEST(CudaOps, MaxPool) {
  RECUR_REQUIRE_GPU();
  Rng rng(113);
  PackedBatch pb = PackedBatch::from_lengths(kLengths);
  Tensor x = randn({pb.tokens(), kHidden}, rng);
  // A few exact ties: the earliest step must win on both devices.
  for (int64_t h = 0; h < 5; ++h) x.f32()[pb.row(1, 0) * kHidden + h] = x.f32()[pb.row(0, 0) * kHidden + h] = 3.5f;
  Tensor xg = gpu(x);
  Tensor y, am, yg, amg;
  ops::max_pool_forward(&y, &am, x, pb);
  ops::max_pool_forward(&yg, &amg, xg, pb);
  EXPECT_TRUE(on_gpu(yg) && on_gpu(amg));
  EXPECT_ALL_CLOSE(yg, y, 0, 0);
  EXPECT_ALL_CLOSE(amg, am, 0, 0);
  Tensor y2g;
  ops::max_pool_forward(&y2g, nullptr, xg, pb);
  EXPECT_ALL_CLOSE(y2g, y, 0, 0);

  Tensor dy = randn({pb.batch(), kHidden}, rng), dx = randn({pb.tokens(), kHidden}, rng);
  Tensor dyg = gpu(dy), dxg = gpu(dx);
  ops::max_pool_backward(&dx, dy, am, pb);
  ops::max_pool_backward(&dxg, dyg, amg, pb);
  EXPECT_ALL_CLOSE(dxg, dx, kTol, kTol);
}

TEST(CudaOps, AttentionPool) {
  RECUR_REQUIRE_GPU();
  Rng rng(114);
  PackedBatch pb = PackedBatch::from_lengths(kLengths);
  Tensor x = randn({pb.tokens(), kHidden}, rng), scores = randn({pb.tokens()}, rng, 2.0);
  Tensor xg = gpu(x), sg = gpu(scores);
  Tensor y, alpha, yg, alphag;
  ops::attention_pool_forward(&y, &alpha, x, scores, pb);
  ops::attention_pool_forward(&yg, &alphag, xg, sg, pb);
  EXPECT_TRUE(on_gpu(yg) && on_gpu(alphag));
  EXPECT_ALL_CLOSE(yg, y, kRed, kRed);
  EXPECT_ALL_CLOSE(alphag, alpha, kRed, kRed);

  Tensor dy = randn({pb.batch(), kHidden}, rng);
  Tensor dx = randn({pb.tokens(), kHidden}, rng), ds = randn({pb.tokens()}, rng);
  Tensor dyg = gpu(dy), dxg = gpu(dx), dsg = gpu(ds);
  ops::attention_pool_backward(&dx, &ds, dy, x, alpha, pb);
  ops::attention_pool_backward(&dxg, &dsg, dyg, xg, alphag, pb);
  EXPECT_ALL_CLOSE(dxg, dx, kRed, kRed);
  EXPECT_ALL_CLOSE(dsg, ds, kRed, kRed);
  // Only the scores' gradient.
  Tensor ds2 = Tensor::zeros({pb.tokens()}), ds2g;
  ops::attention_pool_backward(nullptr, &ds2, dy, x, alpha, pb);
  ops::attention_pool_backward(nullptr, &ds2g, dyg, xg, alphag, pb);
  EXPECT_TRUE(on_gpu(ds2g));
  EXPECT_ALL_CLOSE(ds2g, ds2, kRed, kRed);
}

// ---------------------------------------------------------------------------------------------
// errors

TEST(CudaOps, MixedDevicesAndF64AreRefused) {
  RECUR_REQUIRE_GPU();
  Rng rng(115);
  Tensor a = randn({4, 6}, rng), ag = gpu(a);
  Tensor y;
  EXPECT_THROW(ops::add_forward(&y, a, ag), Error);
  EXPECT_THROWS_WITH(ops::add_forward(&y, ag, a), "add", "cuda:0", "cpu", "same device");
  Tensor w = randn({3, 6}, rng);
  EXPECT_THROWS_WITH(ops::linear_forward(&y, ag, w, nullptr), "linear", "weight", "cuda:0", "cpu");
  // Embedding ids on the CPU with weights on the GPU.
  Tensor ids = Tensor::from_i64({2}, {0, 1});
  EXPECT_THROWS_WITH(ops::embedding_forward(&y, ids, ag, -1), "embedding", "ids", "cpu", "cuda:0");
  // A CPU gradient slot for GPU inputs.
  Tensor dcpu = Tensor::zeros({4, 6});
  EXPECT_THROWS_WITH(ops::add_backward(&dcpu, nullptr, ag), "add_backward", "da", "cpu", "cuda:0");
  // A CPU loss gradient for a GPU loss.
  Tensor logits = gpu(randn({3, 5}, rng)), targets = gpu(Tensor::from_i64({3}, {0, 4, 2}));
  Tensor loss, logp;
  ops::cross_entropy_forward(&loss, &logp, logits, targets);
  Tensor dl;
  EXPECT_THROWS_WITH(ops::cross_entropy_backward(&dl, Tensor::full({}, 1.0), logp, targets), "cross_entropy_backward",
                     "cpu", "cuda:0");
  // F64 is CPU only.
  Tensor a64 = gpu(a.to(DType::F64));
  EXPECT_THROWS_WITH(ops::tanh_forward(&y, a64), "tanh", "F64", "CPU only");
}

TEST(CudaOps, BadIdsOnGpuAreNamed) {
  RECUR_REQUIRE_GPU();
  Rng rng(116);
  Tensor w = gpu(randn({10, 8}, rng));
  Tensor ids = gpu(Tensor::from_i64({6}, {1, 2, 3, 4, 999, 0}));
  Tensor y;
  EXPECT_THROWS_WITH(ops::embedding_forward(&y, ids, w, -1), "embedding", "999", "position 4", "V=10");
  Tensor neg = gpu(Tensor::from_i64({3}, {1, -3, 0}));
  EXPECT_THROWS_WITH(ops::embedding_forward(&y, neg, w, -1), "-3", "position 1");
  Tensor dw = gpu(Tensor::zeros({10, 8}));
  EXPECT_THROWS_WITH(ops::embedding_backward(&dw, gpu(Tensor::zeros({6, 8})), ids, -1), "999", "position 4");

  Tensor logits = gpu(randn({4, 5}, rng));
  Tensor targets = gpu(Tensor::from_i64({4}, {0, -100, 7, 1}));
  Tensor loss;
  EXPECT_THROWS_WITH(ops::cross_entropy_forward(&loss, nullptr, logits, targets), "cross_entropy", "target 7",
                     "row 2");
}

}  // namespace recur
