// Corpus BLEU: the 13a tokenizer, lower-casing and scores against sacreBLEU's own answers
// (tests/fixtures/bleu/bleu_cases.json, written by make_bleu_fixtures.py), plus hand-checked cases.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/core/error.h"
#include "recur/data/bleu.h"

namespace recur::data {
namespace {

using nlohmann::json;
using Lines = std::vector<std::string>;

template <class Fn> std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const json& fixture() {
  static const json cases = [] {
    const std::string path = std::string(RECUR_FIXTURE_DIR) + "/bleu/bleu_cases.json";
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << "cannot open " << path;
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }();
  return cases;
}

// Equal to 1e-9 relative (0 only equals 0).
::testing::AssertionResult close(double got, double want) {
  if (got == want || std::abs(got - want) <= 1e-9 * std::max(std::abs(got), std::abs(want)))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << got << " vs sacreBLEU " << want;
}

TEST(BleuFixture, Tokenize13aMatchesSacreBleu) {
  const json& cases = fixture().at("tokenize_13a");
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases)
    EXPECT_EQ(tokenize_13a(c.at("input").get<std::string>()), c.at("output").get<std::string>())
        << "input: " << c.at("input").dump();
}

TEST(BleuFixture, LowercaseMatchesPython) {
  for (const auto& c : fixture().at("lowercase"))
    EXPECT_EQ(lowercase_unicode(c.at("input").get<std::string>()), c.at("output").get<std::string>())
        << "input: " << c.at("input").dump();
}

TEST(BleuFixture, CorpusScoresMatchSacreBleu) {
  const json& cases = fixture().at("corpora");
  ASSERT_GE(cases.size(), 20u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const json& o = c.at("options");
    BleuOptions options;
    options.tokenizer = o.at("tokenize") == "none" ? BleuTokenizer::kNone : BleuTokenizer::k13a;
    options.lowercase = o.at("lowercase").get<bool>();
    const std::string method = o.at("smooth_method");
    options.smoothing = method == "exp"     ? BleuSmoothing::kExp
                        : method == "none"  ? BleuSmoothing::kNone
                        : method == "floor" ? BleuSmoothing::kFloor
                                            : BleuSmoothing::kAddK;
    if (!o.at("smooth_value").is_null()) options.smooth_value = o.at("smooth_value").get<double>();

    const BleuScore s = corpus_bleu(c.at("hypotheses").get<Lines>(), c.at("references").get<std::vector<Lines>>(),
                                    options);
    EXPECT_TRUE(close(s.score, c.at("score").get<double>())) << "score";
    EXPECT_TRUE(close(s.bp, c.at("bp").get<double>())) << "bp";
    EXPECT_TRUE(close(s.ratio, c.at("ratio").get<double>())) << "ratio";
    EXPECT_EQ(s.sys_len, c.at("sys_len").get<int64_t>());
    EXPECT_EQ(s.ref_len, c.at("ref_len").get<int64_t>());
    // sacreBLEU reports add-k counts after adding k to orders 2..4; ours are the raw statistics.
    double k = 0;
    if (options.smoothing == BleuSmoothing::kAddK) k = options.smooth_value < 0 ? 1 : options.smooth_value;
    for (size_t n = 0; n < 4; ++n) {
      EXPECT_TRUE(close(s.precisions[n], c.at("precisions")[n].get<double>())) << "precision " << n + 1;
      const double added = n > 0 ? k : 0;
      EXPECT_EQ(static_cast<double>(s.counts[n]) + added, c.at("counts")[n].get<double>()) << "count " << n + 1;
      EXPECT_EQ(static_cast<double>(s.totals[n]) + added, c.at("totals")[n].get<double>()) << "total " << n + 1;
    }
    EXPECT_EQ(format_bleu(s), c.at("format").get<std::string>());
  }
}

TEST(Bleu, IdenticalCorpusScores100) {
  const Lines text = {"The cat sat on the mat.", "It rained, e.g. 3.5 mm in 1,000 places!", "short one here ok"};
  const BleuScore s = corpus_bleu(text, {text});
  EXPECT_DOUBLE_EQ(s.score, 100.0);
  EXPECT_EQ(s.bp, 1.0);
  EXPECT_EQ(s.sys_len, s.ref_len);
  EXPECT_EQ(s.counts, s.totals);
  // A second, different reference stream cannot lower a perfect match.
  EXPECT_DOUBLE_EQ(corpus_bleu(text, {{"x", "y", "z"}, text}).score, 100.0);
}

TEST(Bleu, HandCheckedPrecisionsAndBrevityPenalty) {
  // 4/5 unigrams, 3/4 bigrams, 2/3 trigrams, 1/2 4-grams: BLEU = 100 (4/5 3/4 2/3 1/2)^(1/4) = 100 * 0.2^(1/4).
  BleuScore s = corpus_bleu({"a b c d e"}, {{"a b c d f"}});
  EXPECT_EQ(s.counts, (std::array<int64_t, 4>{4, 3, 2, 1}));
  EXPECT_EQ(s.totals, (std::array<int64_t, 4>{5, 4, 3, 2}));
  EXPECT_NEAR(s.score, 100 * std::pow(0.2, 0.25), 1e-10);
  EXPECT_EQ(format_bleu(s), "BLEU = 66.87 80.0/75.0/66.7/50.0 (BP = 1.000 ratio = 1.000 hyp_len = 5 ref_len = 5)");

  // Every n-gram matches but the hypothesis is 4 tokens against 6: BP = exp(1 - 6/4).
  s = corpus_bleu({"a b c d"}, {{"a b c d e f"}});
  EXPECT_NEAR(s.bp, std::exp(-0.5), 1e-15);
  EXPECT_NEAR(s.score, 100 * std::exp(-0.5), 1e-10);
  EXPECT_NEAR(s.ratio, 4.0 / 6.0, 1e-15);

  // Clipping: "the the the" against "the cat": 1 of 3 unigrams.
  s = corpus_bleu({"the the the"}, {{"the cat"}});
  EXPECT_EQ(s.counts[0], 1);
  EXPECT_EQ(s.totals[0], 3);
  // Two references: the closest length wins, the shorter on a tie (3 tokens vs refs of 2 and 4).
  s = corpus_bleu({"x y z"}, {{"x y"}, {"x y z w"}});
  EXPECT_EQ(s.ref_len, 2);
}

TEST(Bleu, ExpSmoothingHalvesEachMissingOrder) {
  // Orders 3 and 4 have no match: their precisions are 100/(2*3) and 100/(4*2).
  const BleuScore s = corpus_bleu({"a b x c d"}, {{"a b y c d"}});
  EXPECT_EQ(s.counts, (std::array<int64_t, 4>{4, 2, 0, 0}));
  EXPECT_DOUBLE_EQ(s.precisions[2], 100.0 / 6.0);
  EXPECT_DOUBLE_EQ(s.precisions[3], 100.0 / 8.0);
  BleuOptions none;
  none.smoothing = BleuSmoothing::kNone;
  EXPECT_EQ(corpus_bleu({"a b x c d"}, {{"a b y c d"}}, none).score, 0.0);
}

TEST(Bleu, Tokenize13aRules) {
  EXPECT_EQ(tokenize_13a("Hello, world! It costs $3.50 (1,000 units)."),
            "Hello , world ! It costs $ 3.50 ( 1,000 units ) .");
  EXPECT_EQ(tokenize_13a("1990-2000 well-known &amp; &lt;b&gt;"), "1990 - 2000 well-known & < b >");
  EXPECT_EQ(tokenize_13a("don't <skipped>split-\nting"), "don't splitting");
  EXPECT_EQ(tokenize_13a(""), "");
}

TEST(Bleu, OptionsLowercaseAndNoneTokenizer) {
  BleuOptions lower;
  lower.lowercase = true;
  EXPECT_DOUBLE_EQ(corpus_bleu({"THE Cat Sat ON Mat"}, {{"the cat sat on mat"}}, lower).score, 100.0);
  BleuOptions none;
  none.tokenizer = BleuTokenizer::kNone;
  const BleuScore s = corpus_bleu({"cat, sat."}, {{"cat , sat ."}}, none);
  EXPECT_EQ(s.sys_len, 2);
  EXPECT_EQ(s.ref_len, 4);
}

TEST(Bleu, ErrorsNameCounts) {
  const std::string m = message_of([] { corpus_bleu({"a", "b", "c"}, {{"a", "b", "c"}, {"a", "b"}}); });
  EXPECT_NE(m.find("3 hypotheses"), std::string::npos) << m;
  EXPECT_NE(m.find("stream 1 has 2"), std::string::npos) << m;
  EXPECT_NE(message_of([] { corpus_bleu({"a"}, {}); }).find("no reference stream"), std::string::npos);
  const std::string empty = message_of([] { corpus_bleu({"a", "b"}, {{"a", ""}, {"x", ""}}); });
  EXPECT_NE(empty.find("sentence 1 has no non-empty reference"), std::string::npos) << empty;
  // No hypotheses at all is a score of 0, not an error.
  EXPECT_EQ(corpus_bleu({}, {{}}).score, 0.0);
}

}  // namespace
}  // namespace recur::data
