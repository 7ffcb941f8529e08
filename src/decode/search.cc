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
  std::vector<double> coverage;               // beta > 0: attention summed per source position
  std::vector<std::vector<float>> attention;  // keep_attention: one row per token
};

void check_options(int64_t sentences, const DecodeOptions& opt) {
  RECUR_CHECK(sentences >= 0, "decode: {} sentences", sentences);
  RECUR_CHECK(static_cast<int64_t>(opt.max_len.size()) == sentences,
              "decode: {} max_len values for {} sentences", opt.max_len.size(), sentences);
  for (int64_t m : opt.max_len) RECUR_CHECK(m >= 1, "decode: max_len {} (must be >= 1)", m);
  RECUR_CHECK(opt.source_len.empty() || static_cast<int64_t>(opt.source_len.size()) == sentences,
              "decode: {} source_len values for {} sentences (give one per sentence, or none)",
              opt.source_len.size(), sentences);
  for (int64_t l : opt.source_len) RECUR_CHECK(l >= 0, "decode: source_len {} (must be >= 0)", l);
}

// The first step: one empty hypothesis per sentence, fed <bos>, parent = its sentence. With
// `coverage`, each starts with zero coverage over its own source positions.
void start_rows(int64_t sentences, const DecodeOptions& opt, bool coverage, std::vector<Live>* live,
                std::vector<int64_t>* parents, std::vector<int64_t>* tokens) {
  for (int64_t s = 0; s < sentences; ++s) {
    live->push_back({s, {}, 0.0});
    if (coverage) live->back().coverage.assign(static_cast<size_t>(opt.source_len[static_cast<size_t>(s)]), 0.0);
    parents->push_back(s);
    tokens->push_back(opt.bos);
  }
}

// Calls the model and checks what it returns: (rows, V) float32 log-probabilities on the CPU and,
// when `need_attention` says why it is needed, (rows, S) float32 attention on the CPU with S at
// least every live row's source length.
StepOutput call_step(const AttentionStepFn& step, const std::vector<int64_t>& parents,
                     const std::vector<int64_t>& tokens, const std::vector<Live>& live, const DecodeOptions& opt,
                     const char* need_attention) {
  StepOutput out = step(parents, tokens);
  const Tensor& lp = out.log_probs;
  RECUR_CHECK(lp.defined() && lp.ndim() == 2 && lp.dim(0) == static_cast<int64_t>(parents.size()) &&
                  lp.dtype() == DType::F32 && lp.device().is_cpu(),
              "decode: the step function must return ({}, V) float32 log-probabilities on the CPU, got {} {} on {}",
              parents.size(), lp.defined() ? lp.shape_str() : std::string("(undefined)"),
              lp.defined() ? dtype_name(lp.dtype()) : "", lp.defined() ? lp.device().str() : "");
  RECUR_CHECK(lp.dim(1) >= 1, "decode: the step function returned an empty vocabulary ({})", lp.shape_str());
  if (need_attention == nullptr) return out;
  const Tensor& att = out.attention;
  RECUR_CHECK(att.defined(), "decode: {} needs the model's attention, but the step function returned none",
              need_attention);
  RECUR_CHECK(att.ndim() == 2 && att.dim(0) == static_cast<int64_t>(parents.size()) && att.dtype() == DType::F32 &&
                  att.device().is_cpu(),
              "decode: the step function must return ({}, S) float32 attention on the CPU, got {} {} on {}",
              parents.size(), att.shape_str(), dtype_name(att.dtype()), att.device().str());
  if (!opt.source_len.empty()) {
    for (const Live& h : live) {
      const int64_t len = opt.source_len[static_cast<size_t>(h.sentence)];
      RECUR_CHECK(len <= att.dim(1), "decode: sentence {} has source_len {} but the attention is only {} wide",
                  h.sentence, len, att.dim(1));
    }
  }
  return out;
}

// Row r of the attention, cut to the sentence's own source positions.
std::vector<float> attention_row(const Tensor& att, size_t r, int64_t sentence, const DecodeOptions& opt) {
  const int64_t S = att.dim(1);
  const int64_t len = opt.source_len.empty() ? S : opt.source_len[static_cast<size_t>(sentence)];
  const float* row = att.f32() + static_cast<int64_t>(r) * S;
  return std::vector<float>(row, row + len);
}

// The StepFn overloads forward to the AttentionStepFn ones with no attention.
AttentionStepFn without_attention(const StepFn& step) {
  return [&step](const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens) {
    return StepOutput{step(parents, tokens), Tensor()};
  };
}

// Runs one hypothesis per sentence, choosing each token with `pick(row log-probs, V, sentence, t)`.
template <class Pick>
std::vector<Hypothesis> one_per_sentence(const AttentionStepFn& step, int64_t sentences, const DecodeOptions& opt,
                                         bool keep_attention, Pick pick) {
  check_options(sentences, opt);
  std::vector<Hypothesis> out(static_cast<size_t>(sentences));
  std::vector<Live> live;
  std::vector<int64_t> parents, tokens;
  start_rows(sentences, opt, false, &live, &parents, &tokens);
  for (int64_t t = 0; !live.empty(); ++t) {
    StepOutput so = call_step(step, parents, tokens, live, opt, keep_attention ? "keep_attention" : nullptr);
    const Tensor& lp = so.log_probs;
    const int64_t V = lp.dim(1);
    std::vector<Live> next;
    std::vector<int64_t> next_parents, next_tokens;
    for (size_t r = 0; r < live.size(); ++r) {
      const float* row = lp.f32() + static_cast<int64_t>(r) * V;
      const int64_t tok = pick(row, V, live[r].sentence, t);
      Live h = std::move(live[r]);
      h.tokens.push_back(tok);
      h.log_prob += row[tok];
      if (keep_attention) h.attention.push_back(attention_row(so.attention, r, h.sentence, opt));
      const bool done = tok == opt.eos || static_cast<int64_t>(h.tokens.size()) >= opt.max_len[static_cast<size_t>(h.sentence)];
      if (done) {
        out[static_cast<size_t>(h.sentence)] = {h.tokens, h.log_prob, h.log_prob, 0.0, std::move(h.attention)};
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

std::vector<int64_t> max_lengths(const std::vector<int64_t>& source_lengths, double ratio, int64_t constant,
                                 int64_t cap) {
  RECUR_CHECK(std::isfinite(ratio) && ratio >= 0, "max_lengths: ratio {} (must be finite and >= 0)", ratio);
  std::vector<int64_t> out;
  out.reserve(source_lengths.size());
  for (int64_t len : source_lengths) {
    RECUR_CHECK(len >= 0, "max_lengths: source length {} (must be >= 0)", len);
    double m = std::floor(ratio * static_cast<double>(len) + 1e-9) + static_cast<double>(constant);
    if (cap > 0) m = std::min(m, static_cast<double>(cap));
    m = std::max(m, 1.0);
    // Beyond 2^62 the cast to int64_t would overflow; no output is that long.
    RECUR_CHECK(m < 4.6e18, "max_lengths: ratio {} * length {} + {} overflows", ratio, len, constant);
    out.push_back(static_cast<int64_t>(m));
  }
  return out;
}

double length_penalty(int64_t len, double alpha) {
  return alpha == 0.0 ? 1.0 : std::pow((5.0 + static_cast<double>(len)) / 6.0, alpha);
}

double coverage_penalty(const std::vector<double>& coverage, double beta) {
  if (beta == 0.0) return 0.0;
  double sum = 0;
  for (double c : coverage) sum += std::log(std::clamp(c, 1e-6, 1.0));
  return beta * sum;
}

std::vector<Hypothesis> greedy(const StepFn& step, int64_t sentences, const DecodeOptions& opt) {
  return greedy(without_attention(step), sentences, opt, GreedyOptions{});
}

std::vector<Hypothesis> greedy(const AttentionStepFn& step, int64_t sentences, const DecodeOptions& opt,
                               const GreedyOptions& gopt) {
  return one_per_sentence(step, sentences, opt, gopt.keep_attention, [](const float* row, int64_t V, int64_t, int64_t) {
    return static_cast<int64_t>(std::max_element(row, row + V) - row);
  });
}

std::vector<Hypothesis> sample(const StepFn& step, int64_t sentences, const DecodeOptions& opt,
                               const SamplingOptions& sopt) {
  RECUR_CHECK(sopt.temperature > 0, "sampling: temperature {} (must be > 0)", sopt.temperature);
  RECUR_CHECK(sopt.top_k >= 0, "sampling: top_k {} (must be >= 0)", sopt.top_k);
  RECUR_CHECK(sopt.top_p > 0 && sopt.top_p <= 1, "sampling: top_p {} (must be in (0, 1])", sopt.top_p);
  std::vector<std::pair<double, int64_t>> cand;
  const auto pick = [&](const float* row, int64_t V, int64_t sentence, int64_t t) {
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
  };
  return one_per_sentence(without_attention(step), sentences, opt, false, pick);
}

std::vector<std::vector<Hypothesis>> beam_search(const StepFn& step, int64_t sentences, const DecodeOptions& opt,
                                                 const BeamOptions& bopt) {
  return beam_search(without_attention(step), sentences, opt, bopt);
}

std::vector<std::vector<Hypothesis>> beam_search(const AttentionStepFn& step, int64_t sentences,
                                                 const DecodeOptions& opt, const BeamOptions& bopt) {
  check_options(sentences, opt);
  RECUR_CHECK(bopt.beam >= 1, "beam search: beam {} (must be >= 1)", bopt.beam);
  RECUR_CHECK(bopt.n_best >= 1 && bopt.n_best <= bopt.beam, "beam search: n_best {} (must be in [1, beam {}])",
              bopt.n_best, bopt.beam);
  RECUR_CHECK(bopt.alpha >= 0, "beam search: alpha {} (must be >= 0)", bopt.alpha);
  RECUR_CHECK(std::isfinite(bopt.beta) && bopt.beta >= 0, "beam search: beta {} (must be finite and >= 0)",
              bopt.beta);
  const bool coverage = bopt.beta > 0;
  RECUR_CHECK(!coverage || !opt.source_len.empty(),
              "beam search: the coverage penalty (beta {}) needs DecodeOptions::source_len, one per sentence",
              bopt.beta);
  const char* need_attention = coverage               ? "the coverage penalty (beta > 0)"
                               : bopt.keep_attention ? "keep_attention"
                                                     : nullptr;
  const auto by_score = [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; };
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(sentences));
  std::vector<Live> live;
  std::vector<int64_t> parents, tokens;
  start_rows(sentences, opt, coverage, &live, &parents, &tokens);
  struct Cand {
    double log_prob;
    int64_t row, token;
  };
  std::vector<Cand> cands;
  for (int64_t t = 0; !live.empty(); ++t) {
    StepOutput so = call_step(step, parents, tokens, live, opt, need_attention);
    const Tensor& lp = so.log_probs;
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
      // A beam wider than the candidates (beam > V at the first step, or more than the outputs
      // there are) keeps them all.
      const size_t k = std::min(cands.size(), static_cast<size_t>(bopt.beam));
      std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(k), cands.end(),
                        [](const Cand& a, const Cand& b) {
                          return a.log_prob > b.log_prob || (a.log_prob == b.log_prob && a.token < b.token);
                        });
      std::vector<Live> kept;
      std::vector<int64_t> kept_parents, kept_tokens;
      for (size_t i = 0; i < k; ++i) {
        const Cand& c = cands[i];
        const Live& parent = live[static_cast<size_t>(c.row)];
        Live h{s, parent.tokens, c.log_prob, parent.coverage, parent.attention};
        h.tokens.push_back(c.token);
        if (coverage) {
          const float* a = so.attention.f32() + c.row * so.attention.dim(1);
          for (size_t j = 0; j < h.coverage.size(); ++j) h.coverage[j] += static_cast<double>(a[j]);
        }
        if (bopt.keep_attention) h.attention.push_back(attention_row(so.attention, static_cast<size_t>(c.row), s, opt));
        const int64_t len = static_cast<int64_t>(h.tokens.size());
        if (c.token == opt.eos || len >= max_len) {
          const double cp = coverage_penalty(h.coverage, bopt.beta);
          fin.push_back({std::move(h.tokens), h.log_prob, h.log_prob / length_penalty(len, bopt.alpha) + cp, cp,
                         std::move(h.attention)});
        } else {
          kept_parents.push_back(c.row);
          kept_tokens.push_back(c.token);
          kept.push_back(std::move(h));
        }
      }
      // Done when `beam` finished hypotheses exist and no live one can still beat the worst of
      // the best `beam`: a live hypothesis' log-probability only falls, so its best reachable
      // score is its log-probability over the largest penalty it can get (at max_len), plus the
      // largest coverage penalty there is, 0 (more attention can only raise it toward 0).
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
