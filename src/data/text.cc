#include "recur/data/text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "recur/core/error.h"

namespace recur::data {

namespace fs = std::filesystem;

std::vector<std::string> word_tokens(const std::string& text, int64_t max_tokens) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(cur), cur.clear();
  };
  for (char ch : text) {
    if (max_tokens > 0 && static_cast<int64_t>(out.size()) >= max_tokens) break;
    const unsigned char c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur += static_cast<char>(c);
    } else if (c >= 'A' && c <= 'Z') {
      cur += static_cast<char>(c - 'A' + 'a');
    } else {
      flush();
      if (c == '$' || c == '!') out.emplace_back(1, static_cast<char>(c));
    }
  }
  flush();
  if (max_tokens > 0 && static_cast<int64_t>(out.size()) > max_tokens) out.resize(static_cast<size_t>(max_tokens));
  return out;
}

void Vocabulary::build(const std::vector<std::vector<std::string>>& docs, int64_t min_count, int64_t max_size) {
  RECUR_CHECK(max_size >= 2, "Vocabulary: max_size {} leaves no room beyond <pad> and <unk>", max_size);
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& d : docs)
    for (const auto& w : d) ++counts[w];
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> words{"<pad>", "<unk>"};
  for (const auto& [w, n] : sorted) {
    if (n < min_count || static_cast<int64_t>(words.size()) >= max_size) break;
    words.push_back(w);
  }
  assign(std::move(words));
}

void Vocabulary::assign(std::vector<std::string> words) {
  RECUR_CHECK(words.size() >= 2 && words[0] == "<pad>" && words[1] == "<unk>",
              "Vocabulary: a word list must start with <pad>, <unk> ({} words given)", words.size());
  words_ = std::move(words);
  ids_.clear();
  for (size_t i = 0; i < words_.size(); ++i) ids_.emplace(words_[i], static_cast<int64_t>(i));
}

int64_t Vocabulary::id(const std::string& word) const {
  auto it = ids_.find(word);
  return it == ids_.end() ? kUnk : it->second;
}

std::vector<Mail> read_spam_assassin(const std::string& dir) {
  const fs::path data = fs::path(dir) / "data";
  RECUR_CHECK(fs::is_directory(data), "spam: no data/ folder in '{}' (fetch it with `recur data fetch spam`)", dir);
  std::vector<fs::path> files;
  for (const auto& g : fs::directory_iterator(data)) {
    if (!g.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(g.path()))
      if (f.path().extension() == ".json") files.push_back(f.path());
  }
  RECUR_CHECK(!files.empty(), "spam: no mails (*.json) under '{}'", data.string());
  std::sort(files.begin(), files.end());  // a fixed order whatever the file system returns
  std::vector<Mail> mails;
  for (const auto& p : files) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
    RECUR_CHECK(!j.is_discarded() && j.is_object() && j.contains("text") && j["text"].is_string(),
                "spam: '{}' is not a mail record (JSON object with a \"text\" string)", p.string());
    mails.push_back({p.parent_path().filename().string(), p.stem().string(), j["text"].get<std::string>()});
  }
  return mails;
}

Example text_example(const std::vector<std::string>& tokens, const Vocabulary& vocab, int64_t label) {
  const int64_t L = std::max<int64_t>(1, static_cast<int64_t>(tokens.size()));
  Tensor ids({L, 1}, DType::I64);
  ids.data<int64_t>()[0] = Vocabulary::kUnk;
  for (size_t i = 0; i < tokens.size(); ++i) ids.data<int64_t>()[i] = vocab.id(tokens[i]);
  Example e;
  e.features = ids;
  e.label = label;
  return e;
}

}  // namespace recur::data
