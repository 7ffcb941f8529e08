#pragma once
/// \file Datasets of sequences for sequence-to-vector training, seeded length-bucketed batching,
/// collation into packed batches, and a hash-based train/valid/test split.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "recur/core/tensor.h"
#include "recur/seq/packed.h"

namespace recur::data {

/// One example: a sequence of feature rows and either a class label or a regression target.
struct Example {
  Tensor features;     ///< (L, D) float32, one row per step, L >= 1
  int64_t label = -1;  ///< class id in [0, num_classes); -1 for regression
  Tensor target;       ///< (K) float32 for regression; undefined for classification
};

/// A list of examples sharing one feature width. A plain struct: build it with push_back, read it
/// through `examples` or operator[].
struct SequenceDataset {
  std::vector<Example> examples;
  int64_t feature_dim = 0;                ///< D; 0 until set or taken from the first example
  int64_t num_classes = 0;                ///< 0 for regression
  std::vector<std::string> class_names;   ///< (num_classes) or empty

  int64_t size() const { return static_cast<int64_t>(examples.size()); }
  bool empty() const { return examples.empty(); }
  const Example& operator[](int64_t i) const { return examples[static_cast<size_t>(i)]; }
  Example& operator[](int64_t i) { return examples[static_cast<size_t>(i)]; }
  /// Steps of example i.
  int64_t length(int64_t i) const { return (*this)[i].features.dim(0); }
  /// Appends after checking the example against the dataset: (L >= 1, D) features of the same
  /// dtype as the others, a label in range when num_classes > 0, a target as wide as the others.
  void push_back(Example e);
};

/// Examples `ids` of `ds` (sharing their tensors), with the same dims and class names.
SequenceDataset subset(const SequenceDataset& ds, const std::vector<int64_t>& ids);

struct BatchingOptions {
  int64_t max_batch = 64;       ///< sequences per batch
  int64_t max_tokens = 0;       ///< batch_size * max_len budget (padded tokens); 0: no budget
  bool shuffle = true;          ///< shuffle examples and batch order; false: dataset order
  bool bucket_by_length = true; ///< sort by length within shuffled chunks (only when shuffling)
  uint64_t seed = 0;
  /// Bucketing sorts within chunks of chunk_batches * max_batch shuffled examples: large enough
  /// for near-equal lengths per batch, small enough that epochs still differ (Marian's maxi-batch).
  int64_t chunk_batches = 100;
};

/// Cuts the dataset into batches of example indices for one epoch. With shuffling, examples are
/// shuffled, sorted by length within chunks (when bucketing), cut into batches, and the batch
/// order is shuffled; the result depends only on (options.seed, epoch_seed). Without shuffling the
/// concatenated batches are exactly 0..size-1. Every example appears exactly once. A batch holds
/// at most max_batch examples and, when max_tokens > 0, batch_size * max_len <= max_tokens,
/// except that a single example longer than max_tokens gets a batch of its own.
std::vector<std::vector<int64_t>> make_batches(const SequenceDataset& ds, const BatchingOptions& options,
                                               uint64_t epoch_seed);

/// A collated batch, ready for a packed RNN.
struct Batch {
  Tensor x;                      ///< (N_tokens, D) packed, time-major, sorted by length
  PackedBatch layout;            ///< lengths etc. in the original batch order
  Tensor labels;                 ///< (B) int64, original batch order; undefined when num_classes == 0
  Tensor targets;                ///< (B, K) float32, original batch order; undefined without targets
  std::vector<int64_t> indices;  ///< (B) example indices, original batch order
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

/// Packs examples `indices` (non-empty, in range) of `ds` with recur::pack_sequences.
Batch collate(const SequenceDataset& ds, const std::vector<int64_t>& indices);

enum class Split { Train, Valid, Test };

/// 64-bit FNV-1a: a hash that is the same on every platform and compiler (std::hash is not).
uint64_t fnv1a64(std::string_view s);

/// Where the example with this key goes: a pure function of the key, so an example lands in the
/// same split whatever the dataset order or size. Fractions are in [0, 1] with sum <= 1.
Split split_of(const std::string& key, double valid_fraction, double test_fraction);

/// Splits example ids 0..keys.size()-1 by split_of(keys[i]); each output keeps increasing order.
void split_by_hash(std::vector<int64_t>* train, std::vector<int64_t>* valid, std::vector<int64_t>* test,
                   const std::vector<std::string>& keys, double valid_fraction, double test_fraction);

}  // namespace recur::data
