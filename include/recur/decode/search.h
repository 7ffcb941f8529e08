#pragma once
/// \file Decoders over any step model: greedy, sampling (temperature, top-k, top-p, seeded) and beam
/// search (GNMT length penalty, stop tokens, n-best), batched over sentences, with dynamic stopping:
/// a finished sentence's hypotheses leave the batch and cost nothing more.
///
/// The model is a callback. At every step the decoder passes, for each row it wants scored, the row
/// of the previous step it continues (`parents`, an index into the previous call's rows; at the first
/// step an index into the sentences) and the token just chosen for it (`tokens`; <bos> at the first
/// step). The model reorders its recurrent state by `parents`, feeds `tokens`, and returns
/// log-probabilities (rows x V, float32, on the CPU). The decoders never look at the model's state.
#include <cstdint>
#include <functional>
#include <vector>

#include "recur/core/tensor.h"

namespace recur::decode {

using StepFn = std::function<Tensor(const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens)>;

struct Hypothesis {
  std::vector<int64_t> tokens;  ///< without <bos>; ends with <eos> unless cut at max_len
  double log_prob = 0;          ///< sum of the tokens' log-probabilities
  double score = 0;             ///< log_prob / length penalty (beam), log_prob otherwise
};

struct DecodeOptions {
  int64_t bos = 2, eos = 3;
  /// Per sentence: the longest output (tokens, <eos> included). Hypotheses that reach it stop there.
  std::vector<int64_t> max_len;
};

/// Argmax at every step. Returns one hypothesis per sentence.
std::vector<Hypothesis> greedy(const StepFn& step, int64_t sentences, const DecodeOptions& opt);

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
};

/// GNMT's length penalty ((5 + len) / 6)^alpha.
double length_penalty(int64_t len, double alpha);

/// Beam search. Each step keeps the `beam` best continuations per sentence; a continuation that
/// emits <eos> (or reaches max_len) is finished and leaves the beam, scored log_prob /
/// length_penalty. A sentence is done when it has `beam` finished hypotheses and no live one can
/// still beat the worst of them (a live hypothesis' best reachable score is its log-probability
/// divided by the penalty at max_len, since log-probabilities only fall), or when every live one
/// has reached max_len. Returns per sentence its n_best finished hypotheses, best first.
std::vector<std::vector<Hypothesis>> beam_search(const StepFn& step, int64_t sentences, const DecodeOptions& opt,
                                                 const BeamOptions& bopt);

}  // namespace recur::decode
