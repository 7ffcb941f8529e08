#pragma once
/// \file PackedBatch: PyTorch's PackedSequence layout for a batch of variable-length sequences.
///
/// Packed rows are time-major and sorted by length (longest first): step t holds batch_sizes[t]
/// rows, rows offsets[t] .. offsets[t]+batch_sizes[t]-1, and row offsets[t]+j belongs to the
/// sequence at sorted position j, i.e. to original sequence sorted_indices[j]. Every sequence that
/// is still active at step t is among the first batch_sizes[t] sorted positions.
#include <cstdint>
#include <vector>

#include "recur/core/tape.h"
#include "recur/core/tensor.h"

namespace recur {

struct PackedBatch {
  std::vector<int64_t> lengths;           ///< (B) per sequence, original order
  std::vector<int64_t> batch_sizes;       ///< (T) active sequences per step
  std::vector<int64_t> offsets;           ///< (T+1) first packed row of each step
  std::vector<int64_t> sorted_indices;    ///< (B) sorted position -> original index
  std::vector<int64_t> unsorted_indices;  ///< (B) original index -> sorted position

  /// Builds the layout from lengths (each >= 1). Ties keep their original order.
  static PackedBatch from_lengths(const std::vector<int64_t>& lengths);
  /// A layout where every one of `batch` sequences has `steps` steps (the padded/static case).
  static PackedBatch fixed(int64_t steps, int64_t batch);

  int64_t batch() const { return static_cast<int64_t>(lengths.size()); }
  int64_t steps() const { return static_cast<int64_t>(batch_sizes.size()); }
  int64_t tokens() const { return offsets.empty() ? 0 : offsets.back(); }
  /// Packed row of step t of the sequence at sorted position j (j < batch_sizes[t]).
  int64_t row(int64_t t, int64_t j) const { return offsets[static_cast<size_t>(t)] + j; }
  /// Packed row of the last step of original sequence b.
  int64_t last_row(int64_t b) const;
};

/// Packs sequences, each (L_i, D), into (sum L_i, D) and fills `*layout`.
Tensor pack_sequences(const std::vector<Tensor>& seqs, PackedBatch* layout);
/// Packs a time-major padded tensor (T, B, D) given lengths; fills `*layout`.
Tensor pack_padded(const Tensor& padded, const std::vector<int64_t>& lengths, PackedBatch* layout);
/// Unpacks (N, D) into time-major padded (T, B, D), original batch order, pad positions = pad.
Tensor unpack_to_padded(const Tensor& packed, const PackedBatch& layout, float pad = 0.0f);
/// Permutes rows of (B, ...) from original to sorted order (`to_sorted`) or back.
Tensor permute_batch(const Tensor& x, const PackedBatch& layout, bool to_sorted);

/// Differentiable versions.
Var pack_padded(Tape& tape, const Var& padded, const PackedBatch& layout);
Var unpack_to_padded(Tape& tape, const Var& packed, const PackedBatch& layout);

}  // namespace recur
