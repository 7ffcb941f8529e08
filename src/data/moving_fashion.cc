// Moving Fashion: Fashion-MNIST items moving, rotating or zooming; only the frame order tells the
// class. The parameters are documented with make_moving_fashion in recur/data/video.h.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <ostream>
#include <thread>

#include "recur/core/error.h"
#include "recur/core/rng.h"
#include "recur/data/idx.h"
#include "recur/data/video.h"

#ifdef RECUR_HAS_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace recur::data {

const std::vector<std::string>& moving_fashion_class_names() {
  static const std::vector<std::string> names = {"move-left", "move-right", "move-up",  "move-down",
                                                 "rotate-cw", "rotate-ccw", "zoom-in", "zoom-out"};
  return names;
}

#ifndef RECUR_HAS_OPENCV

MovingFashionSummary make_moving_fashion(const MovingFashionOptions&, std::ostream*) {
  RECUR_FAIL("make_moving_fashion: recur was built without OpenCV (CMake option RECUR_OPENCV=OFF, or OpenCV's core, "
             "imgproc and videoio dev packages were not found), so it cannot write video files");
}

#else

namespace {

namespace fs = std::filesystem;

enum Cls : int64_t { kLeft, kRight, kUp, kDown, kCw, kCcw, kZoomIn, kZoomOut };

constexpr int64_t kItem = 28;

// The .gz file when present, else the plain one (as load_fashion_mnist_rows looks for them).
std::string images_file(const std::string& dir, const std::string& prefix) {
  const fs::path gz = fs::path(dir) / (prefix + "-images-idx3-ubyte.gz");
  const fs::path plain = fs::path(dir) / (prefix + "-images-idx3-ubyte");
  std::error_code ec;
  if (fs::is_regular_file(gz, ec)) return gz.string();
  if (fs::is_regular_file(plain, ec)) return plain.string();
  RECUR_FAIL("moving-fashion: neither {} nor {} found in {} (run `recur data fetch fashion-mnist`)",
             gz.filename().string(), plain.filename().string(), dir);
}

double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * rng.uniform(); }

// Renders one clip of class `cls` from the 28x28 item `item` into a (T, 1, S, S) clip.
Clip render_clip(const uint8_t* item, int64_t cls, int64_t size, const MovingFashionOptions& opt, Rng& rng) {
  const int64_t T = opt.min_frames + static_cast<int64_t>(rng.below(static_cast<uint64_t>(opt.max_frames - opt.min_frames + 1)));
  const double unit = static_cast<double>(size) / 64.0;  // every length below is for a 64 px canvas
  const double gain = uniform(rng, 0.85, 1.0);
  const double half = kItem / 2.0;  // 14: the item's half side at scale 1
  const double last = static_cast<double>(T - 1);

  std::vector<double> cx(T), cy(T), angle(T, 0.0), scale(T, 1.0);
  if (cls <= kDown) {
    const double span = 64.0 - kItem;  // free pixels along an axis
    const double v = std::min(uniform(rng, 2.0, 3.0), span / last);
    const double lo = uniform(rng, 0.0, span - v * last);
    const double across = uniform(rng, 0.0, span);
    const bool forward = cls == kRight || cls == kDown;
    const bool horizontal = cls == kLeft || cls == kRight;
    for (int64_t t = 0; t < T; ++t) {
      const double along = lo + v * (forward ? static_cast<double>(t) : last - static_cast<double>(t));
      cx[t] = (horizontal ? along : across) + half;
      cy[t] = (horizontal ? across : along) + half;
    }
  } else if (cls <= kCcw) {
    // The item tilts within +-60 degrees of upright: the tilt is something a frame CNN can read
    // off (an angle anywhere on the circle, with no upright to refer to, was not learned; see
    // docs/RESULTS.md), and the segment of angles is placed uniformly, as for the moves.
    const double range = 120.0;
    const double w = std::min(uniform(rng, 6.0, 9.0), range / last);
    const double lo = uniform(rng, -range / 2, range / 2 - w * last);
    const double r = half * std::sqrt(2.0);
    const double x = uniform(rng, r, 64.0 - r), y = uniform(rng, r, 64.0 - r);
    for (int64_t t = 0; t < T; ++t) {
      angle[t] = lo + w * (cls == kCcw ? static_cast<double>(t) : last - static_cast<double>(t));
      cx[t] = x;
      cy[t] = y;
    }
  } else {
    const double lmin = std::log(0.6), lmax = std::log(1.6);
    const double d = std::min(uniform(rng, std::log(1.04), std::log(1.06)), (lmax - lmin) / last);
    const double lo = uniform(rng, lmin, lmax - d * last);
    const double h = half * std::exp(lo + d * last);
    const double x = uniform(rng, h, 64.0 - h), y = uniform(rng, h, 64.0 - h);
    for (int64_t t = 0; t < T; ++t) {
      scale[t] = std::exp(lo + d * (cls == kZoomIn ? static_cast<double>(t) : last - static_cast<double>(t)));
      cx[t] = x;
      cy[t] = y;
    }
  }

  cv::Mat src(static_cast<int>(kItem), static_cast<int>(kItem), CV_8UC1);
  for (int64_t i = 0; i < kItem * kItem; ++i)
    src.data[i] = static_cast<uint8_t>(std::lround(static_cast<double>(item[i]) * gain));
  Clip clip;
  clip.frames = T;
  clip.channels = 1;
  clip.height = clip.width = size;
  clip.label = cls;
  clip.pixels.resize(static_cast<size_t>(T * size * size));
  const cv::Point2f centre(static_cast<float>((kItem - 1) / 2.0), static_cast<float>((kItem - 1) / 2.0));
  for (int64_t t = 0; t < T; ++t) {
    // Maps the item's centre to (cx, cy): rotate by angle (counter-clockwise as displayed) and
    // scale about the centre, then translate. The pixel centre of canvas coordinate x is x - 0.5.
    cv::Mat m = cv::getRotationMatrix2D(centre, angle[t], scale[t] * unit);
    m.at<double>(0, 2) += cx[t] * unit - 0.5 - centre.x;
    m.at<double>(1, 2) += cy[t] * unit - 0.5 - centre.y;
    cv::Mat dst(static_cast<int>(size), static_cast<int>(size), CV_8UC1,
                clip.pixels.data() + static_cast<size_t>(t * size * size));
    cv::warpAffine(src, dst, m, dst.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0));
  }
  return clip;
}

struct SplitPlan {
  std::string name;
  int64_t count;
  const IdxImages* images;
  int64_t first, items;  // the split's images: [first, first + items)
  uint64_t id;
};

}  // namespace

MovingFashionSummary make_moving_fashion(const MovingFashionOptions& opt, std::ostream* log) {
  RECUR_CHECK(opt.train >= 0 && opt.valid >= 0 && opt.test >= 0, "moving-fashion: clip counts {}/{}/{} must be >= 0",
              opt.train, opt.valid, opt.test);
  RECUR_CHECK(opt.train + opt.valid + opt.test > 0, "moving-fashion: no clips requested (train, valid, test all 0)");
  RECUR_CHECK(opt.min_frames >= 2 && opt.min_frames <= opt.max_frames && opt.max_frames <= 10000,
              "moving-fashion: frames per clip {}..{}: need 2 <= min_frames <= max_frames <= 10000", opt.min_frames,
              opt.max_frames);
  RECUR_CHECK(opt.size >= 16 && opt.size <= 4096, "moving-fashion: size {} must be within 16..4096", opt.size);
  RECUR_CHECK(!opt.out.empty(), "moving-fashion: no output folder given");
  const auto& classes = moving_fashion_class_names();
  const int64_t num_classes = static_cast<int64_t>(classes.size());

  std::error_code ec;
  const fs::path out = fs::path(opt.out).lexically_normal();
  const fs::path out_path = out.has_filename() ? out : out.parent_path();
  RECUR_CHECK(!fs::exists(out_path, ec) || (fs::is_directory(out_path, ec) && fs::is_empty(out_path, ec)),
              "moving-fashion: {} already exists and is not an empty folder; refusing to overwrite it",
              out_path.string());

  IdxImages train_images, test_images;
  if (opt.train > 0) train_images = read_idx_images(images_file(opt.fashion_dir, "train"), kItem, kItem);
  if (opt.valid + opt.test > 0) test_images = read_idx_images(images_file(opt.fashion_dir, "t10k"), kItem, kItem);
  // Valid takes the first half of the test images, test the second: no item is in two splits.
  const int64_t valid_items = opt.valid > 0 && opt.test > 0 ? test_images.count / 2 : test_images.count;
  const std::vector<SplitPlan> splits = {
      {"train", opt.train, &train_images, 0, train_images.count, 0},
      {"valid", opt.valid, &test_images, 0, valid_items, 1},
      {"test", opt.test, &test_images, opt.valid > 0 ? valid_items : 0,
       opt.valid > 0 ? test_images.count - valid_items : test_images.count, 2},
  };
  for (const SplitPlan& s : splits)
    RECUR_CHECK(s.count == 0 || s.items > 0, "moving-fashion: no Fashion-MNIST images left for the {} split in {}",
                s.name, opt.fashion_dir);

  const fs::path tmp = fs::path(out_path.string() + ".tmp");
  fs::remove_all(tmp, ec);
  MovingFashionSummary summary;
  summary.out = out_path.string();
  try {
    for (const SplitPlan& s : splits) {
      for (const std::string& c : classes) {
        fs::create_directories(tmp / s.name / c, ec);
        RECUR_CHECK(!ec, "moving-fashion: cannot create {}: {}", (tmp / s.name / c).string(), ec.message());
      }
      if (s.count == 0) continue;
      // A seeded permutation of the split's images: distinct items until the split runs out.
      Rng perm_rng(mix64(opt.seed) ^ mix64(0x5EED0000ull + s.id));
      std::vector<int64_t> order(static_cast<size_t>(s.items));
      for (int64_t i = 0; i < s.items; ++i) order[static_cast<size_t>(i)] = s.first + i;
      for (int64_t i = s.items - 1; i > 0; --i)
        std::swap(order[static_cast<size_t>(i)], order[perm_rng.below(static_cast<uint64_t>(i + 1))]);

      // Clip i has class i % 8 and index i / 8 within its class folder: balanced, remainder first.
      std::atomic<int64_t> next{0};
      std::atomic<bool> failed{false};
      std::string first_error;
      std::mutex error_mu;
      auto work = [&] {
        for (;;) {
          const int64_t i = next.fetch_add(1);
          if (i >= s.count || failed.load()) return;
          try {
            Rng rng(mix64(opt.seed) ^ mix64((s.id << 48) + static_cast<uint64_t>(i)));
            const int64_t item = order[static_cast<size_t>(i % s.items)];
            const uint8_t* px = s.images->pixels.data() + static_cast<size_t>(item * kItem * kItem);
            Clip clip = render_clip(px, i % num_classes, opt.size, opt, rng);
            const fs::path file = tmp / s.name / classes[static_cast<size_t>(i % num_classes)] /
                                  fmt::format("{:05d}.avi", i / num_classes);
            write_video(file.string(), clip, opt.fps, opt.fourcc);
          } catch (const std::exception& e) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (!failed.exchange(true)) first_error = e.what();
          }
        }
      };
      const int64_t threads = std::min<int64_t>(s.count, std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 8));
      std::vector<std::thread> pool;
      for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
      work();
      for (auto& t : pool) t.join();
      RECUR_CHECK(!failed.load(), "moving-fashion: {}", first_error);
      if (log) *log << "moving-fashion: " << s.name << ": " << s.count << " clips\n";
    }
    if (fs::exists(out_path, ec)) fs::remove(out_path, ec);  // an empty folder: replaced
    fs::rename(tmp, out_path, ec);
    RECUR_CHECK(!ec, "moving-fashion: cannot rename {} to {}: {}", tmp.string(), out_path.string(), ec.message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  summary.train = opt.train;
  summary.valid = opt.valid;
  summary.test = opt.test;
  summary.clips = opt.train + opt.valid + opt.test;
  return summary;
}

#endif  // RECUR_HAS_OPENCV

}  // namespace recur::data
