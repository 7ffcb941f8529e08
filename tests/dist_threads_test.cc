// dist::ThreadWorld, the "threads" communicator of data-parallel replicas in one process: every
// collective against a naive computation, odd sizes and exact integers; a failing rank, a rank
// that never arrives, and ranks calling different collectives all end the others' waits with an
// error naming them; and ThreadPoolScope gives each rank a pool of its own.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "recur/core/cuda.h"
#include "recur/core/thread_pool.h"
#include "recur/dist/thread_world.h"
#include "test_util.h"

namespace recur {
namespace {

// Rank r's value at element i (distinct per rank and element, not symmetric in r).
double value(int r, int64_t i) { return std::sin(0.37 * static_cast<double>(i) + 1.3 * r) * (r + 1); }

TEST(DistThreads, AllReduceSumsScaledContributionsForEverySize) {
  constexpr int kRanks = 3;
  // 0 and 1 leave some ranks with empty slices; 7 splits unevenly; 100,003 spans several pool chunks.
  for (int64_t n : {0, 1, 7, 100003}) {
    for (DType dt : {DType::F32, DType::F64}) {
      for (dist::ReduceOp op : {dist::ReduceOp::Sum, dist::ReduceOp::Avg}) {
        std::vector<Tensor> out(kRanks);
        dist::ThreadWorld world(kRanks);
        world.run(2, [&](int r) {
          auto comm = world.communicator(r);
          Tensor t = Tensor::zeros({n}, dt);
          for (int64_t i = 0; i < n; ++i) {
            if (dt == DType::F32) t.f32()[i] = static_cast<float>(value(r, i));
            else t.data<double>()[i] = value(r, i);
          }
          comm->all_reduce(t, op, 0.5 * (r + 1));  // each rank its own scale
          out[static_cast<size_t>(r)] = t;
        });
        for (int r = 0; r < kRanks; ++r) {
          for (int64_t i = 0; i < n; ++i) {
            double want = 0;
            for (int k = 0; k < kRanks; ++k) want += 0.5 * (k + 1) * value(k, i);
            if (op == dist::ReduceOp::Avg) want /= kRanks;
            const double got = out[static_cast<size_t>(r)].item(i);
            ASSERT_NEAR(got, want, (dt == DType::F32 ? 2e-6 : 1e-14) * (1 + std::abs(want)))
                << "n " << n << " rank " << r << " element " << i;
          }
        }
      }
    }
  }
}

TEST(DistThreads, IntegerAllReduceBroadcastAndAllGatherAreExact) {
  // Beyond 2^53: a detour through double would round these.
  const int64_t big = (int64_t{1} << 60) + 12345;
  dist::ThreadWorld world(2);
  std::vector<std::vector<int64_t>> sums(2), bcast(2), gathered(2);
  std::vector<std::vector<double>> gathered_d(2);
  world.run(1, [&](int r) {
    auto comm = world.communicator(r);
    Tensor s({3}, DType::I64);
    for (int64_t i = 0; i < 3; ++i) s.data<int64_t>()[i] = big + r * 1000 + i;
    comm->all_reduce(s);
    Tensor b({2}, DType::I64);
    b.data<int64_t>()[0] = r == 1 ? big + 7 : -1;
    b.data<int64_t>()[1] = r == 1 ? -big : -1;
    comm->broadcast(b, 1);
    Tensor i32({2}, DType::I32);
    i32.data<int32_t>()[0] = 100 + r;
    i32.data<int32_t>()[1] = -r;
    comm->all_reduce(i32);
    sums[static_cast<size_t>(r)] = {s.data<int64_t>()[0], s.data<int64_t>()[1], s.data<int64_t>()[2],
                                    i32.data<int32_t>()[0], i32.data<int32_t>()[1]};
    bcast[static_cast<size_t>(r)] = {b.data<int64_t>()[0], b.data<int64_t>()[1]};
    gathered[static_cast<size_t>(r)] = comm->all_gather(std::vector<int64_t>{big + r, -r});
    gathered_d[static_cast<size_t>(r)] = comm->all_gather(0.25 + r);
    comm->barrier();
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(sums[static_cast<size_t>(r)],
              (std::vector<int64_t>{2 * big + 1000, 2 * big + 1002, 2 * big + 1004, 201, -1}));
    EXPECT_EQ(bcast[static_cast<size_t>(r)], (std::vector<int64_t>{big + 7, -big}));
    EXPECT_EQ(gathered[static_cast<size_t>(r)], (std::vector<int64_t>{big, 0, big + 1, -1}));
    EXPECT_EQ(gathered_d[static_cast<size_t>(r)], (std::vector<double>{0.25, 1.25}));
  }
}

TEST(DistThreads, AFailingRankEndsTheOthersWaitAndIsRethrown) {
  dist::ThreadWorld world(3);
  std::vector<std::string> seen(3);
  try {
    world.run(1, [&](int r) {
      auto comm = world.communicator(r);
      Tensor t = Tensor::zeros({4});
      comm->all_reduce(t);  // everyone gets through the first one
      if (r == 1) RECUR_FAIL("bad line 7 in data.tsv");
      try {
        comm->all_reduce(t);
      } catch (const Error& e) {
        seen[static_cast<size_t>(r)] = e.what();
        throw;
      }
    });
    FAIL() << "run() returned normally";
  } catch (const Error& e) {
    // The cause, not a consequence.
    EXPECT_NE(std::string(e.what()).find("bad line 7 in data.tsv"), std::string::npos) << e.what();
  }
  for (int r : {0, 2}) {
    const std::string& m = seen[static_cast<size_t>(r)];
    EXPECT_NE(m.find("rank 1 failed"), std::string::npos) << m;
    EXPECT_NE(m.find("all_reduce #2"), std::string::npos) << m;
    EXPECT_NE(m.find("bad line 7"), std::string::npos) << m;
  }
  EXPECT_NE(world.failure().find("bad line 7"), std::string::npos);
}

TEST(DistThreads, ARankThatNeverArrivesTimesOutNamingIt) {
  dist::CommOptions opt;
  opt.timeout_s = 0.3;
  dist::ThreadWorld world(2, opt);
  std::atomic<bool> release{false};
  std::string late;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    world.run(1, [&](int r) {
      auto comm = world.communicator(r);
      comm->all_gather(1.0);
      if (r == 1) {  // busy elsewhere until rank 0 has given up
        while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        try {
          comm->barrier();
        } catch (const Error& e) {
          late = e.what();
          throw;
        }
        return;
      }
      try {
        Tensor t = Tensor::zeros({1000});
        comm->all_reduce(t);
      } catch (...) {
        release = true;
        throw;
      }
    });
    FAIL() << "run() returned normally";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rank 0 of 2 (threads): all_reduce #2 (3.9 KiB) did not complete"), std::string::npos) << m;
    EXPECT_NE(m.find("not arrived: rank 1 (last entered all_gather #1"), std::string::npos) << m;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 5.0);
  // The late rank learns at its next collective that the job is over.
  EXPECT_NE(late.find("did not complete"), std::string::npos) << late;
}

TEST(DistThreadsDeathTest, ARankStuckOutsideCollectivesEndsTheProcess) {
  // Rank 1 fails; rank 0 never calls another collective. The process cannot wait for it forever.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        dist::CommOptions opt;
        opt.timeout_s = 0.3;
        dist::ThreadWorld world(2, opt);
        world.run(1, [&](int r) {
          if (r == 1) RECUR_FAIL("rank 1 broke");
          for (;;) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        });
      },
      ::testing::ExitedWithCode(1), "rank 1 broke.*1 of 2 ranks \\(threads\\) still running 0 s after rank 1 failed");
}

TEST(DistThreads, RanksInDifferentCollectivesAreToldSo) {
  dist::ThreadWorld world(2);
  std::vector<std::string> seen(2);
  EXPECT_THROW(world.run(1,
                         [&](int r) {
                           auto comm = world.communicator(r);
                           try {
                             if (r == 0) comm->barrier();
                             else comm->all_gather(std::vector<double>{1, 2});
                           } catch (const Error& e) {
                             seen[static_cast<size_t>(r)] = e.what();
                             throw;
                           }
                         }),
               Error);
  for (const auto& m : seen) {
    EXPECT_NE(m.find("different collectives"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 0 in barrier #1"), std::string::npos) << m;
    EXPECT_NE(m.find("rank 1 in all_gather #1 (16 B)"), std::string::npos) << m;
  }
}

TEST(DistThreads, DifferentSizesOfOneCollectiveAreRejected) {
  dist::ThreadWorld world(2);
  EXPECT_THROW(world.run(1,
                         [&](int r) {
                           auto comm = world.communicator(r);
                           Tensor t = Tensor::zeros({r == 0 ? 4 : 5});
                           comm->all_reduce(t);
                         }),
               Error);
  EXPECT_NE(world.failure().find("different sizes"), std::string::npos) << world.failure();
}

TEST(DistThreads, EachRankDrivesItsOwnThreadPool) {
  // Two ranks run pooled loops at the same time (one shared pool would refuse the second caller),
  // each on a pool of its own size; the process-wide pool is left alone.
  const int global = num_threads();
  dist::ThreadWorld world(2);
  std::vector<int> sizes(2);
  std::vector<double> sums(2);
  world.run(1, [&](int r) {
    set_num_threads(r + 2);
    sizes[static_cast<size_t>(r)] = num_threads();
    double total = 0;
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<double> part(static_cast<size_t>(num_threads()), 0.0);
      std::vector<double> xs(10000);
      thread_pool().parallel_for(10000, 100, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) xs[static_cast<size_t>(i)] = static_cast<double>(i % 7);
      });
      for (double x : xs) total += x;
    }
    sums[static_cast<size_t>(r)] = total;
  });
  EXPECT_EQ(sizes, (std::vector<int>{2, 3}));
  double want = 0;
  for (int i = 0; i < 10000; ++i) want += i % 7;
  EXPECT_EQ(sums, (std::vector<double>{200 * want, 200 * want}));
  EXPECT_EQ(num_threads(), global);
}

TEST(DistThreadsGpu, DeviceTensorsAreStagedThroughTheHost) {
  RECUR_REQUIRE_GPU();
  dist::ThreadWorld world(2);
  std::vector<std::vector<float>> out(2);
  world.run(1, [&](int r) {
    auto comm = world.communicator(r);
    Tensor t = Tensor::from({3}, {1.0f + r, 2.0f, -3.0f * r}).to(Device::cuda(0));
    comm->all_reduce(t, dist::ReduceOp::Sum, r == 0 ? 1.0 : 2.0);
    Tensor h = t.to(Device::cpu());
    out[static_cast<size_t>(r)] = {h.f32()[0], h.f32()[1], h.f32()[2]};
  });
  for (const auto& o : out) EXPECT_EQ(o, (std::vector<float>{5.0f, 6.0f, -6.0f}));
}

}  // namespace
}  // namespace recur
