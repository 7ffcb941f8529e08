// dist::plan_buckets / pack_bucket / unpack_bucket: fusion buckets in reverse registration order,
// capped in bytes, and a lossless round trip of every tensor; nonzero_rows (the row-sparse
// reduction's scan) against a naive reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "recur/core/rng.h"
#include "recur/dist/data_parallel.h"
#include "test_util.h"

namespace recur {
namespace {

using dist::Bucket;

// Every tensor in exactly one slot, slots back to back, buckets within the cap unless a single
// tensor alone exceeds it, and tensors in reverse order across the bucket sequence.
void check_plan(const std::vector<Bucket>& plan, const std::vector<int64_t>& numels, int64_t cap, int64_t esize) {
  std::vector<int> count(numels.size(), 0);
  int64_t expect_next = static_cast<int64_t>(numels.size()) - 1;
  for (const Bucket& b : plan) {
    ASSERT_FALSE(b.slots.empty());
    int64_t off = 0;
    for (const auto& s : b.slots) {
      EXPECT_EQ(s.param, expect_next--);
      EXPECT_EQ(s.offset, off);
      EXPECT_EQ(s.numel, numels[static_cast<size_t>(s.param)]);
      off += s.numel;
      ++count[static_cast<size_t>(s.param)];
    }
    EXPECT_EQ(b.numel, off);
    if (b.slots.size() > 1) {
      EXPECT_LE(b.numel * esize, cap);
    }
  }
  for (int c : count) EXPECT_EQ(c, 1);
  // Greedy: each bucket after the first could not take the next bucket's first tensor.
  for (size_t i = 0; i + 1 < plan.size(); ++i)
    EXPECT_GT((plan[i].numel + plan[i + 1].slots.front().numel) * esize, cap);
}

TEST(DistBucket, PlanFillsInReverseOrderUpToTheCap) {
  const std::vector<int64_t> numels{10, 20, 30, 40};
  const auto plan = dist::plan_buckets(numels, 50 * 4, 4);
  ASSERT_EQ(plan.size(), 3u);
  ASSERT_EQ(plan[0].slots.size(), 1u);
  EXPECT_EQ(plan[0].slots[0].param, 3);
  ASSERT_EQ(plan[1].slots.size(), 2u);
  EXPECT_EQ(plan[1].slots[0].param, 2);
  EXPECT_EQ(plan[1].slots[1].param, 1);
  EXPECT_EQ(plan[1].slots[1].offset, 30);
  EXPECT_EQ(plan[1].numel, 50);
  EXPECT_EQ(plan[2].slots[0].param, 0);
  check_plan(plan, numels, 200, 4);
  // One large bucket holds everything; F64 halves what fits.
  EXPECT_EQ(dist::plan_buckets(numels, 25 << 20).size(), 1u);
  EXPECT_EQ(dist::plan_buckets(numels, 50 * 4, 8).size(), 4u);
}

TEST(DistBucket, OversizedTensorGetsABucketOfItsOwn) {
  const std::vector<int64_t> numels{100, 5, 5};
  const auto plan = dist::plan_buckets(numels, 40, 4);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].numel, 10);
  EXPECT_EQ(plan[1].numel, 100);
  check_plan(plan, numels, 40, 4);
  EXPECT_TRUE(dist::plan_buckets({}, 40).empty());
  EXPECT_THROW(dist::plan_buckets({1}, 0), Error);
}

TEST(DistBucket, RandomPlansHoldTheInvariants) {
  Rng rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int64_t> numels(1 + rng.below(30));
    for (auto& n : numels) n = static_cast<int64_t>(rng.below(500));
    const int64_t cap = 4 * (1 + static_cast<int64_t>(rng.below(1500)));
    check_plan(dist::plan_buckets(numels, cap, 4), numels, cap, 4);
  }
}

TEST(DistBucket, PackThenUnpackRestoresEveryTensorExactly) {
  Rng rng(11);
  for (DType dt : {DType::F32, DType::F64}) {
    std::vector<Tensor> src{test::randn({3, 4}, rng, 1.0, dt), test::randn({7}, rng, 1.0, dt),
                            test::randn({2, 2, 5}, rng, 1.0, dt), test::randn({1}, rng, 1.0, dt),
                            test::randn({33, 2}, rng, 1.0, dt)};
    std::vector<int64_t> numels;
    for (const auto& t : src) numels.push_back(t.numel());
    const int64_t esize = static_cast<int64_t>(dtype_size(dt));
    const auto plan = dist::plan_buckets(numels, 30 * esize, esize);
    ASSERT_GT(plan.size(), 2u);
    std::vector<Tensor> dst;
    for (const auto& t : src) dst.push_back(Tensor::zeros(t.shape(), dt));
    for (const Bucket& b : plan) {
      Tensor flat({b.numel}, dt);
      dist::pack_bucket(flat, b, src);
      // The flat buffer holds the slots back to back.
      for (const auto& s : b.slots)
        EXPECT_EQ(std::memcmp(static_cast<const char*>(flat.raw()) + s.offset * esize,
                              src[static_cast<size_t>(s.param)].raw(), static_cast<size_t>(s.numel * esize)),
                  0);
      dist::unpack_bucket(dst, b, flat);
    }
    for (size_t i = 0; i < src.size(); ++i) {
      EXPECT_EQ(dst[i].shape(), src[i].shape());
      EXPECT_EQ(std::memcmp(dst[i].raw(), src[i].raw(), src[i].nbytes()), 0) << "tensor " << i;
    }
  }
}

TEST(DistBucket, UndefinedTensorsPackAsZerosAndSizesAreChecked) {
  const std::vector<Tensor> src{Tensor::full({3}, 2.0), Tensor(), Tensor::full({2}, 5.0)};
  const auto plan = dist::plan_buckets({3, 4, 2}, 1 << 20);
  ASSERT_EQ(plan.size(), 1u);
  Tensor flat = Tensor::full({9}, -1.0);
  dist::pack_bucket(flat, plan[0], src);
  EXPECT_EQ(flat.to_vector(), (std::vector<float>{5, 5, 0, 0, 0, 0, 2, 2, 2}));
  Tensor small({4});
  EXPECT_THROW(dist::pack_bucket(small, plan[0], src), Error);
  EXPECT_THROW(dist::unpack_bucket({Tensor({3}), Tensor({5}), Tensor({2})}, plan[0], flat), Error);
}

TEST(DistBucket, AloneTensorsGetABucketOfTheirOwn) {
  const std::vector<int64_t> numels{3, 4, 5, 6, 7};
  const auto plan = dist::plan_buckets(numels, 1 << 20, 4, {false, false, true, false, false});
  // Reverse order: {4, 3} share one bucket, 2 stands alone, {1, 0} share the last.
  ASSERT_EQ(plan.size(), 3u);
  ASSERT_EQ(plan[0].slots.size(), 2u);
  EXPECT_EQ(plan[0].slots[0].param, 4);
  ASSERT_EQ(plan[1].slots.size(), 1u);
  EXPECT_EQ(plan[1].slots[0].param, 2);
  EXPECT_EQ(plan[1].numel, 5);
  ASSERT_EQ(plan[2].slots.size(), 2u);
  EXPECT_EQ(plan[2].slots[1].param, 0);
  // First and last alone; and the flags are checked.
  const auto ends = dist::plan_buckets(numels, 1 << 20, 4, {true, false, false, false, true});
  ASSERT_EQ(ends.size(), 3u);
  EXPECT_EQ(ends[0].slots.size(), 1u);
  EXPECT_EQ(ends[1].slots.size(), 3u);
  EXPECT_EQ(ends[2].slots.size(), 1u);
  EXPECT_EQ(ends[2].slots[0].param, 0);
  EXPECT_THROW(dist::plan_buckets(numels, 1 << 20, 4, {true}), Error);
}

// The reference: a row counts when some value compares unequal to zero (NaN does).
std::vector<int64_t> naive_nonzero_rows(const Tensor& t) {
  std::vector<int64_t> out;
  const int64_t rows = t.dim(0), cols = t.numel() / rows;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double v = t.dtype() == DType::F64 ? t.data<double>()[r * cols + c] : t.f32()[r * cols + c];
      if (!(v == 0)) {
        out.push_back(r);
        break;
      }
    }
  return out;
}

TEST(DistBucket, NonzeroRowsMatchesTheNaiveScan) {
  Rng rng(23);
  for (DType dt : {DType::F32, DType::F64}) {
    for (int trial = 0; trial < 20; ++trial) {
      const int64_t rows = 1 + static_cast<int64_t>(rng.below(60)), cols = 1 + static_cast<int64_t>(rng.below(70));
      Tensor t = Tensor::zeros({rows, cols}, dt);
      for (int64_t k = 0; k < rows * cols / 7; ++k) {
        const int64_t i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(rows * cols)));
        // Plain values, tiny ones, -0 (not a value), NaN and Inf (values).
        const double choices[] = {rng.normal(), 1e-42, -0.0, std::numeric_limits<double>::quiet_NaN(),
                                  -std::numeric_limits<double>::infinity()};
        const double v = choices[rng.below(5)];
        if (dt == DType::F64) t.data<double>()[i] = v;
        else t.f32()[i] = static_cast<float>(v);
      }
      EXPECT_EQ(dist::nonzero_rows(t), naive_nonzero_rows(t)) << dtype_name(dt) << " " << t.shape_str();
    }
  }
  Tensor z = Tensor::full({4, 3}, -0.0);
  EXPECT_TRUE(dist::nonzero_rows(z).empty());
  z.f32()[11] = 1e-45f;  // the smallest denormal is a value
  EXPECT_EQ(dist::nonzero_rows(z), (std::vector<int64_t>{3}));
  EXPECT_EQ(dist::nonzero_rows(Tensor::full({5}, 2.0)), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(dist::nonzero_rows(Tensor::zeros({2, 2}, DType::I32)), Error);
}

}  // namespace
}  // namespace recur
