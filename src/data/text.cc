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

std::vector<std::string> char_tokens(const std::string& text, int64_t max_tokens) {
  std::vector<std::string> out;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n && (max_tokens <= 0 || static_cast<int64_t>(out.size()) < max_tokens);) {
    const unsigned char c = p[i];
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) ok = (p[i + k] >> 6) == 0x2;
    if (ok) {
      out.emplace_back(text, i, len);
      i += len;
    } else {
      out.emplace_back("\xEF\xBF\xBD");  // U+FFFD
      ++i;
    }
  }
  return out;
}

namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RECUR_CHECK(in.good(), "cannot open '{}'", path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  bool any = false;
  for (const auto& l : lines) any |= l.find_first_not_of(" \t") != std::string::npos;
  RECUR_CHECK(any, "'{}' is empty: no documents", path);
  return lines;
}

bool blank(const std::string& l) { return l.find_first_not_of(" \t") == std::string::npos; }

}  // namespace

std::vector<LabeledText> read_labeled_tsv(const std::string& path) {
  std::vector<LabeledText> docs;
  const auto lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (blank(lines[i])) continue;
    const std::string where = fmt::format("{}:{}", path, i + 1);
    const size_t tab = lines[i].find('\t');
    RECUR_CHECK(tab != std::string::npos, "{}: expected 'label<TAB>text', found no tab", where);
    RECUR_CHECK(tab > 0, "{}: the label (first field) is empty", where);
    docs.push_back({lines[i].substr(0, tab), lines[i].substr(tab + 1), where});
  }
  return docs;
}

std::vector<LabeledText> read_labeled_jsonl(const std::string& path, const std::string& text_key,
                                            const std::string& label_key) {
  std::vector<LabeledText> docs;
  const auto lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (blank(lines[i])) continue;
    const std::string where = fmt::format("{}:{}", path, i + 1);
    nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, false);
    RECUR_CHECK(!j.is_discarded() && j.is_object(), "{}: not a JSON object", where);
    RECUR_CHECK(j.contains(text_key) && j[text_key].is_string(), "{}: no string field '{}'", where, text_key);
    RECUR_CHECK(j.contains(label_key) && (j[label_key].is_string() || j[label_key].is_number_integer()),
                "{}: no string or integer field '{}'", where, label_key);
    const std::string label = j[label_key].is_string() ? j[label_key].get<std::string>() : j[label_key].dump();
    docs.push_back({label, j[text_key].get<std::string>(), where});
  }
  return docs;
}

std::vector<LabeledText> read_labeled_dirs(const std::string& dir) {
  RECUR_CHECK(fs::is_directory(dir), "'{}' is not a folder (expected one sub-folder per label)", dir);
  std::vector<fs::path> files;
  for (const auto& g : fs::directory_iterator(dir))
    if (g.is_directory())
      for (const auto& f : fs::directory_iterator(g.path()))
        if (f.is_regular_file()) files.push_back(f.path());
  RECUR_CHECK(!files.empty(), "'{}' holds no documents (expected <label>/<file> entries)", dir);
  std::sort(files.begin(), files.end());
  std::vector<LabeledText> docs;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    docs.push_back({f.parent_path().filename().string(), ss.str(), f.string()});
  }
  return docs;
}

LabelMap::LabelMap(const std::vector<LabeledText>& training) {
  for (const auto& d : training) names_.push_back(d.label);
  std::sort(names_.begin(), names_.end());
  names_.erase(std::unique(names_.begin(), names_.end()), names_.end());
  RECUR_CHECK(!names_.empty(), "LabelMap: no training documents");
}

int64_t LabelMap::id(const LabeledText& doc) const {
  auto it = std::lower_bound(names_.begin(), names_.end(), doc.label);
  RECUR_CHECK(it != names_.end() && *it == doc.label, "{}: label '{}' never occurs in the training data (labels: {})",
              doc.where, doc.label, fmt::join(names_, ", "));
  return it - names_.begin();
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
