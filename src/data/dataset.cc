#include "recur/data/dataset.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "recur/core/error.h"
#include "recur/core/rng.h"

namespace recur::data {

void SequenceDataset::push_back(Example e) {
  const Tensor& f = e.features;
  RECUR_CHECK(f.defined() && f.ndim() == 2 && f.dim(0) >= 1,
              "SequenceDataset: example {} has features of shape {}, expected (L >= 1, D)", size(),
              f.defined() ? f.shape_str() : std::string("undefined"));
  if (feature_dim == 0) feature_dim = f.dim(1);
  RECUR_CHECK(f.dim(1) == feature_dim, "SequenceDataset: example {} has {} features per step, expected {}",
              size(), f.dim(1), feature_dim);
  if (!examples.empty())
    RECUR_CHECK(f.dtype() == examples[0].features.dtype(), "SequenceDataset: example {} has dtype {}, expected {}",
                size(), dtype_name(f.dtype()), dtype_name(examples[0].features.dtype()));
  if (num_classes > 0)
    RECUR_CHECK(e.label >= 0 && e.label < num_classes, "SequenceDataset: example {} has label {}, expected 0..{}",
                size(), e.label, num_classes - 1);
  if (!examples.empty()) {
    const Tensor& t0 = examples[0].target;
    RECUR_CHECK(e.target.defined() == t0.defined(), "SequenceDataset: example {} {} a target, example 0 {}",
                size(), e.target.defined() ? "has" : "lacks", t0.defined() ? "has one" : "does not");
  }
  if (e.target.defined()) {
    RECUR_CHECK(e.target.ndim() == 1 && e.target.dtype() == DType::F32,
                "SequenceDataset: example {} has a target of shape {}, expected (K) float32", size(),
                e.target.shape_str());
    if (!examples.empty())
      RECUR_CHECK(e.target.dim(0) == examples[0].target.dim(0),
                  "SequenceDataset: example {} has a target of width {}, expected {}", size(), e.target.dim(0),
                  examples[0].target.dim(0));
  }
  examples.push_back(std::move(e));
}

SequenceDataset subset(const SequenceDataset& ds, const std::vector<int64_t>& ids) {
  SequenceDataset out;
  out.feature_dim = ds.feature_dim;
  out.num_classes = ds.num_classes;
  out.class_names = ds.class_names;
  out.examples.reserve(ids.size());
  for (int64_t i : ids) {
    RECUR_CHECK(i >= 0 && i < ds.size(), "subset: example {} of a dataset of {}", i, ds.size());
    out.examples.push_back(ds[i]);
  }
  return out;
}

namespace {

void shuffle_in_place(std::vector<int64_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// Cuts `order` into consecutive batches under the size and token limits.
void cut_batches(const SequenceDataset& ds, const BatchingOptions& o, const int64_t* order, size_t n,
                 std::vector<std::vector<int64_t>>* out) {
  std::vector<int64_t> cur;
  int64_t cur_max = 0;
  for (size_t k = 0; k < n; ++k) {
    int64_t i = order[k];
    int64_t len = ds.length(i);
    int64_t new_max = std::max(cur_max, len);
    int64_t new_size = static_cast<int64_t>(cur.size()) + 1;
    bool over = new_size > o.max_batch || (o.max_tokens > 0 && new_size * new_max > o.max_tokens);
    if (over && !cur.empty()) {
      out->push_back(std::move(cur));
      cur.clear();
      new_max = len;
    }
    cur.push_back(i);
    cur_max = new_max;
  }
  if (!cur.empty()) out->push_back(std::move(cur));
}

}  // namespace

std::vector<std::vector<int64_t>> make_batches(const SequenceDataset& ds, const BatchingOptions& options,
                                               uint64_t epoch_seed) {
  RECUR_CHECK(options.max_batch >= 1, "make_batches: max_batch is {}, must be >= 1", options.max_batch);
  RECUR_CHECK(options.max_tokens >= 0, "make_batches: max_tokens is {}, must be >= 0 (0: no budget)",
              options.max_tokens);
  RECUR_CHECK(options.chunk_batches >= 1, "make_batches: chunk_batches is {}, must be >= 1", options.chunk_batches);
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> order(static_cast<size_t>(ds.size()));
  std::iota(order.begin(), order.end(), 0);
  if (!options.shuffle) {
    cut_batches(ds, options, order.data(), order.size(), &batches);
    return batches;
  }
  // Both seeds are mixed so that nearby seeds (epoch 1, 2, ...) give unrelated streams.
  Rng rng(mix64(options.seed) ^ mix64(epoch_seed ^ 0x5DEECE66Dull));
  shuffle_in_place(order, rng);
  if (!options.bucket_by_length) {
    cut_batches(ds, options, order.data(), order.size(), &batches);
  } else {
    size_t chunk = static_cast<size_t>(options.chunk_batches * options.max_batch);
    for (size_t begin = 0; begin < order.size(); begin += chunk) {
      size_t end = std::min(order.size(), begin + chunk);
      // Stable, so equal lengths keep their shuffled order and batches of equal length still vary.
      std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(begin),
                       order.begin() + static_cast<std::ptrdiff_t>(end),
                       [&](int64_t a, int64_t b) { return ds.length(a) < ds.length(b); });
      // Cut per chunk: a batch spanning two chunks would mix the longest of one with the shortest
      // of the next.
      cut_batches(ds, options, order.data() + begin, end - begin, &batches);
    }
  }
  // Sorting made the batch order follow length; shuffle it so training does not see a curriculum.
  for (size_t i = batches.size(); i > 1; --i) std::swap(batches[i - 1], batches[rng.below(i)]);
  return batches;
}

Batch collate(const SequenceDataset& ds, const std::vector<int64_t>& indices) {
  RECUR_CHECK(!indices.empty(), "collate: empty batch");
  Batch b;
  b.indices = indices;
  std::vector<Tensor> seqs;
  seqs.reserve(indices.size());
  for (int64_t i : indices) {
    RECUR_CHECK(i >= 0 && i < ds.size(), "collate: example {} of a dataset of {}", i, ds.size());
    seqs.push_back(ds[i].features);
  }
  b.x = pack_sequences(seqs, &b.layout);
  int64_t B = static_cast<int64_t>(indices.size());
  if (ds.num_classes > 0) {
    std::vector<int64_t> labels;
    labels.reserve(indices.size());
    for (int64_t i : indices) labels.push_back(ds[i].label);
    b.labels = Tensor::from_i64({B}, labels);
  }
  const Tensor& t0 = ds[indices[0]].target;
  if (t0.defined()) {
    int64_t K = t0.dim(0);
    b.targets = Tensor({B, K}, DType::F32);
    float* dst = b.targets.f32();
    for (int64_t r = 0; r < B; ++r) {
      const Tensor& t = ds[indices[static_cast<size_t>(r)]].target;
      RECUR_CHECK(t.defined() && t.numel() == K && t.dtype() == DType::F32,
                  "collate: example {} has a target of shape {}, expected ({})", indices[static_cast<size_t>(r)],
                  t.defined() ? t.shape_str() : std::string("undefined"), K);
      std::memcpy(dst + r * K, t.f32(), static_cast<size_t>(K) * sizeof(float));
    }
  }
  return b;
}

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

Split split_of(const std::string& key, double valid_fraction, double test_fraction) {
  RECUR_CHECK(valid_fraction >= 0 && test_fraction >= 0 && valid_fraction + test_fraction <= 1.0,
              "split_of: valid fraction {} and test fraction {} must be >= 0 with sum <= 1", valid_fraction,
              test_fraction);
  // FNV-1a mixes a key's last bytes weakly ("id-17" vs "id-18"); the SplitMix finaliser spreads
  // them over the whole word before the top bits become a uniform value.
  uint64_t h = mix64(fnv1a64(key));
  double u = static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);
  if (u < test_fraction) return Split::Test;
  if (u < test_fraction + valid_fraction) return Split::Valid;
  return Split::Train;
}

void split_by_hash(std::vector<int64_t>* train, std::vector<int64_t>* valid, std::vector<int64_t>* test,
                   const std::vector<std::string>& keys, double valid_fraction, double test_fraction) {
  RECUR_CHECK(train && valid && test, "split_by_hash: null output");
  train->clear();
  valid->clear();
  test->clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    switch (split_of(keys[i], valid_fraction, test_fraction)) {
      case Split::Train: train->push_back(static_cast<int64_t>(i)); break;
      case Split::Valid: valid->push_back(static_cast<int64_t>(i)); break;
      case Split::Test: test->push_back(static_cast<int64_t>(i)); break;
    }
  }
}

}  // namespace recur::data
