// Word tokens, the vocabulary, token-id examples and the SpamAssassin reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "recur/core/error.h"
#include "recur/data/subword.h"
#include "recur/data/text.h"

namespace recur::data {
namespace {

namespace fs = std::filesystem;

TEST(DataText, WordTokensLowercaseAndKeepDollarAndBang) {
  EXPECT_EQ(word_tokens("Get RICH now!!! $100 free-money", 0),
            (std::vector<std::string>{"get", "rich", "now", "!", "!", "!", "$", "100", "free", "money"}));
  EXPECT_EQ(word_tokens("a b c d e", 3), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(word_tokens("", 0).empty());
}

TEST(DataText, InvalidUtf8SeparatesWordsWithoutFailing) {
  const std::string bad = std::string("caf") + static_cast<char>(0xC3) + static_cast<char>(0x28) + "x" +
                          static_cast<char>(0xFF) + "end";
  EXPECT_EQ(word_tokens(bad, 0), (std::vector<std::string>{"caf", "x", "end"}));
}

TEST(DataText, VocabularyOrdersByCountAndMapsUnknownWords) {
  Vocabulary v;
  v.build({{"b", "a", "b", "c"}, {"b", "a", "d"}}, 2, 100);
  EXPECT_EQ(v.words(), (std::vector<std::string>{"<pad>", "<unk>", "b", "a"}));
  EXPECT_EQ(v.id("b"), 2);
  EXPECT_EQ(v.id("zzz"), Vocabulary::kUnk);
  Vocabulary small;
  small.build({{"b", "a", "b"}}, 1, 3);
  EXPECT_EQ(small.size(), 3);
  EXPECT_THROW(small.build({}, 1, 1), Error);
  Vocabulary copy;
  copy.assign(v.words());
  EXPECT_EQ(copy.id("a"), v.id("a"));
  EXPECT_THROW(copy.assign({"a"}), Error);
}

TEST(DataText, ExamplesAreInt64IdColumns) {
  Vocabulary v;
  v.build({{"x", "y"}}, 1, 10);
  Example e = text_example({"y", "q"}, v, 1);
  ASSERT_EQ(e.features.shape(), (Shape{2, 1}));
  EXPECT_EQ(e.features.data<int64_t>()[0], v.id("y"));
  EXPECT_EQ(e.features.data<int64_t>()[1], Vocabulary::kUnk);
  EXPECT_EQ(e.label, 1);
  EXPECT_EQ(text_example({}, v, 0).features.dim(0), 1);  // an empty mail is one <unk>
}

TEST(DataText, SpamAssassinReaderLabelsGroupsAndNamesBadFiles) {
  const fs::path dir = fs::temp_directory_path() / ("recur_spam_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "data" / "spam-1");
  fs::create_directories(dir / "data" / "easy-ham-1");
  std::ofstream(dir / "data" / "spam-1" / "00001.json") << R"({"id":"00001","group":"spam-1","text":"BUY now"})";
  std::ofstream(dir / "data" / "easy-ham-1" / "00002.json") << R"({"id":"00002","text":"hello bob"})";
  auto mails = read_spam_assassin(dir.string());
  ASSERT_EQ(mails.size(), 2u);
  EXPECT_EQ(mails[0].group, "easy-ham-1");
  EXPECT_EQ(mails[1].text, "BUY now");
  std::ofstream(dir / "data" / "spam-1" / "00003.json") << "{not json";
  try {
    read_spam_assassin(dir.string());
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("00003.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_spam_assassin((dir / "nowhere").string()), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace recur::data

namespace recur::data {
namespace {

class DataTextFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("recur_text_" + std::to_string(getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(DataTextFiles, TsvJsonlAndDirectoriesRead) {
  auto tsv = read_labeled_tsv(write("a.tsv", "pos\tgood film\n\nneg\tbad\tvery bad\r\n"));
  ASSERT_EQ(tsv.size(), 2u);
  EXPECT_EQ(tsv[1].label, "neg");
  EXPECT_EQ(tsv[1].text, "bad\tvery bad");
  EXPECT_NE(tsv[1].where.find("a.tsv:3"), std::string::npos);
  auto jl = read_labeled_jsonl(write("a.jsonl", "{\"text\": \"hi\", \"label\": 3}\n{\"text\": \"yo\", \"label\": \"x\"}\n"));
  ASSERT_EQ(jl.size(), 2u);
  EXPECT_EQ(jl[0].label, "3");
  fs::create_directories(dir_ / "docs" / "spam");
  fs::create_directories(dir_ / "docs" / "ham");
  std::ofstream(dir_ / "docs" / "spam" / "1.txt") << "win";
  std::ofstream(dir_ / "docs" / "ham" / "2.txt") << "hello";
  auto dirs = read_labeled_dirs((dir_ / "docs").string());
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_EQ(dirs[0].label, "ham");
  EXPECT_EQ(dirs[1].text, "win");
}

TEST_F(DataTextFiles, BadInputNamesFileLineAndKey) {
  auto expect_error = [](const std::function<void()>& fn, const std::vector<std::string>& parts) {
    try {
      fn();
      ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
      for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  };
  expect_error([&] { read_labeled_tsv((dir_ / "missing.tsv").string()); }, {"missing.tsv"});
  expect_error([&] { read_labeled_tsv(write("empty.tsv", "\n\n")); }, {"empty.tsv", "empty"});
  expect_error([&] { read_labeled_tsv(write("b.tsv", "pos\tok\nno tab here\n")); }, {"b.tsv:2", "tab"});
  expect_error([&] { read_labeled_tsv(write("c.tsv", "\tno label\n")); }, {"c.tsv:1", "label"});
  expect_error([&] { read_labeled_jsonl(write("d.jsonl", "{\"text\": \"a\"}\n")); }, {"d.jsonl:1", "label"});
  expect_error([&] { read_labeled_jsonl(write("e.jsonl", "[1, 2]\n")); }, {"e.jsonl:1", "JSON object"});
  const std::vector<LabeledText> train{{"pos", "a", "t:1"}, {"neg", "b", "t:2"}};
  LabelMap labels(train);
  EXPECT_EQ(labels.names(), (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(labels.id(train[0]), 1);
  expect_error([&] { labels.id(LabeledText{"meh", "c", "test.tsv:7"}); }, {"test.tsv:7", "'meh'", "neg, pos"});
}

TEST(DataText, CharTokensAreCodePointsWithReplacementForInvalidBytes) {
  EXPECT_EQ(char_tokens("h\xC3\xA9!", 0), (std::vector<std::string>{"h", "\xC3\xA9", "!"}));
  EXPECT_EQ(char_tokens(std::string("a\xFF") + "\xE2\x82", 0), (std::vector<std::string>{"a", "\xEF\xBF\xBD", "\xEF\xBF\xBD", "\xEF\xBF\xBD"}));
  EXPECT_EQ(char_tokens("abcdef", 2).size(), 2u);
}

}  // namespace
}  // namespace recur::data

namespace recur::data {
namespace {

TEST(DataSubword, Base64RoundTripsAndRejectsGarbage) {
  for (const std::string& s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                              std::string("\x00\xFF\x10 binary", 10)})
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_encode("Man"), "TWFu");
  EXPECT_EQ(base64_encode("Ma"), "TWE=");
  EXPECT_THROW(base64_decode("abc"), Error);
  EXPECT_THROW(base64_decode("ab!c"), Error);
}

TEST(DataSubword, TrainsEncodesAndRestoresFromItsSerializedForm) {
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back("the quick brown fox jumps over the lazy dog " + std::to_string(i));
  SubwordModel m = SubwordModel::train(texts, 40);
  EXPECT_GT(m.size(), 8);
  const auto ids = m.encode("the lazy fox", 0);
  ASSERT_FALSE(ids.empty());
  for (int64_t id : ids) EXPECT_TRUE(id >= 2 && id < m.size()) << id;  // neither <pad> nor out of range
  EXPECT_EQ(m.encode("the lazy fox", 2).size(), 2u);
  SubwordModel back = SubwordModel::from_serialized(base64_decode(base64_encode(m.serialized())));
  EXPECT_EQ(back.encode("the lazy fox", 0), ids);
  EXPECT_THROW(SubwordModel::from_serialized("not a model"), Error);
}

// Replicas run as threads train on the same texts at once: they must agree (and not trip over
// SentencePiece's process-wide state); other texts or sizes still get their own models.
TEST(DataSubword, ConcurrentTrainingsOnTheSameTextsAgree) {
  std::vector<std::string> texts;
  for (int i = 0; i < 80; ++i) texts.push_back("replicas of one model agree on pieces " + std::to_string(i * 7));
  std::vector<std::string> protos(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&, t] { protos[static_cast<size_t>(t)] = SubwordModel::train(texts, 48).serialized(); });
  for (auto& th : threads) th.join();
  ASSERT_FALSE(protos[0].empty());
  EXPECT_EQ(protos[1], protos[0]);
  EXPECT_EQ(protos[2], protos[0]);
  EXPECT_NE(SubwordModel::train(texts, 32).serialized(), protos[0]);  // another size
  texts.back() += " and one more word";
  EXPECT_NE(SubwordModel::train(texts, 48).serialized(), protos[0]);  // other texts
}

}  // namespace
}  // namespace recur::data
