#include "recur/data/video.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <thread>

#include <unistd.h>

#include "recur/core/error.h"

#ifdef RECUR_HAS_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>
#endif

namespace recur::data {

namespace fs = std::filesystem;

const std::vector<std::string>& video_extensions() {
  static const std::vector<std::string> exts = {".avi", ".mp4", ".mkv", ".mov", ".webm"};
  return exts;
}

#ifndef RECUR_HAS_OPENCV

namespace {
[[noreturn]] void no_opencv(const char* what) {
  RECUR_FAIL("{}: recur was built without OpenCV (CMake option RECUR_OPENCV=OFF, or OpenCV's core, imgproc and "
             "videoio dev packages were not found), so it cannot read or write video files",
             what);
}
}  // namespace

bool video_support() { return false; }
Clip read_video(const std::string&, const VideoReadOptions&) { no_opencv("read_video"); }
VideoDataset load_video_dataset(const std::string&, const VideoReadOptions&, OnBadVideo, std::ostream*,
                                const std::vector<std::string>*) {
  no_opencv("load_video_dataset");
}
void write_video(const std::string&, const Clip&, double, const std::string&) { no_opencv("write_video"); }

#else

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

void check_options(const VideoReadOptions& opt) {
  RECUR_CHECK(opt.height > 0 && opt.height <= 8192 && opt.width > 0 && opt.width <= 8192,
              "video: frame size {}x{} (height x width) must be within 1..8192", opt.height, opt.width);
  RECUR_CHECK(opt.stride >= 1, "video: stride is {}, must be >= 1", opt.stride);
  RECUR_CHECK(opt.max_frames >= 0, "video: max_frames is {}, must be >= 0 (0: all)", opt.max_frames);
}

// The FFmpeg backend when this OpenCV has it: trying every backend (CAP_ANY) on a file that is not
// a video makes GStreamer and the image-sequence reader print errors of their own. The first call
// also silences FFmpeg's own log (OpenCV reads OPENCV_FFMPEG_LOGLEVEL when its FFmpeg backend
// first opens a file): a damaged file is reported by recur with its path and reason, and FFmpeg's
// lines about it would only add noise. A user who sets the variable keeps their level.
int preferred_backend() {
  static const int api = [] {
    ::setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);  // -8: AV_LOG_QUIET
    return cv::videoio_registry::hasBackend(cv::CAP_FFMPEG) ? cv::CAP_FFMPEG : cv::CAP_ANY;
  }();
  return api;
}

// Containers whose frame count comes from an index rather than an estimate from the duration.
bool exact_frame_count(const std::string& path) {
  const std::string ext = lower(fs::path(path).extension().string());
  return ext == ".avi" || ext == ".mp4" || ext == ".mov" || ext == ".m4v";
}

// One frame, any of 1/3/4 channels BGR(A) as OpenCV delivers, into the clip's (C, H, W) planes.
void append_frame(const cv::Mat& frame, const VideoReadOptions& opt, std::vector<uint8_t>* out) {
  cv::Mat conv;
  const int ch = frame.channels();
  if (opt.grey) {
    if (ch == 1) conv = frame;
    else cv::cvtColor(frame, conv, ch == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
  } else {
    if (ch == 1) cv::cvtColor(frame, conv, cv::COLOR_GRAY2RGB);
    else cv::cvtColor(frame, conv, ch == 4 ? cv::COLOR_BGRA2RGB : cv::COLOR_BGR2RGB);
  }
  cv::Mat sized;
  const cv::Size want(static_cast<int>(opt.width), static_cast<int>(opt.height));
  if (conv.size() == want) sized = conv;
  else cv::resize(conv, sized, want, 0, 0, cv::INTER_AREA);
  if (!sized.isContinuous()) sized = sized.clone();
  const size_t plane = static_cast<size_t>(opt.height * opt.width);
  const size_t old = out->size();
  if (opt.grey) {
    out->insert(out->end(), sized.data, sized.data + plane);
    return;
  }
  out->resize(old + 3 * plane);
  uint8_t* dst = out->data() + old;
  const uint8_t* src = sized.data;
  for (size_t i = 0; i < plane; ++i)
    for (size_t c = 0; c < 3; ++c) dst[c * plane + i] = src[i * 3 + c];
}

// Decodes `path`; on failure returns nullopt with the reason (without the path) in *reason.
std::optional<Clip> try_read(const std::string& path, const VideoReadOptions& opt, std::string* reason) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    *reason = "no such file";
    return std::nullopt;
  }
  if (!fs::is_regular_file(path, ec)) {
    *reason = "not a regular file";
    return std::nullopt;
  }
  Clip clip;
  clip.path = path;
  clip.channels = opt.grey ? 1 : 3;
  clip.height = opt.height;
  clip.width = opt.width;
  try {
    cv::VideoCapture cap;
    if (!cap.open(path, preferred_backend()) || !cap.isOpened()) {
      *reason = "cannot open: not a video file, or a format this OpenCV cannot decode";
      return std::nullopt;
    }
    const double declared = cap.get(cv::CAP_PROP_FRAME_COUNT);
    int64_t decoded = 0;
    bool stopped_early = false;
    cv::Mat frame;
    while (cap.read(frame) && !frame.empty()) {
      if (frame.depth() != CV_8U) {
        *reason = "frames are not 8-bit";
        return std::nullopt;
      }
      if (decoded % opt.stride == 0) {
        append_frame(frame, opt, &clip.pixels);
        ++clip.frames;
      }
      ++decoded;
      if (opt.max_frames > 0 && clip.frames == opt.max_frames) {
        stopped_early = true;
        break;
      }
    }
    if (decoded == 0) {
      *reason = "no frames could be decoded (empty, truncated or corrupt video)";
      return std::nullopt;
    }
    if (!stopped_early && declared > 0 && declared < 1e9) {
      const double slack = exact_frame_count(path) ? 0.0 : 0.1 * declared + 2.0;
      if (static_cast<double>(decoded) + slack < declared) {
        *reason = fmt::format("truncated or corrupt: decoded {} of the {} frames the file declares", decoded,
                              static_cast<int64_t>(declared));
        return std::nullopt;
      }
    }
  } catch (const cv::Exception& e) {
    *reason = fmt::format("OpenCV error while decoding: {}", e.what());
    return std::nullopt;
  }
  return clip;
}

struct Entry {
  std::string path;
  int64_t label;
};

bool is_video_file(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  const auto& exts = video_extensions();
  return std::find(exts.begin(), exts.end(), ext) != exts.end();
}

int64_t index_of(const std::vector<std::string>& names, const std::string& name) {
  auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int64_t>(it - names.begin());
}

std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 20; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 20) s += ", ...";
  return s;
}

std::vector<Entry> scan_folder(const std::string& source, const std::vector<std::string>* given,
                               std::vector<std::string>* class_names) {
  std::vector<std::string> folders;
  for (const auto& e : fs::directory_iterator(source)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && !name.starts_with(".")) folders.push_back(name);
  }
  std::sort(folders.begin(), folders.end());
  RECUR_CHECK(!folders.empty(), "video dataset {}: no class sub-folders (expected one folder of videos per class)",
              source);
  *class_names = given ? *given : folders;
  std::vector<Entry> entries;
  for (const std::string& folder : folders) {
    const fs::path dir = fs::path(source) / folder;
    const int64_t label = index_of(*class_names, folder);
    RECUR_CHECK(label >= 0, "video dataset {}: class folder '{}' is not one of the {} given classes ({})",
                dir.string(), folder, class_names->size(), name_list(*class_names));
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && is_video_file(e.path())) files.push_back(e.path().string());
    RECUR_CHECK(!files.empty(), "video dataset {}: class folder has no videos (files ending in {})", dir.string(),
                name_list(video_extensions()));
    std::sort(files.begin(), files.end());
    for (auto& f : files) entries.push_back({std::move(f), label});
  }
  return entries;
}

std::vector<Entry> read_csv(const std::string& source, const std::vector<std::string>* given,
                            std::vector<std::string>* class_names) {
  std::ifstream in(source);
  RECUR_CHECK(in.good(), "video dataset {}: cannot open", source);
  const fs::path base = fs::path(source).parent_path();
  struct Row {
    std::string path, label;
    int64_t line;
  };
  std::vector<Row> rows;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::string t = trim(line);
    if (t.empty()) continue;
    if (rows.empty() && lineno == 1 && lower(t) == "path,label") continue;
    const size_t comma = t.rfind(',');
    RECUR_CHECK(comma != std::string::npos, "video dataset {}:{}: expected `path,label`, got '{}'", source, lineno, t);
    Row r{trim(t.substr(0, comma)), trim(t.substr(comma + 1)), lineno};
    RECUR_CHECK(!r.path.empty() && !r.label.empty(), "video dataset {}:{}: empty path or label in '{}'", source,
                lineno, t);
    rows.push_back(std::move(r));
  }
  RECUR_CHECK(!rows.empty(), "video dataset {}: no `path,label` lines", source);
  if (given) {
    *class_names = *given;
  } else {
    std::set<std::string> labels;
    for (const Row& r : rows) labels.insert(r.label);
    class_names->assign(labels.begin(), labels.end());
  }
  std::vector<Entry> entries;
  entries.reserve(rows.size());
  for (const Row& r : rows) {
    const int64_t label = index_of(*class_names, r.label);
    RECUR_CHECK(label >= 0, "video dataset {}:{}: label '{}' is not one of the {} given classes ({})", source, r.line,
                r.label, class_names->size(), name_list(*class_names));
    fs::path p(r.path);
    if (p.is_relative()) p = base / p;
    entries.push_back({p.string(), label});
  }
  return entries;
}

}  // namespace

bool video_support() { return true; }

Clip read_video(const std::string& path, const VideoReadOptions& opt) {
  check_options(opt);
  std::string reason;
  std::optional<Clip> clip = try_read(path, opt, &reason);
  RECUR_CHECK(clip.has_value(), "video: {}: {}", path, reason);
  return std::move(*clip);
}

VideoDataset load_video_dataset(const std::string& source, const VideoReadOptions& opt, OnBadVideo on_bad,
                                std::ostream* warn, const std::vector<std::string>* class_names) {
  check_options(opt);
  std::error_code ec;
  RECUR_CHECK(fs::exists(source, ec), "video dataset {}: no such file or folder", source);
  if (class_names) RECUR_CHECK(!class_names->empty(), "video dataset {}: the given class list is empty", source);
  VideoDataset ds;
  std::vector<Entry> entries = fs::is_directory(source, ec) ? scan_folder(source, class_names, &ds.class_names)
                                                            : read_csv(source, class_names, &ds.class_names);
  RECUR_CHECK(!entries.empty(), "video dataset {}: no videos", source);

  // Decoding dominates; each worker claims the next entry. Entries are claimed in order, so when
  // the first failure stops the workers (OnBadVideo::Error), every entry before it was decoded and
  // the error reported is the same on every run.
  const size_t n = entries.size();
  std::vector<std::optional<Clip>> clips(n);
  std::vector<std::string> reasons(n);
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  auto work = [&] {
    for (;;) {
      if (stop.load()) return;
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        clips[i] = try_read(entries[i].path, opt, &reasons[i]);
      } catch (const std::exception& e) {
        reasons[i] = e.what();
      }
      if (!clips[i] && on_bad == OnBadVideo::Error) stop.store(true);
    }
  };
  const size_t threads = std::min<size_t>({n, std::max(1u, std::thread::hardware_concurrency()), 8});
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  ds.clips.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (clips[i]) {
      clips[i]->label = entries[i].label;
      ds.clips.push_back(std::move(*clips[i]));
      continue;
    }
    if (reasons[i].empty()) continue;  // never claimed: the loading stopped at an earlier failure
    RECUR_CHECK(on_bad == OnBadVideo::Skip, "video: {}: {}", entries[i].path, reasons[i]);
    if (warn) *warn << "warning: skipping " << entries[i].path << ": " << reasons[i] << "\n";
  }
  RECUR_CHECK(!ds.clips.empty(), "video dataset {}: no readable videos (all {} were skipped)", source, n);
  return ds;
}

void write_video(const std::string& path, const Clip& clip, double fps, const std::string& fourcc) {
  RECUR_CHECK(clip.frames > 0 && clip.height > 0 && clip.width > 0,
              "write_video {}: clip is {} frames of {}x{}; all must be > 0", path, clip.frames, clip.height, clip.width);
  RECUR_CHECK(clip.channels == 1 || clip.channels == 3, "write_video {}: {} channels, expected 1 or 3", path,
              clip.channels);
  RECUR_CHECK(clip.height <= 16384 && clip.width <= 16384, "write_video {}: frame size {}x{} too large", path,
              clip.height, clip.width);
  RECUR_CHECK(static_cast<int64_t>(clip.pixels.size()) == clip.numel(),
              "write_video {}: {} pixel bytes, but {} frames x {} channels x {}x{} need {}", path, clip.pixels.size(),
              clip.frames, clip.channels, clip.height, clip.width, clip.numel());
  RECUR_CHECK(fps > 0, "write_video {}: fps is {}, must be > 0", path, fps);
  RECUR_CHECK(fourcc.size() == 4, "write_video {}: fourcc '{}' must be 4 characters (e.g. MJPG, FFV1, mp4v)", path,
              fourcc);
  const fs::path target(path);
  RECUR_CHECK(target.has_extension(), "write_video {}: the name needs an extension (e.g. .avi) to pick the container",
              path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  RECUR_CHECK(fs::is_directory(dir, ec), "write_video {}: folder {} does not exist", path, dir.string());

  // Same folder (rename stays atomic), same extension (FFmpeg picks the container from it).
  static std::atomic<uint64_t> counter{0};
  const fs::path tmp = dir / ("." + target.stem().string() + ".tmp" + std::to_string(getpid()) + "-" +
                              std::to_string(counter.fetch_add(1)) + target.extension().string());
  const int code = cv::VideoWriter::fourcc(fourcc[0], fourcc[1], fourcc[2], fourcc[3]);
  const cv::Size size(static_cast<int>(clip.width), static_cast<int>(clip.height));
  const int api = preferred_backend();
  try {
    cv::VideoWriter writer;
    bool colour = clip.channels == 3;
    writer.open(tmp.string(), api, code, fps, size, colour);
    if (!writer.isOpened() && !colour) {
      colour = true;  // a codec that takes only colour frames: write grey as B = G = R
      writer.open(tmp.string(), api, code, fps, size, true);
    }
    RECUR_CHECK(writer.isOpened(), "write_video {}: cannot open a writer for codec {} in a {} file (unsupported by "
                "this OpenCV build?)", path, fourcc, target.extension().string());
    const size_t plane = static_cast<size_t>(clip.height * clip.width);
    cv::Mat frame(size, colour ? CV_8UC3 : CV_8UC1);
    for (int64_t t = 0; t < clip.frames; ++t) {
      const uint8_t* src = clip.pixels.data() + static_cast<size_t>(t) * plane * static_cast<size_t>(clip.channels);
      uint8_t* dst = frame.data;
      if (!colour) {
        std::copy(src, src + plane, dst);
      } else if (clip.channels == 1) {
        for (size_t i = 0; i < plane; ++i) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = src[i];
      } else {  // RGB planes -> interleaved BGR
        for (size_t i = 0; i < plane; ++i) {
          dst[3 * i] = src[2 * plane + i];
          dst[3 * i + 1] = src[plane + i];
          dst[3 * i + 2] = src[i];
        }
      }
      writer.write(frame);
    }
    writer.release();
    RECUR_CHECK(fs::is_regular_file(tmp, ec) && fs::file_size(tmp, ec) > 0, "write_video {}: the writer produced no file",
                path);
    fs::rename(tmp, target, ec);
    RECUR_CHECK(!ec, "write_video {}: cannot rename {} into place: {}", path, tmp.string(), ec.message());
  } catch (const cv::Exception& e) {
    fs::remove(tmp, ec);
    RECUR_FAIL("write_video {}: OpenCV error: {}", path, e.what());
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

#endif  // RECUR_HAS_OPENCV

}  // namespace recur::data
