// Drives the real recur binary: --version, bench JSON keys, bad flags, the demo and its checkpoint.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/train/safetensors.h"

namespace recur {
namespace {

struct CliRun {
  int status;
  std::string out;
};

CliRun run_cli(const std::string& args) {
  std::string cmd = std::string(RECUR_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  EXPECT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(Cli, Version) {
  CliRun r = run_cli("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("recur 0."), std::string::npos) << r.out;
}

TEST(Cli, BenchRnnJsonHasTheDocumentedKeys) {
  CliRun r = run_cli("bench rnn --cell gru --input 8 --hidden 16 --steps 6 --batch 5 --lengths uniform:2:6 --repeats 1 "
              "--threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  for (const char* key : {"cell", "input", "hidden", "steps", "batch", "tokens", "fwd_ms", "fwdbwd_ms", "fwd_gflops",
                          "fwdbwd_gflops", "sgemm_gflops", "peak_bytes"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["cell"], "gru");
  EXPECT_EQ(j["batch"], 5);
  EXPECT_LE(j["tokens"].get<int64_t>(), 30);
  EXPECT_GE(j["tokens"].get<int64_t>(), 10);
  EXPECT_GT(j["peak_bytes"].get<int64_t>(), 0);
}

TEST(Cli, BadFlagsGiveClearErrors) {
  CliRun r = run_cli("bench rnn --lengths uniform:9:3 --steps 5 --repeats 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--lengths"), std::string::npos) << r.out;
  CliRun c = run_cli("bench rnn --cell lstmm");
  EXPECT_NE(c.status, 0);
  EXPECT_NE(c.out.find("lstmm"), std::string::npos) << c.out;
}

TEST(Cli, DemoTrainsAndWritesALoadableCheckpoint) {
  auto dir = std::filesystem::temp_directory_path() / ("recur_demo_" + std::to_string(::getpid()));
  CliRun r = run_cli("demo --epochs 2 --threads 1 --out " + dir.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("epoch  2"), std::string::npos) << r.out;
  SafetensorsFile f = load_safetensors((dir / "demo.safetensors").string());
  EXPECT_TRUE(f.tensors.count("rnn.weight_ih_l0"));
  EXPECT_TRUE(f.tensors.count("head.weight"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace recur
