// Sequence datasets: seeded length-bucketed batching, collation into packed batches, the hash
// split, and the Fashion-MNIST idx reader on small files written here (gzip and plain, and every
// kind of corruption), plus the real data when it is on the machine.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "recur/core/error.h"
#include "recur/core/rng.h"
#include "recur/data/dataset.h"
#include "recur/data/fetch.h"
#include "recur/data/idx.h"

namespace recur::data {
namespace {

namespace fs = std::filesystem;

// n examples of D=3 features and random lengths in [1, max_len]; value = 1000*i + 10*t + d, so a
// packed row tells which example and step it came from.
SequenceDataset ragged_dataset(int64_t n, int64_t max_len, uint64_t seed = 7) {
  SequenceDataset ds;
  ds.num_classes = 5;
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    int64_t L = 1 + static_cast<int64_t>(rng.below(static_cast<uint64_t>(max_len)));
    Tensor f({L, 3});
    for (int64_t k = 0; k < L * 3; ++k) f.f32()[k] = static_cast<float>(1000 * i + 10 * (k / 3) + k % 3);
    ds.push_back(Example{f, i % 5, Tensor()});
  }
  return ds;
}

using Batches = std::vector<std::vector<int64_t>>;

// The batches one after another.
std::vector<int64_t> flatten(const Batches& batches) {
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  return all;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

void expect_each_once(const Batches& batches, int64_t n) {
  for (const auto& b : batches) EXPECT_FALSE(b.empty());
  std::vector<int64_t> all = flatten(batches);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, iota(n));
}

// Shortest and longest sequence of a batch.
std::pair<int64_t, int64_t> length_range(const SequenceDataset& ds, const std::vector<int64_t>& b) {
  auto [lo, hi] = std::minmax_element(b.begin(), b.end(),
                                      [&](int64_t x, int64_t y) { return ds.length(x) < ds.length(y); });
  return {ds.length(*lo), ds.length(*hi)};
}

// Mean over batches of (longest / shortest) sequence.
double mean_length_ratio(const SequenceDataset& ds, const Batches& batches) {
  double sum = 0.0;
  for (const auto& b : batches) sum += static_cast<double>(length_range(ds, b).second) / length_range(ds, b).first;
  return sum / static_cast<double>(batches.size());
}

TEST(DataBatching, CoversEveryExampleOnce) {
  SequenceDataset ds = ragged_dataset(1037, 50);
  for (int combo = 0; combo < 8; ++combo) {
    BatchingOptions o{.max_batch = 32, .max_tokens = combo & 1 ? 400 : 0, .shuffle = (combo & 2) != 0,
                      .bucket_by_length = (combo & 4) != 0, .chunk_batches = 4};
    SCOPED_TRACE(testing::Message() << "options combination " << combo);
    expect_each_once(make_batches(ds, o, 3), ds.size());
  }
  EXPECT_TRUE(make_batches(SequenceDataset{}, BatchingOptions{}, 0).empty());
}

TEST(DataBatching, RespectsMaxBatchAndMaxTokens) {
  SequenceDataset ds = ragged_dataset(800, 40);
  BatchingOptions o{.max_batch = 16, .max_tokens = 200};
  for (const auto& b : make_batches(ds, o, 1)) {
    EXPECT_LE(static_cast<int64_t>(b.size()), 16);
    EXPECT_LE(static_cast<int64_t>(b.size()) * length_range(ds, b).second, 200);
  }
  // Without a token budget, bucketed batches are full except the last of each chunk.
  int64_t full = 0;
  for (const auto& b : make_batches(ds, BatchingOptions{.max_batch = 16, .chunk_batches = 10}, 1))
    full += b.size() == 16;
  EXPECT_EQ(full, 800 / 16);
  EXPECT_THROW(make_batches(ds, BatchingOptions{.max_batch = 0}, 0), Error);
  EXPECT_THROW(make_batches(ds, BatchingOptions{.max_tokens = -1}, 0), Error);
  // An example longer than the token budget cannot be split: it gets a batch of its own.
  ds = ragged_dataset(50, 10);
  ds.push_back(Example{Tensor::full({30, 3}, 1.0), 0, Tensor()});
  auto batches = make_batches(ds, BatchingOptions{.max_tokens = 20}, 0);
  expect_each_once(batches, ds.size());
  EXPECT_NE(std::find(batches.begin(), batches.end(), std::vector<int64_t>{50}), batches.end());
}

TEST(DataBatching, DeterministicForASeedDifferentAcrossEpochsOrderedWithoutShuffle) {
  SequenceDataset ds = ragged_dataset(500, 30);
  BatchingOptions o{.max_batch = 8, .seed = 42};
  EXPECT_EQ(make_batches(ds, o, 5), make_batches(ds, o, 5));
  EXPECT_NE(make_batches(ds, o, 5), make_batches(ds, o, 6));
  EXPECT_NE(make_batches(ds, o, 5), make_batches(ds, BatchingOptions{.max_batch = 8, .seed = 43}, 5));
  o.bucket_by_length = false;
  EXPECT_EQ(make_batches(ds, o, 9), make_batches(ds, o, 9));
  EXPECT_NE(make_batches(ds, o, 9), make_batches(ds, o, 10));
  // Without shuffling: dataset order, whatever the seeds.
  o = BatchingOptions{.max_batch = 7, .max_tokens = 60, .shuffle = false};
  EXPECT_EQ(flatten(make_batches(ds, o, 99)), iota(ds.size()));
  EXPECT_EQ(make_batches(ds, o, 1), make_batches(ds, o, 2));
}

TEST(DataBatching, BucketsByLength) {
  SequenceDataset ds = ragged_dataset(4000, 100);
  BatchingOptions o{.max_batch = 32};
  double bucketed = mean_length_ratio(ds, make_batches(ds, o, 0));
  o.bucket_by_length = false;
  double random = mean_length_ratio(ds, make_batches(ds, o, 0));
  // Lengths are uniform in 1..100: random batches of 32 almost always hold a very short one.
  EXPECT_GT(random, 10.0);
  EXPECT_LT(bucketed, 1.5);
}

TEST(DataCollate, PackedRowsAndLabels) {
  SequenceDataset ds = ragged_dataset(20, 6);
  std::vector<int64_t> idx = {7, 2, 19, 11};
  Batch b = collate(ds, idx);
  EXPECT_EQ(b.indices, idx);
  std::vector<int64_t> lengths;
  for (int64_t i : idx) lengths.push_back(ds.length(i));
  EXPECT_EQ(b.layout.lengths, lengths);
  b.x.check_shape({std::accumulate(lengths.begin(), lengths.end(), int64_t{0}), 3}, "x");
  for (int64_t t = 0; t < b.layout.steps(); ++t)
    for (int64_t j = 0; j < b.layout.batch_sizes[static_cast<size_t>(t)]; ++j) {
      int64_t ex = idx[static_cast<size_t>(b.layout.sorted_indices[static_cast<size_t>(j)])];
      for (int64_t d = 0; d < 3; ++d)
        EXPECT_EQ(b.x.item(b.layout.row(t, j) * 3 + d), 1000.0 * ex + 10.0 * t + d);
    }
  ASSERT_TRUE(b.labels.defined());
  for (size_t k = 0; k < idx.size(); ++k) EXPECT_EQ(b.labels.data<int64_t>()[k], idx[k] % 5);
  EXPECT_FALSE(b.targets.defined());
  EXPECT_THROW(collate(ds, {}), Error);
  EXPECT_THROW(collate(ds, {20}), Error);
}

TEST(DataCollate, RegressionTargets) {
  SequenceDataset ds;
  for (int64_t i = 0; i < 5; ++i)
    ds.push_back(Example{Tensor::full({i + 1, 2}, 0.0), -1, Tensor::from({2}, {float(i), float(-i)})});
  EXPECT_EQ(ds.feature_dim, 2);
  Batch b = collate(ds, {4, 1});
  EXPECT_FALSE(b.labels.defined());
  b.targets.check_shape({2, 2}, "targets");
  EXPECT_EQ(b.targets.to_vector(), (std::vector<float>{4, -4, 1, -1}));
  EXPECT_THROW(ds.push_back(Example{Tensor::zeros({1, 2}), -1, Tensor::zeros({3})}), Error);  // width
}

TEST(DataDataset, PushBackValidates) {
  SequenceDataset ds{{}, 0, /*num_classes=*/3, {}};
  ds.push_back(Example{Tensor::zeros({4, 2}), 2, Tensor()});
  EXPECT_THROW(ds.push_back(Example{Tensor::zeros({4, 3}), 0, Tensor()}), Error);  // wrong D
  EXPECT_THROW(ds.push_back(Example{Tensor::zeros({0, 2}), 0, Tensor()}), Error);  // empty
  EXPECT_THROW(ds.push_back(Example{Tensor::zeros({4}), 0, Tensor()}), Error);     // not 2-D
  EXPECT_THROW(ds.push_back(Example{Tensor::zeros({4, 2}), 3, Tensor()}), Error);  // label
  EXPECT_THROW(ds.push_back(Example{Tensor::zeros({4, 2}), 1, Tensor::zeros({2})}), Error);  // target
  EXPECT_EQ(ds.size(), 1);
  EXPECT_EQ(subset(ds, {0, 0}).size(), 2);
  EXPECT_THROW(subset(ds, {1}), Error);
}

TEST(DataSplit, StableAndCloseToFractions) {
  // The reference vectors of the FNV specification: the hash, hence every split, is fixed forever.
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
  std::vector<std::string> keys;
  for (int i = 0; i < 10000; ++i) keys.push_back("example-" + std::to_string(i));
  std::vector<int64_t> train, valid, test;
  split_by_hash(&train, &valid, &test, keys, 0.1, 0.2);
  EXPECT_EQ(train.size() + valid.size() + test.size(), keys.size());
  EXPECT_NEAR(static_cast<double>(valid.size()) / 10000.0, 0.1, 0.015);
  EXPECT_NEAR(static_cast<double>(test.size()) / 10000.0, 0.2, 0.015);
  for (int64_t i : valid) EXPECT_EQ(split_of(keys[static_cast<size_t>(i)], 0.1, 0.2), Split::Valid);
  for (int64_t i : test) EXPECT_EQ(split_of(keys[static_cast<size_t>(i)], 0.1, 0.2), Split::Test);

  // Order and dataset size do not matter: the first half of the keys, reversed, splits the same way.
  std::vector<std::string> half(keys.rbegin() + 5000, keys.rend());
  std::vector<int64_t> tr2, va2, te2;
  split_by_hash(&tr2, &va2, &te2, half, 0.1, 0.2);
  auto in = [](const std::vector<int64_t>& v, int64_t i) { return std::binary_search(v.begin(), v.end(), i); };
  for (int64_t i : tr2) EXPECT_TRUE(in(train, 4999 - i)) << half[static_cast<size_t>(i)];
  for (int64_t i : va2) EXPECT_TRUE(in(valid, 4999 - i)) << half[static_cast<size_t>(i)];
  for (int64_t i : te2) EXPECT_TRUE(in(test, 4999 - i)) << half[static_cast<size_t>(i)];

  EXPECT_EQ(split_of("anything", 0.0, 0.0), Split::Train);
  EXPECT_EQ(split_of("anything", 0.0, 1.0), Split::Test);
  EXPECT_THROW(split_of("x", 0.6, 0.6), Error);
  EXPECT_THROW(split_of("x", -0.1, 0.2), Error);
}

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

// An idx3 image file: `count` images in the header, `pixel_bytes` bytes of data (-1: all of them),
// pixel (i, r, c) = (i * 7 + r * 28 + c) % 256.
std::vector<uint8_t> idx_images(uint32_t count, uint32_t rows = 28, uint32_t cols = 28, uint32_t magic = 2051,
                                int64_t pixel_bytes = -1) {
  std::vector<uint8_t> out;
  for (uint32_t word : {magic, count, rows, cols}) put_be32(out, word);
  int64_t n = pixel_bytes >= 0 ? pixel_bytes : int64_t{count} * rows * cols;
  for (int64_t k = 0, area = int64_t{rows} * cols; k < n; ++k)
    out.push_back(static_cast<uint8_t>((k / area * 7 + k % area) % 256));
  return out;
}

// An idx1 label file with labels i % 10.
std::vector<uint8_t> idx_labels(uint32_t count, uint32_t magic = 2049) {
  std::vector<uint8_t> out;
  for (uint32_t word : {magic, count}) put_be32(out, word);
  for (uint32_t i = 0; i < count; ++i) out.push_back(static_cast<uint8_t>(i % 10));
  return out;
}

class DataIdx : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_idx_" + std::to_string(getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_plain(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::ofstream f(dir_ / name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  void write_gz(const std::string& name, const std::vector<uint8_t>& bytes) {
    gzFile f = gzopen((dir_ / (name + ".gz")).c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
  }
  // Writes both files of a split, removing the other form so that exactly this one is read.
  void write_split(const std::string& prefix, const std::vector<uint8_t>& images,
                   const std::vector<uint8_t>& labels, bool gz) {
    for (const auto& [kind, bytes] : {std::pair{"-images-idx3-ubyte", &images}, {"-labels-idx1-ubyte", &labels}}) {
      std::string name = prefix + kind;
      fs::remove(dir_ / (gz ? name : name + ".gz"));
      if (gz) write_gz(name, *bytes);
      else write_plain(name, *bytes);
    }
  }
  // Expects loading `split` to throw recur::Error naming `file` and `problem`.
  void expect_load_error(const std::string& split, const std::string& file, const std::string& problem) {
    try {
      load_fashion_mnist_rows(dir_.string(), split);
      ADD_FAILURE() << "no error for " << file << " / " << problem;
    } catch (const Error& e) {
      EXPECT_TRUE(std::string(e.what()).find(file) != std::string::npos &&
                  std::string(e.what()).find(problem) != std::string::npos) << e.what();
    }
  }

  fs::path dir_;
};

TEST_F(DataIdx, ReadsGzipAndPlainFiles) {
  write_split("train", idx_images(12), idx_labels(12), /*gz=*/true);
  write_split("t10k", idx_images(5), idx_labels(5), /*gz=*/false);
  for (const char* split : {"train", "test"}) {
    SequenceDataset ds = load_fashion_mnist_rows(dir_.string(), split);
    int64_t n = std::string(split) == "train" ? 12 : 5;
    ASSERT_EQ(ds.size(), n);
    EXPECT_EQ(ds.feature_dim, 28);
    EXPECT_EQ(ds.num_classes, 10);
    EXPECT_EQ(ds.class_names, fashion_mnist_class_names());
    EXPECT_EQ(ds.class_names.at(9), "Ankle boot");
    for (int64_t i = 0; i < n; ++i) {
      ds[i].features.check_shape({28, 28}, "features");
      EXPECT_EQ(ds[i].label, i % 10);
      for (int64_t k : {int64_t{0}, int64_t{29}, int64_t{783}})
        EXPECT_FLOAT_EQ(static_cast<float>(ds[i].features.item(k)), static_cast<float>((i * 7 + k) % 256) / 255.0f);
    }
  }
  // The .gz file wins when both exist.
  write_plain("train-labels-idx1-ubyte", idx_labels(3));
  EXPECT_EQ(load_fashion_mnist_rows(dir_.string(), "train").size(), 12);
  // `limit` keeps the first examples.
  SequenceDataset first = load_fashion_mnist_rows(dir_.string(), "train", 4);
  ASSERT_EQ(first.size(), 4);
  EXPECT_EQ(first[3].label, 3);
  EXPECT_FLOAT_EQ(static_cast<float>(first[3].features.item(0)), 21.0f / 255.0f);
  EXPECT_EQ(load_fashion_mnist_rows(dir_.string(), "train", 100).size(), 12);
  // Normalising with the fitted statistics gives mean 0 and std 1.
  apply_pixel_norm(first, fit_pixel_norm(first));
  PixelNorm after = fit_pixel_norm(first);
  EXPECT_NEAR(after.mean, 0.0f, 1e-5);
  EXPECT_NEAR(after.std, 1.0f, 1e-4);
  EXPECT_THROW(apply_pixel_norm(first, PixelNorm{0.0f, 0.0f}), Error);
  EXPECT_THROW(fit_pixel_norm(SequenceDataset{{Example{Tensor::full({2, 2}, 0.5), 0, Tensor()}}, 2, 0, {}}), Error);
}

// Every kind of damage, gzip and plain: each is a recur::Error naming the file and the problem.
TEST_F(DataIdx, MissingOrCorruptFilesNameTheFileAndTheProblem) {
  expect_load_error("train", "train-images-idx3-ubyte", "found");
  EXPECT_THROW(load_fashion_mnist_rows((dir_ / "nope").string(), "train"), Error);
  expect_load_error("valid", "valid", "unknown split");
  EXPECT_THROW(load_fashion_mnist_rows(dir_.string(), "train", -1), Error);
  const std::vector<uint8_t> images = idx_images(3), labels = idx_labels(3);
  auto cut = [](std::vector<uint8_t> v, size_t n) { v.resize(n); return v; };
  auto extra = [](std::vector<uint8_t> v) { v.push_back(0); return v; };
  std::vector<uint8_t> bad_label = labels;
  bad_label[8 + 2] = 12;
  struct Case { std::vector<uint8_t> images, labels; bool gz; const char *file, *problem; };
  const Case cases[] = {
      {idx_images(3, 28, 28, 2049), labels, true, "train-images-idx3-ubyte.gz", "bad magic number 2049"},
      {images, idx_labels(3, 2051), false, "train-labels-idx1-ubyte", "bad magic number 2051"},
      {idx_images(3, 27, 28), labels, true, "train-images-idx3-ubyte.gz", "images are 27x28, expected 28x28"},
      {images, idx_labels(4), true, "train-labels-idx1-ubyte.gz", "count mismatch"},
      {idx_images(4), labels, false, "train-images-idx3-ubyte", "holds 4 images"},
      {cut(images, 10), labels, false, "train-images-idx3-ubyte", "file too short: 10 bytes"},
      {images, cut(labels, 3), true, "train-labels-idx1-ubyte.gz", "file too short: 3 bytes"},
      {images, {}, false, "train-labels-idx1-ubyte", "file too short: 0 bytes"},
      {cut(images, images.size() - 1), labels, false, "train-images-idx3-ubyte", "truncated"},
      {images, cut(labels, labels.size() - 1), true, "train-labels-idx1-ubyte.gz", "truncated"},
      // Four billion images claimed: must fail on the missing data, not on allocation.
      {idx_images(0xFFFFFFFFu, 28, 28, 2051, 100), labels, true, "train-images-idx3-ubyte.gz", "truncated"},
      {extra(images), labels, true, "train-images-idx3-ubyte.gz", "trailing data"},
      {images, extra(labels), false, "train-labels-idx1-ubyte", "trailing data"},
      {images, bad_label, true, "train-labels-idx1-ubyte.gz", "label 12 at index 2 is out of range 0..9"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.problem);
    write_split("train", c.images, c.labels, c.gz);
    expect_load_error("train", c.file, c.problem);
  }
}

TEST_F(DataIdx, TruncatedOrCorruptGzipStream) {
  write_split("train", idx_images(40), idx_labels(40), true);
  const std::string gz = "train-images-idx3-ubyte.gz";
  std::ifstream f(dir_ / gz, std::ios::binary);
  const std::vector<uint8_t> good((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  write_plain(gz, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2)));
  expect_load_error("train", gz, "truncated gzip stream");
  // A wrong CRC in the gzip trailer: every byte arrives, yet the data is not what was written.
  std::vector<uint8_t> bad = good;
  bad[bad.size() - 6] ^= 1;
  write_plain(gz, bad);
  expect_load_error("train", gz, "corrupt gzip stream");
  // Garbled deflate data fails somewhere (a bad block, a wrong length or CRC), always naming the file.
  bad = good;
  for (size_t k = bad.size() / 3; k < bad.size() / 3 + 16; ++k) bad[k] ^= 0x5A;
  write_plain(gz, bad);
  expect_load_error("train", gz, "");
}

// The real Fashion-MNIST, when `recur data fetch fashion-mnist` or the Debian package put it here.
TEST(DataFashionMnist, RealData) {
  std::string dir;
  std::error_code ec;
  for (const fs::path& c : {fs::path("/tmp/rcache/fashion-mnist"), fs::path("/usr/share/datasets/fashion-mnist"),
                           fs::path(default_cache_dir()) / "fashion-mnist"})
    for (const char* name : {"train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte"})
      if (dir.empty() && fs::exists(c / name, ec)) dir = c.string();
  if (dir.empty()) GTEST_SKIP() << "Fashion-MNIST not found (run `recur data fetch fashion-mnist`)";
  SequenceDataset train = load_fashion_mnist_rows(dir, "train"), test = load_fashion_mnist_rows(dir, "test");
  ASSERT_EQ(train.size(), 60000);
  ASSERT_EQ(test.size(), 10000);
  for (const SequenceDataset* ds : {&train, &test}) {
    // Fashion-MNIST is balanced: 6,000 images per class in train, 1,000 in test.
    std::vector<int64_t> per_class(10, 0);
    for (const Example& e : ds->examples) {
      ASSERT_EQ(e.features.shape(), (Shape{28, 28}));
      ASSERT_TRUE(e.label >= 0 && e.label <= 9);
      ++per_class[static_cast<size_t>(e.label)];
    }
    EXPECT_EQ(per_class, std::vector<int64_t>(10, ds->size() / 10));
  }
  // The published training-set statistics (mean 0.2860, std 0.3530).
  PixelNorm norm = fit_pixel_norm(train);
  EXPECT_NEAR(norm.mean, 0.2860, 1e-3);
  EXPECT_NEAR(norm.std, 0.3530, 1e-3);
  collate(train, {0, 1, 2}).x.check_shape({84, 28}, "x");
}

}  // namespace
}  // namespace recur::data
