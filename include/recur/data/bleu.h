#pragma once
/// \file Corpus BLEU as sacreBLEU computes it (Post 2018, "A Call for Clarity in Reporting BLEU
/// Scores"): the "13a" tokenizer of mteval-v13a, clipped n-gram counts up to order 4 against one
/// or more references, the closest reference length, and the usual smoothing methods. The scores,
/// statistics and the printed line match sacreBLEU 2.x (tests/fixtures/bleu/bleu_cases.json).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace recur::data {

/// sacreBLEU's "13a" tokenizer (the rules of mteval-v13a.pl), applied to one line as given:
/// 1. "<skipped>" is removed, "-\n" is removed (a hyphenated line break), "\n" becomes a space;
/// 2. the entities &quot; &amp; &lt; &gt; are unescaped, in that order, each in one pass (so
///    "&amp;lt;" becomes "<");
/// 3. the ASCII symbols { | } ~ [ \ ] ^ _ ` ! " # $ % & ( ) * + : ; < = > ? @ / are split off;
///    then, in three left-to-right passes whose matches do not overlap (as regex substitutions):
///    a period or comma after a non-digit, a period or comma before a non-digit, and a dash after
///    a digit are split off. So "3.14" and "1,000" stay whole, "5-6" becomes "5 - 6", "a-b" and
///    "don't" stay whole (neither '-' after a letter nor the apostrophe is ever split);
/// 4. the result is split on Unicode whitespace (Python's str.split(): ASCII whitespace, U+001C..
///    U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) and
///    the tokens are joined with single spaces.
/// Input is UTF-8; bytes outside ASCII are never split and are copied as they are.
std::string tokenize_13a(const std::string& line);

/// Python's str.lower() for UTF-8 text (Unicode 14.0, as Python 3.11): the simple mappings, U+0130
/// to "i" U+0307, and capital sigma to final sigma at the end of a word (the Final_Sigma rule);
/// invalid UTF-8 bytes are kept as they are. Used by BleuOptions::lowercase.
std::string lowercase_unicode(const std::string& text);

enum class BleuTokenizer {
  k13a,  ///< tokenize_13a (sacreBLEU's default, "tok:13a")
  kNone  ///< whitespace only ("tok:none"): for text that is already tokenized
};

/// Smoothing of zero n-gram matches (Chen & Cherry 2014, as in sacreBLEU).
enum class BleuSmoothing {
  kExp,    ///< NIST geometric sequence: the k-th order with no match gets precision 1/(2^k total)
  kNone,   ///< no smoothing: any order without a match makes the score 0
  kFloor,  ///< an order without a match gets precision smooth_value/total (default 0.1)
  kAddK    ///< orders 2..4 add smooth_value to matches and totals (default 1)
};

struct BleuOptions {
  BleuTokenizer tokenizer = BleuTokenizer::k13a;
  BleuSmoothing smoothing = BleuSmoothing::kExp;
  double smooth_value = -1;  ///< for kFloor and kAddK; negative: the method's default
  bool lowercase = false;    ///< lower-case hypotheses and references first (lowercase_unicode)
};

/// A corpus BLEU score and its statistics, as sacreBLEU's BLEUScore.
struct BleuScore {
  double score = 0;                    ///< 0..100
  std::array<double, 4> precisions{};  ///< n-gram precisions in percent, after smoothing
  double bp = 0;                       ///< brevity penalty exp(1 - ref_len/sys_len) or 1
  double ratio = 0;                    ///< sys_len / ref_len (0 when ref_len is 0)
  int64_t sys_len = 0, ref_len = 0;    ///< tokens of the hypotheses / of the closest references
  std::array<int64_t, 4> counts{};     ///< clipped n-gram matches (before add-k smoothing)
  std::array<int64_t, 4> totals{};     ///< hypothesis n-grams (before add-k smoothing)
};

/// Corpus BLEU of `hypotheses` against reference streams: references[r][i] is reference r of
/// sentence i (sacreBLEU's layout), so every stream has one line per hypothesis. As in sacreBLEU:
/// - each line has its trailing whitespace removed, is lower-cased if asked, then tokenized;
/// - an empty reference line ("") means that stream has no reference for that sentence (a variable
///   number of references); a sentence whose references are all empty is an error;
/// - n-gram matches are clipped by the largest count of that n-gram in any one reference; the
///   reference length of a sentence is that of the reference closest in length to the hypothesis,
///   the shorter one on a tie;
/// - the statistics are summed over the corpus before the precisions are taken.
/// Errors (recur::Error): no reference stream, a stream whose size differs from the number of
/// hypotheses (both counts named), a sentence without any non-empty reference. No hypotheses give
/// a score of 0.
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references, const BleuOptions& options = {});

/// sacreBLEU's one-line summary, e.g.
/// "BLEU = 34.12 60.1/40.2/30.0/20.1 (BP = 1.000 ratio = 1.012 hyp_len = 123 ref_len = 121)".
std::string format_bleu(const BleuScore& score);

}  // namespace recur::data
