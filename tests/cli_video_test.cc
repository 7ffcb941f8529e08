// recur train / eval / predict for `task: video` through the real binary, on tiny real video files
// written by the test (a bright square moving left or right over 16x16 frames: only the order of
// the frames tells the classes apart); bad input: an empty class folder, a truncated video
// (an error naming it, or skipped with a warning), predict from stdin.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/core/rng.h"
#include "recur/data/video.h"
#include "recur/train/safetensors.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;

// A square of 4x4 pixels moving 2 pixels a frame, left (label 0) or right (1), on 16x16 frames.
data::Clip moving_square(Rng& rng, int64_t label) {
  data::Clip c;
  c.frames = 4 + static_cast<int64_t>(rng.below(3));
  c.channels = 1, c.height = 16, c.width = 16;
  c.pixels.assign(static_cast<size_t>(c.frames * 256), 0);
  const int64_t row = static_cast<int64_t>(rng.below(12));
  const int64_t span = 2 * (c.frames - 1), start = static_cast<int64_t>(rng.below(static_cast<uint64_t>(12 - span + 1)));
  for (int64_t t = 0; t < c.frames; ++t) {
    const int64_t col = start + 2 * (label == 1 ? t : c.frames - 1 - t);
    for (int64_t y = row; y < row + 4; ++y)
      for (int64_t x = col; x < col + 4; ++x) c.pixels[static_cast<size_t>(t * 256 + y * 16 + x)] = 255;
  }
  return c;
}

class CliVideo : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data::video_support()) GTEST_SKIP() << "built without OpenCV";
    Rng rng(4);
    const char* names[2] = {"left", "right"};
    for (const char* split : {"train", "valid", "test"}) {
      const int n = std::string(split) == "train" ? 48 : 12;
      for (int i = 0; i < n; ++i) {
        const int64_t label = i % 2;
        const fs::path p = dir_.path() / "clips" / split / names[label] / fmt::format("{:03d}.avi", i);
        fs::create_directories(p.parent_path());
        data::write_video(p.string(), moving_square(rng, label), 10.0, "FFV1");
      }
    }
    dir_.write("video.yaml", "task: video\n"
                             "data:\n  dir: " + dir_.file("clips") + "\n  height: 16\n  width: 16\n"
                             "model:\n  cnn_channels: [8]\n  cnn_groups: 2\n  frame_features: 16\n  hidden: 16\n"
                             "train:\n  epochs: 25\n  batch: 8\n  lr: 0.01\n  warmup_steps: 5\n  threads: 1\n"
                             "  patience: 0\n");
  }
  std::string cfg() const { return dir_.file("video.yaml"); }
  test::TempDir dir_{"cli_video"};
};

TEST_F(CliVideo, TrainEvalPredict) {
  auto r = test::run_recur("train " + cfg() + " --out " + dir_.file("out"));
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("48 training / 12 validation / 12 test clips, 2 classes"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("test: accuracy "), std::string::npos) << r.text;
  const std::string ckpt = dir_.file("out/best.safetensors");
  ASSERT_TRUE(fs::exists(ckpt));

  auto e = test::run_recur("eval " + cfg() + " --checkpoint " + ckpt + " --json");
  ASSERT_EQ(e.status, 0) << e.text;
  const nlohmann::json j = test::last_json_line(e.text);
  ASSERT_TRUE(j.contains("accuracy")) << e.text;
  EXPECT_EQ(j["clips"], 12);
  EXPECT_GE(j["accuracy"].get<double>(), 0.9) << e.text;

  // One file: its class and probability; a folder: one line per video, in order.
  const std::string one = dir_.file("clips/test/right/001.avi");
  auto p = test::run_recur("predict --checkpoint " + ckpt + " --input " + one + " --json");
  ASSERT_EQ(p.status, 0) << p.text;
  const auto pj = nlohmann::json::parse(p.text.substr(p.text.find('{')));
  EXPECT_EQ(pj["file"], one);
  EXPECT_TRUE(pj["label"] == "left" || pj["label"] == "right");
  EXPECT_GT(pj["probability"].get<double>(), 0.0);
  auto d = test::run_recur("predict --checkpoint " + ckpt + " --input " + dir_.file("clips/test/left"));
  ASSERT_EQ(d.status, 0) << d.text;
  int lines_out = 0, left = 0;
  std::istringstream dl(d.text);
  for (std::string l; std::getline(dl, l);)
    if (l.find(".avi\t") != std::string::npos) ++lines_out, left += l.find("\tleft\t") != std::string::npos;
  EXPECT_EQ(lines_out, 6) << d.text;
  EXPECT_GE(left, 5) << d.text;

  // stdin is not a video.
  auto s = test::run_recur("predict --checkpoint " + ckpt + " < /dev/null");
  EXPECT_NE(s.status, 0);
  EXPECT_NE(s.text.find("--input FILE or --input DIR"), std::string::npos) << s.text;

  // A truncated video: an error naming it by default, a warning and the rest with skip.
  const std::string bad = dir_.file("clips/test/left/999.avi");
  {
    std::ifstream in(one, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(bad, std::ios::binary) << bytes.substr(0, 40);
  }
  auto be = test::run_recur("eval " + cfg() + " --checkpoint " + ckpt);
  EXPECT_NE(be.status, 0);
  EXPECT_NE(be.text.find("999.avi"), std::string::npos) << be.text;
  auto bs = test::run_recur("eval " + cfg() + " --checkpoint " + ckpt + " --set data.on_bad_video=skip");
  ASSERT_EQ(bs.status, 0) << bs.text;
  EXPECT_NE(bs.text.find("warning: skipping " + bad), std::string::npos) << bs.text;
  EXPECT_NE(bs.text.find("(12 clips)"), std::string::npos) << bs.text;
}

// A CNN from another checkpoint, frozen: the new model's CNN weights are exactly the old ones, and
// its recurrent part still learns.
TEST_F(CliVideo, PretrainedFrozenCnn) {
  auto r = test::run_recur("train " + cfg() + " --out " + dir_.file("a") + " --set train.epochs=2");
  ASSERT_EQ(r.status, 0) << r.text;
  const std::string first = dir_.file("a/best.safetensors");
  auto f = test::run_recur("train " + cfg() + " --out " + dir_.file("b") + " --set train.epochs=3 --set model.cnn_checkpoint=" +
                           first + " --set model.freeze_cnn=true");
  ASSERT_EQ(f.status, 0) << f.text;
  EXPECT_NE(f.text.find("CNN frozen"), std::string::npos) << f.text;
  const SafetensorsFile a = load_safetensors(first), b = load_safetensors(dir_.file("b/last.safetensors"));
  int cnn = 0, moved = 0;
  for (const auto& [name, t] : a.tensors) {
    if (!b.tensors.count(name)) continue;
    const Tensor& u = b.tensors.at(name);
    bool same = u.numel() == t.numel();
    for (int64_t i = 0; same && i < t.numel(); ++i) same = t.f32()[i] == u.f32()[i];
    if (name.rfind("cnn.", 0) == 0) {
      ++cnn;
      EXPECT_TRUE(same) << name;
    } else {
      moved += !same;
    }
  }
  EXPECT_GT(cnn, 0);
  EXPECT_GT(moved, 0);
  auto bad = test::run_recur("train " + cfg() + " --out " + dir_.file("c") + " --set model.cnn_checkpoint=" + cfg());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.text.find("video.yaml"), std::string::npos) << bad.text;
}

TEST_F(CliVideo, BadDataIsAClearError) {
  fs::create_directories(dir_.path() / "clips" / "train" / "up");
  auto r = test::run_recur("train " + cfg() + " --out " + dir_.file("out"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.text.find("up"), std::string::npos) << r.text;
  EXPECT_FALSE(fs::exists(dir_.path() / "out" / "best.safetensors"));
  fs::remove_all(dir_.path() / "clips" / "train" / "up");
  auto k = test::run_recur("train " + cfg() + " --out " + dir_.file("out") + " --set model.cnn_groups=3");
  EXPECT_NE(k.status, 0);
  EXPECT_NE(k.text.find("3 norm groups"), std::string::npos) << k.text;
  auto m = test::run_recur("train " + cfg() + " --out " + dir_.file("out") + " --set data.dir=" + dir_.file("nowhere"));
  EXPECT_NE(m.status, 0);
  EXPECT_NE(m.text.find("nowhere"), std::string::npos) << m.text;
}

// An idx file of Fashion-MNIST's layout: big-endian magic and sizes, then the bytes.
void write_idx(const fs::path& path, const std::vector<uint32_t>& header, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  for (uint32_t v : header)
    for (int shift = 24; shift >= 0; shift -= 8) out.put(static_cast<char>((v >> shift) & 0xff));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A fake Fashion-MNIST split: label 0 is a horizontal 4x20 bar, label 1 a vertical one, each at a
// random spot of the 28x28 image.
void write_bars(const fs::path& dir, const std::string& prefix, uint32_t n, Rng& rng) {
  std::vector<uint8_t> pixels(static_cast<size_t>(n) * 784, 0), labels(n);
  for (uint32_t i = 0; i < n; ++i) {
    labels[i] = static_cast<uint8_t>(i % 2);
    const int64_t h = i % 2 ? 20 : 4, w = i % 2 ? 4 : 20;
    const int64_t top = static_cast<int64_t>(rng.below(static_cast<uint64_t>(28 - h + 1)));
    const int64_t left = static_cast<int64_t>(rng.below(static_cast<uint64_t>(28 - w + 1)));
    for (int64_t y = top; y < top + h; ++y)
      for (int64_t x = left; x < left + w; ++x) pixels[static_cast<size_t>(i * 784 + y * 28 + x)] = 200;
  }
  write_idx(dir / (prefix + "-images-idx3-ubyte"), {2051, n, 28, 28}, pixels);
  write_idx(dir / (prefix + "-labels-idx1-ubyte"), {2049, n}, labels);
}

// data.images: Fashion-MNIST images as one-frame clips (no video files, so no OpenCV needed): each
// item lands at a seeded spot of a black canvas shrunk to the frame size, and the CNN learns them.
TEST(CliVideoImages, FashionMnistAsOneFrameClips) {
  test::TempDir dir("cli_video_images");
  Rng rng(9);
  fs::create_directories(dir.path() / "fashion");
  write_bars(dir.path() / "fashion", "train", 400, rng);
  write_bars(dir.path() / "fashion", "t10k", 100, rng);
  const std::string cfg = dir.write("frames.yaml", "task: video\n"
                                                   "data:\n  images: fashion-mnist\n  dir: " + dir.file("fashion") +
                                                   "\n  canvas: 56\n  height: 28\n  width: 28\n"
                                                   "model:\n  cnn_channels: [8]\n  cnn_groups: 2\n  frame_features: 16\n"
                                                   "  temporal: mean\n  dropout: 0.0\n"
                                                   "train:\n  epochs: 6\n  batch: 16\n  lr: 0.005\n  warmup_steps: 5\n"
                                                   "  threads: 1\n  patience: 0\n");
  auto r = test::run_recur("train " + cfg + " --out " + dir.file("out"));
  ASSERT_EQ(r.status, 0) << r.text;
  EXPECT_NE(r.text.find("Fashion-MNIST as one-frame clips: 360 training / 40 validation / 100 test"), std::string::npos)
      << r.text;
  auto e = test::run_recur("eval " + cfg + " --checkpoint " + dir.file("out/best.safetensors") + " --json");
  ASSERT_EQ(e.status, 0) << e.text;
  const nlohmann::json j = test::last_json_line(e.text);
  ASSERT_TRUE(j.contains("accuracy")) << e.text;
  EXPECT_EQ(j["clips"], 100);
  EXPECT_GE(j["accuracy"].get<double>(), 0.9) << e.text;  // chance: 0.5

  auto rgb = test::run_recur("train " + cfg + " --out " + dir.file("rgb") + " --set data.grey=false");
  EXPECT_NE(rgb.status, 0);
  EXPECT_NE(rgb.text.find("Fashion-MNIST is grey; set data.grey: true"), std::string::npos) << rgb.text;
  auto odd = test::run_recur("train " + cfg + " --out " + dir.file("odd") + " --set data.canvas=60");
  EXPECT_NE(odd.status, 0);
  EXPECT_NE(odd.text.find("data.canvas 60 must be a whole multiple of data.height 28"), std::string::npos) << odd.text;
  EXPECT_FALSE(fs::exists(dir.file("odd/best.safetensors")));
}

}  // namespace
}  // namespace recur
