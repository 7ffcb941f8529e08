#pragma once
/// \file Attention of a decoder state over a packed batch of encoder outputs: Luong's dot and
/// general scores, Bahdanau's additive score. Only the real tokens of each sequence are attended
/// (the packed layout has no padding), and each query sees only its own sequence.
///
/// Built from differentiable ops that all have CPU and CUDA paths (embedding as a per-token gather
/// of the queries, linear, mul, tanh, attention pooling), so it runs on either device.
#include <cstdint>

#include "recur/nn/layers.h"
#include "recur/seq/packed.h"

namespace recur::nn {

enum class AttentionKind {
  Dot,       ///< score(q, k) = q . k (query and key sizes equal)
  General,   ///< score(q, k) = (W q) . k
  Additive,  ///< score(q, k) = v . tanh(W_q q + b + W_k k)
};

struct AttentionOptions {
  AttentionKind kind = AttentionKind::General;
  int64_t query_size = 0;
  int64_t key_size = 0;
  int64_t hidden = 0;  ///< Additive: width of the tanh layer (0: key_size)
};

class Attention : public Module {
 public:
  Attention(const AttentionOptions& options, Rng& init);

  /// query: (B, query_size), one row per sequence in original batch order. keys: (N, key_size),
  /// packed per `layout` (the encoder outputs; they are the values too). Returns the context
  /// (B, key_size). When `weights` is given it receives each packed row's attention weight (N,
  /// summing to 1 over each sequence's rows), for inspection.
  Var forward(Tape& tape, const Var& query, const Var& keys, const PackedBatch& layout,
              Tensor* weights = nullptr) const;

  /// Many queries per sequence: query (M, query_size) holds M query rows, row m attending over
  /// the keys of sequence query_seq[m] (an original batch index of `layout`) — the decoder's rows
  /// for every target token of a batch at once, or the live hypotheses of a beam. Returns the
  /// context (M, key_size). When `weights` is given it is assigned (M, S) F32 on the CPU, S =
  /// layout.steps(): row m's weight on each step of its sequence, zeros past its end. With one
  /// query per sequence in batch order this is forward() (and runs it).
  ///
  /// `projected_keys`, when defined, is project_keys(keys) computed once beforehand (a decoder
  /// attends over the same keys at every step).
  Var forward_rows(Tape& tape, const Var& query, const std::vector<int64_t>& query_seq, const Var& keys,
                   const PackedBatch& layout, Tensor* weights = nullptr, const Var& projected_keys = Var()) const;
  /// The keys' part of the additive score, W_k k (N, hidden); undefined for dot and general scores.
  Var project_keys(Tape& tape, const Var& keys) const;

  const AttentionOptions& options() const { return opt_; }

 private:
  // The query as scores use it: W q (general), W_q q + b (additive) or q itself (dot).
  Var project_query(Tape& tape, const Var& query) const;
  // Scores (P, 1) of P (query, key) pairs: each pair's projected query, its key and, for the
  // additive score, its projected key W_k k.
  Var pair_scores(Tape& tape, const Var& query, const Var& key, const Var& projected_key) const;
  AttentionOptions opt_;
  std::shared_ptr<Linear> w_q_, w_k_, v_;
};

/// The sequence (original batch index) of every packed row: sorted_indices[j] for row (t, j).
std::vector<int64_t> row_sequences(const PackedBatch& layout);

}  // namespace recur::nn
