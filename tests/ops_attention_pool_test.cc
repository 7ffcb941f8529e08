// Attention pooling: reference gradient check in double, fast path vs reference, autograd, errors.
#include <gtest/gtest.h>

#include "recur/ops/attention_pool.h"
#include "test_util.h"

namespace recur {
namespace {

TEST(OpsAttentionPool, ReferenceGradCheck) {
  Rng rng(2);
  PackedBatch pb = PackedBatch::from_lengths({3, 1, 4});
  Tensor x = test::randn({pb.tokens(), 5}, rng, 1.0, DType::F64);
  Tensor s = test::randn({pb.tokens()}, rng, 1.0, DType::F64);
  Tensor w = test::randn({3, 5}, rng, 1.0, DType::F64);
  auto loss = [&] {
    Tensor y;
    ref::attention_pool_forward(&y, x, s, pb);
    return test::weighted_sum(y, w);
  };
  Tensor dx = Tensor::zeros(x.shape(), DType::F64), ds = Tensor::zeros(s.shape(), DType::F64);
  ref::attention_pool_backward(&dx, &ds, w, x, s, pb);
  EXPECT_ALL_CLOSE(dx, test::numeric_grad(loss, x), 1e-6, 1e-8);
  EXPECT_ALL_CLOSE(ds, test::numeric_grad(loss, s), 1e-6, 1e-8);
}

TEST(OpsAttentionPool, FastMatchesReferenceAndAutograd) {
  Rng rng(3);
  PackedBatch pb = PackedBatch::from_lengths({2, 6, 1, 6, 3});
  Var x(test::randn({pb.tokens(), 7}, rng), true), s(test::randn({pb.tokens()}, rng, 2.0), true);
  Tensor dy = test::randn({5, 7}, rng);
  Tape tape;
  Var y = attention_pool(tape, x, s, pb);
  tape.backward({{y, dy}});
  Tensor yr, dxr = Tensor::zeros(x.shape(), DType::F64), dsr = Tensor::zeros(s.shape(), DType::F64);
  const Tensor x64 = x.value().to(DType::F64), s64 = s.value().to(DType::F64);
  ref::attention_pool_forward(&yr, x64, s64, pb);
  ref::attention_pool_backward(&dxr, &dsr, dy.to(DType::F64), x64, s64, pb);
  EXPECT_ALL_CLOSE(y.value(), yr, 1e-5, 1e-6);
  EXPECT_ALL_CLOSE(x.grad(), dxr, 1e-5, 1e-6);
  EXPECT_ALL_CLOSE(s.grad(), dsr, 1e-4, 1e-6);
  // A sequence of one step takes its only row whatever the score.
  for (int64_t h = 0; h < 7; ++h) EXPECT_FLOAT_EQ(y.value().f32()[2 * 7 + h], x.value().f32()[pb.last_row(2) * 7 + h]);
}

TEST(OpsAttentionPool, BadShapesAreNamed) {
  PackedBatch pb = PackedBatch::from_lengths({2, 1});
  Tensor y, a;
  try {
    ops::attention_pool_forward(&y, &a, Tensor::zeros({3, 4}), Tensor::zeros({2}), pb);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scores must be (N=3)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace recur
