#include "recur/data/parallel.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "recur/core/error.h"
#include "recur/data/subword.h"

namespace recur::data {

namespace {

namespace fs = std::filesystem;

std::vector<std::string> read_lines(const std::string& path) {
  RECUR_CHECK(fs::is_regular_file(path), "parallel text: cannot open '{}': no such file", path);
  std::ifstream in(path, std::ios::binary);
  RECUR_CHECK(in.good(), "parallel text: cannot open '{}'", path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t") == std::string::npos; }

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// Whitespace-separated words; a word with bytes that are not valid UTF-8 gets U+FFFD for them, so
// that every token can be written to JSON.
std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && ascii_space(text[i])) ++i;
    const size_t start = i;
    bool ascii = true;
    while (i < text.size() && !ascii_space(text[i])) ascii &= static_cast<unsigned char>(text[i++]) < 0x80;
    if (i == start) break;
    std::string word = text.substr(start, i - start);
    if (!ascii) {
      std::string clean;
      for (const auto& c : char_tokens(word, 0)) clean += c;
      word = std::move(clean);
    }
    out.push_back(std::move(word));
  }
  return out;
}

const std::vector<std::string>& specials() {
  static const std::vector<std::string> s = {"<pad>", "<unk>", "<bos>", "<eos>"};
  return s;
}

constexpr int64_t kSubwordUnk = 1;  // SubwordModel's <unk>; its ids 2.. are ours 4..

}  // namespace

std::vector<ParallelPair> read_parallel_tsv(const std::string& path) {
  const std::vector<std::string> lines = read_lines(path);
  std::vector<ParallelPair> pairs;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (blank(l)) continue;
    const size_t tab = l.find('\t');
    RECUR_CHECK(tab != std::string::npos, "{}:{}: no tab between source and target", path, i + 1);
    RECUR_CHECK(l.find('\t', tab + 1) == std::string::npos,
                "{}:{}: more than one tab (expected source<TAB>target)", path, i + 1);
    pairs.push_back({l.substr(0, tab), l.substr(tab + 1), static_cast<int64_t>(i + 1)});
  }
  RECUR_CHECK(!pairs.empty(), "'{}' has no sentence pairs", path);
  return pairs;
}

std::vector<ParallelPair> read_parallel_files(const std::string& source_path, const std::string& target_path) {
  const std::vector<std::string> source = read_lines(source_path), target = read_lines(target_path);
  RECUR_CHECK(source.size() == target.size(),
              "parallel files differ in length: '{}' has {} lines but '{}' has {} lines", source_path,
              source.size(), target_path, target.size());
  std::vector<ParallelPair> pairs;
  for (size_t i = 0; i < source.size(); ++i) {
    if (blank(source[i]) && blank(target[i])) continue;
    pairs.push_back({source[i], target[i], static_cast<int64_t>(i + 1)});
  }
  RECUR_CHECK(!pairs.empty(), "'{}' and '{}' have no sentence pairs", source_path, target_path);
  return pairs;
}

Tokenizer::Kind Tokenizer::kind_of(const std::string& name) {
  if (name == "char") return Kind::kChar;
  if (name == "word") return Kind::kWord;
  if (name == "sentencepiece") return Kind::kSentencePiece;
  RECUR_FAIL("unknown tokenizer '{}': expected char, word or sentencepiece", name);
}

std::string Tokenizer::kind_name(Kind kind) {
  switch (kind) {
    case Kind::kChar:
      return "char";
    case Kind::kWord:
      return "word";
    case Kind::kSentencePiece:
      return "sentencepiece";
  }
  RECUR_FAIL("unknown tokenizer kind {}", static_cast<int>(kind));
}

Tokenizer Tokenizer::build(Kind kind, const std::vector<std::string>& texts, int64_t min_count, int64_t max_size) {
  RECUR_CHECK(min_count >= 1, "Tokenizer::build: min_count {} must be at least 1", min_count);
  Tokenizer t;
  t.kind_ = kind;
  if (kind == Kind::kSentencePiece) {
    RECUR_CHECK(max_size >= 10, "Tokenizer::build: max_size {} is too small for sentencepiece (at least 10)",
                max_size);
    t.subword_ = std::make_shared<SubwordModel>(SubwordModel::train(texts, max_size - 2));
    return t;
  }
  RECUR_CHECK(max_size >= 5, "Tokenizer::build: max_size {} leaves no room beyond <pad> <unk> <bos> <eos>",
              max_size);
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& text : texts)
    for (auto& tok : kind == Kind::kChar ? char_tokens(text, 0) : split_words(text)) ++counts[tok];
  for (const auto& s : specials()) counts.erase(s);
  RECUR_CHECK(!counts.empty(), "Tokenizer::build: no {} tokens in {} texts", kind_name(kind), texts.size());
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> tokens = specials();
  for (const auto& [tok, n] : sorted) {
    if (n < min_count || static_cast<int64_t>(tokens.size()) >= max_size) break;
    tokens.push_back(tok);
  }
  t.vocab_.assign(std::move(tokens));
  return t;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  if (kind_ == Kind::kSentencePiece) {
    for (int64_t id : subword_->encode(text, 0)) ids.push_back(id <= kSubwordUnk ? id : id + 2);
    return ids;
  }
  for (const auto& tok : kind_ == Kind::kChar ? char_tokens(text, 0) : split_words(text)) ids.push_back(vocab_.id(tok));
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const int64_t n = size();
  std::vector<int64_t> kept;  // ids between the leading <bos> and the first <eos>, without <pad>/<bos>
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id == kEos) break;
    if (id == kPad || id == kBos) continue;
    kept.push_back(id >= 0 && id < n ? id : kUnk);
  }
  if (kind_ == Kind::kSentencePiece) {
    for (int64_t& id : kept) id = id == kUnk ? kSubwordUnk : id - 2;
    return subword_->decode(kept);
  }
  std::string out;
  for (size_t i = 0; i < kept.size(); ++i) {
    if (kind_ == Kind::kWord && i > 0) out += ' ';
    out += vocab_.words()[static_cast<size_t>(kept[i])];
  }
  return out;
}

std::string Tokenizer::token(int64_t id) const {
  if (id < 0 || id >= size()) return "<unk>";
  if (kind_ != Kind::kSentencePiece) return vocab_.words()[static_cast<size_t>(id)];
  return id < 4 ? specials()[static_cast<size_t>(id)] : subword_->piece(id - 2);
}

int64_t Tokenizer::size() const { return kind_ == Kind::kSentencePiece ? subword_->size() + 2 : vocab_.size(); }

std::string Tokenizer::serialize() const {
  nlohmann::json j;
  j["format"] = "recur.tokenizer";
  j["version"] = 1;
  j["kind"] = kind_name(kind_);
  if (kind_ == Kind::kSentencePiece) {
    j["model"] = base64_encode(subword_->serialized());
  } else {
    const auto& words = vocab_.words();
    j["tokens"] = std::vector<std::string>(words.begin() + 4, words.end());
  }
  return j.dump();
}

Tokenizer Tokenizer::deserialize(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  RECUR_CHECK(!j.is_discarded() && j.is_object(), "tokenizer metadata is not a JSON object: '{}'",
              text.substr(0, 80));
  RECUR_CHECK(j.value("format", "") == "recur.tokenizer", "tokenizer metadata: \"format\" is not \"recur.tokenizer\"");
  RECUR_CHECK(j.contains("version") && j["version"] == 1, "tokenizer metadata: unsupported \"version\" {}",
              j.contains("version") ? j["version"].dump() : "(missing)");
  RECUR_CHECK(j.contains("kind") && j["kind"].is_string(), "tokenizer metadata: no \"kind\"");
  Tokenizer t;
  t.kind_ = kind_of(j["kind"].get<std::string>());
  if (t.kind_ == Kind::kSentencePiece) {
    RECUR_CHECK(j.contains("model") && j["model"].is_string(), "tokenizer metadata: sentencepiece without \"model\"");
    const std::string proto = base64_decode(j["model"].get<std::string>());
    t.subword_ = std::make_shared<SubwordModel>(SubwordModel::from_serialized(proto));
    return t;
  }
  RECUR_CHECK(j.contains("tokens") && j["tokens"].is_array(), "tokenizer metadata: {} without \"tokens\"",
              kind_name(t.kind_));
  std::vector<std::string> tokens = specials();
  std::unordered_set<std::string> seen(tokens.begin(), tokens.end());
  for (const auto& tok : j["tokens"]) {
    RECUR_CHECK(tok.is_string() && !tok.get<std::string>().empty(),
                "tokenizer metadata: token {} is not a non-empty string", tok.dump());
    RECUR_CHECK(seen.insert(tok.get<std::string>()).second,
                "tokenizer metadata: token {} appears twice or is a special", tok.dump());
    tokens.push_back(tok.get<std::string>());
  }
  t.vocab_.assign(std::move(tokens));
  return t;
}

}  // namespace recur::data
