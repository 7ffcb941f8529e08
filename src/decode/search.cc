#include "recur/decode/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "recur/core/error.h"
#include "recur/core/rng.h"

namespace recur::decode {

namespace {

// A row the model scored: which sentence it belongs to and the hypothesis it extends.
struct Live {
  int64_t sentence;
  std::vector<int64_t> tokens;
  double log_prob;
};

void check_options(int64_t sentences, const DecodeOptions& opt) {
  RECUR_CHECK(sentences >= 0, "decode: {} sentences", sentences);
  RECUR_CHECK(static_cast<int64_t>(opt.max_len.size()) == sentences,
              "decode: {} max_len values for {} sentences", opt.max_len.size(), sentences);
  for (int64_t m : opt.max_len) RECUR_CHECK(m >= 1, "decode: max_len {} (must be >= 1)", m);
}

// The first step: one empty hypothesis per sentence, fed <bos>, parent = its sentence.
void start_rows(int64_t sentences, int64_t bos, std::vector<Live>* live, std::vector<int64_t>* parents,
                std::vector<int64_t>* tokens) {
  for (int64_t s = 0; s < sentences; ++s) {
    live->push_back({s, {}, 0.0});
    parents->push_back(s);
    tokens->push_back(bos);
  }
}

// Calls the model and checks what it returns: (rows, V) float32 on the CPU.
Tensor call_step(const StepFn& step, const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens) {
  Tensor lp = step(parents, tokens);
  RECUR_CHECK(lp.defined() && lp.ndim() == 2 && lp.dim(0) == static_cast<int64_t>(parents.size()) &&
                  lp.dtype() == DType::F32 && lp.device().is_cpu(),
              "decode: the step function must return ({}, V) float32 log-probabilities on the CPU, got {} {} on {}",
              parents.size(), lp.defined() ? lp.shape_str() : std::string("(undefined)"),
              lp.defined() ? dtype_name(lp.dtype()) : "", lp.defined() ? lp.device().str() : "");
  return lp;
}

// Runs one hypothesis per sentence, choosing each token with `pick(row log-probs, V, sentence, t)`.
template <class Pick>
std::vector<Hypothesis> one_per_sentence(const StepFn& step, int64_t sentences, const DecodeOptions& opt, Pick pick) {
  check_options(sentences, opt);
  std::vector<Hypothesis> out(static_cast<size_t>(sentences));
  std::vector<Live> live;
  std::vector<int64_t> parents, tokens;
  start_rows(sentences, opt.bos, &live, &parents, &tokens);
  for (int64_t t = 0; !live.empty(); ++t) {
    Tensor lp = call_step(step, parents, tokens);
    const int64_t V = lp.dim(1);
    std::vector<Live> next;
    std::vector<int64_t> next_parents, next_tokens;
    for (size_t r = 0; r < live.size(); ++r) {
      const float* row = lp.f32() + static_cast<int64_t>(r) * V;
      const int64_t tok = pick(row, V, live[r].sentence, t);
      Live h = live[r];
      h.tokens.push_back(tok);
      h.log_prob += row[tok];
      const bool done = tok == opt.eos || static_cast<int64_t>(h.tokens.size()) >= opt.max_len[static_cast<size_t>(h.sentence)];
      if (done) {
        out[static_cast<size_t>(h.sentence)] = {h.tokens, h.log_prob, h.log_prob};
      } else {
        next_parents.push_back(static_cast<int64_t>(r));
        next_tokens.push_back(tok);
        next.push_back(std::move(h));
      }
    }
    live = std::move(next);
    parents = std::move(next_parents);
    tokens = std::move(next_tokens);
  }
  return out;
}

}  // namespace

double length_penalty(int64_t len, double alpha) {
  return alpha == 0.0 ? 1.0 : std::pow((5.0 + static_cast<double>(len)) / 6.0, alpha);
}

std::vector<Hypothesis> greedy(const StepFn& step, int64_t sentences, const DecodeOptions& opt) {
  return one_per_sentence(step, sentences, opt, [](const float* row, int64_t V, int64_t, int64_t) {
    return static_cast<int64_t>(std::max_element(row, row + V) - row);
  });
}

std::vector<Hypothesis> sample(const StepFn& step, int64_t sentences, const DecodeOptions& opt,
                               const SamplingOptions& sopt) {
  RECUR_CHECK(sopt.temperature > 0, "sampling: temperature {} (must be > 0)", sopt.temperature);
  RECUR_CHECK(sopt.top_k >= 0, "sampling: top_k {} (must be >= 0)", sopt.top_k);
  RECUR_CHECK(sopt.top_p > 0 && sopt.top_p <= 1, "sampling: top_p {} (must be in (0, 1])", sopt.top_p);
  std::vector<std::pair<double, int64_t>> cand;
  return one_per_sentence(step, sentences, opt, [&](const float* row, int64_t V, int64_t sentence, int64_t t) {
    // Tempered probabilities, most likely first; then the top-k and top-p cuts; then one draw.
    cand.clear();
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, static_cast<double>(row[v]) / sopt.temperature);
    double z = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double p = std::exp(static_cast<double>(row[v]) / sopt.temperature - mx);
      cand.push_back({p, v});
      z += p;
    }
    std::stable_sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    size_t keep = cand.size();
    if (sopt.top_k > 0) keep = std::min(keep, static_cast<size_t>(sopt.top_k));
    double mass = 0;
    for (size_t i = 0; i < keep; ++i) {
      mass += cand[i].first / z;
      if (mass >= sopt.top_p) {
        keep = i + 1;
        break;
      }
    }
    double kept = 0;
    for (size_t i = 0; i < keep; ++i) kept += cand[i].first;
    // A counter-based draw: the same (seed, sentence, step) gives the same token in any batch.
    const double u = static_cast<double>(uniform_at(mix64(sopt.seed ^ mix64(static_cast<uint64_t>(sentence))),
                                                    static_cast<uint64_t>(t))) *
                     kept;
    double acc = 0;
    for (size_t i = 0; i < keep; ++i) {
      acc += cand[i].first;
      if (u < acc) return cand[i].second;
    }
    return cand[keep - 1].second;
  });
}

std::vector<std::vector<Hypothesis>> beam_search(const StepFn& step, int64_t sentences, const DecodeOptions& opt,
                                                 const BeamOptions& bopt) {
  check_options(sentences, opt);
  RECUR_CHECK(bopt.beam >= 1, "beam search: beam {} (must be >= 1)", bopt.beam);
  RECUR_CHECK(bopt.n_best >= 1 && bopt.n_best <= bopt.beam, "beam search: n_best {} (must be in [1, beam {}])",
              bopt.n_best, bopt.beam);
  RECUR_CHECK(bopt.alpha >= 0, "beam search: alpha {} (must be >= 0)", bopt.alpha);
  const auto by_score = [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; };
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(sentences));
  std::vector<Live> live;
  std::vector<int64_t> parents, tokens;
  start_rows(sentences, opt.bos, &live, &parents, &tokens);
  struct Cand {
    double log_prob;
    int64_t row, token;
  };
  std::vector<Cand> cands;
  for (int64_t t = 0; !live.empty(); ++t) {
    Tensor lp = call_step(step, parents, tokens);
    const int64_t V = lp.dim(1);
    std::vector<Live> next;
    std::vector<int64_t> next_parents, next_tokens;
    // The live rows of one sentence are contiguous: take them a sentence at a time.
    for (size_t r0 = 0; r0 < live.size();) {
      const int64_t s = live[r0].sentence;
      size_t r1 = r0;
      while (r1 < live.size() && live[r1].sentence == s) ++r1;
      const int64_t max_len = opt.max_len[static_cast<size_t>(s)];
      auto& fin = finished[static_cast<size_t>(s)];
      cands.clear();
      for (size_t r = r0; r < r1; ++r) {
        const float* row = lp.f32() + static_cast<int64_t>(r) * V;
        for (int64_t v = 0; v < V; ++v)
          cands.push_back({live[r].log_prob + static_cast<double>(row[v]), static_cast<int64_t>(r), v});
      }
      const size_t k = std::min(cands.size(), static_cast<size_t>(bopt.beam));
      std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(k), cands.end(),
                        [](const Cand& a, const Cand& b) {
                          return a.log_prob > b.log_prob || (a.log_prob == b.log_prob && a.token < b.token);
                        });
      std::vector<Live> kept;
      std::vector<int64_t> kept_parents, kept_tokens;
      for (size_t i = 0; i < k; ++i) {
        const Cand& c = cands[i];
        Live h{s, live[static_cast<size_t>(c.row)].tokens, c.log_prob};
        h.tokens.push_back(c.token);
        const int64_t len = static_cast<int64_t>(h.tokens.size());
        if (c.token == opt.eos || len >= max_len) {
          fin.push_back({h.tokens, h.log_prob, h.log_prob / length_penalty(len, bopt.alpha)});
        } else {
          kept_parents.push_back(c.row);
          kept_tokens.push_back(c.token);
          kept.push_back(std::move(h));
        }
      }
      // Done when `beam` finished hypotheses exist and no live one can still beat the worst of
      // the best `beam`: a live hypothesis' log-probability only falls, so its best reachable
      // score is its log-probability over the largest penalty it can get (at max_len).
      bool done = kept.empty();
      if (!done && bopt.early_stop && static_cast<int64_t>(fin.size()) >= bopt.beam) {
        std::sort(fin.begin(), fin.end(), by_score);
        const double worst_kept = fin[static_cast<size_t>(bopt.beam - 1)].score;
        double best_live = -std::numeric_limits<double>::infinity();
        for (const Live& h : kept) best_live = std::max(best_live, h.log_prob / length_penalty(max_len, bopt.alpha));
        done = best_live <= worst_kept;
      }
      if (!done) {
        next_parents.insert(next_parents.end(), kept_parents.begin(), kept_parents.end());
        next_tokens.insert(next_tokens.end(), kept_tokens.begin(), kept_tokens.end());
        for (auto& h : kept) next.push_back(std::move(h));
      }
      r0 = r1;
    }
    live = std::move(next);
    parents = std::move(next_parents);
    tokens = std::move(next_tokens);
  }
  for (auto& fin : finished) {
    std::stable_sort(fin.begin(), fin.end(), by_score);
    if (static_cast<int64_t>(fin.size()) > bopt.n_best) fin.resize(static_cast<size_t>(bopt.n_best));
  }
  return finished;
}

}  // namespace recur::decode
