// Drives the real recur binary: --version, bench JSON keys, bad flags, the demo and its checkpoint.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "recur/train/safetensors.h"
#include "test_util.h"

namespace recur {
namespace {

using test::run_recur;

TEST(Cli, Version) {
  auto r = run_recur("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.text.find("recur 0."), std::string::npos) << r.text;
}

TEST(Cli, BenchRnnJsonHasTheDocumentedKeys) {
  auto r = run_recur("bench rnn --cell gru --input 8 --hidden 16 --steps 6 --batch 5 --lengths uniform:2:6 --repeats 1 "
              "--threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.text;
  auto j = nlohmann::json::parse(r.text.substr(r.text.find('{')));
  for (const char* key : {"cell", "input", "hidden", "steps", "batch", "tokens", "fwd_ms", "fwdbwd_ms", "fwd_gflops",
                          "fwdbwd_gflops", "sgemm_gflops", "peak_bytes"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["cell"], "gru");
  EXPECT_EQ(j["batch"], 5);
  EXPECT_LE(j["tokens"].get<int64_t>(), 30);
  EXPECT_GE(j["tokens"].get<int64_t>(), 10);
  EXPECT_GT(j["peak_bytes"].get<int64_t>(), 0);
}

TEST(Cli, BenchConvJsonAndBadShapes) {
  auto r = run_recur("bench conv --batch 3 --channels 2 --out 4 --height 9 --width 7 --kernel 3 --stride 2 --padding 1 "
                     "--repeats 1 --threads 1 --json");
  ASSERT_EQ(r.status, 0) << r.text;
  auto j = nlohmann::json::parse(r.text.substr(r.text.find('{')));
  for (const char* key : {"op", "batch", "channels", "out", "height", "width", "kernel", "fwd_ms", "fwdbwd_ms",
                          "fwd_gflops", "fwdbwd_gflops", "sgemm_gflops", "fwd_frac_sgemm", "peak_bytes", "device"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["op"], "conv2d");
  EXPECT_EQ(j["height"], 9);
  EXPECT_GT(j["fwd_ms"].get<double>(), 0.0);
  EXPECT_GT(j["peak_bytes"].get<int64_t>(), 0);
  // Output 5x4, 4 channels, 3 images, 2*3*3 taps each: 2 * 240 * 18 FLOPs forward.
  EXPECT_NEAR(j["fwd_gflops"].get<double>() * j["fwd_ms"].get<double>() * 1e6, 2.0 * 240 * 18, 1e-6 * 8640);
  auto big = run_recur("bench conv --height 4 --width 4 --kernel 7 --repeats 1 --threads 1");
  EXPECT_NE(big.status, 0);
  EXPECT_NE(big.text.find("is larger than the padded input"), std::string::npos) << big.text;
}

TEST(Cli, BadFlagsGiveClearErrors) {
  auto r = run_recur("bench rnn --lengths uniform:9:3 --steps 5 --repeats 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.text.find("--lengths"), std::string::npos) << r.text;
  auto c = run_recur("bench rnn --cell lstmm");
  EXPECT_NE(c.status, 0);
  EXPECT_NE(c.text.find("lstmm"), std::string::npos) << c.text;
}

// --device: a bad name is refused with the accepted spellings; without a GPU, cuda is refused with
// a message naming the device; with one, the GPU bench reports its device and paths.
TEST(Cli, DeviceFlag) {
  auto bad = run_recur("bench rnn --device tpu --repeats 1");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("expected cpu, cuda or cuda:N"), std::string::npos) << bad.text;
  auto g = run_recur("bench rnn --device cuda --input 8 --hidden 16 --steps 5 --batch 3 --repeats 1 --json");
  if (!cuda::available()) {
    EXPECT_NE(g.status, 0);
    EXPECT_NE(g.text.find("cuda:0"), std::string::npos) << g.text;
  } else {
    ASSERT_EQ(g.status, 0) << g.text;
    auto j = nlohmann::json::parse(g.text.substr(g.text.find('{')));
    EXPECT_EQ(j["device"], "cuda:0");
    EXPECT_TRUE(j.contains("rnn_path") && j.contains("rnn_backward_path") && j.contains("gpu"));
  }
}

TEST(Cli, DemoTrainsAndWritesALoadableCheckpoint) {
  auto dir = std::filesystem::temp_directory_path() / ("recur_demo_" + std::to_string(::getpid()));
  auto r = run_recur("demo --epochs 2 --threads 1 --out " + dir.string());
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("epoch  2"), std::string::npos) << r.text;
  SafetensorsFile f = load_safetensors((dir / "demo.safetensors").string());
  EXPECT_TRUE(f.tensors.count("rnn.weight_ih_l0"));
  EXPECT_TRUE(f.tensors.count("head.weight"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace recur
