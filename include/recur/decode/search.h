#pragma once
/// \file Decoders over any step model: greedy, sampling (temperature, top-k, top-p, seeded) and beam
/// search (GNMT length and coverage penalties, stop tokens, n-best), batched over sentences, with
/// dynamic stopping: a finished sentence's hypotheses leave the batch and cost nothing more.
///
/// The model is a callback. At every step the decoder passes, for each row it wants scored, the row
/// of the previous step it continues (`parents`, an index into the previous call's rows; at the first
/// step an index into the sentences) and the token just chosen for it (`tokens`; <bos> at the first
/// step). The model reorders its recurrent state by `parents`, feeds `tokens`, and returns
/// log-probabilities (rows x V, float32, on the CPU). The decoders never look at the model's state.
/// An attention model can also return the step's attention weights over the source (`StepOutput`),
/// which the coverage penalty and the kept alignments (`keep_attention`) use.
#include <cstdint>
#include <functional>
#include <vector>

#include "recur/core/tensor.h"

namespace recur::decode {

using StepFn = std::function<Tensor(const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens)>;

/// What an attention model returns for one step.
struct StepOutput {
  Tensor log_probs;  ///< (rows, V) float32 on the CPU
  /// (rows, S) float32 on the CPU, or undefined: the attention weights over source positions that
  /// produced this step's `log_probs`; S = the longest source of the batch, zeros past a sentence's
  /// end. Only read when the coverage penalty or `keep_attention` asks for it.
  Tensor attention;
};
using AttentionStepFn =
    std::function<StepOutput(const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens)>;

struct Hypothesis {
  std::vector<int64_t> tokens;  ///< without <bos>; ends with <eos> unless cut at max_len
  double log_prob = 0;          ///< sum of the tokens' log-probabilities
  /// beam: log_prob / length_penalty + coverage_penalty; log_prob otherwise
  double score = 0;
  double coverage_penalty = 0;  ///< the coverage penalty included in `score` (0 unless beam with beta > 0)
  /// With keep_attention: one row per token of `tokens` (the attention of the step that scored it),
  /// each as long as the sentence's source (`DecodeOptions::source_len`, else the model's S).
  std::vector<std::vector<float>> attention;
};

struct DecodeOptions {
  int64_t bos = 2, eos = 3;
  /// Per sentence: the longest output (tokens, <eos> included). Hypotheses that reach it stop there.
  std::vector<int64_t> max_len;
  /// Per sentence: its source length (<= the model's attention width S), or empty. The coverage
  /// penalty sums over a sentence's own positions only, so it needs them (beta > 0 requires one per
  /// sentence); kept attention rows are cut to them (empty: rows keep the full width S).
  std::vector<int64_t> source_len;
};

/// Per sentence: max(1, min(cap, floor(ratio * len) + constant)), the usual max_len rule for
/// translation (e.g. ratio 1.5, constant 10); cap <= 0 means no cap. `ratio * len` is floored with
/// a 1e-9 slack so that a decimal ratio (1.15 * 100 = 114.99999999999999 in binary) gives 115.
std::vector<int64_t> max_lengths(const std::vector<int64_t>& source_lengths, double ratio, int64_t constant,
                                 int64_t cap);

/// Argmax at every step. Returns one hypothesis per sentence.
std::vector<Hypothesis> greedy(const StepFn& step, int64_t sentences, const DecodeOptions& opt);

struct GreedyOptions {
  bool keep_attention = false;  ///< fill Hypothesis::attention (the model must return attention)
};
/// Greedy over an attention model; the same tokens as the StepFn overload, plus alignments if asked.
std::vector<Hypothesis> greedy(const AttentionStepFn& step, int64_t sentences, const DecodeOptions& opt,
                               const GreedyOptions& gopt);

struct SamplingOptions {
  double temperature = 1.0;  ///< > 0; logits are divided by it
  int64_t top_k = 0;         ///< keep the k most likely tokens (0: all)
  double top_p = 1.0;        ///< keep the smallest set whose probability reaches top_p (1: all)
  uint64_t seed = 0;         ///< the same seed gives the same samples
};
/// Ancestral sampling; `log_prob` is under the model (not the tempered/truncated distribution).
std::vector<Hypothesis> sample(const StepFn& step, int64_t sentences, const DecodeOptions& opt,
                               const SamplingOptions& sopt);

struct BeamOptions {
  int64_t beam = 5;
  int64_t n_best = 1;  ///< hypotheses returned per sentence (<= beam)
  double alpha = 0.6;  ///< GNMT length penalty ((5 + len) / 6)^alpha; 0: plain log-probability
  /// Stop a sentence as soon as no live hypothesis can beat its best `beam` finished ones (below);
  /// false runs until every live hypothesis has finished (same result, more steps: for tests).
  bool early_stop = true;
  /// GNMT coverage penalty weight (>= 0; 0: none); see coverage_penalty(). Needs the model's
  /// attention and DecodeOptions::source_len.
  double beta = 0;
  bool keep_attention = false;  ///< fill Hypothesis::attention (the model must return attention)
};

/// GNMT's length penalty ((5 + len) / 6)^alpha.
double length_penalty(int64_t len, double alpha);

/// GNMT's coverage penalty beta * sum_i log(min(coverage_i, 1)), where coverage_i is the attention
/// source position i received, summed over the emitted target steps. coverage_i is clamped below at
/// 1e-6: a position never attended would otherwise give log(0) = -inf and swamp every other term.
/// It is <= 0 and only grows (toward 0) as coverage accumulates.
double coverage_penalty(const std::vector<double>& coverage, double beta);

/// Beam search. Each step keeps the `beam` best continuations per sentence, ranked by log-probability;
/// a continuation that emits <eos> (or reaches max_len) is finished and leaves the beam, scored
/// log_prob / length_penalty + coverage_penalty. A sentence is done when it has `beam` finished
/// hypotheses and no live one can still beat the worst of them, or when every live one has reached
/// max_len. A live hypothesis' best reachable score is its log-probability divided by the penalty at
/// max_len (log-probabilities only fall) plus 0 (the coverage penalty is <= 0 and more attention can
/// at best raise it to 0), so the stop never cuts off a winner. A beam wider than the vocabulary or
/// than the number of possible outputs keeps what there is. Returns per sentence its n_best finished
/// hypotheses, best first (fewer when fewer outputs exist).
std::vector<std::vector<Hypothesis>> beam_search(const StepFn& step, int64_t sentences, const DecodeOptions& opt,
                                                 const BeamOptions& bopt);
/// Beam search over an attention model (the StepFn overload forwards here with no attention).
std::vector<std::vector<Hypothesis>> beam_search(const AttentionStepFn& step, int64_t sentences,
                                                 const DecodeOptions& opt, const BeamOptions& bopt);

}  // namespace recur::decode
