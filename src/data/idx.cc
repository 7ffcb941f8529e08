#include "recur/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "recur/core/error.h"

namespace recur::data {

namespace {

namespace fs = std::filesystem;

// A gzip or plain file (zlib reads uncompressed files transparently), closed on scope exit.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    std::error_code ec;
    RECUR_CHECK(fs::is_regular_file(path, ec), "idx: {}: no such file", path);
    file_ = gzopen(path.c_str(), "rb");
    RECUR_CHECK(file_ != nullptr, "idx: {}: cannot open", path);
  }
  ~GzReader() { gzclose(file_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads up to n bytes and returns how many arrived; fewer than n means the end of the data.
  // A corrupt or cut-off gzip stream throws instead of passing as a short file.
  size_t read(void* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      unsigned want = static_cast<unsigned>(std::min<size_t>(n - done, size_t{1} << 24));
      int got = gzread(file_, static_cast<char*>(dst) + done, want);
      check_stream();
      if (got <= 0) break;
      done += static_cast<size_t>(got);
    }
    return done;
  }

  // Appends exactly n bytes to `out`, growing it as data arrives so that a header that claims
  // billions of items cannot make us allocate before the data proves it; returns bytes read.
  size_t read_into(std::vector<uint8_t>* out, size_t n) {
    const size_t step = size_t{1} << 24;
    size_t done = 0;
    while (done < n) {
      size_t want = std::min(step, n - done);
      size_t old = out->size();
      out->resize(old + want);
      size_t got = read(out->data() + old, want);
      out->resize(old + got);
      done += got;
      if (got < want) break;
    }
    return done;
  }

  // True when at least one byte is left: an idx file must end right after its declared items.
  bool has_more() {
    unsigned char c;
    return read(&c, 1) == 1;
  }

  const std::string& path() const { return path_; }

 private:
  void check_stream() {
    int errnum = Z_OK;
    std::string msg = gzerror(file_, &errnum);
    // zlib prefixes its message with the path, which ours already names.
    if (msg.starts_with(path_ + ": ")) msg.erase(0, path_.size() + 2);
    // zlib reports a gzip stream cut short as Z_BUF_ERROR while still returning the bytes it had.
    RECUR_CHECK(errnum != Z_BUF_ERROR, "idx: {}: truncated gzip stream ({})", path_, msg);
    RECUR_CHECK(errnum == Z_OK || errnum == Z_STREAM_END, "idx: {}: corrupt gzip stream ({})", path_, msg);
  }

  std::string path_;
  gzFile file_ = nullptr;
};

// idx stores its header words big-endian.
uint32_t be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

constexpr uint32_t kImagesMagic = 2051;  // 0x00000803: unsigned bytes, 3 dims
constexpr uint32_t kLabelsMagic = 2049;  // 0x00000801: unsigned bytes, 1 dim

std::string magic_hint(uint32_t magic) {
  if (magic == kImagesMagic) return " (this is an idx3 image file)";
  if (magic == kLabelsMagic) return " (this is an idx1 label file)";
  if ((magic >> 16) == 0x1f8b) return " (gzip data inside a gzip stream or under a plain name?)";
  return "";
}

// The .gz file when present, else the plain one.
std::string find_file(const std::string& dir, const std::string& base) {
  fs::path gz = fs::path(dir) / (base + ".gz");
  fs::path plain = fs::path(dir) / base;
  std::error_code ec;
  if (fs::is_regular_file(gz, ec)) return gz.string();
  if (fs::is_regular_file(plain, ec)) return plain.string();
  RECUR_FAIL("fashion-mnist: neither {} nor {} found in {} (run `recur data fetch fashion-mnist`)",
             gz.filename().string(), plain.filename().string(), dir);
}

}  // namespace

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

IdxImages read_idx_images(const std::string& path, int64_t rows, int64_t cols) {
  GzReader in(path);
  unsigned char h[16];
  size_t got = in.read(h, sizeof h);
  RECUR_CHECK(got == sizeof h, "idx: {}: file too short: {} bytes, an idx3 image header needs 16", path, got);
  uint32_t magic = be32(h);
  RECUR_CHECK(magic == kImagesMagic, "idx: {}: bad magic number {} (expected {} for idx3 images){}", path, magic,
              kImagesMagic, magic_hint(magic));
  IdxImages out;
  out.count = be32(h + 4);
  out.rows = be32(h + 8);
  out.cols = be32(h + 12);
  RECUR_CHECK(out.rows == rows && out.cols == cols, "idx: {}: images are {}x{}, expected {}x{}", path, out.rows,
              out.cols, rows, cols);
  size_t per_image = static_cast<size_t>(rows * cols);
  size_t want = static_cast<size_t>(out.count) * per_image;
  size_t have = in.read_into(&out.pixels, want);
  RECUR_CHECK(have == want, "idx: {}: truncated: header declares {} images ({} bytes of pixels), the file holds {}",
              path, out.count, want, have);
  RECUR_CHECK(!in.has_more(), "idx: {}: trailing data after the {} declared images", path, out.count);
  return out;
}

std::vector<uint8_t> read_idx_labels(const std::string& path, int64_t num_classes) {
  GzReader in(path);
  unsigned char h[8];
  size_t got = in.read(h, sizeof h);
  RECUR_CHECK(got == sizeof h, "idx: {}: file too short: {} bytes, an idx1 label header needs 8", path, got);
  uint32_t magic = be32(h);
  RECUR_CHECK(magic == kLabelsMagic, "idx: {}: bad magic number {} (expected {} for idx1 labels){}", path, magic,
              kLabelsMagic, magic_hint(magic));
  size_t count = be32(h + 4);
  std::vector<uint8_t> labels;
  size_t have = in.read_into(&labels, count);
  RECUR_CHECK(have == count, "idx: {}: truncated: header declares {} labels, the file holds {}", path, count, have);
  RECUR_CHECK(!in.has_more(), "idx: {}: trailing data after the {} declared labels", path, count);
  for (size_t i = 0; i < labels.size(); ++i)
    RECUR_CHECK(labels[i] < num_classes, "idx: {}: label {} at index {} is out of range 0..{}", path,
                int{labels[i]}, i, num_classes - 1);
  return labels;
}

SequenceDataset load_fashion_mnist_rows(const std::string& dir, const std::string& split, int64_t limit) {
  RECUR_CHECK(split == "train" || split == "test", "fashion-mnist: unknown split '{}' (expected train or test)",
              split);
  RECUR_CHECK(limit >= 0, "fashion-mnist: limit is {}, must be >= 0 (0: all)", limit);
  std::error_code ec;
  RECUR_CHECK(fs::is_directory(dir, ec), "fashion-mnist: {} is not a folder", dir);
  const std::string prefix = split == "train" ? "train" : "t10k";
  const int64_t side = 28;
  const auto& names = fashion_mnist_class_names();
  std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  IdxImages images = read_idx_images(images_path, side, side);
  std::vector<uint8_t> labels = read_idx_labels(labels_path, static_cast<int64_t>(names.size()));
  RECUR_CHECK(images.count == static_cast<int64_t>(labels.size()),
              "fashion-mnist: count mismatch: {} holds {} images but {} holds {} labels", images_path, images.count,
              labels_path, labels.size());

  int64_t n = limit > 0 ? std::min(limit, images.count) : images.count;
  SequenceDataset ds;
  ds.feature_dim = side;
  ds.num_classes = static_cast<int64_t>(names.size());
  ds.class_names = names;
  ds.examples.reserve(static_cast<size_t>(n));
  if (n == 0) return ds;
  // One block for every image, each example a (28, 28) view of it: one allocation, not 60,000.
  Tensor all({n * side, side}, DType::F32);
  float* dst = all.f32();
  size_t total = static_cast<size_t>(n * side * side);
  for (size_t i = 0; i < total; ++i) dst[i] = static_cast<float>(images.pixels[i]) * (1.0f / 255.0f);
  for (int64_t i = 0; i < n; ++i)
    ds.push_back(Example{all.rows(i * side, (i + 1) * side), int64_t{labels[static_cast<size_t>(i)]}, Tensor()});
  return ds;
}

PixelNorm fit_pixel_norm(const SequenceDataset& ds) {
  RECUR_CHECK(!ds.empty(), "fit_pixel_norm: empty dataset");
  double sum = 0.0, sum_sq = 0.0;
  int64_t count = 0;
  for (const Example& e : ds.examples) {
    const float* p = e.features.f32();
    for (int64_t i = 0; i < e.features.numel(); ++i) {
      double v = p[i];
      sum += v;
      sum_sq += v * v;
    }
    count += e.features.numel();
  }
  double mean = sum / static_cast<double>(count);
  double var = std::max(0.0, sum_sq / static_cast<double>(count) - mean * mean);
  RECUR_CHECK(var > 0.0, "fit_pixel_norm: every value is {}, so the standard deviation is 0", mean);
  return PixelNorm{static_cast<float>(mean), static_cast<float>(std::sqrt(var))};
}

void apply_pixel_norm(SequenceDataset& ds, PixelNorm norm) {
  RECUR_CHECK(norm.std > 0.0f && std::isfinite(norm.std) && std::isfinite(norm.mean),
              "apply_pixel_norm: mean {} and std {} (std must be finite and > 0)", norm.mean, norm.std);
  float inv = 1.0f / norm.std;
  for (Example& e : ds.examples) {
    float* p = e.features.f32();
    for (int64_t i = 0; i < e.features.numel(); ++i) p[i] = (p[i] - norm.mean) * inv;
  }
}

}  // namespace recur::data
