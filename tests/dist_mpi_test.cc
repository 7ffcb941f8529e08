// Multi-process tests: tests/dist/dist_worker.cc under `mpirun -np N` (skipped when mpirun or the
// MPI communicator is missing). Collectives, the gradient reducer against the single-process
// gradient, and the fault paths: a rank killed mid-run, a rank that stops taking part, a rank
// that fails with an error. Each run is bounded by `timeout`, so a regression fails, never hangs.
// Processes under mpirun run with leak detection off (-x ASAN_OPTIONS=detect_leaks=0): OpenMPI keeps
// allocations in plugins it unloads, which LeakSanitizer reports as leaks it cannot attribute.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "recur/dist/communicator.h"

namespace recur {
namespace {

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

#define REQUIRE_MPI()                                                                          \
  do {                                                                                         \
    if (!dist::mpi_compiled()) GTEST_SKIP() << "this build has no MPI communicator";           \
    if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed (scripts/setup.sh installs it)"; \
  } while (0)

struct MpiRun {
  int status = -1;  // exit status of mpirun (124: killed by the outer timeout)
  std::string output;
  double seconds = 0;
};

MpiRun mpirun(int np, const std::string& args, int limit_s = 60) {
  const std::string cmd = fmt::format(
      "timeout -k 5 {} mpirun --allow-run-as-root --oversubscribe --bind-to none -x ASAN_OPTIONS=detect_leaks=0 -np {} {} {} 2>&1 </dev/null", limit_s, np,
      RECUR_DIST_WORKER, args);
  MpiRun run;
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return run;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) run.output.append(buf.data(), n);
  const int st = pclose(p);
  run.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

TEST(DistMpi, Collectives) {
  REQUIRE_MPI();
  const MpiRun r = mpirun(2, "collectives");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "collectives ok rank 0")) << r.output;
  EXPECT_TRUE(contains(r.output, "collectives ok rank 1")) << r.output;
}

TEST(DistMpi, ReducerEqualsSingleProcessGradient) {
  REQUIRE_MPI();
  for (int np : {2, 3}) {
    const MpiRun r = mpirun(np, "reducer");
    EXPECT_EQ(r.status, 0) << r.output;
    for (int rank = 0; rank < np; ++rank)
      EXPECT_TRUE(contains(r.output, fmt::format("reducer ok rank {}", rank))) << r.output;
    // The empty-shard case ran (batch of np - 1 sequences: the last rank had none).
    EXPECT_TRUE(contains(r.output, fmt::format("rank {}: batch {} shard 0 tokens", np - 1, np - 1))) << r.output;
    // The row-sparse case sent only the touched rows (0..np, 20, 22, ..., and the NaN in row 30: 2 np + 2
    // of 40, 3 values each) and the 5 biases.
    EXPECT_TRUE(contains(r.output, fmt::format("rank 0: sparse table sent {} of 125 elements", 3 * (2 * np + 2) + 5)))
        << r.output;
  }
}

TEST(DistFault, KilledRankIsNamedAndTheJobFails) {
  REQUIRE_MPI();
  const MpiRun r = mpirun(2, "kill --timeout 5", 40);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 124) << "the job hung: " << r.output;
  EXPECT_LT(r.seconds, 20) << r.output;
  // The survivor's own report (recur checks local peers every 100 ms) or mpirun's; both name rank 1.
  EXPECT_TRUE(contains(r.output, "rank 1 (pid") || contains(r.output, "process rank 1")) << r.output;
  EXPECT_FALSE(contains(r.output, "FAIL")) << r.output;
}

TEST(DistFault, KilledRankIsNamedBySurvivorWhenTheLauncherKeepsItAlive) {
  REQUIRE_MPI();
  // With --enable-recovery mpirun does not kill the survivor, so only recur's own detection can
  // end it; a wrapper shell prints each rank's real exit status (mpirun's is 0 in this mode).
  const std::string cmd = fmt::format(
      "timeout -k 5 40 mpirun --allow-run-as-root --oversubscribe --bind-to none -x ASAN_OPTIONS=detect_leaks=0 --enable-recovery -np 2 sh -c "
      "'{} kill --timeout 5; echo \"exit status of rank $OMPI_COMM_WORLD_RANK: $?\"' 2>&1 </dev/null",
      RECUR_DIST_WORKER);
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!contains(out, "exit status of rank"))
    GTEST_SKIP() << "this mpirun does not run ranks under --enable-recovery:\n" << out;
  EXPECT_TRUE(contains(out, "exit status of rank 0: 1")) << out;
  EXPECT_TRUE(contains(out, "has exited while this rank waited in all_reduce #5")) << out;
  EXPECT_TRUE(contains(out, "rank 0 of 2")) << out;
  EXPECT_TRUE(contains(out, ": rank 1 (pid")) << out;
  EXPECT_LT(secs, 20) << out;
}

TEST(DistFault, StalledRankTimesOutWithItsName) {
  REQUIRE_MPI();
  const MpiRun r = mpirun(2, "hang --timeout 2", 40);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 124) << "the job hung: " << r.output;
  EXPECT_LT(r.seconds, 20) << r.output;
  EXPECT_TRUE(contains(r.output, "all_reduce #2")) << r.output;
  EXPECT_TRUE(contains(r.output, "did not complete within 2 s")) << r.output;
  EXPECT_TRUE(contains(r.output, "rank 1 did not answer")) << r.output;
}

TEST(DistFault, ErrorOnOneRankEndsTheJobWithoutWaitingForTheTimeout) {
  REQUIRE_MPI();
  // The worker's timeout is 60 s; the job must end long before, because the failing rank ends it.
  const MpiRun r = mpirun(2, "error --timeout 60", 40);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 124) << "the job hung: " << r.output;
  EXPECT_LT(r.seconds, 20) << r.output;
  EXPECT_TRUE(contains(r.output, "a bad data line (simulated)")) << r.output;
}

}  // namespace
}  // namespace recur
