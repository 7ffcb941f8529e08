#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "recur/core/allocator.h"
#include "recur/core/rng.h"
#include "recur/core/tape.h"
#include "recur/core/tensor.h"
#include "recur/core/thread_pool.h"
#include "recur/ops/conv.h"
#include "recur/seq/packed.h"
#include "test_util.h"

namespace recur {

// The canary for the GCC 12 AVX-512 miscompile worked around in CMakeLists.txt: a small struct of
// constants passed by value must arrive as written (it did not: {1, 1, 0, 0, 1, 1} became all ones).
struct SixInts {
  int64_t a = 1, b = 1, c = 0, d = 0, e = 1, f = 1;
};
[[gnu::noinline]] std::vector<int64_t> by_value(SixInts s) { return {s.a, s.b, s.c, s.d, s.e, s.f}; }
[[gnu::noinline]] std::vector<int64_t> by_value(ops::Conv2dOptions o) {
  return {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w};
}

struct SixDoubles {
  double a = 1, b = 1, c = 0, d = 0, e = 1, f = 1;
};
[[gnu::noinline]] std::vector<double> by_value(SixDoubles s) { return {s.a, s.b, s.c, s.d, s.e, s.f}; }

TEST(Compiler, PassesSmallStructsByValue) {
  EXPECT_EQ(by_value(SixDoubles{}), (std::vector<double>{1, 1, 0, 0, 1, 1}));
  EXPECT_EQ(by_value(SixInts{}), (std::vector<int64_t>{1, 1, 0, 0, 1, 1}));
  EXPECT_EQ(by_value(SixInts{2, 2, 0, 0, 1, 1}), (std::vector<int64_t>{2, 2, 0, 0, 1, 1}));
  EXPECT_EQ(by_value(ops::Conv2dOptions::square(2)), (std::vector<int64_t>{2, 2, 0, 0, 1, 1}));
}

// The integer form of the dropout test (cpu::dropout_*) decides exactly as uniform_at(seed, i) < p,
// also for p on and next to the 2^-24 grid and at the ends.
TEST(Rng, BelowThresholdMatchesUniformAt) {
  std::vector<float> ps = {0.0f, -0.5f, 1.0f, 1.5f, 0.1f, 0.25f, 0.3f, 0.5f, 0.9f, 0.99999f, 1.0f / 16777216.0f,
                           3.0f / 16777216.0f};
  for (float p : {0.25f, 0.3f, 0.5f, 12345.0f / 16777216.0f}) {
    ps.push_back(std::nextafter(p, 0.0f));
    ps.push_back(std::nextafter(p, 1.0f));
  }
  Rng rng(5);
  for (int k = 0; k < 20; ++k) ps.push_back(static_cast<float>(rng.uniform()));
  int64_t dropped = 0, total = 0;
  for (float p : ps)
    for (uint64_t seed : {uint64_t{1}, uint64_t{0xdeadbeef}})
      for (uint64_t i = 0; i < 20000; ++i) {
        const bool want = uniform_at(seed, i) < p;
        ASSERT_EQ(uniform_bits_at(seed, i) < below_threshold(p), want) << "p " << p << " seed " << seed << " i " << i;
        dropped += want;
        ++total;
      }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, total);
  // A p exactly on the grid: k * 2^-24 itself is not below p, k - 1 is.
  EXPECT_EQ(below_threshold(12345.0f / 16777216.0f), 12345u);
  EXPECT_EQ(below_threshold(std::nextafter(12345.0f / 16777216.0f, 1.0f)), 12346u);
}

TEST(Tensor, ShapeViewRowsClone) {
  Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dim(-1), 3);
  Tensor v = t.view({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  Tensor r = t.rows(1, 2);
  EXPECT_EQ(r.f32()[0], 4.0f);
  r.f32()[0] = 40;
  EXPECT_EQ(t.f32()[3], 40.0f);  // shares storage
  Tensor c = t.clone();
  c.f32()[0] = -1;
  EXPECT_EQ(t.f32()[0], 1.0f);
  EXPECT_THROW(t.view({4, 2}), Error);
  EXPECT_THROW(t.data<int64_t>(), Error);
  EXPECT_THROW(t.rows(1, 3), Error);
}

TEST(Tensor, ErrorsNameShapes) {
  Tensor t = Tensor::zeros({2, 3});
  try {
    t.check_shape({3, 2}, "weight");
    FAIL() << "no throw";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("weight"), std::string::npos) << m;
    EXPECT_NE(m.find("(3, 2)"), std::string::npos) << m;
    EXPECT_NE(m.find("(2, 3)"), std::string::npos) << m;
  }
}

TEST(Allocator, TracksCurrentAndPeak) {
  auto& a = cpu_allocator();
  int64_t before = a.current_bytes();
  a.reset_peak();
  {
    Tensor x({1000});
    EXPECT_GE(a.current_bytes() - before, 4000);
    {
      Tensor y({2000});
      EXPECT_GE(a.peak_bytes() - before, 12000);
    }
  }
  EXPECT_EQ(a.current_bytes(), before);
  EXPECT_GE(a.peak_bytes() - before, 12000);
  EXPECT_EQ(CachingAllocator::round_size(1), 256u);
  EXPECT_EQ(CachingAllocator::round_size(5000), 6144u);
}

TEST(ThreadPool, ParallelForCoversRangeOnce) {
  ThreadPool pool(2);
  std::vector<int> hits(1000, 0);
  pool.parallel_for(1000, 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
  });
  for (int h : hits) EXPECT_EQ(h, 1);
}

// Denormal results flush to zero (and denormal inputs read as zero) on the caller and on every
// pool thread, and set_flush_denormals(false) brings them back everywhere.
TEST(ThreadPool, FlushesDenormalsOnEveryThread) {
#if !defined(__x86_64__) && !defined(__i386__)
  GTEST_SKIP() << "flush-to-zero is set through x86's MXCSR";
#endif
  const int threads_before = num_threads();
  set_num_threads(3);
  auto products = [] {
    std::vector<float> out(static_cast<size_t>(num_threads()), -1.0f);
    thread_pool().run_on_all([&](int i) {
      volatile float a = 1e-30f, b = 1e-10f;  // a * b = 1e-40: below FLT_MIN (1.18e-38)
      out[static_cast<size_t>(i)] = a * b;
    });
    return out;
  };
  const bool was = flush_denormals();
  set_flush_denormals(true);
  for (float v : products()) EXPECT_EQ(v, 0.0f);
  volatile float tiny = std::numeric_limits<float>::denorm_min();
  volatile float one = 1.0f;
  EXPECT_EQ(tiny * one, 0.0f) << "denormals-are-zero on the calling thread";
  set_flush_denormals(false);
  for (float v : products()) {
    EXPECT_GT(v, 0.0f);
    EXPECT_LT(v, std::numeric_limits<float>::min());
  }
  EXPECT_GT(tiny * one, 0.0f);
  set_flush_denormals(was);
  set_num_threads(threads_before);
}

TEST(Tape, ChainAccumulatesAndNoGrad) {
  Tape tape;
  Var w(Tensor::from({1}, {3.0f}), true);
  // y = w * w recorded by hand: dy/dw = 2w
  auto square = [&](const Var& x) {
    Var y = make_output(Tensor::from({1}, {x.value().f32()[0] * x.value().f32()[0]}), tape.needs_grad({&x}));
    if (y.requires_grad())
      tape.record([x, y]() mutable { x.grad().f32()[0] += 2 * x.value().f32()[0] * y.grad().f32()[0]; });
    return y;
  };
  Var y = square(w);
  tape.backward(y);
  EXPECT_FLOAT_EQ(w.grad().f32()[0], 6.0f);
  EXPECT_EQ(tape.size(), 0u);
  {
    NoGrad ng(tape);
    Var z = square(w);
    EXPECT_FALSE(z.requires_grad());
    EXPECT_EQ(tape.size(), 0u);
  }
}

TEST(PackedBatch, LayoutMatchesPyTorch) {
  PackedBatch pb = PackedBatch::from_lengths({2, 4, 1, 4});
  EXPECT_EQ(pb.sorted_indices, (std::vector<int64_t>{1, 3, 0, 2}));
  EXPECT_EQ(pb.batch_sizes, (std::vector<int64_t>{4, 3, 2, 2}));
  EXPECT_EQ(pb.offsets, (std::vector<int64_t>{0, 4, 7, 9, 11}));
  EXPECT_EQ(pb.tokens(), 11);
  EXPECT_EQ(pb.last_row(0), 4 + 2);
  EXPECT_THROW(PackedBatch::from_lengths({3, 0}), Error);
}

TEST(PackedBatch, PackUnpackRoundTrip) {
  Rng rng(1);
  std::vector<int64_t> lengths{3, 5, 1};
  Tensor padded = test::randn({5, 3, 2}, rng);
  PackedBatch pb;
  Tensor packed = pack_padded(padded, lengths, &pb);
  Tensor back = unpack_to_padded(packed, pb);
  for (int64_t t = 0; t < 5; ++t)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t d = 0; d < 2; ++d) {
        float want = t < lengths[static_cast<size_t>(b)] ? padded.f32()[(t * 3 + b) * 2 + d] : 0.0f;
        EXPECT_EQ(back.f32()[(t * 3 + b) * 2 + d], want);
      }
  std::vector<Tensor> seqs;
  for (int64_t b = 0; b < 3; ++b) {
    Tensor s({lengths[static_cast<size_t>(b)], 2});
    for (int64_t t = 0; t < s.dim(0); ++t)
      for (int64_t d = 0; d < 2; ++d) s.f32()[t * 2 + d] = padded.f32()[(t * 3 + b) * 2 + d];
    seqs.push_back(s);
  }
  PackedBatch pb2;
  EXPECT_ALL_CLOSE(pack_sequences(seqs, &pb2), packed, 0, 0);
}

}  // namespace recur
