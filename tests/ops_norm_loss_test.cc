// layer_norm, softmax, log_softmax, cross_entropy and mse: reference gradients vs central
// differences, fast float kernels vs the reference, autograd wrappers, fused vs composed, bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_util.h"
#include "recur/core/tape.h"
#include "recur/ops/basic.h"
#include "recur/ops/loss.h"
#include "recur/ops/norm.h"

namespace recur {

using test::f64;
using test::grad_matches;
using test::rand64;
using test::weighted_sum;

namespace {

// Adds `offset` to every element: rows far from zero exercise the variance computation.
Tensor shifted(Tensor t, double offset) {
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] += static_cast<float>(offset);
  return t;
}

Tensor random_targets(int64_t n, int64_t classes, Rng& rng) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(classes))));
  return Tensor::from_i64({n}, v);
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// layer_norm

TEST(OpsLayerNorm, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(21);
  Tensor x = rand64({2, 3, 6}, rng), g = rand64({6}, rng), b = rand64({6}, rng), wy = rand64({2, 3, 6}, rng);
  auto loss = [&] {
    Tensor y;
    ref::layer_norm_forward(&y, nullptr, nullptr, x, g, b, 1e-5f);
    return weighted_sum(y, wy);
  };
  Tensor y, mean, rstd, dx, dg, db;
  ref::layer_norm_forward(&y, &mean, &rstd, x, g, b, 1e-5f);
  ASSERT_EQ(mean.shape(), Shape{6});
  ref::layer_norm_backward(&dx, &dg, &db, wy, x, g, mean, rstd);
  EXPECT_TRUE(grad_matches(loss, x, dx));
  EXPECT_TRUE(grad_matches(loss, g, dg));
  EXPECT_TRUE(grad_matches(loss, b, db));
}

TEST(OpsLayerNorm, KnownValuesUseBiasedVariance) {
  // PyTorch: F.layer_norm([1, 2, 3, 4], (4,)) = (x - 2.5) / sqrt(1.25 + 1e-5).
  Tensor x = Tensor::from({1, 4}, {1, 2, 3, 4}), g = Tensor::full({4}, 1.0), b = Tensor::zeros({4}), y;
  ops::layer_norm_forward(&y, nullptr, nullptr, x, g, b);
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(y.item(i), (i + 1 - 2.5) / std::sqrt(1.25 + 1e-5), 1e-6);
}

TEST(OpsLayerNorm, FastMatchesReference) {
  Rng rng(22);
  Tensor x = shifted(test::randn({301, 96}, rng, 2.0), 5.0), g = test::randn({96}, rng), b = test::randn({96}, rng);
  Tensor dy = test::randn({301, 96}, rng);
  Tensor y32, m32, r32, y64, m64, r64;
  ops::layer_norm_forward(&y32, &m32, &r32, x, g, b, 1e-5f);
  ref::layer_norm_forward(&y64, &m64, &r64, f64(x), f64(g), f64(b), 1e-5f);
  EXPECT_ALL_CLOSE(y32, y64, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(m32, m64, 1e-5, 1e-5);
  EXPECT_ALL_CLOSE(r32, r64, 1e-4, 1e-5);
  Tensor dx32, dg32, db32, dx64, dg64, db64;
  ops::layer_norm_backward(&dx32, &dg32, &db32, dy, x, g, m32, r32);
  ref::layer_norm_backward(&dx64, &dg64, &db64, f64(dy), f64(x), f64(g), m64, r64);
  EXPECT_ALL_CLOSE(dx32, dx64, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(dg32, dg64, 1e-4, 1e-4);
  EXPECT_ALL_CLOSE(db32, db64, 1e-4, 1e-4);
}

TEST(OpsLayerNorm, AutogradMatchesReference) {
  Rng rng(23);
  Tape tape;
  Var x(test::randn({5, 8}, rng), true), g(test::randn({8}, rng), true), b(test::randn({8}, rng), true);
  Var y = layer_norm(tape, x, g, b);
  Tensor dy = test::randn({5, 8}, rng);
  tape.backward(y, dy);
  Tensor y64, m, r, dx, dg, db;
  ref::layer_norm_forward(&y64, &m, &r, f64(x.value()), f64(g.value()), f64(b.value()));
  EXPECT_ALL_CLOSE(y.value(), y64, 1e-4, 1e-5);
  ref::layer_norm_backward(&dx, &dg, &db, f64(dy), f64(x.value()), f64(g.value()), m, r);
  EXPECT_ALL_CLOSE(x.grad(), dx, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(g.grad(), dg, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(b.grad(), db, 1e-4, 1e-5);
}

TEST(OpsLayerNorm, BadInputNamesShapes) {
  Tensor x = Tensor::zeros({3, 4}), g = Tensor::zeros({5}), b = Tensor::zeros({4}), y;
  EXPECT_THROWS_WITH(ops::layer_norm_forward(&y, nullptr, nullptr, x, g, b), "layer_norm", "(5,)", "(3, 4)");
  Tensor g4 = Tensor::zeros({4}), mean = Tensor::zeros({2}), dx;
  EXPECT_THROWS_WITH(ops::layer_norm_backward(&dx, nullptr, nullptr, x, x, g4, mean, mean), "layer_norm_backward",
                     "(2,)", "(3, 4)");
  EXPECT_THROWS_WITH(ops::layer_norm_forward(&y, nullptr, nullptr, Tensor::zeros({3, 0}), Tensor::zeros({0}),
                                             Tensor::zeros({0})),
                     "layer_norm", "(3, 0)");
}

// ---------------------------------------------------------------------------------------------
// softmax / log_softmax

namespace {
struct RowCase {
  const char* name;
  void (*ref_fwd)(Tensor*, const Tensor&);
  void (*ref_bwd)(Tensor*, const Tensor&, const Tensor&);
  void (*fast_fwd)(Tensor*, const Tensor&);
  void (*fast_bwd)(Tensor*, const Tensor&, const Tensor&);
  Var (*wrapper)(Tape&, const Var&);
};

const RowCase kRow[] = {
    {"softmax", ref::softmax_forward, ref::softmax_backward, ops::softmax_forward, ops::softmax_backward, softmax},
    {"log_softmax", ref::log_softmax_forward, ref::log_softmax_backward, ops::log_softmax_forward,
     ops::log_softmax_backward, log_softmax},
};
}  // namespace

TEST(OpsSoftmax, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(24);
  for (const RowCase& c : kRow) {
    SCOPED_TRACE(c.name);
    Tensor x = rand64({2, 3, 5}, rng, 2.0), wy = rand64({2, 3, 5}, rng);
    auto loss = [&] {
      Tensor y;
      c.ref_fwd(&y, x);
      return weighted_sum(y, wy);
    };
    Tensor y, dx;
    c.ref_fwd(&y, x);
    c.ref_bwd(&dx, wy, y);
    EXPECT_TRUE(grad_matches(loss, x, dx));
  }
}

TEST(OpsSoftmax, FastMatchesReferenceAndIsStable) {
  Rng rng(25);
  Tensor x = test::randn({257, 33}, rng, 3.0), dy = test::randn({257, 33}, rng);
  for (int64_t c = 0; c < 33; ++c) x.f32()[c] += 1000.0f;  // row 0 would overflow a naive exp
  for (const RowCase& c : kRow) {
    SCOPED_TRACE(c.name);
    Tensor y32, y64, dx32, dx64;
    c.fast_fwd(&y32, x);
    c.ref_fwd(&y64, f64(x));
    EXPECT_ALL_CLOSE(y32, y64, 1e-4, 1e-5);
    for (int64_t i = 0; i < y32.numel(); ++i) ASSERT_TRUE(std::isfinite(y32.item(i)));
    c.fast_bwd(&dx32, dy, y32);
    c.ref_bwd(&dx64, f64(dy), y64);
    EXPECT_ALL_CLOSE(dx32, dx64, 1e-4, 1e-5);
  }
}

TEST(OpsSoftmax, SoftmaxIsExpOfLogSoftmax) {
  Rng rng(26);
  Tensor x = test::randn({7, 11}, rng, 4.0), s, ls;
  ops::softmax_forward(&s, x);
  ops::log_softmax_forward(&ls, x);
  for (int64_t r = 0; r < 7; ++r) {
    double total = 0;
    for (int64_t c = 0; c < 11; ++c) {
      EXPECT_NEAR(s.item(r * 11 + c), std::exp(ls.item(r * 11 + c)), 1e-6);
      total += s.item(r * 11 + c);
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
}

TEST(OpsSoftmax, AutogradMatchesReference) {
  Rng rng(27);
  for (const RowCase& c : kRow) {
    SCOPED_TRACE(c.name);
    Tape tape;
    Var x(test::randn({4, 6}, rng), true);
    Var y = c.wrapper(tape, x);
    Tensor dy = test::randn({4, 6}, rng);
    tape.backward(y, dy);
    Tensor y64, dx;
    c.ref_fwd(&y64, f64(x.value()));
    c.ref_bwd(&dx, f64(dy), y64);
    EXPECT_ALL_CLOSE(x.grad(), dx, 1e-4, 1e-5);
  }
}

TEST(OpsSoftmax, BadInputNamesShapes) {
  Tensor y, dx;
  EXPECT_THROWS_WITH(ops::softmax_forward(&y, Tensor::zeros({})), "softmax", "()");
  EXPECT_THROWS_WITH(ops::log_softmax_forward(&y, Tensor::from_i64({2}, {0, 1})), "log_softmax", "I64");
  EXPECT_THROWS_WITH(ops::softmax_backward(&dx, Tensor::zeros({2, 3}), Tensor::zeros({2, 4})), "softmax_backward",
                     "(2, 3)", "(2, 4)");
}

// ---------------------------------------------------------------------------------------------
// cross_entropy

TEST(OpsCrossEntropy, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(28);
  Tensor targets = Tensor::from_i64({5}, {2, -100, 0, 3, 2});
  for (float eps : {0.0f, 0.1f}) {
    SCOPED_TRACE(eps);
    CrossEntropyOptions opt;
    opt.label_smoothing = eps;
    Tensor logits = rand64({5, 4}, rng, 2.0);
    auto loss = [&] {
      Tensor l;
      ref::cross_entropy_forward(&l, nullptr, logits, targets, opt);
      return l.item(0);
    };
    Tensor l, logp, dlogits;
    ref::cross_entropy_forward(&l, &logp, logits, targets, opt);
    ref::cross_entropy_backward(&dlogits, Tensor::full({}, 1.0, DType::F64), logp, targets, opt);
    EXPECT_TRUE(grad_matches(loss, logits, dlogits));
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(dlogits.item(4 + c), 0.0);  // ignored row
  }
}

TEST(OpsCrossEntropy, KnownValues) {
  // Uniform logits: every row costs log C, with or without smoothing.
  Tensor logits = Tensor::zeros({3, 5}), targets = Tensor::from_i64({3}, {0, 4, 2}), l;
  for (float eps : {0.0f, 0.3f}) {
    ops::cross_entropy_forward(&l, nullptr, logits, targets, {-100, eps});
    EXPECT_NEAR(l.item(0), std::log(5.0), 1e-6);
  }
  // PyTorch, one row [0, ln 2] target 1, eps 0.2: p = (1/3, 2/3);
  // 0.8 * -ln(2/3) + 0.2 * mean(-ln(1/3), -ln(2/3)).
  Tensor row = Tensor::from({1, 2}, {0.0f, static_cast<float>(std::log(2.0))});
  ops::cross_entropy_forward(&l, nullptr, row, Tensor::from_i64({1}, {1}), {-100, 0.2f});
  double want = 0.8 * -std::log(2.0 / 3) + 0.2 * 0.5 * (-std::log(1.0 / 3) - std::log(2.0 / 3));
  EXPECT_NEAR(l.item(0), want, 1e-6);
}

TEST(OpsCrossEntropy, FastMatchesReference) {
  Rng rng(29);
  Tensor logits = test::randn({203, 37}, rng, 3.0);
  Tensor targets = random_targets(203, 37, rng);
  for (int64_t i = 0; i < 203; i += 7) targets.data<int64_t>()[i] = 5;  // ignore_index inside [0, C)
  for (float eps : {0.0f, 0.15f}) {
    SCOPED_TRACE(eps);
    CrossEntropyOptions opt{5, eps};
    Tensor l32, lp32, l64, lp64, d32, d64;
    ops::cross_entropy_forward(&l32, &lp32, logits, targets, opt);
    ref::cross_entropy_forward(&l64, &lp64, f64(logits), targets, opt);
    EXPECT_ALL_CLOSE(l32, l64, 1e-5, 1e-6);
    EXPECT_ALL_CLOSE(lp32, lp64, 1e-4, 1e-5);
    ops::cross_entropy_backward(&d32, Tensor::full({}, 2.0), lp32, targets, opt);
    ref::cross_entropy_backward(&d64, Tensor::full({}, 2.0, DType::F64), lp64, targets, opt);
    EXPECT_ALL_CLOSE(d32, d64, 1e-4, 1e-6);
  }
}

TEST(OpsCrossEntropy, EqualsMeanNllOfLogSoftmax) {
  Rng rng(30);
  Tape tape;
  Var logits(test::randn({6, 9}, rng, 2.0), true);
  Tensor targets = Tensor::from_i64({6}, {1, 8, -100, 0, 4, 4});
  Var fused = cross_entropy(tape, logits, targets);
  Var lp = log_softmax(tape, logits);
  double composed = 0;
  int kept = 0;
  for (int64_t i = 0; i < 6; ++i) {
    int64_t t = targets.data<int64_t>()[i];
    if (t == -100) continue;
    composed -= lp.value().item(i * 9 + t);
    ++kept;
  }
  EXPECT_NEAR(fused.value().item(0), composed / kept, 1e-5);
}

TEST(OpsCrossEntropy, AutogradMatchesReferenceAndComposedGraph) {
  Rng rng(31);
  Tensor targets = Tensor::from_i64({4}, {2, 0, 2, 1});
  CrossEntropyOptions opt{-100, 0.1f};
  Tape tape;
  Var logits(test::randn({4, 3}, rng), true);
  Var l = cross_entropy(tape, logits, targets, opt);
  EXPECT_EQ(l.shape(), Shape{});
  tape.backward(l);
  Tensor l64, lp64, d64;
  ref::cross_entropy_forward(&l64, &lp64, f64(logits.value()), targets, opt);
  ref::cross_entropy_backward(&d64, Tensor::full({}, 1.0, DType::F64), lp64, targets, opt);
  EXPECT_NEAR(l.value().item(0), l64.item(0), 1e-5);
  EXPECT_ALL_CLOSE(logits.grad(), d64, 1e-4, 1e-6);

  // The same loss built from log_softmax, mul, sum and scale gives the same gradient
  // (smoothing 0.1 over 3 classes: target weights 0.9 + 0.1/3, others 0.1/3).
  Tape tape2;
  Var logits2(logits.value().clone(), true);
  Tensor weights = Tensor::full({4, 3}, 0.1 / 3);
  for (int64_t i = 0; i < 4; ++i) weights.f32()[i * 3 + targets.data<int64_t>()[i]] += 0.9f;
  Var composed = scale(tape2, sum(tape2, mul(tape2, log_softmax(tape2, logits2), Var(weights))), -0.25f);
  EXPECT_NEAR(composed.value().item(0), l.value().item(0), 1e-5);
  tape2.backward(composed);
  EXPECT_ALL_CLOSE(logits2.grad(), logits.grad(), 1e-4, 1e-6);
}

TEST(OpsCrossEntropy, AllRowsIgnoredGivesZeroLossAndGradient) {
  Tape tape;
  Var logits(Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6}), true);
  Var l = cross_entropy(tape, logits, Tensor::from_i64({2}, {-100, -100}));
  EXPECT_EQ(l.value().item(0), 0.0f);
  tape.backward(l);
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(logits.grad().item(i), 0.0f);
}

TEST(OpsCrossEntropy, BadTargetNamesRowAndValue) {
  Tensor logits = Tensor::zeros({3, 4}), l;
  EXPECT_THROWS_WITH(ops::cross_entropy_forward(&l, nullptr, logits, Tensor::from_i64({3}, {0, 1, 4})),
                     "cross_entropy", "target 4", "row 2", "4 classes");
  EXPECT_THROWS_WITH(ops::cross_entropy_forward(&l, nullptr, logits, Tensor::from_i64({3}, {-1, 1, 2})), "target -1",
                     "row 0");
  EXPECT_THROWS_WITH(ops::cross_entropy_forward(&l, nullptr, logits, Tensor::from_i64({2}, {0, 1})), "cross_entropy",
                     "(2,)", "(3, 4)");
  EXPECT_THROWS_WITH(ops::cross_entropy_forward(&l, nullptr, logits, Tensor::zeros({3})), "targets", "I64");
  EXPECT_THROWS_WITH(ops::cross_entropy_forward(&l, nullptr, logits, Tensor::from_i64({3}, {0, 1, 2}), {-100, 1.5f}),
                     "label_smoothing", "1.5");
  Tape tape;
  EXPECT_THROWS_WITH(cross_entropy(tape, Var(logits), Tensor::from_i64({3}, {0, 9, 1})), "target 9", "row 1");
}

// ---------------------------------------------------------------------------------------------
// mse

TEST(OpsMse, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(32);
  Tensor pred = rand64({3, 4}, rng), target = rand64({3, 4}, rng);
  auto loss = [&] {
    Tensor l;
    ref::mse_forward(&l, pred, target);
    return l.item(0);
  };
  Tensor dpred;
  ref::mse_backward(&dpred, Tensor::full({}, 1.0, DType::F64), pred, target);
  EXPECT_TRUE(grad_matches(loss, pred, dpred));
}

TEST(OpsMse, FastMatchesReferenceAndAutograd) {
  Rng rng(33);
  Tensor pred = test::randn({129, 40}, rng), target = test::randn({129, 40}, rng);
  Tensor l32, l64, d32, d64;
  ops::mse_forward(&l32, pred, target);
  ref::mse_forward(&l64, f64(pred), f64(target));
  EXPECT_ALL_CLOSE(l32, l64, 1e-6, 1e-7);
  ops::mse_backward(&d32, Tensor::full({}, 3.0), pred, target);
  ref::mse_backward(&d64, Tensor::full({}, 3.0, DType::F64), f64(pred), f64(target));
  EXPECT_ALL_CLOSE(d32, d64, 1e-5, 1e-8);

  Tape tape;
  Var p(pred.clone(), true);
  Var l = mse(tape, p, target);
  EXPECT_NEAR(l.value().item(0), l64.item(0), 1e-5);
  tape.backward(l);
  Tensor g64;
  ref::mse_backward(&g64, Tensor::full({}, 1.0, DType::F64), f64(pred), f64(target));
  EXPECT_ALL_CLOSE(p.grad(), g64, 1e-5, 1e-8);
}

TEST(OpsMse, BadInputNamesShapes) {
  Tensor l;
  EXPECT_THROWS_WITH(ops::mse_forward(&l, Tensor::zeros({2, 3}), Tensor::zeros({3, 2})), "mse", "(2, 3)", "(3, 2)");
  EXPECT_THROWS_WITH(ops::mse_forward(&l, Tensor::zeros({0}), Tensor::zeros({0})), "mse", "empty", "(0,)");
  Tensor d;
  EXPECT_THROWS_WITH(ops::mse_backward(&d, Tensor::zeros({2}), Tensor::zeros({2}), Tensor::zeros({2})), "mse_backward",
                     "scalar", "(2,)");
}

}  // namespace recur
