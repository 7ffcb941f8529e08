// Pooling over time on packed batches: reference gradients vs central differences on ragged
// lengths, fast float kernels vs the reference, autograd wrappers, original batch order, bad input.
#include <gtest/gtest.h>

#include "ops_test_util.h"
#include "recur/core/tape.h"
#include "recur/ops/pool.h"

namespace recur {

using test::f64;
using test::grad_matches;
using test::rand64;
using test::weighted_sum;

namespace {

struct PoolCase {
  const char* name;
  void (*ref_fwd)(Tensor*, const Tensor&, const PackedBatch&);
  void (*ref_bwd)(Tensor*, const Tensor&, const PackedBatch&);
  void (*fast_fwd)(Tensor*, const Tensor&, const PackedBatch&);
  void (*fast_bwd)(Tensor*, const Tensor&, const PackedBatch&);
  Var (*wrapper)(Tape&, const Var&, const PackedBatch&);
};

const PoolCase kPools[] = {
    {"mean_pool", ref::mean_pool_forward, ref::mean_pool_backward, ops::mean_pool_forward, ops::mean_pool_backward,
     mean_pool},
    {"gather_last_step", ref::gather_last_step_forward, ref::gather_last_step_backward,
     ops::gather_last_step_forward, ops::gather_last_step_backward, gather_last_step},
};

const std::vector<int64_t> kLengths{3, 5, 1, 5, 2};

// The padded (T, B, H) view of a packed tensor, to read expected values in original order.
double padded_at(const Tensor& padded, int64_t t, int64_t b, int64_t h) {
  return padded.item((t * padded.dim(1) + b) * padded.dim(2) + h);
}
}  // namespace

TEST(OpsPool, ReferenceGradientsMatchCentralDifferences) {
  Rng rng(41);
  PackedBatch pb = PackedBatch::from_lengths(kLengths);
  for (const PoolCase& c : kPools) {
    SCOPED_TRACE(c.name);
    Tensor x = rand64({pb.tokens(), 3}, rng), wy = rand64({5, 3}, rng);
    auto loss = [&] {
      Tensor y;
      c.ref_fwd(&y, x, pb);
      return weighted_sum(y, wy);
    };
    Tensor dx;
    c.ref_bwd(&dx, wy, pb);
    EXPECT_TRUE(grad_matches(loss, x, dx));
  }
  Tensor x = rand64({pb.tokens(), 3}, rng), wy = rand64({5, 3}, rng);
  auto loss = [&] {
    Tensor y;
    ref::max_pool_forward(&y, nullptr, x, pb);
    return weighted_sum(y, wy);
  };
  Tensor y, argmax, dx;
  ref::max_pool_forward(&y, &argmax, x, pb);
  ref::max_pool_backward(&dx, wy, argmax, pb);
  EXPECT_TRUE(grad_matches(loss, x, dx));
}

TEST(OpsPool, OutputsAreInOriginalBatchOrder) {
  Rng rng(42);
  Tensor padded = test::randn({5, 5, 2}, rng);
  PackedBatch pb;
  Tensor packed = pack_padded(padded, kLengths, &pb);
  Tensor mean, max, last;
  ops::mean_pool_forward(&mean, packed, pb);
  ops::max_pool_forward(&max, nullptr, packed, pb);
  ops::gather_last_step_forward(&last, packed, pb);
  for (int64_t b = 0; b < 5; ++b)
    for (int64_t h = 0; h < 2; ++h) {
      double s = 0, m = -1e30;
      for (int64_t t = 0; t < kLengths[static_cast<size_t>(b)]; ++t) {
        s += padded_at(padded, t, b, h);
        m = std::max(m, padded_at(padded, t, b, h));
      }
      EXPECT_NEAR(mean.item(b * 2 + h), s / static_cast<double>(kLengths[static_cast<size_t>(b)]), 1e-6);
      EXPECT_EQ(max.item(b * 2 + h), m);
      EXPECT_EQ(last.item(b * 2 + h), padded_at(padded, kLengths[static_cast<size_t>(b)] - 1, b, h));
    }
}

TEST(OpsPool, FastMatchesReference) {
  Rng rng(43);
  std::vector<int64_t> lengths;
  for (int i = 0; i < 37; ++i) lengths.push_back(1 + static_cast<int64_t>(rng.below(20)));
  PackedBatch pb = PackedBatch::from_lengths(lengths);
  Tensor x = test::randn({pb.tokens(), 64}, rng), dy = test::randn({37, 64}, rng);
  for (const PoolCase& c : kPools) {
    SCOPED_TRACE(c.name);
    Tensor y32, y64, dx32, dx64;
    c.fast_fwd(&y32, x, pb);
    c.ref_fwd(&y64, f64(x), pb);
    EXPECT_ALL_CLOSE(y32, y64, 1e-5, 1e-6);
    c.fast_bwd(&dx32, dy, pb);
    c.ref_bwd(&dx64, f64(dy), pb);
    EXPECT_ALL_CLOSE(dx32, dx64, 1e-5, 1e-6);
  }
  Tensor y32, a32, y64, a64, dx32, dx64;
  ops::max_pool_forward(&y32, &a32, x, pb);
  ref::max_pool_forward(&y64, &a64, f64(x), pb);
  EXPECT_ALL_CLOSE(y32, y64, 0, 0);
  EXPECT_ALL_CLOSE(a32, a64, 0, 0);
  ops::max_pool_backward(&dx32, dy, a32, pb);
  ref::max_pool_backward(&dx64, f64(dy), a64, pb);
  EXPECT_ALL_CLOSE(dx32, dx64, 0, 0);
}

TEST(OpsPool, MaxPoolTiesGoToTheFirstStep) {
  // One sequence of 3 steps, all equal in column 0; column 1 peaks at steps 1 and 2.
  PackedBatch pb = PackedBatch::from_lengths({3});
  Tensor x = Tensor::from({3, 2}, {1, 0, 1, 5, 1, 5});
  for (bool fast : {true, false}) {
    Tensor xx = fast ? x : f64(x), y, argmax, dx;
    Tensor dy = fast ? Tensor::full({1, 2}, 1.0) : Tensor::full({1, 2}, 1.0, DType::F64);
    if (fast) {
      ops::max_pool_forward(&y, &argmax, xx, pb);
      ops::max_pool_backward(&dx, dy, argmax, pb);
    } else {
      ref::max_pool_forward(&y, &argmax, xx, pb);
      ref::max_pool_backward(&dx, dy, argmax, pb);
    }
    EXPECT_EQ(argmax.data<int64_t>()[0], 0);
    EXPECT_EQ(argmax.data<int64_t>()[1], 1);
    std::vector<double> want{1, 0, 0, 1, 0, 0};
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(dx.item(i), want[static_cast<size_t>(i)]) << i;
  }
}

TEST(OpsPool, AutogradMatchesReference) {
  Rng rng(44);
  PackedBatch pb = PackedBatch::from_lengths(kLengths);
  for (const PoolCase& c : kPools) {
    SCOPED_TRACE(c.name);
    Tape tape;
    Var x(test::randn({pb.tokens(), 4}, rng), true);
    Var y = c.wrapper(tape, x, pb);
    ASSERT_EQ(y.shape(), (Shape{5, 4}));
    Tensor dy = test::randn({5, 4}, rng);
    tape.backward(y, dy);
    Tensor dx;
    c.ref_bwd(&dx, f64(dy), pb);
    EXPECT_ALL_CLOSE(x.grad(), dx, 1e-5, 1e-6);
  }
  Tape tape;
  Var x(test::randn({pb.tokens(), 4}, rng), true);
  Var y = max_pool(tape, x, pb);
  Tensor dy = test::randn({5, 4}, rng);
  tape.backward(y, dy);
  Tensor y64, argmax, dx;
  ref::max_pool_forward(&y64, &argmax, f64(x.value()), pb);
  ref::max_pool_backward(&dx, f64(dy), argmax, pb);
  EXPECT_ALL_CLOSE(y.value(), y64, 0, 0);
  EXPECT_ALL_CLOSE(x.grad(), dx, 0, 0);
}

TEST(OpsPool, BadInputNamesShapes) {
  PackedBatch pb = PackedBatch::from_lengths(kLengths);  // 16 tokens, batch 5
  Tensor y, dx;
  EXPECT_THROWS_WITH(ops::mean_pool_forward(&y, Tensor::zeros({15, 3}), pb), "mean_pool", "(15, 3)", "16 tokens");
  EXPECT_THROWS_WITH(ops::max_pool_forward(&y, nullptr, Tensor::zeros({16}), pb), "max_pool", "(16,)");
  EXPECT_THROWS_WITH(ops::gather_last_step_backward(&dx, Tensor::zeros({4, 3}), pb), "gather_last_step_backward",
                     "(4, 3)", "batch of 5");
  Tensor bad_argmax = Tensor::from_i64({5, 1}, {0, 1, 2, 99, 3});
  EXPECT_THROWS_WITH(ops::max_pool_backward(&dx, Tensor::zeros({5, 1}), bad_argmax, pb), "max_pool_backward",
                     "argmax 99");
  EXPECT_THROWS_WITH(ops::mean_pool_forward(&y, Tensor::zeros({16, 3}), PackedBatch{}), "mean_pool",
                     "malformed PackedBatch");
  Tape tape;
  EXPECT_THROWS_WITH(gather_last_step(tape, Var(Tensor::zeros({3, 2})), pb), "gather_last_step", "(3, 2)");
}

}  // namespace recur
