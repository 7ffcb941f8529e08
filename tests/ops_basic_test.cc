// Basic functional ops: reference gradients vs central differences, fast float kernels vs the
// reference, autograd wrappers end to end, and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "ops_test_util.h"
#include "recur/core/tape.h"
#include "recur/core/thread_pool.h"
#include "recur/ops/basic.h"

namespace recur {

using test::f64;
using test::grad_matches;
using test::rand64;
using test::weighted_sum;


// ---------------------------------------------------------------------------------------------
// linear

TEST(OpsLinear, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(1);
  for (bool bias : {true, false}) {
    Tensor x = rand64({2, 3, 4}, rng), w = rand64({5, 4}, rng), b = rand64({5}, rng);
    Tensor wy = rand64({2, 3, 5}, rng);
    auto loss = [&] {
      Tensor y;
      ref::linear_forward(&y, x, w, bias ? &b : nullptr);
      return weighted_sum(y, wy);
    };
    Tensor dx, dw, db;
    ref::linear_backward(&dx, &dw, &db, wy, x, w);
    EXPECT_TRUE(grad_matches(loss, x, dx));
    EXPECT_TRUE(grad_matches(loss, w, dw));
    if (bias) {
      EXPECT_TRUE(grad_matches(loss, b, db));
    }
  }
}

TEST(OpsLinear, BackwardAddsIntoGradients) {
  Rng rng(2);
  Tensor x = rand64({3, 4}, rng), w = rand64({2, 4}, rng), dy = rand64({3, 2}, rng);
  Tensor dx1, dw1, db1;
  ref::linear_backward(&dx1, &dw1, &db1, dy, x, w);
  Tensor dx2 = dx1.clone(), dw2 = dw1.clone(), db2 = db1.clone();
  ref::linear_backward(&dx2, &dw2, &db2, dy, x, w);
  for (int64_t i = 0; i < dx1.numel(); ++i) EXPECT_DOUBLE_EQ(dx2.item(i), 2 * dx1.item(i));
  for (int64_t i = 0; i < dw1.numel(); ++i) EXPECT_DOUBLE_EQ(dw2.item(i), 2 * dw1.item(i));
  // Float path too, and a null slot is skipped.
  Tensor x32 = x.to(DType::F32), w32 = w.to(DType::F32), dy32 = dy.to(DType::F32);
  Tensor dw32 = Tensor::full({2, 4}, 1.0);
  ops::linear_backward(nullptr, &dw32, nullptr, dy32, x32, w32);
  for (int64_t i = 0; i < dw1.numel(); ++i) EXPECT_NEAR(dw32.item(i), 1.0 + dw1.item(i), 1e-5);
}

TEST(OpsLinear, FastMatchesReference) {
  Rng rng(3);
  for (bool bias : {true, false}) {
    Tensor x = test::randn({37, 64}, rng), w = test::randn({48, 64}, rng), b = test::randn({48}, rng);
    Tensor dy = test::randn({37, 48}, rng);
    Tensor y32, y64;
    ops::linear_forward(&y32, x, w, bias ? &b : nullptr);
    Tensor b64 = f64(b);
    ref::linear_forward(&y64, f64(x), f64(w), bias ? &b64 : nullptr);
    EXPECT_ALL_CLOSE(y32, y64, 1e-4, 1e-5);
    Tensor dx32, dw32, db32, dx64, dw64, db64;
    ops::linear_backward(&dx32, &dw32, &db32, dy, x, w);
    ref::linear_backward(&dx64, &dw64, &db64, f64(dy), f64(x), f64(w));
    EXPECT_ALL_CLOSE(dx32, dx64, 1e-4, 1e-5);
    EXPECT_ALL_CLOSE(dw32, dw64, 1e-4, 1e-5);
    EXPECT_ALL_CLOSE(db32, db64, 1e-4, 1e-5);
  }
}

TEST(OpsLinear, AutogradMatchesReference) {
  Rng rng(4);
  for (bool bias : {true, false}) {
    Tape tape;
    Var x(test::randn({6, 4}, rng), true), w(test::randn({3, 4}, rng), true);
    Var b = bias ? Var(test::randn({3}, rng), true) : Var();
    Var y = linear(tape, x, w, b);
    ASSERT_EQ(y.shape(), (Shape{6, 3}));
    Tensor dy = test::randn({6, 3}, rng);
    tape.backward(y, dy);
    Tensor dx, dw, db;
    ref::linear_backward(&dx, &dw, bias ? &db : nullptr, f64(dy), f64(x.value()), f64(w.value()));
    EXPECT_ALL_CLOSE(x.grad(), dx, 1e-4, 1e-5);
    EXPECT_ALL_CLOSE(w.grad(), dw, 1e-4, 1e-5);
    if (bias) {
      EXPECT_ALL_CLOSE(b.grad(), db, 1e-4, 1e-5);
    }
  }
  // Inputs without requires_grad get no gradient; with none, nothing is recorded.
  Tape tape;
  Var x(test::randn({2, 4}, rng)), w(test::randn({3, 4}, rng), true);
  Var y = linear(tape, x, w, Var());
  tape.backward(y, test::randn({2, 3}, rng));
  EXPECT_FALSE(x.has_grad());
  EXPECT_TRUE(w.has_grad());
  Var frozen(test::randn({3, 4}, rng));
  EXPECT_FALSE(linear(tape, x, frozen, Var()).requires_grad());
  EXPECT_EQ(tape.size(), 0u);
}

TEST(OpsLinear, BadInputNamesShapes) {
  Tensor x = Tensor::zeros({4, 3}), w = Tensor::zeros({5, 4}), b = Tensor::zeros({4});
  Tensor y;
  EXPECT_THROWS_WITH(ops::linear_forward(&y, x, w, nullptr), "linear", "(4, 3)", "(5, 4)");
  Tensor x2 = Tensor::zeros({4, 4});
  EXPECT_THROWS_WITH(ops::linear_forward(&y, x2, w, &b), "bias", "(4,)", "(5, 4)");
  EXPECT_THROWS_WITH(ops::linear_forward(&y, x2.to(DType::F64), w, nullptr), "linear", "dtype", "F32");
  Tensor dy = Tensor::zeros({4, 6});
  Tensor dx;
  EXPECT_THROWS_WITH(ops::linear_backward(&dx, nullptr, nullptr, dy, x2, w), "linear_backward", "(4, 6)");
  Tensor wrong_y = Tensor::zeros({3, 5});
  EXPECT_THROWS_WITH(ops::linear_forward(&wrong_y, x2, w, nullptr), "linear", "(3, 5)", "(4, 5)");
  Tape tape;
  EXPECT_THROWS_WITH(linear(tape, Var(x2), Var(), Var()), "linear", "weight", "undefined");
}

// ---------------------------------------------------------------------------------------------
// embedding

TEST(OpsEmbedding, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(5);
  Tensor ids = Tensor::from_i64({2, 3}, {3, 0, 2, 3, 1, 0});
  Tensor w = rand64({5, 4}, rng), wy = rand64({2, 3, 4}, rng);
  auto loss = [&] {
    Tensor y;
    ref::embedding_forward(&y, ids, w, 0);
    return weighted_sum(y, wy);
  };
  Tensor y, dw = Tensor::zeros({5, 4}, DType::F64);
  ref::embedding_forward(&y, ids, w, 0);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  for (int64_t k = 0; k < 4; ++k) {
    EXPECT_EQ(y.item(1 * 4 + k), 0.0);  // padding row
    EXPECT_EQ(y.item(0 * 4 + k), w.item(3 * 4 + k));
  }
  ref::embedding_backward(&dw, wy, ids, 0);
  for (int64_t k = 0; k < 4; ++k) {
    EXPECT_EQ(dw.item(0 * 4 + k), 0.0);  // no gradient into the padding row
    EXPECT_EQ(dw.item(4 * 4 + k), 0.0);  // id 4 never used
  }
  EXPECT_TRUE(grad_matches(loss, w, dw));
}

TEST(OpsEmbedding, FastMatchesReference) {
  Rng rng(6);
  std::vector<int64_t> idv;
  for (int i = 0; i < 300; ++i) idv.push_back(static_cast<int64_t>(rng.below(50)));
  Tensor ids = Tensor::from_i64({300}, idv);
  Tensor w = test::randn({50, 16}, rng), dy = test::randn({300, 16}, rng);
  for (int64_t pad : {int64_t{-1}, int64_t{7}}) {
    Tensor y32, y64, dw32 = Tensor::zeros({50, 16}), dw64 = Tensor::zeros({50, 16}, DType::F64);
    ops::embedding_forward(&y32, ids, w, pad);
    ref::embedding_forward(&y64, ids, f64(w), pad);
    EXPECT_ALL_CLOSE(y32, y64, 0, 0);
    ops::embedding_backward(&dw32, dy, ids, pad);
    ref::embedding_backward(&dw64, f64(dy), ids, pad);
    EXPECT_ALL_CLOSE(dw32, dw64, 1e-4, 1e-5);
  }
}

TEST(OpsEmbedding, AutogradMatchesReference) {
  Rng rng(7);
  Tape tape;
  Tensor ids = Tensor::from_i64({5}, {1, 2, 1, 0, 2});
  Var w(test::randn({4, 3}, rng), true);
  Var y = embedding(tape, ids, w, 2);
  Tensor dy = test::randn({5, 3}, rng);
  tape.backward(y, dy);
  Tensor dw = Tensor::zeros({4, 3}, DType::F64);
  ref::embedding_backward(&dw, f64(dy), ids, 2);
  EXPECT_ALL_CLOSE(w.grad(), dw, 1e-5, 1e-6);
  for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(w.grad().item(2 * 3 + k), 0.0f);
}

TEST(OpsEmbedding, OutOfRangeIdNamesIdPositionAndVocab) {
  Tensor w = Tensor::zeros({5, 2});
  Tensor y;
  EXPECT_THROWS_WITH(ops::embedding_forward(&y, Tensor::from_i64({4}, {0, 1, 7, 2}), w, -1), "embedding", "id 7",
                     "position 2", "V=5");
  EXPECT_THROWS_WITH(ops::embedding_forward(&y, Tensor::from_i64({2}, {-3, 1}), w, -1), "id -3", "position 0");
  EXPECT_THROWS_WITH(ops::embedding_forward(&y, Tensor::from_i64({1}, {1}), w, 5), "padding_idx 5");
  EXPECT_THROWS_WITH(ops::embedding_forward(&y, Tensor::zeros({2}), w, -1), "embedding", "ids", "I64");
  Tensor dw = Tensor::zeros({5, 2});
  EXPECT_THROWS_WITH(ops::embedding_backward(&dw, Tensor::zeros({3, 2}), Tensor::from_i64({2}, {0, 1}), -1),
                     "embedding_backward", "(3, 2)", "(2, 2)");
}

// ---------------------------------------------------------------------------------------------
// elementwise

namespace {
struct UnaryCase {
  const char* name;
  void (*ref_fwd)(Tensor*, const Tensor&);
  void (*ref_bwd)(Tensor*, const Tensor&, const Tensor&);
  void (*fast_fwd)(Tensor*, const Tensor&);
  void (*fast_bwd)(Tensor*, const Tensor&, const Tensor&);
  Var (*wrapper)(Tape&, const Var&);
};

const UnaryCase kUnary[] = {
    {"tanh", ref::tanh_forward, ref::tanh_backward, ops::tanh_forward, ops::tanh_backward, tanh},
    {"sigmoid", ref::sigmoid_forward, ref::sigmoid_backward, ops::sigmoid_forward, ops::sigmoid_backward, sigmoid},
    {"relu", ref::relu_forward, ref::relu_backward, ops::relu_forward, ops::relu_backward, relu},
};
}  // namespace

TEST(OpsElementwise, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(8);
  for (const UnaryCase& c : kUnary) {
    SCOPED_TRACE(c.name);
    Tensor x = rand64({3, 5}, rng, 2.0), wy = rand64({3, 5}, rng);
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
  Tensor a = rand64({4, 3}, rng), b = rand64({4, 3}, rng), wy = rand64({4, 3}, rng);
  for (bool is_mul : {false, true}) {
    SCOPED_TRACE(is_mul ? "mul" : "add");
    auto loss = [&] {
      Tensor y;
      if (is_mul) ref::mul_forward(&y, a, b);
      else ref::add_forward(&y, a, b);
      return weighted_sum(y, wy);
    };
    Tensor da, db;
    if (is_mul) ref::mul_backward(&da, &db, wy, a, b);
    else ref::add_backward(&da, &db, wy);
    EXPECT_TRUE(grad_matches(loss, a, da));
    EXPECT_TRUE(grad_matches(loss, b, db));
  }
}

TEST(OpsElementwise, FastMatchesReference) {
  Rng rng(9);
  // Large enough for the thread pool to split the loop.
  Tensor x = test::randn({100003}, rng, 3.0), x2 = test::randn({100003}, rng), dy = test::randn({100003}, rng);
  for (const UnaryCase& c : kUnary) {
    SCOPED_TRACE(c.name);
    Tensor y32, y64, dx32, dx64;
    c.fast_fwd(&y32, x);
    c.ref_fwd(&y64, f64(x));
    EXPECT_ALL_CLOSE(y32, y64, 1e-5, 1e-6);
    c.fast_bwd(&dx32, dy, y32);
    c.ref_bwd(&dx64, f64(dy), y64);
    EXPECT_ALL_CLOSE(dx32, dx64, 1e-4, 1e-5);
  }
  Tensor s32, s64, p32, p64, da32, db32, da64, db64;
  ops::add_forward(&s32, x, x2);
  ref::add_forward(&s64, f64(x), f64(x2));
  EXPECT_ALL_CLOSE(s32, s64, 1e-6, 1e-6);
  ops::mul_forward(&p32, x, x2);
  ref::mul_forward(&p64, f64(x), f64(x2));
  EXPECT_ALL_CLOSE(p32, p64, 1e-6, 1e-6);
  ops::mul_backward(&da32, &db32, dy, x, x2);
  ref::mul_backward(&da64, &db64, f64(dy), f64(x), f64(x2));
  EXPECT_ALL_CLOSE(da32, da64, 1e-6, 1e-6);
  EXPECT_ALL_CLOSE(db32, db64, 1e-6, 1e-6);
  Tensor ga32, ga64;
  ops::add_backward(&ga32, nullptr, dy);
  ref::add_backward(&ga64, nullptr, f64(dy));
  EXPECT_ALL_CLOSE(ga32, ga64, 0, 0);
  // Extreme inputs stay finite.
  Tensor big = Tensor::from({4}, {-100.0f, -30.0f, 30.0f, 100.0f}), sg;
  ops::sigmoid_forward(&sg, big);
  for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(std::isfinite(sg.item(i)));
  EXPECT_EQ(sg.item(3), 1.0f);
}

TEST(OpsElementwise, AutogradChainMatchesComposedReference) {
  // y = tanh(a) * sigmoid(b) + relu(a): `a` feeds two ops, so its gradient must accumulate.
  Rng rng(10);
  Tape tape;
  Var a(test::randn({4, 6}, rng), true), b(test::randn({4, 6}, rng), true);
  Var y = add(tape, mul(tape, tanh(tape, a), sigmoid(tape, b)), relu(tape, a));
  Tensor dy = test::randn({4, 6}, rng);
  tape.backward(y, dy);

  Tensor a64 = f64(a.value()), b64 = f64(b.value()), dy64 = f64(dy);
  Tensor t, s, m, r, y64, dt, ds, da, db;
  ref::tanh_forward(&t, a64);
  ref::sigmoid_forward(&s, b64);
  ref::mul_forward(&m, t, s);
  ref::relu_forward(&r, a64);
  ref::add_forward(&y64, m, r);
  EXPECT_ALL_CLOSE(y.value(), y64, 1e-5, 1e-6);
  ref::mul_backward(&dt, &ds, dy64, t, s);
  ref::tanh_backward(&da, dt, t);
  ref::relu_backward(&da, dy64, r);
  ref::sigmoid_backward(&db, ds, s);
  EXPECT_ALL_CLOSE(a.grad(), da, 1e-4, 1e-5);
  EXPECT_ALL_CLOSE(b.grad(), db, 1e-4, 1e-5);
}

TEST(OpsElementwise, SumAndScaleAutograd) {
  Rng rng(11);
  Tape tape;
  Var x(test::randn({3, 4}, rng), true);
  Var loss = sum(tape, scale(tape, mul(tape, x, x), 0.5f));
  double want = 0;
  for (int64_t i = 0; i < 12; ++i) want += 0.5 * x.value().item(i) * x.value().item(i);
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_NEAR(loss.value().item(0), want, 1e-5);
  tape.backward(loss);
  EXPECT_ALL_CLOSE(x.grad(), x.value(), 1e-6, 1e-7);  // d(0.5 x^2)/dx = x
}

TEST(OpsElementwise, ShapeMismatchNamesShapes) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2}), y;
  EXPECT_THROWS_WITH(ops::add_forward(&y, a, b), "add", "(2, 3)", "(3, 2)");
  EXPECT_THROWS_WITH(ops::mul_forward(&y, a, b), "mul", "(2, 3)", "(3, 2)");
  Tensor dx;
  EXPECT_THROWS_WITH(ops::tanh_backward(&dx, a, b), "tanh_backward", "(2, 3)", "(3, 2)");
  EXPECT_THROWS_WITH(ops::relu_forward(&y, Tensor::from_i64({2}, {1, 2})), "relu", "I64");
  Tape tape;
  EXPECT_THROWS_WITH(add(tape, Var(a), Var(b.to(DType::F64).view({2, 3}))), "add", "dtype");
}

// ---------------------------------------------------------------------------------------------
// concat / split

TEST(OpsConcatSplit, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(12);
  const Shape base{2, 3, 4};
  for (int64_t axis : {0, 1, 2, -1}) {
    SCOPED_TRACE(axis);
    int64_t ax = axis < 0 ? axis + 3 : axis;
    std::vector<int64_t> sizes{2, 0, 3};
    std::vector<Tensor> xs;
    for (int64_t s : sizes) {
      Shape sh = base;
      sh[static_cast<size_t>(ax)] = s;
      xs.push_back(rand64(sh, rng));
    }
    Shape whole = base;
    whole[static_cast<size_t>(ax)] = 5;
    Tensor wy = rand64(whole, rng);
    auto loss = [&] {
      Tensor y;
      ref::concat_forward(&y, xs, axis);
      return weighted_sum(y, wy);
    };
    std::vector<Tensor> dxs(3);
    ref::concat_backward({&dxs[0], &dxs[1], &dxs[2]}, wy, sizes, axis);
    for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(grad_matches(loss, xs[i], dxs[i]));

    Tensor x = rand64(whole, rng);
    std::vector<Tensor> ws;
    for (size_t i = 0; i < 3; ++i) ws.push_back(rand64(xs[i].shape(), rng));
    auto split_loss = [&] {
      std::vector<Tensor> ys;
      ref::split_forward(&ys, x, sizes, axis);
      double l = 0;
      for (size_t i = 0; i < 3; ++i) l += weighted_sum(ys[i], ws[i]);
      return l;
    };
    Tensor dx;
    ref::split_backward(&dx, ws, axis);
    EXPECT_TRUE(grad_matches(split_loss, x, dx));
  }
}

TEST(OpsConcatSplit, FastMatchesReferenceAndRoundTrips) {
  Rng rng(13);
  for (int64_t axis : {0, 1, 2}) {
    SCOPED_TRACE(axis);
    Shape whole{6, 7, 5};
    std::vector<int64_t> sizes{1, 4, 0, whole[static_cast<size_t>(axis)] - 5};
    Tensor x = test::randn(whole, rng);
    std::vector<Tensor> ys32, ys64;
    ops::split_forward(&ys32, x, sizes, axis);
    ref::split_forward(&ys64, f64(x), sizes, axis);
    ASSERT_EQ(ys32.size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_ALL_CLOSE(ys32[i], ys64[i], 0, 0);
    Tensor back32, back64;
    ops::concat_forward(&back32, ys32, axis);
    ref::concat_forward(&back64, ys64, axis);
    EXPECT_ALL_CLOSE(back32, x, 0, 0);
    EXPECT_ALL_CLOSE(back64, x, 0, 0);
    Tensor dx32 = Tensor::full(whole, 1.0), dx64 = Tensor::full(whole, 1.0, DType::F64);
    ops::split_backward(&dx32, ys32, axis);
    ref::split_backward(&dx64, ys64, axis);
    EXPECT_ALL_CLOSE(dx32, dx64, 1e-6, 1e-6);
    std::vector<Tensor> g32(4), g64(4);
    ops::concat_backward({&g32[0], nullptr, &g32[2], &g32[3]}, x, sizes, axis);
    ref::concat_backward({&g64[0], nullptr, &g64[2], &g64[3]}, f64(x), sizes, axis);
    for (size_t i : {0u, 2u, 3u}) EXPECT_ALL_CLOSE(g32[i], g64[i], 0, 0);
    EXPECT_FALSE(g32[1].defined());
  }
}

TEST(OpsConcatSplit, AutogradMatchesReference) {
  Rng rng(14);
  Tape tape;
  Var x(test::randn({3, 8}, rng), true), z(test::randn({3, 2}, rng), true);
  std::vector<Var> parts = split(tape, x, {3, 3, 2}, -1);
  // Reorder, drop the middle part and append z: the dropped part gets zero gradient.
  Var y = concat(tape, {parts[2], z, parts[0]}, 1);
  ASSERT_EQ(y.shape(), (Shape{3, 7}));
  Tensor dy = test::randn({3, 7}, rng);
  tape.backward(y, dy);
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 2; ++c) {
      EXPECT_EQ(x.grad().item(r * 8 + 6 + c), dy.item(r * 7 + c));
      EXPECT_EQ(z.grad().item(r * 2 + c), dy.item(r * 7 + 2 + c));
    }
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_EQ(x.grad().item(r * 8 + c), dy.item(r * 7 + 4 + c));
      EXPECT_EQ(x.grad().item(r * 8 + 3 + c), 0.0f);
    }
  }
}

TEST(OpsConcatSplit, BadInputNamesShapes) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 3}), y;
  EXPECT_THROWS_WITH(ops::concat_forward(&y, {a, b}, 1), "concat", "(3, 3)", "(2, 3)");
  EXPECT_THROWS_WITH(ops::concat_forward(&y, {a, b}, 2), "concat", "axis 2", "(2, 3)");
  EXPECT_THROWS_WITH(ops::concat_forward(&y, {}, 0), "concat", "no inputs");
  std::vector<Tensor> ys;
  EXPECT_THROWS_WITH(ops::split_forward(&ys, a, {1, 1}, 1), "split", "sum to 2", "(2, 3)");
  EXPECT_THROWS_WITH(ops::split_forward(&ys, a, {4, -1}, 1), "split", "negative size -1");
  Tape tape;
  EXPECT_THROWS_WITH(concat(tape, {Var(a), Var()}, 0), "concat", "input 1", "undefined");
}

// ---------------------------------------------------------------------------------------------
// dropout

TEST(OpsDropout, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(15);
  Tensor x = rand64({4, 5}, rng), wy = rand64({4, 5}, rng);
  auto loss = [&] {
    Tensor y;
    ref::dropout_forward(&y, x, 0.3f, 99, true);
    return weighted_sum(y, wy);
  };
  Tensor dx;
  ref::dropout_backward(&dx, wy, 0.3f, 99, true);
  EXPECT_TRUE(grad_matches(loss, x, dx));
}

TEST(OpsDropout, FastMatchesReferenceAndMaskStatistics) {
  Rng rng(16);
  Tensor x = test::randn({200, 500}, rng), dy = test::randn({200, 500}, rng);
  for (float p : {0.0f, 0.25f, 0.5f, 1.0f}) {
    SCOPED_TRACE(p);
    Tensor y32, y64, dx32, dx64;
    ops::dropout_forward(&y32, x, p, 1234, true);
    ref::dropout_forward(&y64, f64(x), p, 1234, true);
    EXPECT_ALL_CLOSE(y32, y64, 1e-6, 1e-7);
    ops::dropout_backward(&dx32, dy, p, 1234, true);
    ref::dropout_backward(&dx64, f64(dy), p, 1234, true);
    EXPECT_ALL_CLOSE(dx32, dx64, 1e-6, 1e-7);
    int64_t dropped = 0;
    for (int64_t i = 0; i < y32.numel(); ++i) {
      if (y32.f32()[i] == 0.0f) ++dropped;
      else EXPECT_FLOAT_EQ(y32.f32()[i], x.f32()[i] / (1.0f - p));
    }
    EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(x.numel()), p, 0.01);
  }
  // Eval mode and p = 0 are the identity; another seed gives another mask.
  Tensor e, s1, s2;
  ops::dropout_forward(&e, x, 0.5f, 1, false);
  EXPECT_ALL_CLOSE(e, x, 0, 0);
  ops::dropout_forward(&s1, x, 0.5f, 1, true);
  ops::dropout_forward(&s2, x, 0.5f, 2, true);
  EXPECT_FALSE(test::all_close(s1, s2, 0, 0));
}

TEST(OpsDropout, MaskDoesNotDependOnThreadCount) {
  Rng rng(17);
  Tensor x = test::randn({300000}, rng);
  int before = num_threads();
  Tensor y1, y4;
  set_num_threads(1);
  ops::dropout_forward(&y1, x, 0.4f, 77, true);
  set_num_threads(4);
  ops::dropout_forward(&y4, x, 0.4f, 77, true);
  set_num_threads(before);
  EXPECT_ALL_CLOSE(y1, y4, 0, 0);
}

TEST(OpsDropout, AutogradMatchesReference) {
  Rng rng(18);
  Tape tape;
  Var x(test::randn({8, 9}, rng), true);
  Var y = dropout(tape, x, 0.5f, 5, true);
  Tensor dy = test::randn({8, 9}, rng);
  tape.backward(y, dy);
  Tensor dx;
  ref::dropout_backward(&dx, f64(dy), 0.5f, 5, true);
  EXPECT_ALL_CLOSE(x.grad(), dx, 1e-6, 1e-7);
  // Eval mode hands back the input itself and records nothing.
  Var e = dropout(tape, x, 0.5f, 5, false);
  EXPECT_TRUE(e.same(x));
  EXPECT_EQ(tape.size(), 0u);
}

TEST(OpsDropout, BadProbability) {
  Tensor x = Tensor::zeros({3}), y;
  EXPECT_THROWS_WITH(ops::dropout_forward(&y, x, 1.5f, 0, true), "dropout", "p = 1.5");
  Tape tape;
  EXPECT_THROWS_WITH(dropout(tape, Var(x), -0.1f, 0, false), "dropout", "p = -0.1");
}

}  // namespace recur
