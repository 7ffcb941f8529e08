// Parallel text readers (TSV and aligned files) and the char / word / sentencepiece tokenizers of
// translation models.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "recur/core/error.h"
#include "recur/data/g2p.h"
#include "recur/data/parallel.h"
#include "test_util.h"

namespace recur::data {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;

template <class Fn> std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using test::TempDir;

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> texts = {
      "the cat sat on the mat .", "the dog sat on the log .", "a cat and a dog .", "Hello , world !",
      "the mat was red and the log was brown .", "caf\xC3\xA9 na\xC3\xAFve \xE2\x82\xAC 5 \xE6\x97\xA5\xE6\x9C\xAC"};
  return texts;
}

TEST(ParallelText, TsvReadsPairsSkipsBlankLinesAndKeepsEmptySides) {
  TempDir dir("tsv");
  const std::string path = dir.write("pairs.tsv",
                                     "hello\tbonjour\r\n"  // 1: CRLF
                                     "\n"                  // 2: blank
                                     "  \t \n"             // 3: only spaces and a tab: blank
                                     "\tvide\n"            // 4: empty source
                                     "a cat \t un chat\n"  // 5: spaces kept
                                     "last\tdernier");     // 6: no final newline
  const auto pairs = read_parallel_tsv(path);
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[0].source, "hello");
  EXPECT_EQ(pairs[0].target, "bonjour");
  EXPECT_EQ(pairs[0].line, 1);
  EXPECT_EQ(pairs[1].source, "");
  EXPECT_EQ(pairs[1].target, "vide");
  EXPECT_EQ(pairs[1].line, 4);
  EXPECT_EQ(pairs[2].source, "a cat ");
  EXPECT_EQ(pairs[2].target, " un chat");
  EXPECT_EQ(pairs[3].line, 6);
}

TEST(ParallelText, TsvErrorsNameFileAndLine) {
  TempDir dir("tsv_errors");
  const std::string no_tab = dir.write("no_tab.tsv", "a\tb\n\nno tab here\n");
  std::string m = message_of([&] { read_parallel_tsv(no_tab); });
  EXPECT_TRUE(contains(m, no_tab + ":3")) << m;
  EXPECT_TRUE(contains(m, "no tab")) << m;
  const std::string two_tabs = dir.write("two_tabs.tsv", "a\tb\tc\n");
  m = message_of([&] { read_parallel_tsv(two_tabs); });
  EXPECT_TRUE(contains(m, two_tabs + ":1")) << m;
  EXPECT_TRUE(contains(m, "more than one tab")) << m;
  const std::string missing = dir.file("missing.tsv");
  m = message_of([&] { read_parallel_tsv(missing); });
  EXPECT_TRUE(contains(m, missing)) << m;
  const std::string empty = dir.write("empty.tsv", "\n \n");
  EXPECT_TRUE(contains(message_of([&] { read_parallel_tsv(empty); }), "no sentence pairs"));
}

TEST(ParallelText, AlignedFilesPairLinesAndNameBothFilesOnMismatch) {
  TempDir dir("files");
  const std::string src = dir.write("train.en", "one\n\ntwo\nthree\r\n\n");
  const std::string tgt = dir.write("train.fr", "un\n\n\ntrois\n\n");
  const auto pairs = read_parallel_files(src, tgt);
  ASSERT_EQ(pairs.size(), 3u);  // line 2 (both blank) and line 5 are skipped; line 3 has an empty target
  EXPECT_EQ(pairs[1].source, "two");
  EXPECT_EQ(pairs[1].target, "");
  EXPECT_EQ(pairs[1].line, 3);
  EXPECT_EQ(pairs[2].source, "three");
  EXPECT_EQ(pairs[2].target, "trois");

  const std::string short_tgt = dir.write("short.fr", "un\ndeux\n");
  const std::string m = message_of([&] { read_parallel_files(src, short_tgt); });
  EXPECT_TRUE(contains(m, src)) << m;
  EXPECT_TRUE(contains(m, short_tgt)) << m;
  EXPECT_TRUE(contains(m, "5 lines")) << m;
  EXPECT_TRUE(contains(m, "2 lines")) << m;
  const std::string missing = dir.file("nope.fr");
  EXPECT_TRUE(contains(message_of([&] { read_parallel_files(src, missing); }), missing));
}

TEST(Tokenizer, KindNamesAndUnknownKind) {
  EXPECT_EQ(Tokenizer::kind_of("char"), Tokenizer::Kind::kChar);
  EXPECT_EQ(Tokenizer::kind_of("word"), Tokenizer::Kind::kWord);
  EXPECT_EQ(Tokenizer::kind_of("sentencepiece"), Tokenizer::Kind::kSentencePiece);
  for (auto k : {Tokenizer::Kind::kChar, Tokenizer::Kind::kWord, Tokenizer::Kind::kSentencePiece})
    EXPECT_EQ(Tokenizer::kind_of(Tokenizer::kind_name(k)), k);
  const std::string m = message_of([] { Tokenizer::kind_of("xyz"); });
  EXPECT_TRUE(contains(m, "'xyz'")) << m;
  EXPECT_TRUE(contains(m, "char, word or sentencepiece")) << m;
  // The special ids are those of the G2P vocabularies.
  EXPECT_EQ(Tokenizer::kPad, g2p::kPad);
  EXPECT_EQ(Tokenizer::kUnk, g2p::kUnk);
  EXPECT_EQ(Tokenizer::kBos, g2p::kBos);
  EXPECT_EQ(Tokenizer::kEos, g2p::kEos);
}

TEST(Tokenizer, CharRoundTripsUtf8AndMapsUnknownsToUnk) {
  const Tokenizer t = Tokenizer::build(Tokenizer::Kind::kChar, corpus(), 1, 1000);
  EXPECT_EQ(t.token(0), "<pad>");
  EXPECT_EQ(t.token(3), "<eos>");
  EXPECT_EQ(t.token(4), " ");  // the most frequent character
  for (const auto& text : corpus()) EXPECT_EQ(t.decode(t.encode(text)), text);
  const std::string euro = "\xE2\x82\xAC";
  const Ids ids = t.encode(euro + "5");
  ASSERT_EQ(ids.size(), 2u);  // one id per code point, not per byte
  EXPECT_EQ(t.token(ids[0]), euro);
  const Ids unknown = t.encode("zQ\xF0\x9F\x98\x80");  // never seen: z, Q, an emoji
  EXPECT_EQ(unknown, (Ids{Tokenizer::kUnk, Tokenizer::kUnk, Tokenizer::kUnk}));
  EXPECT_EQ(t.decode(unknown), "<unk><unk><unk>");
  // A leading <bos> is skipped, <pad> dropped, <eos> ends the text; an out-of-range id is <unk>.
  Ids framed = {Tokenizer::kBos};
  for (int64_t id : t.encode("cat")) framed.push_back(id);
  framed.insert(framed.end(), {Tokenizer::kPad, Tokenizer::kEos});
  const Ids dog = t.encode("dog");
  framed.insert(framed.end(), dog.begin(), dog.end());
  EXPECT_EQ(t.decode(framed), "cat");
  EXPECT_EQ(t.decode({t.size(), -1}), "<unk><unk>");
}

TEST(Tokenizer, CharVocabularyHonoursMinCountAndMaxSize) {
  const Tokenizer small = Tokenizer::build(Tokenizer::Kind::kChar, {"aaab", "ab c"}, 2, 6);
  EXPECT_EQ(small.size(), 6);  // 4 specials + 'a' (4) + 'b' (2); ' ' and 'c' are too rare or cut
  EXPECT_EQ(small.token(4), "a");
  EXPECT_EQ(small.token(5), "b");
  EXPECT_EQ(small.encode("abc"), (Ids{4, 5, Tokenizer::kUnk}));
  EXPECT_THROW(Tokenizer::build(Tokenizer::Kind::kChar, {"ab"}, 1, 4), Error);
  EXPECT_THROW(Tokenizer::build(Tokenizer::Kind::kChar, {""}, 1, 10), Error);
}

TEST(Tokenizer, WordSplitsOnWhitespaceKeepsCaseAndPunctuation) {
  const Tokenizer t = Tokenizer::build(Tokenizer::Kind::kWord, corpus(), 1, 1000);
  EXPECT_EQ(t.token(4), "the");  // most frequent word
  EXPECT_EQ(t.decode(t.encode("the  cat\tsat\n on the mat .")), "the cat sat on the mat .");
  EXPECT_EQ(t.decode(t.encode("Hello , world !")), "Hello , world !");
  EXPECT_EQ(t.encode("hello"), (Ids{Tokenizer::kUnk}));  // case is kept: "Hello" is known, "hello" is not
  EXPECT_EQ(t.encode("cat."), (Ids{Tokenizer::kUnk}));   // punctuation is part of the word
  EXPECT_EQ(t.decode(t.encode("caf\xC3\xA9 unknown \xE6\x97\xA5\xE6\x9C\xAC")),
            "caf\xC3\xA9 <unk> \xE6\x97\xA5\xE6\x9C\xAC");
  EXPECT_TRUE(t.encode("   ").empty());
  EXPECT_EQ(t.decode({Tokenizer::kBos, Tokenizer::kEos}), "");
}

TEST(Tokenizer, SentencePieceRoundTripsAndShiftsIds) {
  std::vector<std::string> texts;
  for (int rep = 0; rep < 20; ++rep)
    for (const auto& s : corpus()) texts.push_back(s);
  const Tokenizer t = Tokenizer::build(Tokenizer::Kind::kSentencePiece, texts, 1, 60);
  EXPECT_LE(t.size(), 60);
  EXPECT_GT(t.size(), 10);
  EXPECT_EQ(t.token(Tokenizer::kUnk), "<unk>");
  EXPECT_EQ(t.token(Tokenizer::kBos), "<bos>");
  for (const auto& text : corpus()) {
    const Ids ids = t.encode(text);
    ASSERT_FALSE(ids.empty());
    for (int64_t id : ids) {
      EXPECT_GE(id, 4) << text;  // no specials for known text
      EXPECT_LT(id, t.size());
    }
    EXPECT_EQ(t.decode(ids), text);
    Ids framed = {Tokenizer::kBos};
    framed.insert(framed.end(), ids.begin(), ids.end());
    framed.insert(framed.end(), {Tokenizer::kEos, 5, 6});
    EXPECT_EQ(t.decode(framed), text);
  }
  const Ids unknown = t.encode("\xF0\x9F\x98\x80");  // an emoji never seen in training
  EXPECT_TRUE(std::find(unknown.begin(), unknown.end(), Tokenizer::kUnk) != unknown.end());
  EXPECT_THROW(Tokenizer::build(Tokenizer::Kind::kSentencePiece, texts, 1, 9), Error);
}

TEST(Tokenizer, SerializeDeserializeGivesIdenticalEncodings) {
  std::vector<std::string> texts;
  for (int rep = 0; rep < 20; ++rep)
    for (const auto& s : corpus()) texts.push_back(s);
  const std::vector<std::string> probes = {"the cat sat on the log .", "caf\xC3\xA9 Hello unknown zzz", "",
                                           "\xE2\x82\xAC 5 \xE6\x97\xA5"};
  for (auto kind : {Tokenizer::Kind::kChar, Tokenizer::Kind::kWord, Tokenizer::Kind::kSentencePiece}) {
    SCOPED_TRACE(Tokenizer::kind_name(kind));
    const Tokenizer t = Tokenizer::build(kind, texts, 1, 60);
    const std::string meta = t.serialize();
    EXPECT_TRUE(contains(meta, "\"kind\":\"" + Tokenizer::kind_name(kind) + "\"")) << meta.substr(0, 200);
    const Tokenizer back = Tokenizer::deserialize(meta);
    EXPECT_EQ(back.kind(), kind);
    EXPECT_EQ(back.size(), t.size());
    for (int64_t id = 0; id < t.size(); ++id) EXPECT_EQ(back.token(id), t.token(id));
    for (const auto& p : probes) {
      EXPECT_EQ(back.encode(p), t.encode(p)) << p;
      EXPECT_EQ(back.decode(t.encode(p)), t.decode(t.encode(p))) << p;
    }
    EXPECT_EQ(back.serialize(), meta);
  }
  EXPECT_THROW(Tokenizer::deserialize("not json"), Error);
  const std::string bad_kind = R"({"format":"recur.tokenizer","version":1,"kind":"xyz"})";
  EXPECT_TRUE(contains(message_of([&] { Tokenizer::deserialize(bad_kind); }), "'xyz'"));
  EXPECT_THROW(Tokenizer::deserialize(R"({"format":"recur.tokenizer","version":1,"kind":"word"})"), Error);
  EXPECT_THROW(Tokenizer::deserialize(R"({"format":"recur.tokenizer","version":1,"kind":"word","tokens":["a","a"]})"),
               Error);
}

}  // namespace
}  // namespace recur::data
