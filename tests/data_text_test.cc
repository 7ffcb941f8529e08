// Word tokens, the vocabulary, token-id examples and the SpamAssassin reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "recur/core/error.h"
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
