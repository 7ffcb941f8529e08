// Data-parallel training through the real binary: `mpirun -np 2 recur train` with global batch B
// gives the same parameters as one process with batch B, and as one process accumulating two
// micro-batches of B/2 — for a seq2vec (text classification) and a seq2seq (translation) config;
// the same over NCCL on GPUs (CliDistGpu). Skipped when the build has no MPI communicator or mpirun is missing.
// Processes under mpirun run with leak detection off (-x ASAN_OPTIONS=detect_leaks=0): OpenMPI keeps
// allocations in plugins it unloads, which LeakSanitizer reports as leaks it cannot attribute.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <signal.h>

#include "recur/core/cuda.h"
#include "recur/core/rng.h"
#include "recur/dist/communicator.h"
#include "recur/train/safetensors.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

// Training runs in a scratch folder, and the comparison of their weights.
class CliTrainRuns : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_dist_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Trains `config` with the given overrides, under mpirun when np > 1; returns the final weights.
  std::map<std::string, Tensor> train(const std::string& config, const std::string& sets, int np,
                                      const std::string& out, const std::string& comm = "mpi") {
    std::string cmd = "train " + path(config) + " " + sets + " --out " + path(out);
    test::CommandOutput r;
    if (np > 1) {
      const std::string line = fmt::format(
          "timeout -k 5 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -x ASAN_OPTIONS=detect_leaks=0 -np {} {} {} 2>&1 </dev/null", np,
          RECUR_BINARY, cmd);
      FILE* p = popen(line.c_str(), "r");
      char buf[4096];
      size_t n;
      while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) r.text.append(buf, n);
      const int status = p ? pclose(p) : -1;
      r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      // The ranks really formed one job (not np independent copies of the run).
      EXPECT_NE(r.text.find(fmt::format("over {} ranks ({}", np, comm)), std::string::npos) << r.text;
    } else {
      r = test::run_recur(cmd);
      // --devices with several entries: one job of replicas as threads of this process.
      if (comm == "threads" || comm == "nccl-threads") {
        EXPECT_NE(r.text.find(fmt::format("over 2 ranks ({})", comm == "threads" ? "threads" : "nccl")),
                  std::string::npos)
            << r.text;
      }
    }
    EXPECT_EQ(r.status, 0) << r.text;
    return load_safetensors(path(out + "/last.safetensors")).tensors;
  }

  // Every parameter within 1e-5 relative (of the tensor's largest magnitude) of the reference.
  static void expect_same(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& ref,
                          const std::string& what) {
    int compared = 0;
    for (const auto& [name, t] : ref) {
      if (name.rfind("optim.", 0) == 0 || t.dtype() != DType::F32) continue;
      ASSERT_TRUE(a.count(name)) << what << ": " << name;
      const Tensor& u = a.at(name);
      ASSERT_EQ(u.shape(), t.shape()) << name;
      double scale = 0, diff = 0;
      for (int64_t i = 0; i < t.numel(); ++i) {
        scale = std::max(scale, static_cast<double>(std::abs(t.f32()[i])));
        diff = std::max(diff, static_cast<double>(std::abs(u.f32()[i] - t.f32()[i])));
      }
      EXPECT_LE(diff, 1e-5 * scale + 1e-7) << what << ": " << name << " differs by " << diff << " (scale " << scale << ")";
      ++compared;
    }
    EXPECT_GT(compared, 3) << what;
  }
  // A text classification task (400 training examples) in text.yaml. Each example also holds six
  // words drawn from 3,000, so the embedding has over 1,024 rows and the gradient reducer takes
  // its row-sparse path (a batch of 8 touches a few dozen rows).
  void write_text_task() {
    Rng rng(3);
    for (const char* split : {"train", "valid", "test"}) {
      std::ofstream f(dir_ / (std::string(split) + ".tsv"));
      const int n = std::string(split) == "train" ? 400 : 20;
      for (int i = 0; i < n; ++i) {
        const bool pos = rng.below(2) == 1;
        f << (pos ? "pos" : "neg") << "\tthe film was " << (pos ? "good" : "bad");
        for (uint64_t k = rng.below(6); k > 0; --k) f << (rng.below(2) ? " and long" : " but short");
        for (int k = 0; k < 6; ++k) f << " w" << rng.below(3000);
        f << "\n";
      }
    }
    std::ofstream(dir_ / "text.yaml") << "task: text\ndata:\n  train: " << path("train.tsv") << "\n  valid: "
                                      << path("valid.tsv") << "\n  test: " << path("test.tsv")
                                      << "\n  min_count: 1\nmodel:\n  embed: 8\n  hidden: 8\n  cell: lstm\n"
                                         "train:\n  epochs: 1\n  lr: 0.01\n  threads: 1\n  schedule: constant\n";
  }
  // A translation task (reverse a string of a-e) in rev.yaml.
  void write_rev_task() {
    Rng rng(4);
    for (const char* split : {"train", "valid"}) {
      std::ofstream f(dir_ / (std::string(split) + ".tsv"));
      const int n = std::string(split) == "train" ? 400 : 10;
      for (int i = 0; i < n; ++i) {
        std::string s, t;
        const int len = 1 + static_cast<int>(rng.below(6));
        for (int k = 0; k < len; ++k) {
          const char c = static_cast<char>('a' + rng.below(5));
          s = s + c;
          t = c + t;
        }
        f << s << "\t" << t << "\n";
      }
    }
    std::ofstream(dir_ / "rev.yaml") << "task: translation\ndata:\n  train: " << path("train.tsv") << "\n  valid: "
                                     << path("valid.tsv")
                                     << "\n  source_tokenizer: char\n  target_tokenizer: char\n"
                                        "model:\n  embed: 8\n  target_embed: 8\n  encoder_hidden: 8\n  decoder_hidden: 16\n"
                                        "  dropout: 0.0\n  input_feeding: true\n"
                                        "train:\n  epochs: 1\n  lr: 0.01\n  threads: 1\n  schedule: constant\n"
                                        "  warmup_steps: 0\n  label_smoothing: 0.1\n";
  }
  fs::path dir_;
};

class CliDist : public CliTrainRuns {
 protected:
  void SetUp() override {
    if (!dist::mpi_compiled()) GTEST_SKIP() << "this build has no MPI communicator";
    if (!have_mpirun()) GTEST_SKIP() << "mpirun is not installed (scripts/setup.sh installs it)";
    CliTrainRuns::SetUp();
  }
};

TEST_F(CliDist, Seq2VecTwoRanksEqualOneProcessAndAccumulation) {
  write_text_task();
  // 400 examples in global batches of 8: 50 steps.
  const auto one = train("text.yaml", "--set train.batch=8", 1, "one");
  const auto acc = train("text.yaml", "--set train.batch=4 --set train.accumulate=2", 1, "acc");
  const auto two = train("text.yaml", "--set train.batch=8", 2, "two");
  expect_same(acc, one, "accumulate 2");
  expect_same(two, one, "2 ranks");
  // The embedding was large enough for the row-sparse reduction (dist::ReducerOptions).
  int64_t rows = 0;
  for (const auto& [name, t] : one)
    if (name.find("embed") != std::string::npos && t.ndim() == 2) rows = std::max(rows, t.dim(0));
  EXPECT_GE(rows, 1024);
}

// The NCCL communicator on GPUs (run by scripts/gpu-check.sh). With one GPU: a world of one
// through the same training loop gives what the local communicator gives. With two or more:
// `mpirun -np 2` over NCCL equals one process (NCCL refuses two ranks on one GPU, so that case
// skips with fewer than two GPUs).
class CliDistGpu : public CliDist {
 protected:
  void SetUp() override {
    if (!dist::nccl_compiled()) GTEST_SKIP() << "this build has no NCCL communicator";
    RECUR_REQUIRE_GPU();
    CliDist::SetUp();
  }
};

TEST_F(CliDistGpu, NcclWorldOfOneEqualsLocal) {
  write_text_task();
  const auto local = train("text.yaml", "--set train.batch=8 --device cuda --set train.communicator=local", 1, "local");
  const auto nccl = train("text.yaml", "--set train.batch=8 --device cuda --set train.communicator=nccl", 1, "nccl");
  expect_same(nccl, local, "nccl, world of one");
}

TEST_F(CliDistGpu, NcclTwoRanksEqualOneProcess) {
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs (NCCL refuses two ranks on one GPU)";
  write_text_task();
  const auto one = train("text.yaml", "--set train.batch=8 --device cuda", 1, "one");
  const auto two = train("text.yaml", "--set train.batch=8 --device cuda --set train.communicator=nccl", 2, "two",
                         "nccl");
  expect_same(two, one, "2 ranks over NCCL");
}

TEST_F(CliDist, Seq2SeqTwoRanksEqualOneProcessAndAccumulation) {
  write_rev_task();
  const auto one = train("rev.yaml", "--set train.batch=8", 1, "one");
  const auto acc = train("rev.yaml", "--set train.batch=4 --set train.accumulate=2", 1, "acc");
  const auto two = train("rev.yaml", "--set train.batch=8", 2, "two");
  expect_same(acc, one, "accumulate 2");
  expect_same(two, one, "2 ranks");
  // Shards weighted by the ranks' measured speeds: another split of the same global batches, so
  // (without dropout) the same parameters up to summation order.
  const auto speed = train("rev.yaml", "--set train.batch=8 --set train.balance=speed", 2, "speed");
  expect_same(speed, one, "2 ranks balanced by speed");
  // Rank 0's epoch row says where its step time went, the all-reduce included, and how long each
  // rank computed.
  const nlohmann::json row = test::last_json_line(test::read_file(path("two/metrics.jsonl")));
  ASSERT_TRUE(row.contains("time_split")) << row;
  EXPECT_GT(row["time_split"]["all_reduce_s"].get<double>(), 0.0) << row;
  EXPECT_GT(row["time_split"]["compute_s"].get<double>(), 0.0) << row;
  ASSERT_EQ(row["rank_compute_s"].size(), 2u) << row;
  for (const auto& secs : row["rank_compute_s"]) EXPECT_GT(secs.get<double>(), 0.0) << row;
}

// Under mpirun, --devices gives each process the entry of its local rank; too short a list is
// refused by the rank left without a device.
TEST_F(CliDist, DevicesUnderMpirunMapLocalRanks) {
  write_text_task();
  const auto one = train("text.yaml", "--set train.batch=8", 1, "one");
  const auto two = train("text.yaml", "--set train.batch=8 --devices cpu,cpu", 2, "two");
  expect_same(two, one, "2 ranks with --devices");
  const std::string line = fmt::format(
      "timeout -k 5 60 mpirun --allow-run-as-root --oversubscribe --bind-to none -x ASAN_OPTIONS=detect_leaks=0 -np 2 "
      "{} train {} --devices cpu --out {} 2>&1 </dev/null",
      RECUR_BINARY, path("text.yaml"), path("short"));
  FILE* p = popen(line.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string text;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  const int status = pclose(p);
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text;
  EXPECT_NE(text.find("local rank 1 of 2 on its machine, but only 1 device(s) are listed"), std::string::npos) << text;
}

// Killing one of two ranks mid-training: the job ends non-zero, soon, naming the dead rank.
TEST_F(CliDist, KillingARankMidTrainingEndsTheJobNamingIt) {
  {
    std::ofstream f(dir_ / "train.tsv");
    for (int i = 0; i < 3000; ++i) f << "a b c\tc b a\n";
  }
  std::ofstream(dir_ / "long.yaml") << "task: translation\ndata:\n  train: " << path("train.tsv") << "\n  valid: "
                                    << path("train.tsv")
                                    << "\nmodel:\n  embed: 8\n  target_embed: 8\n  encoder_hidden: 8\n  decoder_hidden: 16\n"
                                       "train:\n  epochs: 50\n  batch: 4\n  threads: 1\n  log_every: 1\n"
                                       "  comm_timeout: 20\n";
  // Start the job, wait for its first step, then SIGKILL the process of rank 1.
  std::ofstream(dir_ / "kill.sh")
      << "cd " << dir_.string() << "\n"
      << "mpirun --allow-run-as-root --oversubscribe --bind-to none -x ASAN_OPTIONS=detect_leaks=0 -np 2 " << RECUR_BINARY
      << " train long.yaml --out run > job.log 2>&1 &\n"
         "job=$!\n"
         "for i in $(seq 300); do grep -q ' step ' job.log && break; sleep 0.1; done\n"
         "for p in $(pgrep -f 'train long.yaml'); do\n"
         "  if tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then kill -9 $p; fi\n"
         "done\n"
         "start=$(date +%s)\n"
         "wait $job; echo \"exit=$? after=$(( $(date +%s) - start ))\" >> job.log\n";
  ASSERT_EQ(std::system(("timeout -k 5 90 bash " + path("kill.sh")).c_str()), 0);
  std::ifstream in(dir_ / "job.log");
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(log.find(" step "), std::string::npos) << log;
  EXPECT_EQ(log.find("exit=0 "), std::string::npos) << log;
  EXPECT_NE(log.find("exit="), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1"), std::string::npos) << log;
  const auto at = log.find("after=");
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_LE(std::stoi(log.substr(at + 6)), 25) << log;
}

// Replicas as threads of one process (`recur train --devices cpu,cpu`, dist::ThreadWorld): the
// same equivalences as under mpirun, with no MPI at all.
using CliThreads = CliTrainRuns;

TEST_F(CliThreads, Seq2VecTwoReplicasEqualOneProcess) {
  write_text_task();
  const auto one = train("text.yaml", "--set train.batch=8", 1, "one");
  const auto two = train("text.yaml", "--set train.batch=8 --devices cpu,cpu", 1, "two", "threads");
  expect_same(two, one, "2 replicas as threads");
}

TEST_F(CliThreads, Seq2SeqTwoReplicasEqualOneProcess) {
  write_rev_task();
  const auto one = train("rev.yaml", "--set train.batch=8", 1, "one");
  const auto two = train("rev.yaml", "--set train.batch=8 --devices cpu,cpu", 1, "two", "threads");
  expect_same(two, one, "2 replicas as threads");
  const auto speed = train("rev.yaml", "--set train.batch=8 --set train.balance=speed --devices cpu,cpu", 1, "speed",
                           "threads");
  expect_same(speed, one, "2 replicas balanced by speed");
  // Only rank 0 wrote metrics: one epoch row, with both replicas' compute time.
  int epochs = 0;
  nlohmann::json row;
  std::istringstream lines(test::read_file(path("two/metrics.jsonl")));
  for (std::string line; std::getline(lines, line);)
    if (nlohmann::json::parse(line).value("kind", "") == "epoch") {
      ++epochs;
      row = nlohmann::json::parse(line);
    }
  EXPECT_EQ(epochs, 1);
  ASSERT_EQ(row["rank_compute_s"].size(), 2u) << row;
  EXPECT_GT(row["time_split"]["all_reduce_s"].get<double>(), 0.0) << row;
}

TEST_F(CliThreads, BadDeviceListsAndCommunicatorsAreRefused) {
  write_text_task();
  const std::string base = "train " + path("text.yaml") + " --out " + path("bad") + " ";
  const std::vector<std::pair<std::string, std::string>> cases{
      {"--device cpu --devices cpu,cpu", "not both"},
      {"--devices cpu,,cpu", "an empty entry"},
      {"--devices cpu,tpu:0", "tpu"},
      {"--devices cpu,cpu --set train.communicator=mpi", "replicas as threads of this process"},
      {"--devices cpu,cpu --set train.communicator=nccl", "nccl needs every --devices entry to be a different GPU"},
      {"--set train.communicator=threads", "needs --devices"},
  };
  for (const auto& [args, message] : cases) {
    const test::CommandOutput r = test::run_recur(base + args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_NE(r.text.find(message), std::string::npos) << args << "\n" << r.text;
  }
  EXPECT_FALSE(fs::exists(path("bad/last.safetensors")));
}

// Ctrl-C stops every replica at the same step; rank 0 saves, and the process exits with 130.
TEST_F(CliThreads, SigintStopsEveryReplicaAndSaves) {
  write_rev_task();
  const std::string cfg = path("rev.yaml"), out = path("int"), log = path("int.log");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!freopen(log.c_str(), "w", stderr)) _exit(126);
    execl(RECUR_BINARY, RECUR_BINARY, "train", cfg.c_str(), "--set", "train.epochs=500", "--set", "train.batch=4",
          "--set", "train.log_every=1", "--devices", "cpu,cpu", "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  for (int i = 0; i < 600 && test::read_file(log).find(" step ") == std::string::npos; ++i) usleep(50000);
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  const std::string text = test::read_file(log);
  ASSERT_TRUE(WIFEXITED(st)) << text;
  EXPECT_EQ(WEXITSTATUS(st), 130) << text;
  EXPECT_NE(text.find("over 2 ranks (threads)"), std::string::npos) << text;
  EXPECT_NE(text.find("interrupted at epoch"), std::string::npos) << text;
  EXPECT_FALSE(load_safetensors(out + "/interrupted.safetensors").tensors.empty());
}

// Two replicas on GPUs in one process (run by scripts/gpu-check.sh): on one GPU, twice, with the
// gradients staged through the host (train.communicator=threads); on two GPUs over NCCL.
class CliThreadsGpu : public CliTrainRuns {
 protected:
  void SetUp() override {
    RECUR_REQUIRE_GPU();
    CliTrainRuns::SetUp();
  }
};

TEST_F(CliThreadsGpu, TwoReplicasOnOneGpuEqualOneProcess) {
  write_text_task();
  const auto one = train("text.yaml", "--set train.batch=8 --device cuda:0", 1, "one");
  const auto two =
      train("text.yaml", "--set train.batch=8 --devices cuda:0,cuda:0 --set train.communicator=threads", 1, "two", "threads");
  expect_same(two, one, "2 replicas on one GPU");
}

TEST_F(CliThreadsGpu, NcclTwoGpusInOneProcessEqualOneProcess) {
  if (!dist::nccl_compiled()) GTEST_SKIP() << "this build has no NCCL communicator";
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs (NCCL takes one rank per GPU)";
  write_rev_task();
  const auto one = train("rev.yaml", "--set train.batch=8 --device cuda:0", 1, "one");
  const auto two = train("rev.yaml", "--set train.batch=8 --devices cuda:0,cuda:1", 1, "two", "nccl-threads");
  expect_same(two, one, "2 GPUs over NCCL in one process");
}

}  // namespace
}  // namespace recur
