// recur train / eval on tiny generated Fashion-MNIST-format files: metrics, checkpoints, resume,
// and config errors, through the real binary.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include <algorithm>
#include <cstring>

#include "recur/core/rng.h"
#include "recur/train/safetensors.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

using Out = test::CommandOutput;
Out recur_cmd(const std::string& args) { return test::run_recur(args); }

void put_u32(std::ofstream& f, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

// Images whose class is visible (a bright row at 3 * label), so a tiny model can learn it.
void write_idx(const fs::path& dir, const std::string& prefix, int count, uint64_t seed) {
  Rng rng(seed);
  std::ofstream img(dir / (prefix + "-images-idx3-ubyte"), std::ios::binary);
  std::ofstream lab(dir / (prefix + "-labels-idx1-ubyte"), std::ios::binary);
  put_u32(img, 2051), put_u32(img, static_cast<uint32_t>(count)), put_u32(img, 28), put_u32(img, 28);
  put_u32(lab, 2049), put_u32(lab, static_cast<uint32_t>(count));
  for (int i = 0; i < count; ++i) {
    const int label = static_cast<int>(rng.below(10));
    for (int r = 0; r < 28; ++r)
      for (int c = 0; c < 28; ++c) {
        const unsigned char px = r == 3 * label ? 250 : static_cast<unsigned char>(rng.below(40));
        img.put(static_cast<char>(px));
      }
    lab.put(static_cast<char>(label));
  }
}

class CliTrain : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_cli_train_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    write_idx(dir_ / "data", "train", 300, 1);
    write_idx(dir_ / "data", "t10k", 100, 2);
    std::ofstream(dir_ / "cfg.yaml") << "data:\n  dir: " << (dir_ / "data").string()
                                      << "\nmodel:\n  hidden: 16\n  cell: lstm\ntrain:\n  epochs: 2\n  batch: 32\n"
                                         "  lr: 0.01\n  threads: 1\n";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string cfg() const { return (dir_ / "cfg.yaml").string(); }
  fs::path dir_;
};

std::vector<nlohmann::json> read_metrics(const fs::path& p) {
  std::vector<nlohmann::json> v;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.value("kind", "") == "epoch") v.push_back(j);
  }
  return v;
}

TEST_F(CliTrain, TrainEvalResume) {
  const std::string out = (dir_ / "run").string();
  Out t = recur_cmd("train " + cfg() + " --out " + out);
  ASSERT_EQ(t.status, 0) << t.text;
  EXPECT_NE(t.text.find("test accuracy"), std::string::npos) << t.text;
  EXPECT_TRUE(fs::exists(dir_ / "run" / "best.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "run" / "last.safetensors"));
  auto m = read_metrics(dir_ / "run" / "metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1]["epoch"], 2);
  EXPECT_LT(m[1]["train_loss"].get<double>(), m[0]["train_loss"].get<double>());
  for (const char* k : {"valid_loss", "valid_accuracy", "lr", "tokens_per_s"}) EXPECT_TRUE(m[0].contains(k)) << k;
  // Where the epoch's step time went: one process, so no waiting and no all-reduce.
  const auto& split = m[0]["time_split"];
  EXPECT_GT(split["compute_s"].get<double>(), 0.0) << split;
  EXPECT_GT(split["update_s"].get<double>(), 0.0) << split;
  EXPECT_LT(split["wait_s"].get<double>(), split["compute_s"].get<double>()) << split;
  EXPECT_EQ(split["all_reduce_s"].get<double>(), 0.0) << split;
  EXPECT_LT(split["compute_s"].get<double>() + split["update_s"].get<double>(), m[0]["seconds"].get<double>()) << split;

  Out e = recur_cmd("eval " + cfg() + " --checkpoint " + out + "/best.safetensors --json");
  ASSERT_EQ(e.status, 0) << e.text;
  auto j = nlohmann::json::parse(e.text.substr(e.text.find('{')));
  EXPECT_EQ(j["examples"], 100);
  EXPECT_GE(j["accuracy"].get<double>(), 0.0);

  // Resuming the 2-epoch run with 3 epochs trains exactly one more epoch.
  Out r = recur_cmd("train " + cfg() + " --out " + out + " --set train.epochs=3 --resume " + out + "/last.safetensors");
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("resumed"), std::string::npos) << r.text;
  auto m2 = read_metrics(dir_ / "run" / "metrics.jsonl");
  ASSERT_EQ(m2.size(), 3u);
  EXPECT_EQ(m2[2]["epoch"], 3);
}

// A line of 784 pixels showing class `label` the way write_idx draws it.
std::string image_line(int label) {
  std::string line;
  for (int r = 0; r < 28; ++r)
    for (int c = 0; c < 28; ++c) line += (r == 3 * label ? "250" : "10") + std::string(c + r * 28 < 783 ? " " : "");
  return line;
}

TEST_F(CliTrain, PredictStreamsOneLabelPerLine) {
  const std::string out = (dir_ / "run").string();
  ASSERT_EQ(recur_cmd("train " + cfg() + " --out " + out).status, 0);
  std::ofstream(dir_ / "in.txt") << image_line(1) << "\n\n" << image_line(7) << "\n";
  Out p = recur_cmd("predict --checkpoint " + out + "/best.safetensors --input " + (dir_ / "in.txt").string() + " --json");
  ASSERT_EQ(p.status, 0) << p.text;
  std::vector<nlohmann::json> rows;
  std::stringstream ss(p.text);
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty() && line[0] == '{') rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u) << p.text;
  EXPECT_EQ(rows[0]["line"], 1);
  EXPECT_EQ(rows[1]["line"], 3);
  for (auto& r : rows) {
    EXPECT_GT(r["probability"].get<double>(), 0.0);
    EXPECT_LE(r["probability"].get<double>(), 1.0);
  }
  std::ofstream(dir_ / "bad.txt") << image_line(2) << "\n" << "1 2 3\n";
  Out b = recur_cmd("predict --checkpoint " + out + "/best.safetensors --input " + (dir_ / "bad.txt").string());
  EXPECT_NE(b.status, 0);
  EXPECT_NE(b.text.find("bad.txt:2"), std::string::npos) << b.text;
  EXPECT_NE(b.text.find("784"), std::string::npos) << b.text;
}

TEST_F(CliTrain, PredictRejectsACheckpointFromElsewhere) {
  Out d = recur_cmd("demo --epochs 1 --threads 1 --out " + (dir_ / "demo").string());
  ASSERT_EQ(d.status, 0) << d.text;
  Out p = recur_cmd("predict --checkpoint " + (dir_ / "demo" / "demo.safetensors").string() + " --input /dev/null");
  EXPECT_NE(p.status, 0);
  EXPECT_NE(p.text.find("was not written by recur train"), std::string::npos) << p.text;
}

// The two checkpoints hold the same tensor names with the same bytes.
void expect_same_tensors(const std::string& a, const std::string& b) {
  SafetensorsFile fa = load_safetensors(a), fb = load_safetensors(b);
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  for (auto& [name, t] : fa.tensors) {
    ASSERT_TRUE(fb.tensors.count(name)) << name;
    EXPECT_EQ(std::memcmp(t.raw(), fb.tensors.at(name).raw(), t.nbytes()), 0) << name;
  }
}

// Stopping after epoch 2 and resuming to epoch 3 gives bit-identical weights to 3 epochs in one
// go (constant schedule, so the stopped run's schedule is the same; batches, dropout masks and the
// optimizer state all follow from the seed, the step and the checkpoint).
TEST_F(CliTrain, ResumeIsBitIdenticalToAnUninterruptedRun) {
  const std::string common = " --set train.schedule=constant --set model.dropout=0.3";
  const std::string a = (dir_ / "a").string(), b = (dir_ / "b").string();
  ASSERT_EQ(recur_cmd("train " + cfg() + common + " --set train.epochs=3 --out " + a).status, 0);
  ASSERT_EQ(recur_cmd("train " + cfg() + common + " --set train.epochs=2 --out " + b).status, 0);
  Out r = recur_cmd("train " + cfg() + common + " --set train.epochs=3 --out " + b + " --resume " + b +
                    "/last.safetensors");
  ASSERT_EQ(r.status, 0) << r.text;
  expect_same_tensors(a + "/last.safetensors", b + "/last.safetensors");
}

// train.ema_decay: validation and best.safetensors use the moving average of the weights (after
// one epoch, which always improves on nothing, best holds exactly the averages stored in last);
// last keeps the live weights and the averages, and resuming from it is bit-identical.
TEST_F(CliTrain, MovingAverageIsValidatedKeptAsBestAndResumes) {
  const std::string common = " --set train.schedule=constant --set train.ema_decay=0.9";
  const std::string a = (dir_ / "a").string(), b = (dir_ / "b").string();
  ASSERT_EQ(recur_cmd("train " + cfg() + common + " --set train.epochs=2 --out " + a).status, 0);
  Out first = recur_cmd("train " + cfg() + common + " --set train.epochs=1 --out " + b);
  ASSERT_EQ(first.status, 0) << first.text;
  EXPECT_NE(first.text.find("; live weights: "), std::string::npos) << first.text;
  SafetensorsFile best = load_safetensors(b + "/best.safetensors"), last = load_safetensors(b + "/last.safetensors");
  ASSERT_TRUE(last.metadata.count("ema"));
  size_t compared = 0, differ = 0;
  for (auto& [name, t] : best.tensors) {
    ASSERT_TRUE(last.tensors.count("ema." + name)) << name;
    EXPECT_EQ(std::memcmp(t.raw(), last.tensors.at("ema." + name).raw(), t.nbytes()), 0) << name;
    differ += std::memcmp(t.raw(), last.tensors.at(name).raw(), t.nbytes()) != 0;
    ++compared;
  }
  EXPECT_GT(compared, 0u);
  EXPECT_EQ(differ, compared) << "the averages must differ from the live weights";
  Out r = recur_cmd("train " + cfg() + common + " --set train.epochs=2 --out " + b + " --resume " + b +
                    "/last.safetensors");
  ASSERT_EQ(r.status, 0) << r.text;
  expect_same_tensors(a + "/last.safetensors", b + "/last.safetensors");
  Out bad = recur_cmd("train " + cfg() + " --set train.ema_decay=1 --out " + (dir_ / "c").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("train.ema_decay"), std::string::npos) << bad.text;
}

// The forecasting task end to end on a synthetic daily series with a weekly pattern.
TEST_F(CliTrain, BirthsForecastTrainsAndReportsMaeAgainstSeasonalNaive) {
  fs::create_directories(dir_ / "births" / "data");
  std::ofstream csv(dir_ / "births" / "data" / "data.csv");
  csv << "year,month,date_of_month,day_of_week,births\n";
  // 1985-01-01 was a Tuesday (2); three years of days.
  const int month_len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int weekday = 2;
  Rng rng(3);
  for (int y = 1985; y <= 1987; ++y)
    for (int m = 1; m <= 12; ++m)
      for (int d = 1; d <= month_len[m - 1]; ++d) {
        const double v = 9000 + (weekday >= 6 ? -1500 : 300) + 40 * (y - 1985) + 100 * rng.normal();
        csv << y << "," << m << "," << d << "," << weekday << "," << static_cast<int>(v) << "\n";
        weekday = weekday % 7 + 1;
      }
  csv.close();
  std::ofstream(dir_ / "births.yaml") << "task: births\ndata:\n  dir: " << (dir_ / "births").string()
                                      << "\n  window: 14\n  test_from_year: 1987\nmodel:\n  hidden: 16\n"
                                         "train:\n  epochs: 2\n  threads: 1\n";
  const std::string out = (dir_ / "brun").string();
  Out t = recur_cmd("train " + (dir_ / "births.yaml").string() + " --out " + out);
  ASSERT_EQ(t.status, 0) << t.text;
  EXPECT_NE(t.text.find("test MAE"), std::string::npos) << t.text;
  EXPECT_NE(t.text.find("seasonal naive"), std::string::npos) << t.text;
  auto m = read_metrics(dir_ / "brun" / "metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_GT(m[1]["valid_mae"].get<double>(), 0.0);
  EXPECT_GT(m[1]["valid_naive_mae"].get<double>(), 0.0);
  Out e = recur_cmd("eval " + (dir_ / "births.yaml").string() + " --checkpoint " + out + "/best.safetensors --json");
  ASSERT_EQ(e.status, 0) << e.text;
  auto j = nlohmann::json::parse(e.text.substr(e.text.find('{')));
  EXPECT_EQ(j["examples"], 365 - 7 + 1);
  EXPECT_TRUE(j.contains("mae"));

  // predict: a window's first day and its 14 values -> the next 7 days.
  {
    std::ofstream req(dir_ / "req.txt");
    req << "1987-03-02";
    for (int i = 0; i < 14; ++i) req << ' ' << (i % 7 >= 5 ? 7500 : 9300);
    req << "\n1987-03-02 1 2 3\n";
  }
  Out p = recur_cmd("predict --checkpoint " + out + "/best.safetensors --input " + (dir_ / "req.txt").string() +
                    " --json");
  EXPECT_NE(p.status, 0);  // the second line is short
  ASSERT_NE(p.text.find('{'), std::string::npos) << p.text;
  auto f = nlohmann::json::parse(p.text.substr(p.text.find('{'), p.text.find('\n') - p.text.find('{')));
  ASSERT_EQ(f["forecast"].size(), 7u) << p.text;
  for (auto& v : f["forecast"]) EXPECT_TRUE(v.get<double>() > 0 && v.get<double>() < 20000) << v;
  EXPECT_NE(p.text.find("req.txt:2"), std::string::npos) << p.text;
  EXPECT_NE(p.text.find("window of 14"), std::string::npos) << p.text;
}

// SIGKILL at any moment leaves a loadable last checkpoint (writes are atomic), and training
// resumes from it.
TEST_F(CliTrain, SigkillLeavesALoadableCheckpointAndResumes) {
  const std::string out = (dir_ / "killed").string();
  const std::string cfg_path = cfg(), epochs = "train.epochs=400", patience = "train.patience=1000";
  const std::string log = (dir_ / "killed.log").string();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    execl(RECUR_BINARY, RECUR_BINARY, "train", cfg_path.c_str(), "--set", epochs.c_str(), "--set", patience.c_str(),
          "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Let it write a few epochs' checkpoints, then kill it without warning.
  const fs::path metrics = dir_ / "killed" / "metrics.jsonl";
  for (int i = 0; i < 600 && (!fs::exists(metrics) || read_metrics(metrics).size() < 3); ++i) usleep(50000);
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "training ended before it could be killed";
  SafetensorsFile f = load_safetensors(out + "/last.safetensors");  // throws if torn
  EXPECT_FALSE(f.tensors.empty());
  Out r = recur_cmd("train " + cfg() + " --set train.epochs=400 --set train.patience=1 --out " + out + " --resume " +
                    out + "/last.safetensors");
  EXPECT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("resumed"), std::string::npos) << r.text;
}

// Text classification from your own TSV files: train, eval, predict; a label that occurs only in
// the test file is an error naming file:line.
TEST_F(CliTrain, TextTaskFromTsvFiles) {
  Rng rng(5);
  auto write_tsv = [&](const std::string& name, int n) {
    std::ofstream f(dir_ / name);
    for (int i = 0; i < n; ++i) {
      const bool pos = rng.below(2) == 1;
      f << (pos ? "pos" : "neg") << "\t" << "the film was " << (pos ? "good" : "bad") << " and "
        << (rng.below(2) ? "long" : "short") << "\n";
    }
  };
  write_tsv("train.tsv", 200);
  write_tsv("valid.tsv", 40);
  write_tsv("test.tsv", 40);
  std::ofstream(dir_ / "text.yaml") << "task: text\ndata:\n  train: " << (dir_ / "train.tsv").string()
                                    << "\n  valid: " << (dir_ / "valid.tsv").string() << "\n  test: "
                                    << (dir_ / "test.tsv").string()
                                    << "\n  min_count: 1\nmodel:\n  embed: 8\n  hidden: 8\n  pooling: attention\n"
                                       "train:\n  epochs: 4\n  lr: 0.02\n  threads: 1\n";
  const std::string out = (dir_ / "trun").string(), cfg_path = (dir_ / "text.yaml").string();
  Out t = recur_cmd("train " + cfg_path + " --out " + out);
  ASSERT_EQ(t.status, 0) << t.text;
  Out e = recur_cmd("eval " + cfg_path + " --checkpoint " + out + "/best.safetensors --json");
  ASSERT_EQ(e.status, 0) << e.text;
  auto j = nlohmann::json::parse(e.text.substr(e.text.find('{')));
  EXPECT_EQ(j["examples"], 40);
  EXPECT_GE(j["accuracy"].get<double>(), 0.9) << e.text;
  std::ofstream(dir_ / "in.txt") << "the film was good and long\nthe film was bad and short\n";
  Out p = recur_cmd("predict --checkpoint " + out + "/best.safetensors --input " + (dir_ / "in.txt").string());
  ASSERT_EQ(p.status, 0) << p.text;
  EXPECT_EQ(p.text.rfind("pos\t", 0), 0u) << p.text;
  EXPECT_NE(p.text.find("\nneg\t"), std::string::npos) << p.text;

  // The same with SentencePiece subwords trained on the training file; predict reads the model
  // from the checkpoint.
  const std::string sp_out = (dir_ / "sprun").string();
  Out sp = recur_cmd("train " + cfg_path + " --set data.tokenizer=sentencepiece --set data.vocab_size=40 --out " + sp_out);
  ASSERT_EQ(sp.status, 0) << sp.text;
  Out spp = recur_cmd("predict --checkpoint " + sp_out + "/best.safetensors --input " + (dir_ / "in.txt").string());
  ASSERT_EQ(spp.status, 0) << spp.text;
  EXPECT_EQ(std::count(spp.text.begin(), spp.text.end(), '\n'), 2) << spp.text;

  std::ofstream(dir_ / "test.tsv", std::ios::app) << "meh\tthe film was fine\n";
  Out bad = recur_cmd("train " + cfg_path + " --out " + (dir_ / "trun2").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("test.tsv:41"), std::string::npos) << bad.text;
  EXPECT_NE(bad.text.find("'meh'"), std::string::npos) << bad.text;
}

// SIGINT: training stops after the current step, saves interrupted.safetensors beside `last`,
// exits with 130, and the run resumes from `last`.
TEST_F(CliTrain, SigintSavesAndExitsCleanly) {
  const std::string out = (dir_ / "int").string(), cfg_path = cfg();
  const std::string epochs = "train.epochs=400", patience = "train.patience=1000", log_every = "train.log_every=1";
  const std::string log = (dir_ / "int.log").string();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    execl(RECUR_BINARY, RECUR_BINARY, "train", cfg_path.c_str(), "--set", epochs.c_str(), "--set", patience.c_str(),
          "--set", log_every.c_str(), "--out", out.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const fs::path metrics = dir_ / "int" / "metrics.jsonl";
  for (int i = 0; i < 600 && (!fs::exists(metrics) || read_metrics(metrics).size() < 2); ++i) usleep(50000);
  kill(pid, SIGINT);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st)) << "not a clean exit";
  EXPECT_EQ(WEXITSTATUS(st), 130);
  EXPECT_FALSE(load_safetensors(out + "/interrupted.safetensors").tensors.empty());
  EXPECT_FALSE(load_safetensors(out + "/last.safetensors").tensors.empty());
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("interrupted at epoch"), std::string::npos) << text;
  // Step rows are in metrics.jsonl too.
  std::ifstream mf(metrics);
  std::string line;
  int steps = 0;
  while (std::getline(mf, line)) steps += nlohmann::json::parse(line).value("kind", "") == "step";
  EXPECT_GT(steps, 0);
}

// Early stopping on a chosen metric, and NaN losses: a clear stop naming the step, or skipped.
TEST_F(CliTrain, MetricChoiceAndNonFiniteLosses) {
  Out l = recur_cmd("train " + cfg() + " --set train.metric=loss --out " + (dir_ / "m").string());
  EXPECT_EQ(l.status, 0) << l.text;
  Out bad = recur_cmd("train " + cfg() + " --set train.metric=mae --out " + (dir_ / "m2").string());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("mae needs a forecasting task"), std::string::npos) << bad.text;
  // A learning rate this large drives the loss to inf/NaN within a few steps.
  Out nan = recur_cmd("train " + cfg() + " --set train.optimizer=sgd --set train.lr=3e38 --set train.clip=0 --out " + (dir_ / "n").string());
  EXPECT_NE(nan.status, 0);
  EXPECT_NE(nan.text.find("the loss became"), std::string::npos) << nan.text;
  EXPECT_NE(nan.text.find("step"), std::string::npos) << nan.text;
  Out skip = recur_cmd("train " + cfg() + " --set train.optimizer=sgd --set train.lr=3e38 --set train.clip=0 --set train.skip_nonfinite=true "
                       "--set train.epochs=1 --out " + (dir_ / "s").string());
  EXPECT_NE(skip.text.find("skipping batch"), std::string::npos) << skip.text;
}

TEST_F(CliTrain, ConfigErrorsAreOneClearLine) {
  std::ofstream(dir_ / "bad.yaml") << "model:\n  hiden: 16\n";
  Out b = recur_cmd("train " + (dir_ / "bad.yaml").string());
  EXPECT_NE(b.status, 0);
  EXPECT_NE(b.text.find("model.hiden"), std::string::npos) << b.text;
  EXPECT_NE(b.text.find("did you mean 'model.hidden'"), std::string::npos) << b.text;
  Out s = recur_cmd("train " + cfg() + " --set model.hidden=abc");
  EXPECT_NE(s.status, 0);
  EXPECT_NE(s.text.find("model.hidden"), std::string::npos) << s.text;
  Out p = recur_cmd("train " + cfg() + " --print-config");
  EXPECT_EQ(p.status, 0) << p.text;
  EXPECT_NE(p.text.find("hidden: 16"), std::string::npos) << p.text;
}

TEST_F(CliTrain, MissingDataNamesTheFile) {
  fs::remove(dir_ / "data" / "t10k-labels-idx1-ubyte");
  Out t = recur_cmd("train " + cfg() + " --out " + (dir_ / "run2").string());
  EXPECT_NE(t.status, 0);
  EXPECT_NE(t.text.find("t10k-labels"), std::string::npos) << t.text;
}

}  // namespace
}  // namespace recur
