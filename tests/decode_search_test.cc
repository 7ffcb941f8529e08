// Decoders on a tiny synthetic model whose next-token distribution (and attention) depends on the
// whole prefix: beam search against brute-force enumeration (with length and coverage penalties, and
// beams wider than the vocabulary), beam 1 = greedy, dynamic stopping, sampling, kept alignments.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "recur/core/rng.h"
#include "recur/decode/search.h"

namespace recur::decode {
namespace {

constexpr int64_t kV = 5, kBos = 2, kEos = 3;

// log-softmax of pseudo-random logits keyed by the prefix (sentence id first): any prefix has its
// own distribution, so beam search has something to get wrong.
std::vector<double> prefix_log_probs(const std::vector<int64_t>& prefix, uint64_t seed, int64_t V = kV) {
  uint64_t h = mix64(seed);
  for (int64_t t : prefix) h = mix64(h ^ static_cast<uint64_t>(t + 11));
  std::vector<double> logits(static_cast<size_t>(V));
  double mx = -1e300;
  for (int64_t v = 0; v < V; ++v) {
    logits[static_cast<size_t>(v)] = 3.0 * (uniform_at(h, static_cast<uint64_t>(v)) - 0.5);
    mx = std::max(mx, logits[static_cast<size_t>(v)]);
  }
  double z = 0;
  for (double l : logits) z += std::exp(l - mx);
  for (double& l : logits) l = l - mx - std::log(z);
  return logits;
}

// Reorders the rows' prefixes (sentence id, <bos>, tokens...) by parents and appends the tokens.
void advance(std::vector<std::vector<int64_t>>* rows, bool* first, const std::vector<int64_t>& parents,
             const std::vector<int64_t>& tokens) {
  std::vector<std::vector<int64_t>> next;
  for (size_t i = 0; i < parents.size(); ++i) {
    std::vector<int64_t> p = *first ? std::vector<int64_t>{parents[i]} : (*rows)[static_cast<size_t>(parents[i])];
    p.push_back(tokens[i]);
    next.push_back(std::move(p));
  }
  *first = false;
  *rows = std::move(next);
}

// The step model: keeps every row's prefix, reorders by parents, scores by prefix.
struct TinyModel {
  uint64_t seed;
  std::vector<std::vector<int64_t>> rows;  // prefixes of the previous call's rows
  std::vector<size_t> rows_per_call;
  bool first = true;
  Tensor operator()(const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens) {
    advance(&rows, &first, parents, tokens);
    rows_per_call.push_back(parents.size());
    Tensor lp({static_cast<int64_t>(rows.size()), kV});
    for (size_t r = 0; r < rows.size(); ++r) {
      auto l = prefix_log_probs(rows[r], seed);
      for (int64_t v = 0; v < kV; ++v) lp.f32()[static_cast<int64_t>(r) * kV + v] = static_cast<float>(l[static_cast<size_t>(v)]);
    }
    return lp;
  }
};

StepFn as_step(TinyModel& m) {
  return [&m](const std::vector<int64_t>& p, const std::vector<int64_t>& t) { return m(p, t); };
}

// Every sequence that ends at its first <eos> or at max_len, scored like beam search scores.
void enumerate(std::vector<int64_t>& prefix, double lp, int64_t max_len, uint64_t seed, double alpha,
               Hypothesis* best) {
  const std::vector<int64_t> cond(prefix.begin(), prefix.end());
  auto l = prefix_log_probs(cond, seed);
  for (int64_t v = 0; v < kV; ++v) {
    const double lp2 = lp + static_cast<float>(l[static_cast<size_t>(v)]);
    prefix.push_back(v);
    const int64_t len = static_cast<int64_t>(prefix.size()) - 2;  // without sentence id and <bos>
    if (v == kEos || len >= max_len) {
      const double score = lp2 / length_penalty(len, alpha);
      if (score > best->score) *best = {std::vector<int64_t>(prefix.begin() + 2, prefix.end()), lp2, score};
    } else {
      enumerate(prefix, lp2, max_len, seed, alpha, best);
    }
    prefix.pop_back();
  }
}

TEST(DecodeBeam, ExhaustiveBeamFindsTheBruteForceBest) {
  for (double alpha : {0.0, 0.6, 1.5}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      const int64_t S = 3, max_len = 4;
      TinyModel m{seed};
      DecodeOptions opt{kBos, kEos, std::vector<int64_t>(S, max_len)};
      BeamOptions bo{625, 3, alpha};  // 5^4: nothing is ever pruned
      auto res = beam_search(as_step(m), S, opt, bo);
      ASSERT_EQ(res.size(), static_cast<size_t>(S));
      for (int64_t s = 0; s < S; ++s) {
        Hypothesis best{{}, 0, -1e300};
        std::vector<int64_t> prefix{s, kBos};
        enumerate(prefix, 0.0, max_len, seed, alpha, &best);
        ASSERT_FALSE(res[static_cast<size_t>(s)].empty());
        const Hypothesis& got = res[static_cast<size_t>(s)][0];
        EXPECT_EQ(got.tokens, best.tokens) << "alpha " << alpha << " seed " << seed << " sentence " << s;
        EXPECT_NEAR(got.score, best.score, 1e-9);
        EXPECT_LE(res[static_cast<size_t>(s)].size(), 3u);
        for (size_t i = 1; i < res[static_cast<size_t>(s)].size(); ++i)
          EXPECT_GE(res[static_cast<size_t>(s)][i - 1].score, res[static_cast<size_t>(s)][i].score);
      }
    }
  }
}

// A narrow beam with early stopping finds the same best hypothesis as the same beam run until
// every hypothesis has finished (the stopping bound never cuts off a winner).
TEST(DecodeBeam, EarlyStopDoesNotChangeTheResult) {
  int64_t stopped_early = 0;
  for (double alpha : {0.0, 1.0}) {
    for (uint64_t seed = 10; seed < 20; ++seed) {
      const int64_t max_len = 7;
      TinyModel a{seed}, b{seed};
      DecodeOptions opt{kBos, kEos, {max_len}};
      auto narrow = beam_search(as_step(a), 1, opt, {3, 3, alpha, true});
      auto full = beam_search(as_step(b), 1, opt, {3, 3, alpha, false});
      ASSERT_FALSE(narrow[0].empty());
      ASSERT_EQ(narrow[0].size(), full[0].size());
      for (size_t i = 0; i < narrow[0].size(); ++i) EXPECT_EQ(narrow[0][i].tokens, full[0][i].tokens) << i;
      EXPECT_LE(a.rows_per_call.size(), b.rows_per_call.size());
      stopped_early += a.rows_per_call.size() < b.rows_per_call.size();
    }
  }
  EXPECT_GT(stopped_early, 0) << "the stop rule never fired: the test shows nothing";
}

TEST(DecodeBeam, BeamOneIsGreedy) {
  for (double alpha : {0.0, 0.6}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      const int64_t S = 4;
      TinyModel a{seed}, b{seed};
      DecodeOptions opt{kBos, kEos, {3, 6, 9, 12}};
      auto g = greedy(as_step(a), S, opt);
      auto bs = beam_search(as_step(b), S, opt, {1, 1, alpha});
      for (int64_t s = 0; s < S; ++s) {
        EXPECT_EQ(bs[static_cast<size_t>(s)][0].tokens, g[static_cast<size_t>(s)].tokens);
        EXPECT_NEAR(bs[static_cast<size_t>(s)][0].log_prob, g[static_cast<size_t>(s)].log_prob, 1e-9);
        EXPECT_LE(static_cast<int64_t>(g[static_cast<size_t>(s)].tokens.size()), opt.max_len[static_cast<size_t>(s)]);
      }
    }
  }
}

// Dynamic decoding: a finished sentence stops costing rows; max_len cuts the others.
TEST(DecodeGreedy, FinishedSentencesLeaveTheBatch) {
  // Sentence 0 emits <eos> at once; sentence 1 never does.
  StepFn step;
  std::vector<size_t> rows_per_call;
  std::vector<int64_t> sentence_of;  // sentence of each row of the previous call
  bool first = true;
  step = [&](const std::vector<int64_t>& parents, const std::vector<int64_t>&) {
    std::vector<int64_t> next;
    for (int64_t p : parents) next.push_back(first ? p : sentence_of[static_cast<size_t>(p)]);
    first = false;
    sentence_of = next;
    rows_per_call.push_back(parents.size());
    Tensor lp = Tensor::full({static_cast<int64_t>(parents.size()), kV}, -10.0);
    for (size_t r = 0; r < parents.size(); ++r) lp.f32()[r * kV + (sentence_of[r] == 0 ? kEos : 1)] = -0.001f;
    return lp;
  };
  auto out = greedy(step, 2, {kBos, kEos, {10, 6}});
  EXPECT_EQ(out[0].tokens, (std::vector<int64_t>{kEos}));
  EXPECT_EQ(out[1].tokens, std::vector<int64_t>(6, 1));
  ASSERT_EQ(rows_per_call.size(), 6u);
  EXPECT_EQ(rows_per_call[0], 2u);
  for (size_t i = 1; i < rows_per_call.size(); ++i) EXPECT_EQ(rows_per_call[i], 1u) << "call " << i;
}

TEST(DecodeSample, SeededTruncatedAndFaithful) {
  const int64_t S = 6;
  DecodeOptions opt{kBos, kEos, std::vector<int64_t>(S, 8)};
  auto run = [&](SamplingOptions so, uint64_t model_seed) {
    TinyModel m{model_seed};
    return sample(as_step(m), S, opt, so);
  };
  // The same seed gives the same samples; another seed differs somewhere.
  auto a = run({1.0, 0, 1.0, 42}, 5), b = run({1.0, 0, 1.0, 42}, 5), c = run({1.0, 0, 1.0, 43}, 5);
  bool differs = false;
  for (int64_t s = 0; s < S; ++s) {
    EXPECT_EQ(a[static_cast<size_t>(s)].tokens, b[static_cast<size_t>(s)].tokens);
    differs |= a[static_cast<size_t>(s)].tokens != c[static_cast<size_t>(s)].tokens;
  }
  EXPECT_TRUE(differs);
  // top_k 1, a tiny top_p and a tiny temperature all reduce to greedy.
  TinyModel gm{5};
  auto g = greedy(as_step(gm), S, opt);
  for (SamplingOptions so : {SamplingOptions{1.0, 1, 1.0, 7}, SamplingOptions{1.0, 0, 1e-9, 7},
                             SamplingOptions{1e-4, 0, 1.0, 7}}) {
    auto sg = run(so, 5);
    for (int64_t s = 0; s < S; ++s) EXPECT_EQ(sg[static_cast<size_t>(s)].tokens, g[static_cast<size_t>(s)].tokens);
  }
  // One-step draws follow the model's distribution (many sentences, one step each).
  const int64_t N = 20000;
  std::vector<double> probs = {0.1, 0.2, 0.05, 0.4, 0.25};
  StepFn one = [&](const std::vector<int64_t>& parents, const std::vector<int64_t>&) {
    Tensor lp({static_cast<int64_t>(parents.size()), kV});
    for (size_t r = 0; r < parents.size(); ++r)
      for (int64_t v = 0; v < kV; ++v) lp.f32()[static_cast<int64_t>(r) * kV + v] = static_cast<float>(std::log(probs[static_cast<size_t>(v)]));
    return lp;
  };
  auto draws = sample(one, N, {kBos, kEos, std::vector<int64_t>(N, 1)}, {1.0, 0, 1.0, 99});
  std::map<int64_t, int64_t> count;
  for (const auto& h : draws) ++count[h.tokens.at(0)];
  for (int64_t v = 0; v < kV; ++v) {
    const double f = static_cast<double>(count[v]) / N, p = probs[static_cast<size_t>(v)];
    EXPECT_NEAR(f, p, 4 * std::sqrt(p * (1 - p) / N)) << "token " << v;
  }
  // top_k 2 keeps only the two most likely tokens (3 and 4).
  auto top2 = sample(one, 2000, {kBos, kEos, std::vector<int64_t>(2000, 1)}, {1.0, 2, 1.0, 5});
  for (const auto& h : top2) EXPECT_TRUE(h.tokens[0] == 3 || h.tokens[0] == 4) << h.tokens[0];
}

TEST(DecodeErrors, BadModelOutputAndOptions) {
  StepFn wrong = [](const std::vector<int64_t>& parents, const std::vector<int64_t>&) {
    return Tensor::zeros({static_cast<int64_t>(parents.size()) + 1, kV});
  };
  EXPECT_THROW(greedy(wrong, 2, {kBos, kEos, {3, 3}}), Error);
  TinyModel m{1};
  EXPECT_THROW(greedy(as_step(m), 2, {kBos, kEos, {3}}), Error);             // max_len per sentence
  EXPECT_THROW(beam_search(as_step(m), 1, {kBos, kEos, {3}}, {2, 3, 0.6}), Error);  // n_best > beam
  EXPECT_THROW(sample(as_step(m), 1, {kBos, kEos, {3}}, {0.0, 0, 1.0, 0}), Error);  // temperature
  // A beam larger than the vocabulary is fine: it keeps what there is.
  TinyModel big{2};
  auto r = beam_search(as_step(big), 1, {kBos, kEos, {3}}, {50, 5, 0.6});
  EXPECT_EQ(r[0].size(), 5u);
}

// ---- Attention models: coverage penalty, kept alignments, wide beams ----

constexpr int64_t kS = 4;  // attention width: the longest source of the batch

// Attention keyed by the prefix (sentence id first): pseudo-random weights over the sentence's own
// `src_len` positions, some exactly 0 (so the 1e-6 clamp matters), summing to 1; zeros past its end.
std::vector<float> prefix_attention(const std::vector<int64_t>& prefix, int64_t src_len, uint64_t seed) {
  uint64_t h = mix64(seed ^ 0xa77e);
  for (int64_t t : prefix) h = mix64(h ^ static_cast<uint64_t>(t + 11));
  std::vector<double> w(kS, 0.0);
  double z = 0;
  for (int64_t i = 0; i < src_len; ++i) {
    const double u = uniform_at(h, static_cast<uint64_t>(100 + i));
    w[static_cast<size_t>(i)] = u > 0.35 ? u : 0.0;
    z += w[static_cast<size_t>(i)];
  }
  if (z == 0) w[0] = z = 1;
  std::vector<float> out(kS);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(w[i] / z);
  return out;
}

// TinyModel's log-probabilities (over V tokens) plus prefix_attention.
struct AttnModel {
  uint64_t seed;
  std::vector<int64_t> src_len;  // per sentence
  int64_t V = kV;
  bool give_attention = true;
  std::vector<std::vector<int64_t>> rows;
  std::vector<size_t> rows_per_call;
  bool first = true;
  StepOutput operator()(const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens) {
    advance(&rows, &first, parents, tokens);
    rows_per_call.push_back(parents.size());
    const int64_t R = static_cast<int64_t>(rows.size());
    Tensor lp({R, V}), att({R, kS});
    for (int64_t r = 0; r < R; ++r) {
      const auto& prefix = rows[static_cast<size_t>(r)];
      auto l = prefix_log_probs(prefix, seed, V);
      for (int64_t v = 0; v < V; ++v) lp.f32()[r * V + v] = static_cast<float>(l[static_cast<size_t>(v)]);
      auto a = prefix_attention(prefix, src_len[static_cast<size_t>(prefix[0])], seed);
      std::copy(a.begin(), a.end(), att.f32() + r * kS);
    }
    return {lp, give_attention ? att : Tensor()};
  }
};

AttentionStepFn as_attn_step(AttnModel& m) {
  return [&m](const std::vector<int64_t>& p, const std::vector<int64_t>& t) { return m(p, t); };
}

// One complete output with what scoring it needs.
struct Seq {
  std::vector<int64_t> tokens;
  double log_prob = 0;
  std::vector<double> coverage;  // attention summed per source position of the sentence
};

// Every output of one sentence (ending at its first <eos> or at max_len), as the model scores it.
void enumerate_all(std::vector<int64_t>& prefix, const Seq& so_far, const AttnModel& m, int64_t max_len, int64_t eos,
                   std::vector<Seq>* out) {
  const auto l = prefix_log_probs(prefix, m.seed, m.V);
  const auto a = prefix_attention(prefix, m.src_len[static_cast<size_t>(prefix[0])], m.seed);
  for (int64_t v = 0; v < m.V; ++v) {
    Seq q = so_far;
    q.tokens.push_back(v);
    q.log_prob += static_cast<float>(l[static_cast<size_t>(v)]);
    for (size_t i = 0; i < q.coverage.size(); ++i) q.coverage[i] += static_cast<double>(a[i]);
    prefix.push_back(v);
    if (v == eos || static_cast<int64_t>(q.tokens.size()) >= max_len)
      out->push_back(std::move(q));
    else
      enumerate_all(prefix, q, m, max_len, eos, out);
    prefix.pop_back();
  }
}

// The GNMT score written out independently: log_prob / lp + beta * sum log(clamp(coverage, 1e-6, 1)).
double gnmt_cp(const Seq& q, double beta) {
  double sum = 0;
  for (double c : q.coverage) sum += std::log(std::min(std::max(c, 1e-6), 1.0));
  return beta * sum;
}
double gnmt_score(const Seq& q, double alpha, double beta) {
  const double len = static_cast<double>(q.tokens.size());
  return q.log_prob / (alpha == 0 ? 1.0 : std::pow((5.0 + len) / 6.0, alpha)) + gnmt_cp(q, beta);
}

// All outputs of sentence s, best first under (alpha, beta).
std::vector<Seq> brute_force(const AttnModel& m, int64_t s, int64_t max_len, int64_t eos, double alpha, double beta) {
  std::vector<Seq> all;
  std::vector<int64_t> prefix{s, kBos};
  Seq empty;
  empty.coverage.assign(static_cast<size_t>(m.src_len[static_cast<size_t>(s)]), 0.0);
  enumerate_all(prefix, empty, m, max_len, eos, &all);
  std::stable_sort(all.begin(), all.end(), [&](const Seq& a, const Seq& b) {
    return gnmt_score(a, alpha, beta) > gnmt_score(b, alpha, beta);
  });
  return all;
}

// Runs beam search on an AttnModel and checks every sentence's n-best list against brute force
// (the beam must be wide enough never to prune; the early stop, if it fires, must not change it).
void expect_brute_force_nbest(int64_t V, int64_t eos, int64_t max_len, BeamOptions bo, uint64_t seed,
                              const std::vector<int64_t>& src_len) {
  const int64_t S = static_cast<int64_t>(src_len.size());
  AttnModel m{seed, src_len, V};
  const DecodeOptions opt{kBos, eos, std::vector<int64_t>(static_cast<size_t>(S), max_len), src_len};
  const auto res = beam_search(as_attn_step(m), S, opt, bo);
  ASSERT_EQ(res.size(), static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    const std::string where = "V " + std::to_string(V) + " beam " + std::to_string(bo.beam) + " alpha " +
                              std::to_string(bo.alpha) + " beta " + std::to_string(bo.beta) + " early_stop " +
                              std::to_string(bo.early_stop) + " seed " + std::to_string(seed) + " sentence " +
                              std::to_string(s);
    const auto want = brute_force(m, s, max_len, eos, bo.alpha, bo.beta);
    const auto& got = res[static_cast<size_t>(s)];
    ASSERT_EQ(got.size(), std::min(want.size(), static_cast<size_t>(bo.n_best))) << where;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].tokens, want[i].tokens) << where << " rank " << i;
      EXPECT_NEAR(got[i].log_prob, want[i].log_prob, 1e-9) << where;
      EXPECT_NEAR(got[i].score, gnmt_score(want[i], bo.alpha, bo.beta), 1e-9) << where;
      EXPECT_NEAR(got[i].coverage_penalty, gnmt_cp(want[i], bo.beta), 1e-9) << where;
    }
  }
}

TEST(DecodeBeamCoverage, ExhaustiveBeamFindsTheBruteForceBest) {
  for (bool early_stop : {true, false})
    for (double beta : {0.0, 0.2, 1.0, 3.0})
      for (double alpha : {0.0, 0.6})
        for (uint64_t seed : {1u, 2u, 3u})  // 5^4: nothing is ever pruned
          expect_brute_force_nbest(kV, kEos, 4, {625, 3, alpha, early_stop, beta}, seed, {1, 2, 3, 4});
  // The penalty matters: it changes the winner somewhere (else the test above shows little).
  int64_t changed = 0;
  for (uint64_t seed : {1u, 2u, 3u}) {
    AttnModel m{seed, {1, 2, 3, 4}};
    for (int64_t s = 0; s < 4; ++s)
      changed += brute_force(m, s, 4, kEos, 0.6, 1.0)[0].tokens != brute_force(m, s, 4, kEos, 0.6, 0.0)[0].tokens;
  }
  EXPECT_GT(changed, 0);
}

// V = 2 with <eos> = 1 makes a chain: a beam of 2 never prunes, yet `beam` hypotheses finish after
// two steps, so the early stop is tested against brute force. A live hypothesis with poor coverage
// can still win later, which a bound using its current coverage penalty would miss.
TEST(DecodeBeamCoverage, EarlyStopOnAChainMatchesBruteForce) {
  for (bool early_stop : {true, false})
    for (double beta : {0.0, 0.5, 2.0})
      for (double alpha : {0.0, 1.0})
        for (uint64_t seed = 0; seed < 6; ++seed)
          expect_brute_force_nbest(2, 1, 9, {2, 2, alpha, early_stop, beta}, seed, {1, 3, 4});
}

// A narrow beam with coverage: early stopping gives the same n-best as running to the end, and
// it does fire.
TEST(DecodeBeamCoverage, EarlyStopDoesNotChangeTheResult) {
  int64_t stopped_early = 0;
  for (double beta : {0.2, 1.0})
    for (double alpha : {0.0, 1.0})
      for (uint64_t seed = 10; seed < 20; ++seed) {
        const std::vector<int64_t> src{1, 2, 4};
        AttnModel a{seed, src}, b{seed, src};
        const DecodeOptions opt{kBos, kEos, {7, 7, 7}, src};
        auto narrow = beam_search(as_attn_step(a), 3, opt, {3, 3, alpha, true, beta});
        auto full = beam_search(as_attn_step(b), 3, opt, {3, 3, alpha, false, beta});
        for (size_t s = 0; s < 3; ++s) {
          ASSERT_EQ(narrow[s].size(), full[s].size());
          for (size_t i = 0; i < narrow[s].size(); ++i) {
            EXPECT_EQ(narrow[s][i].tokens, full[s][i].tokens) << s << " " << i;
            EXPECT_EQ(narrow[s][i].score, full[s][i].score);
          }
        }
        EXPECT_LE(a.rows_per_call.size(), b.rows_per_call.size());
        for (size_t i = 0; i < a.rows_per_call.size(); ++i) stopped_early += a.rows_per_call[i] < b.rows_per_call[i];
      }
  EXPECT_GT(stopped_early, 0) << "the stop rule never fired: the test shows nothing";
}

TEST(DecodeBeamCoverage, BetaZeroGivesTheOldResults) {
  for (double alpha : {0.0, 0.6})
    for (uint64_t seed = 0; seed < 5; ++seed)
      for (bool give_attention : {true, false}) {
        TinyModel old{seed};
        AttnModel m{seed, {2, 4, 3}};
        m.give_attention = give_attention;
        DecodeOptions opt{kBos, kEos, {5, 6, 7}};
        const BeamOptions bo{3, 3, alpha};
        auto want = beam_search(as_step(old), 3, opt, bo);
        if (give_attention) opt.source_len = {2, 4, 3};
        auto got = beam_search(as_attn_step(m), 3, opt, bo);
        EXPECT_EQ(old.rows_per_call, m.rows_per_call);
        for (size_t s = 0; s < 3; ++s) {
          ASSERT_EQ(got[s].size(), want[s].size());
          for (size_t i = 0; i < got[s].size(); ++i) {
            EXPECT_EQ(got[s][i].tokens, want[s][i].tokens);
            EXPECT_EQ(got[s][i].log_prob, want[s][i].log_prob);
            EXPECT_EQ(got[s][i].score, want[s][i].score);
            EXPECT_EQ(got[s][i].coverage_penalty, 0.0);
            EXPECT_TRUE(got[s][i].attention.empty());
          }
        }
      }
}

TEST(DecodeBeamCoverage, PenaltyFormula) {
  EXPECT_EQ(coverage_penalty({0.3, 0.0}, 0.0), 0.0);
  EXPECT_NEAR(coverage_penalty({1.0, 0.5, 0.0, 2.5}, 0.2), 0.2 * (std::log(0.5) + std::log(1e-6)), 1e-12);
  EXPECT_EQ(coverage_penalty({}, 1.0), 0.0);
}

TEST(DecodeBeamCoverage, MissingAttentionOrSourceLengthsThrow) {
  const DecodeOptions opt{kBos, kEos, {4, 4}, {2, 3}};
  AttnModel none{1, {2, 3}};
  none.give_attention = false;
  try {
    beam_search(as_attn_step(none), 2, opt, {3, 1, 0.6, true, 0.5});
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention"), std::string::npos) << e.what();
  }
  TinyModel old{1};
  EXPECT_THROW(beam_search(as_step(old), 2, opt, {3, 1, 0.6, true, 0.5}), Error);      // StepFn: no attention
  EXPECT_THROW(beam_search(as_attn_step(none), 2, opt, {3, 1, 0.6, true, 0.0, true}), Error);  // keep_attention
  EXPECT_THROW(greedy(as_attn_step(none), 2, opt, {true}), Error);
  AttnModel m{1, {2, 3}};
  EXPECT_THROW(beam_search(as_attn_step(m), 2, {kBos, kEos, {4, 4}}, {3, 1, 0.6, true, 0.5}), Error);  // no source_len
  EXPECT_THROW(beam_search(as_attn_step(m), 2, {kBos, kEos, {4, 4}, {2}}, {3, 1, 0.6}), Error);  // one per sentence
  EXPECT_THROW(beam_search(as_attn_step(m), 2, {kBos, kEos, {4, 4}, {2, 5}}, {3, 1, 0.6, true, 0.5}), Error);  // > S
  EXPECT_THROW(beam_search(as_attn_step(m), 2, opt, {3, 1, 0.6, true, -0.1}), Error);  // beta < 0
  // Without attention needed, a model that gives none is fine.
  EXPECT_EQ(beam_search(as_attn_step(none), 2, opt, {3, 1, 0.6}).size(), 2u);
}

TEST(DecodeSearchMaxLengths, RatioConstantCapAndFloor) {
  EXPECT_EQ(max_lengths({0, 1, 3, 10, 100}, 1.5, 2, 0), (std::vector<int64_t>{2, 3, 6, 17, 152}));
  EXPECT_EQ(max_lengths({0, 1, 3, 10, 100}, 1.5, 2, 50), (std::vector<int64_t>{2, 3, 6, 17, 50}));
  EXPECT_EQ(max_lengths({0, 1, 3, 10, 100}, 1.5, 2, -1), (std::vector<int64_t>{2, 3, 6, 17, 152}));  // no cap
  EXPECT_EQ(max_lengths({100, 20}, 1.15, 0, 0), (std::vector<int64_t>{115, 23}));  // decimal ratios floor right
  EXPECT_EQ(max_lengths({3, 0, 20}, 0.5, -5, 0), (std::vector<int64_t>{1, 1, 5}));  // at least 1
  EXPECT_EQ(max_lengths({7, 9}, 2.0, 10, 1), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(max_lengths({7}, 0.0, 0, 0), (std::vector<int64_t>{1}));
  EXPECT_TRUE(max_lengths({}, 1.5, 10, 0).empty());
  EXPECT_THROW(max_lengths({3}, -1.0, 0, 0), Error);
  EXPECT_THROW(max_lengths({-3}, 1.0, 0, 0), Error);
}

// Beams wider than the vocabulary and than the number of outputs there are: every output comes
// back, ranked as brute force ranks them.
TEST(DecodeBeam, BeamWiderThanVocabularyMatchesBruteForce) {
  for (bool early_stop : {true, false})
    for (double beta : {0.0, 1.0})
      for (uint64_t seed = 0; seed < 3; ++seed) {
        // V 5, max_len 2: 1 + 4 * 5 = 21 outputs; beam 30 keeps and returns them all.
        expect_brute_force_nbest(kV, kEos, 2, {30, 30, 0.6, early_stop, beta}, seed, {2, 4});
        // V 2 (a chain), max_len 6: 7 outputs; beam 5 > V, then beam 12 > all of them.
        expect_brute_force_nbest(2, 1, 6, {5, 5, 0.6, early_stop, beta}, seed, {1, 3});
        expect_brute_force_nbest(2, 1, 6, {12, 12, 0.6, early_stop, beta}, seed, {1, 3});
        // V 1 and an <eos> outside it: one output, 0 0 0.
        expect_brute_force_nbest(1, kEos, 3, {4, 4, 0.6, early_stop, beta}, seed, {3});
      }
}

// keep_attention: one row per emitted token, the attention of the step that scored it, cut to the
// sentence's source length (or the full width without source lengths).
TEST(DecodeSearchAttention, KeepAttentionGivesOneRowPerToken) {
  const std::vector<int64_t> src{2, 4, 1};
  for (bool with_source_len : {true, false}) {
    DecodeOptions opt{kBos, kEos, {5, 6, 4}};
    if (with_source_len) opt.source_len = src;
    auto check = [&](const Hypothesis& h, int64_t s, uint64_t seed) {
      ASSERT_EQ(h.attention.size(), h.tokens.size());
      std::vector<int64_t> prefix{s, kBos};
      for (size_t j = 0; j < h.tokens.size(); ++j) {
        auto want = prefix_attention(prefix, src[static_cast<size_t>(s)], seed);
        want.resize(static_cast<size_t>(with_source_len ? src[static_cast<size_t>(s)] : kS));
        EXPECT_EQ(h.attention[j], want) << "sentence " << s << " step " << j;
        prefix.push_back(h.tokens[j]);
      }
    };
    for (uint64_t seed = 0; seed < 4; ++seed) {
      AttnModel a{seed, src}, b{seed, src};
      TinyModel c{seed};
      auto beam = beam_search(as_attn_step(a), 3, opt, {3, 3, 0.6, true, with_source_len ? 0.4 : 0.0, true});
      auto g = greedy(as_attn_step(b), 3, opt, {true});
      auto g_old = greedy(as_step(c), 3, opt);
      for (int64_t s = 0; s < 3; ++s) {
        for (const auto& h : beam[static_cast<size_t>(s)]) check(h, s, seed);
        check(g[static_cast<size_t>(s)], s, seed);
        EXPECT_EQ(g[static_cast<size_t>(s)].tokens, g_old[static_cast<size_t>(s)].tokens);
        EXPECT_EQ(g[static_cast<size_t>(s)].log_prob, g_old[static_cast<size_t>(s)].log_prob);
      }
    }
  }
  // Not asked for: none kept.
  AttnModel m{1, src};
  for (const auto& h : greedy(as_attn_step(m), 3, {kBos, kEos, {5, 6, 4}, src}, {})) EXPECT_TRUE(h.attention.empty());
}

}  // namespace
}  // namespace recur::decode
