// Decoders on a tiny synthetic model whose next-token distribution depends on the whole prefix:
// beam search against brute-force enumeration, beam 1 = greedy, dynamic stopping, sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "recur/core/rng.h"
#include "recur/decode/search.h"

namespace recur::decode {
namespace {

constexpr int64_t kV = 5, kBos = 2, kEos = 3;

// log-softmax of pseudo-random logits keyed by the prefix (sentence id first): any prefix has its
// own distribution, so beam search has something to get wrong.
std::vector<double> prefix_log_probs(const std::vector<int64_t>& prefix, uint64_t seed) {
  uint64_t h = mix64(seed);
  for (int64_t t : prefix) h = mix64(h ^ static_cast<uint64_t>(t + 11));
  std::vector<double> logits(kV);
  double mx = -1e300;
  for (int64_t v = 0; v < kV; ++v) {
    logits[static_cast<size_t>(v)] = 3.0 * (uniform_at(h, static_cast<uint64_t>(v)) - 0.5);
    mx = std::max(mx, logits[static_cast<size_t>(v)]);
  }
  double z = 0;
  for (double l : logits) z += std::exp(l - mx);
  for (double& l : logits) l = l - mx - std::log(z);
  return logits;
}

// The step model: keeps every row's prefix, reorders by parents, scores by prefix.
struct TinyModel {
  uint64_t seed;
  std::vector<std::vector<int64_t>> rows;  // prefixes of the previous call's rows
  std::vector<size_t> rows_per_call;
  bool first = true;
  Tensor operator()(const std::vector<int64_t>& parents, const std::vector<int64_t>& tokens) {
    std::vector<std::vector<int64_t>> next;
    for (size_t i = 0; i < parents.size(); ++i) {
      std::vector<int64_t> p = first ? std::vector<int64_t>{parents[i]} : rows[static_cast<size_t>(parents[i])];
      p.push_back(tokens[i]);
      next.push_back(std::move(p));
    }
    first = false;
    rows = next;
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

}  // namespace
}  // namespace recur::decode
