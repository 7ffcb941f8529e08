// Video files (recur/data/video.h): write/read round trips (MJPG lossy, FFV1 exact), sampling,
// grey vs RGB, resizing, folder and CSV datasets, bad input, and the Moving Fashion generator.
// Without OpenCV only the "clear error" test runs; every other test skips.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "recur/core/error.h"
#include "recur/data/video.h"
#include "test_util.h"

namespace recur {
namespace {

namespace fs = std::filesystem;
using data::Clip;
using data::VideoReadOptions;

#define RECUR_REQUIRE_VIDEO()                                                        \
  do {                                                                               \
    if (!data::video_support()) GTEST_SKIP() << "recur was built without OpenCV"; \
  } while (0)

// T frames of H x W: a bright 8x8 square on black whose left edge is at x = 2 + step * t. Colour
// clips paint it R=200, G=60, B=120.
Clip square_clip(int64_t T, int64_t H, int64_t W, int64_t C, int64_t step = 2) {
  Clip c;
  c.frames = T;
  c.channels = C;
  c.height = H;
  c.width = W;
  c.pixels.assign(static_cast<size_t>(T * C * H * W), 0);
  const uint8_t colour[3] = {200, 60, 120};
  for (int64_t t = 0; t < T; ++t)
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t y = H / 2 - 4; y < H / 2 + 4; ++y)
        for (int64_t x = 2 + step * t; x < 10 + step * t && x < W; ++x)
          c.pixels[static_cast<size_t>(((t * C + ch) * H + y) * W + x)] = C == 1 ? 220 : colour[ch];
  return c;
}

// Intensity-weighted centroid and mass of frame t, channel 0.
struct Moments {
  double mass = 0, x = 0, y = 0, angle = 0;  // angle: principal axis, degrees, y pointing down
};
Moments moments(const Clip& c, int64_t t) {
  Moments m;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  const uint8_t* p = c.pixels.data() + static_cast<size_t>(t * c.channels * c.height * c.width);
  for (int64_t y = 0; y < c.height; ++y)
    for (int64_t x = 0; x < c.width; ++x) {
      const double v = p[y * c.width + x];
      m.mass += v;
      sx += v * static_cast<double>(x);
      sy += v * static_cast<double>(y);
      sxx += v * static_cast<double>(x * x);
      syy += v * static_cast<double>(y * y);
      sxy += v * static_cast<double>(x * y);
    }
  if (m.mass == 0) return m;
  m.x = sx / m.mass;
  m.y = sy / m.mass;
  const double mu20 = sxx / m.mass - m.x * m.x, mu02 = syy / m.mass - m.y * m.y, mu11 = sxy / m.mass - m.x * m.y;
  m.angle = 0.5 * std::atan2(2 * mu11, mu20 - mu02) * 180.0 / M_PI;
  return m;
}

double mean_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::abs(int{a[i]} - int{b[i]});
  return s / static_cast<double>(a.size());
}

// Whether this OpenCV can write FFV1 (lossless) into .avi.
bool ffv1_supported(const test::TempDir& dir) {
  try {
    data::write_video(dir.file("probe_ffv1.avi"), square_clip(2, 16, 16, 1), 10.0, "FFV1");
    return true;
  } catch (const Error&) {
    return false;
  }
}

VideoReadOptions read_opts(int64_t h, int64_t w, bool grey = true) {
  VideoReadOptions o;
  o.height = h;
  o.width = w;
  o.grey = grey;
  return o;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(VideoNoSupport, EveryFunctionThrowsAClearError) {
  if (data::video_support()) GTEST_SKIP() << "built with OpenCV";
  const std::string e1 = error_of([] { data::read_video("x.avi", VideoReadOptions{}); });
  EXPECT_NE(e1.find("without OpenCV"), std::string::npos) << e1;
  EXPECT_NE(e1.find("RECUR_OPENCV"), std::string::npos) << e1;
  EXPECT_NE(error_of([] { data::load_video_dataset("d", VideoReadOptions{}, data::OnBadVideo::Error, nullptr); })
                .find("without OpenCV"),
            std::string::npos);
  EXPECT_NE(error_of([] { data::write_video("x.avi", square_clip(1, 8, 8, 1)); }).find("without OpenCV"),
            std::string::npos);
  EXPECT_NE(error_of([] { data::make_moving_fashion(data::MovingFashionOptions{}, nullptr); }).find("without OpenCV"),
            std::string::npos);
  EXPECT_EQ(data::moving_fashion_class_names().size(), 8u);
}

TEST(Video, MjpgRoundTripKeepsFramesShapeAndPixels) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_mjpg");
  const Clip src = square_clip(12, 48, 64, 1);
  const std::string path = dir.file("square.avi");
  data::write_video(path, src);
  const Clip got = data::read_video(path, read_opts(48, 64));
  EXPECT_EQ(got.frames, 12);
  EXPECT_EQ(got.channels, 1);
  EXPECT_EQ(got.height, 48);
  EXPECT_EQ(got.width, 64);
  EXPECT_EQ(got.path, path);
  ASSERT_EQ(got.pixels.size(), src.pixels.size());
  EXPECT_LT(mean_abs_diff(got.pixels, src.pixels), 3.0);  // MJPG is lossy
  for (int64_t t = 0; t < 12; ++t) EXPECT_NEAR(moments(got, t).x, moments(src, t).x, 0.5) << "frame " << t;
  // Only the file itself: the temporary name was renamed into place.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Video, Ffv1IsLosslessForGreyAndColour) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_ffv1");
  if (!ffv1_supported(dir)) GTEST_SKIP() << "this OpenCV cannot write FFV1";
  const Clip grey = square_clip(5, 32, 40, 1);
  data::write_video(dir.file("g.avi"), grey, 10.0, "FFV1");
  EXPECT_EQ(data::read_video(dir.file("g.avi"), read_opts(32, 40)).pixels, grey.pixels);
  Clip colour = square_clip(5, 32, 40, 3);
  for (size_t i = 0; i < colour.pixels.size(); ++i) colour.pixels[i] = static_cast<uint8_t>(colour.pixels[i] + i % 7);
  data::write_video(dir.file("c.avi"), colour, 10.0, "FFV1");
  EXPECT_EQ(data::read_video(dir.file("c.avi"), read_opts(32, 40, false)).pixels, colour.pixels);
}

TEST(Video, StrideAndMaxFramesSampleTheStream) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_stride");
  const Clip src = square_clip(12, 32, 64, 1, 4);  // left edge at 2 + 4t
  data::write_video(dir.file("s.avi"), src);
  VideoReadOptions o = read_opts(32, 64);
  o.stride = 3;
  Clip got = data::read_video(dir.file("s.avi"), o);
  ASSERT_EQ(got.frames, 4);  // frames 0, 3, 6, 9
  for (int64_t k = 0; k < 4; ++k) EXPECT_NEAR(moments(got, k).x, moments(src, 3 * k).x, 0.5) << k;
  o.max_frames = 2;
  got = data::read_video(dir.file("s.avi"), o);
  ASSERT_EQ(got.frames, 2);
  EXPECT_NEAR(moments(got, 1).x, moments(src, 3).x, 0.5);
  o.stride = 1;
  o.max_frames = 50;  // more than there are
  EXPECT_EQ(data::read_video(dir.file("s.avi"), o).frames, 12);
}

TEST(Video, GreyAndRgbChannels) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_rgb");
  const Clip src = square_clip(3, 32, 32, 3);
  data::write_video(dir.file("c.avi"), src);
  const Clip rgb = data::read_video(dir.file("c.avi"), read_opts(32, 32, false));
  ASSERT_EQ(rgb.channels, 3);
  ASSERT_EQ(rgb.pixels.size(), src.pixels.size());
  // Inside the square (row 16, column 5 of frame 0), each plane holds its own colour: RGB order.
  const size_t plane = 32 * 32, at = 16 * 32 + 5;
  EXPECT_NEAR(rgb.pixels[at], 200, 12);
  EXPECT_NEAR(rgb.pixels[plane + at], 60, 12);
  EXPECT_NEAR(rgb.pixels[2 * plane + at], 120, 12);
  const Clip grey = data::read_video(dir.file("c.avi"), read_opts(32, 32, true));
  ASSERT_EQ(grey.channels, 1);
  ASSERT_EQ(grey.pixels.size(), plane * 3);
  EXPECT_NEAR(grey.pixels[at], 0.299 * 200 + 0.587 * 60 + 0.114 * 120, 12);
  // A grey clip read as RGB gives three equal planes.
  data::write_video(dir.file("g.avi"), square_clip(2, 32, 32, 1));
  const Clip g3 = data::read_video(dir.file("g.avi"), read_opts(32, 32, false));
  EXPECT_NEAR(g3.pixels[at], g3.pixels[plane + at], 2);
  EXPECT_NEAR(g3.pixels[at], g3.pixels[2 * plane + at], 2);
}

TEST(Video, FilesOfDifferentSizesAreResizedToOneShape) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_sizes");
  fs::create_directories(dir.path() / "a");
  data::write_video(dir.file("a/small.avi"), square_clip(4, 48, 64, 1));
  data::write_video(dir.file("a/large.avi"), square_clip(6, 96, 128, 1, 4));
  const data::VideoDataset ds =
      data::load_video_dataset(dir.str(), read_opts(24, 32), data::OnBadVideo::Error, nullptr);
  ASSERT_EQ(ds.clips.size(), 2u);
  for (const Clip& c : ds.clips) {
    EXPECT_EQ(c.height, 24);
    EXPECT_EQ(c.width, 32);
    EXPECT_EQ(static_cast<int64_t>(c.pixels.size()), c.frames * 24 * 32);
  }
  EXPECT_EQ(ds.clips[0].frames, 6);  // large.avi sorts first
  // Frame 1 of the large clip: square from x = 6 to 14 of 128 -> centre 10 * 32/128 = 2.5 - 0.5.
  EXPECT_NEAR(moments(ds.clips[0], 1).x, 10.0 * 32 / 128 - 0.5, 0.5);
}

// Two classes, two videos each, written into class folders.
void write_two_classes(const test::TempDir& dir) {
  fs::create_directories(dir.path() / "data" / "walk");
  fs::create_directories(dir.path() / "data" / "jump");
  data::write_video(dir.file("data/walk/w1.avi"), square_clip(4, 32, 32, 1, 1));
  data::write_video(dir.file("data/walk/w0.avi"), square_clip(5, 32, 32, 1, 2));
  data::write_video(dir.file("data/jump/j0.avi"), square_clip(3, 32, 32, 1, 3));
  data::write_video(dir.file("data/jump/j1.AVI"), square_clip(6, 32, 32, 1, 1));
  dir.write("data/jump/notes.txt", "not a video\n");
}

TEST(Video, FolderAndCsvDatasetsGiveTheSameClips) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_dataset");
  write_two_classes(dir);
  const VideoReadOptions o = read_opts(16, 16);
  const data::VideoDataset a = data::load_video_dataset(dir.file("data"), o, data::OnBadVideo::Error, nullptr);
  EXPECT_EQ(a.class_names, (std::vector<std::string>{"jump", "walk"}));
  ASSERT_EQ(a.clips.size(), 4u);
  const std::vector<int64_t> frames = {3, 6, 5, 4}, labels = {0, 0, 1, 1};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(a.clips[i].frames, frames[i]) << i;
    EXPECT_EQ(a.clips[i].label, labels[i]) << i;
  }
  // The same list as CSV: header, relative paths (against the CSV's folder), a blank line, spaces.
  const std::string csv = dir.write("lists/all.csv",
                                    "path,label\n../data/jump/j0.avi,jump\n../data/jump/j1.AVI, jump\n\n"
                                    "../data/walk/w0.avi,walk\n" +
                                        dir.file("data/walk/w1.avi") + ",walk\n");
  const data::VideoDataset b = data::load_video_dataset(csv, o, data::OnBadVideo::Error, nullptr);
  EXPECT_EQ(b.class_names, a.class_names);
  ASSERT_EQ(b.clips.size(), a.clips.size());
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(b.clips[i].label, a.clips[i].label) << i;
    EXPECT_EQ(b.clips[i].pixels, a.clips[i].pixels) << i;
  }
  // A given class list (e.g. the training split's) decides the label numbers.
  const std::vector<std::string> given = {"walk", "jump", "sit"};
  const data::VideoDataset c = data::load_video_dataset(csv, o, data::OnBadVideo::Error, nullptr, &given);
  EXPECT_EQ(c.class_names, given);
  EXPECT_EQ(c.clips[0].label, 1);
  EXPECT_EQ(c.clips[3].label, 0);
  const data::VideoDataset d = data::load_video_dataset(dir.file("data"), o, data::OnBadVideo::Error, nullptr, &given);
  EXPECT_EQ(d.clips[0].label, 1);
  EXPECT_EQ(d.clips[2].label, 0);
}

TEST(Video, BadInputGivesErrorsNamingTheFileOrLine) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_errors");
  const VideoReadOptions o = read_opts(16, 16);
  std::string e = error_of([&] { data::read_video(dir.file("missing.avi"), o); });
  EXPECT_NE(e.find("missing.avi: no such file"), std::string::npos) << e;
  const std::string text = dir.write("text.avi", "this is not a video, only text\n");
  e = error_of([&] { data::read_video(text, o); });
  EXPECT_NE(e.find(text + ": cannot open"), std::string::npos) << e;
  e = error_of([&] { data::read_video(dir.write("empty.avi", ""), o); });
  EXPECT_NE(e.find("empty.avi: cannot open"), std::string::npos) << e;
  VideoReadOptions bad = o;
  bad.stride = 0;
  EXPECT_NE(error_of([&] { data::read_video(text, bad); }).find("stride"), std::string::npos);
  bad = o;
  bad.width = 0;
  EXPECT_NE(error_of([&] { data::read_video(text, bad); }).find("frame size"), std::string::npos);

  e = error_of([&] { data::load_video_dataset(dir.file("nowhere"), o, data::OnBadVideo::Error, nullptr); });
  EXPECT_NE(e.find("nowhere: no such file or folder"), std::string::npos) << e;
  // A class folder without videos.
  write_two_classes(dir);
  fs::create_directories(dir.path() / "data" / "sit");
  dir.write("data/sit/readme.txt", "nothing here\n");
  e = error_of([&] { data::load_video_dataset(dir.file("data"), o, data::OnBadVideo::Error, nullptr); });
  EXPECT_NE(e.find(dir.file("data/sit") + ": class folder has no videos"), std::string::npos) << e;
  fs::remove_all(dir.path() / "data" / "sit");
  // A folder the given classes do not know.
  const std::vector<std::string> given = {"walk"};
  e = error_of([&] { data::load_video_dataset(dir.file("data"), o, data::OnBadVideo::Error, nullptr, &given); });
  EXPECT_NE(e.find(dir.file("data/jump") + ": class folder 'jump' is not one of"), std::string::npos) << e;
  // CSV: a line without a comma, and an unknown label, each with file:line.
  const std::string csv = dir.write("bad.csv", "path,label\ndata/walk/w0.avi,walk\ndata/walk/w1.avi walk\n");
  e = error_of([&] { data::load_video_dataset(csv, o, data::OnBadVideo::Error, nullptr); });
  EXPECT_NE(e.find(csv + ":3: expected `path,label`"), std::string::npos) << e;
  const std::string csv2 = dir.write("unknown.csv", "data/walk/w0.avi,walk\ndata/jump/j0.avi,jump\n");
  e = error_of([&] { data::load_video_dataset(csv2, o, data::OnBadVideo::Error, nullptr, &given); });
  EXPECT_NE(e.find(csv2 + ":2: label 'jump' is not one of the 1 given classes (walk)"), std::string::npos) << e;
  // A CSV naming a file that is not there: an unreadable video.
  const std::string csv3 = dir.write("gone.csv", "data/walk/w0.avi,walk\ndata/walk/gone.avi,walk\n");
  e = error_of([&] { data::load_video_dataset(csv3, o, data::OnBadVideo::Error, nullptr); });
  EXPECT_NE(e.find("gone.avi: no such file"), std::string::npos) << e;
  // Writing: malformed clips and unknown codecs.
  Clip c = square_clip(2, 8, 8, 1);
  c.pixels.pop_back();
  EXPECT_NE(error_of([&] { data::write_video(dir.file("w.avi"), c); }).find("pixel bytes"), std::string::npos);
  EXPECT_NE(error_of([&] { data::write_video(dir.file("w.avi"), square_clip(2, 8, 8, 1), 10.0, "MJPEG"); })
                .find("4 characters"),
            std::string::npos);
  EXPECT_NE(error_of([&] { data::write_video(dir.file("no/such/dir/w.avi"), square_clip(2, 8, 8, 1)); })
                .find("does not exist"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir.file("w.avi")));
}

// OpenCV 4.6 opens a video cut in half and decodes its whole frames without complaint; recur
// compares the decoded count with the count the container declares and calls it truncated.
TEST(Video, TruncatedFileIsAnErrorOrSkippedWithAWarning) {
  RECUR_REQUIRE_VIDEO();
  test::TempDir dir("video_truncated");
  fs::create_directories(dir.path() / "data" / "a");
  data::write_video(dir.file("data/a/good.avi"), square_clip(20, 32, 32, 1, 1));
  const std::string cut = dir.file("data/a/cut.avi");
  data::write_video(cut, square_clip(20, 32, 32, 1, 1));
  fs::resize_file(cut, fs::file_size(cut) / 2);
  const VideoReadOptions o = read_opts(32, 32);
  std::string e = error_of([&] { data::read_video(cut, o); });
  EXPECT_NE(e.find(cut + ": truncated or corrupt: decoded"), std::string::npos) << e;
  EXPECT_NE(e.find("of the 20 frames"), std::string::npos) << e;
  // Only the frames it needs: a max_frames read of the intact start succeeds.
  VideoReadOptions first = o;
  first.max_frames = 1;
  EXPECT_EQ(data::read_video(cut, first).frames, 1);

  e = error_of([&] { data::load_video_dataset(dir.file("data"), o, data::OnBadVideo::Error, nullptr); });
  EXPECT_NE(e.find(cut + ": truncated"), std::string::npos) << e;
  std::ostringstream warn;
  const data::VideoDataset ds = data::load_video_dataset(dir.file("data"), o, data::OnBadVideo::Skip, &warn);
  ASSERT_EQ(ds.clips.size(), 1u);
  EXPECT_EQ(fs::path(ds.clips[0].path).filename(), "good.avi");
  EXPECT_EQ(warn.str().rfind("warning: skipping " + cut + ": truncated or corrupt", 0), 0u) << warn.str();
  // Nothing readable left: an error even when skipping.
  fs::remove(dir.file("data/a/good.avi"));
  e = error_of([&] { data::load_video_dataset(dir.file("data"), o, data::OnBadVideo::Skip, nullptr); });
  EXPECT_NE(e.find("no readable videos"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// Moving Fashion

void put_be32(std::ostream& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  out.write(b, 4);
}

// A fake Fashion-MNIST folder: n 28x28 images each a 4x20 horizontal bar (elongated, so rotation
// shows in the principal axis), brightness varying by image, plus the matching label file.
void write_fake_fashion(const fs::path& dir, const std::string& prefix, uint32_t n) {
  fs::create_directories(dir);
  std::ofstream img(dir / (prefix + "-images-idx3-ubyte"), std::ios::binary);
  put_be32(img, 2051);
  put_be32(img, n);
  put_be32(img, 28);
  put_be32(img, 28);
  for (uint32_t i = 0; i < n; ++i)
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x)
        img.put(static_cast<char>(y >= 12 && y < 16 && x >= 4 && x < 24 ? 180 + (i * 5) % 70 : 0));
  std::ofstream lab(dir / (prefix + "-labels-idx1-ubyte"), std::ios::binary);
  put_be32(lab, 2049);
  put_be32(lab, n);
  for (uint32_t i = 0; i < n; ++i) lab.put(static_cast<char>(i % 10));
}

class MovingFashion : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!data::video_support()) GTEST_SKIP() << "recur was built without OpenCV";
    write_fake_fashion(dir_.path() / "fashion", "train", 40);
    write_fake_fashion(dir_.path() / "fashion", "t10k", 16);
    fourcc_ = ffv1_supported(dir_) ? "FFV1" : "MJPG";
  }
  data::MovingFashionOptions options(const std::string& out) const {
    data::MovingFashionOptions o;
    o.fashion_dir = dir_.file("fashion");
    o.out = dir_.file(out);
    o.train = 16;
    o.valid = 8;
    o.test = 8;
    o.min_frames = 6;
    o.max_frames = 9;
    o.seed = 7;
    o.fourcc = fourcc_;
    return o;
  }
  test::TempDir dir_{"video_moving_fashion"};
  std::string fourcc_;
};

TEST_F(MovingFashion, WritesBalancedSplitsOfRealVideosDeterministically) {
  std::ostringstream log;
  const data::MovingFashionSummary s = data::make_moving_fashion(options("mf"), &log);
  EXPECT_EQ(s.clips, 32);
  EXPECT_EQ(s.out, dir_.file("mf"));
  EXPECT_FALSE(fs::exists(dir_.file("mf.tmp")));
  const auto& classes = data::moving_fashion_class_names();
  ASSERT_EQ(classes.size(), 8u);
  EXPECT_EQ(classes[0], "move-left");
  EXPECT_EQ(classes[7], "zoom-out");
  const std::vector<std::pair<std::string, int>> per_class = {{"train", 2}, {"valid", 1}, {"test", 1}};
  for (const auto& [split, n] : per_class)
    for (const std::string& c : classes) {
      const fs::path folder = fs::path(dir_.file("mf")) / split / c;
      int count = 0;
      for (const auto& e : fs::directory_iterator(folder)) count += e.path().extension() == ".avi";
      EXPECT_EQ(count, n) << folder;
      EXPECT_TRUE(fs::exists(folder / "00000.avi")) << folder;
    }
  const VideoReadOptions o = read_opts(64, 64);
  const data::VideoDataset train =
      data::load_video_dataset(dir_.file("mf/train"), o, data::OnBadVideo::Error, nullptr);
  // Without a class list the labels follow the sorted folder names, not the generator's order.
  std::vector<std::string> sorted = classes;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(train.class_names, sorted);
  const data::VideoDataset a =
      data::load_video_dataset(dir_.file("mf/train"), o, data::OnBadVideo::Error, nullptr, &classes);
  ASSERT_EQ(a.clips.size(), 16u);
  for (const Clip& c : a.clips) {
    EXPECT_GE(c.frames, 6);
    EXPECT_LE(c.frames, 9);
  }
  // Same seed, same clips; another seed, other clips; an existing non-empty folder is refused.
  data::make_moving_fashion(options("mf2"), nullptr);
  const data::VideoDataset b =
      data::load_video_dataset(dir_.file("mf2/train"), o, data::OnBadVideo::Error, nullptr, &classes);
  ASSERT_EQ(b.clips.size(), a.clips.size());
  for (size_t i = 0; i < a.clips.size(); ++i) EXPECT_EQ(a.clips[i].pixels, b.clips[i].pixels) << i;
  data::MovingFashionOptions other = options("mf3");
  other.seed = 8;
  other.valid = other.test = 0;
  data::make_moving_fashion(other, nullptr);
  const data::VideoDataset c =
      data::load_video_dataset(dir_.file("mf3/train"), o, data::OnBadVideo::Error, nullptr, &classes);
  EXPECT_NE(a.clips[0].pixels, c.clips[0].pixels);
  const std::string e = error_of([&] { data::make_moving_fashion(options("mf"), nullptr); });
  EXPECT_NE(e.find(dir_.file("mf") + " already exists"), std::string::npos) << e;
  data::MovingFashionOptions bad = options("mf4");
  bad.min_frames = 1;
  EXPECT_NE(error_of([&] { data::make_moving_fashion(bad, nullptr); }).find("min_frames"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_.file("mf4")));
}

// Decoded, each class moves the way its name says: centroids for moves, mass for zooms, and the
// principal axis for rotations (y points down, so counter-clockwise as displayed lowers the angle).
TEST_F(MovingFashion, ClipsMoveRotateAndZoomAsLabelled) {
  data::MovingFashionOptions o = options("dirs");
  o.train = 32;
  o.valid = o.test = 0;
  data::make_moving_fashion(o, nullptr);
  const auto& classes = data::moving_fashion_class_names();
  const data::VideoDataset ds =
      data::load_video_dataset(dir_.file("dirs/train"), read_opts(64, 64), data::OnBadVideo::Error, nullptr, &classes);
  ASSERT_EQ(ds.clips.size(), 32u);
  for (const Clip& c : ds.clips) {
    const std::string& name = classes[static_cast<size_t>(c.label)];
    const Moments first = moments(c, 0), last = moments(c, c.frames - 1);
    const double steps = static_cast<double>(c.frames - 1);
    ASSERT_GT(first.mass, 0) << c.path;
    double turn = 0;  // unwrapped change of the principal axis, degrees
    for (int64_t t = 1; t < c.frames; ++t) {
      double d = moments(c, t).angle - moments(c, t - 1).angle;
      while (d > 90) d -= 180;
      while (d <= -90) d += 180;
      turn += d;
    }
    if (name == "move-left") {
      EXPECT_LT(last.x - first.x, -1.5 * steps) << c.path;
    }
    if (name == "move-right") {
      EXPECT_GT(last.x - first.x, 1.5 * steps) << c.path;
    }
    if (name == "move-up") {
      EXPECT_LT(last.y - first.y, -1.5 * steps) << c.path;
    }
    if (name == "move-down") {
      EXPECT_GT(last.y - first.y, 1.5 * steps) << c.path;
    }
    if (name.starts_with("move")) {
      EXPECT_NEAR(last.mass / first.mass, 1.0, 0.05) << c.path;
    }
    if (name == "rotate-cw") {
      EXPECT_GT(turn, 4 * steps) << c.path;
    }
    if (name == "rotate-ccw") {
      EXPECT_LT(turn, -4 * steps) << c.path;
    }
    if (name.starts_with("rotate")) {
      EXPECT_NEAR(last.x, first.x, 1.0) << c.path;
      EXPECT_NEAR(last.y, first.y, 1.0) << c.path;
    }
    // Mass grows with the area: (1.04..1.06)^2 per frame.
    if (name == "zoom-in") {
      EXPECT_GT(last.mass / first.mass, std::pow(1.03, 2 * steps)) << c.path;
    }
    if (name == "zoom-out") {
      EXPECT_LT(last.mass / first.mass, std::pow(1.03, -2 * steps)) << c.path;
    }
    // Every frame keeps the item inside the canvas: no bright pixel on the border.
    for (int64_t t = 0; t < c.frames; ++t)
      for (int64_t i = 0; i < 64; ++i) {
        const uint8_t* f = c.pixels.data() + static_cast<size_t>(t * 64 * 64);
        EXPECT_LT(std::max({f[i], f[63 * 64 + i], f[i * 64], f[i * 64 + 63]}), 40) << c.path << " frame " << t;
      }
  }
}

}  // namespace
}  // namespace recur
