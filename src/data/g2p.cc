#include "recur/data/g2p.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "recur/core/error.h"
#include "recur/data/dataset.h"

namespace recur::data {

namespace fs = std::filesystem;

const std::vector<std::string>& arpabet_phonemes() {
  static const std::vector<std::string> phonemes{"AA", "AE", "AH", "AO", "AW", "AY", "B",  "CH", "D",  "DH",
                                                 "EH", "ER", "EY", "F",  "G",  "HH", "IH", "IY", "JH", "K",
                                                 "L",  "M",  "N",  "NG", "OW", "OY", "P",  "R",  "S",  "SH",
                                                 "T",  "TH", "UH", "UW", "V",  "W",  "Y",  "Z",  "ZH"};
  return phonemes;
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    size_t j = i;
    while (j < line.size() && !is_space(line[j])) ++j;
    if (j > i) fields.emplace_back(line, i, j - i);
    i = j;
  }
  return fields;
}

// The word of a dictionary key without its variant marker "(N)"; errors name `where`.
std::string strip_variant(const std::string& key, const std::string& where) {
  const size_t open = key.find('(');
  if (open == std::string::npos || open == 0) return key;  // "(PAREN" is a word (later filtered)
  bool ok = key.back() == ')' && key.size() > open + 2;
  for (size_t k = open + 1; ok && k + 1 < key.size(); ++k) ok = key[k] >= '0' && key[k] <= '9';
  RECUR_CHECK(ok, "{}: malformed variant marker in '{}' (expected WORD or WORD(N) with N digits)", where, key);
  return key.substr(0, open);
}

// Lower-cased word when it is made of letters and apostrophes with at least one letter; else "".
std::string keep_word(const std::string& word) {
  std::string out;
  bool letter = false;
  for (char c : word) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c >= 'a' && c <= 'z') {
      letter = true;
    } else if (c != '\'') {
      return "";
    }
    out += c;
  }
  return letter ? out : "";
}

std::string dict_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path f = fs::path(path) / "data" / "dict.txt";
    RECUR_CHECK(fs::is_regular_file(f, ec),
                "cmudict: no data/dict.txt in '{}' (fetch it with `recur data fetch cmudict`)", path);
    return f.string();
  }
  return path;
}

}  // namespace

std::vector<G2pEntry> read_cmudict(const std::string& path_or_dir) {
  const std::string path = dict_file(path_or_dir);
  std::ifstream in(path, std::ios::binary);
  RECUR_CHECK(in.good(), "cmudict: cannot open '{}'", path);
  const auto& inventory = arpabet_phonemes();
  const std::unordered_set<std::string> known(inventory.begin(), inventory.end());

  std::vector<G2pEntry> entries;
  std::unordered_map<std::string, std::vector<size_t>> seen;  // word -> its entries so far
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind(";;;", 0) == 0) continue;
    std::vector<std::string> fields = split_fields(line);
    if (fields.empty()) continue;
    const std::string where = fmt::format("{}:{}", path, number);
    for (size_t k = 1; k < fields.size(); ++k)
      if (fields[k][0] == '#') {
        fields.resize(k);
        break;
      }
    const std::string word = keep_word(strip_variant(fields[0], where));
    RECUR_CHECK(fields.size() >= 2, "{}: '{}' has no pronunciation (expected WORD  PH1 PH2 ...)", where, fields[0]);
    std::vector<std::string> phonemes;
    phonemes.reserve(fields.size() - 1);
    for (size_t k = 1; k < fields.size(); ++k) {
      std::string p = fields[k];
      if (p.size() > 1 && p.back() >= '0' && p.back() <= '2') p.pop_back();
      RECUR_CHECK(known.count(p) == 1, "{}: '{}' is not an ARPAbet phoneme (AA..ZH with an optional stress 0/1/2)",
                  where, fields[k]);
      phonemes.push_back(std::move(p));
    }
    if (word.empty()) continue;  // digits, dots, hyphens, punctuation names: not a G2P word
    auto& same = seen[word];
    bool duplicate = false;
    for (size_t e : same) duplicate |= entries[e].phonemes == phonemes;
    if (duplicate) continue;  // a variant differing only in stress
    same.push_back(entries.size());
    entries.push_back({word, std::move(phonemes), number});
  }
  RECUR_CHECK(!entries.empty(), "cmudict: '{}' holds no dictionary entries (expected lines 'WORD  PH1 PH2 ...')", path);
  return entries;
}

std::vector<G2pWord> group_by_word(const std::vector<G2pEntry>& entries) {
  std::vector<G2pWord> words;
  std::unordered_map<std::string, size_t> index;
  for (const auto& e : entries) {
    auto [it, fresh] = index.emplace(e.word, words.size());
    if (fresh) words.push_back({e.word, {}});
    words[it->second].pronunciations.push_back(e.phonemes);
  }
  return words;
}

int64_t count_words(const std::vector<G2pEntry>& entries) {
  std::unordered_set<std::string> words;
  for (const auto& e : entries) words.insert(e.word);
  return static_cast<int64_t>(words.size());
}

G2pSplit split_g2p(const std::vector<G2pEntry>& entries, int64_t test_words, int64_t valid_words) {
  RECUR_CHECK(test_words >= 0 && valid_words >= 0, "split_g2p: negative sizes (test {}, valid {})", test_words,
              valid_words);
  std::vector<std::pair<uint64_t, std::string>> order;
  {
    std::unordered_set<std::string> words;
    for (const auto& e : entries)
      if (words.insert(e.word).second) order.emplace_back(fnv1a64(e.word), e.word);
  }
  RECUR_CHECK(static_cast<int64_t>(order.size()) >= test_words + valid_words,
              "split_g2p: {} distinct words, fewer than the {} test + {} valid words asked for", order.size(),
              test_words, valid_words);
  std::sort(order.begin(), order.end());
  std::unordered_map<std::string, Split> where;
  where.reserve(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    where.emplace(std::move(order[i].second),
                  k < test_words ? Split::Test : k < test_words + valid_words ? Split::Valid : Split::Train);
  }
  G2pSplit out;
  for (const auto& e : entries) {
    switch (where.at(e.word)) {
      case Split::Test: out.test.push_back(e); break;
      case Split::Valid: out.valid.push_back(e); break;
      case Split::Train: out.train.push_back(e); break;
    }
  }
  return out;
}

Vocabulary g2p_source_vocab() {
  std::vector<std::string> words{"<pad>", "<unk>", "<bos>", "<eos>", "'"};
  for (char c = 'a'; c <= 'z'; ++c) words.emplace_back(1, c);
  Vocabulary v;
  v.assign(std::move(words));
  return v;
}

Vocabulary g2p_target_vocab() {
  std::vector<std::string> words{"<pad>", "<unk>", "<bos>", "<eos>"};
  for (const auto& p : arpabet_phonemes()) words.push_back(p);
  Vocabulary v;
  v.assign(std::move(words));
  return v;
}

std::vector<int64_t> g2p_source_ids(const std::string& word, const Vocabulary& source) {
  std::vector<int64_t> ids;
  ids.reserve(word.size());
  for (char c : word) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    ids.push_back(source.id(std::string(1, c)));
  }
  return ids;
}

std::vector<int64_t> g2p_target_ids(const std::vector<std::string>& phonemes, const Vocabulary& target) {
  std::vector<int64_t> ids;
  ids.reserve(phonemes.size() + 2);
  ids.push_back(g2p::kBos);
  for (const auto& p : phonemes) ids.push_back(target.id(p));
  ids.push_back(g2p::kEos);
  return ids;
}

std::vector<std::string> g2p_tokens(const std::vector<int64_t>& ids, const Vocabulary& vocab) {
  std::vector<std::string> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id == g2p::kBos && i == 0) continue;
    if (id == g2p::kEos) break;
    if (id == g2p::kPad) continue;
    out.push_back(id >= 0 && id < vocab.size() ? vocab.words()[static_cast<size_t>(id)] : "<unk>");
  }
  return out;
}

std::string g2p_word(const std::vector<int64_t>& ids, const Vocabulary& vocab) {
  std::string out;
  for (const auto& t : g2p_tokens(ids, vocab)) out += t;
  return out;
}

namespace {

template <typename T>
int64_t levenshtein(const std::vector<T>& a, const std::vector<T>& b) {
  // One row of the (|a|+1) x (|b|+1) table: row[j] = distance(a[0..i), b[0..j)).
  std::vector<int64_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diagonal = row[0];  // distance(a[0..i-1), b[0..j-1))
    row[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t up = row[j];
      row[j] = std::min({up + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

}  // namespace

int64_t edit_distance(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return levenshtein(a, b);
}
int64_t edit_distance(const std::vector<int64_t>& a, const std::vector<int64_t>& b) { return levenshtein(a, b); }

G2pScores g2p_scores(const std::vector<std::vector<std::string>>& hypotheses,
                     const std::vector<std::vector<std::vector<std::string>>>& references) {
  RECUR_CHECK(hypotheses.size() == references.size(), "g2p_scores: {} hypotheses but references for {} words",
              hypotheses.size(), references.size());
  G2pScores s;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    RECUR_CHECK(!references[i].empty(), "g2p_scores: word {} has no reference pronunciation", i);
    int64_t best = -1, best_length = 0;
    for (const auto& r : references[i]) {
      const int64_t d = edit_distance(hypotheses[i], r);
      if (best < 0 || d < best) best = d, best_length = static_cast<int64_t>(r.size());
    }
    ++s.words;
    s.word_errors += best > 0 ? 1 : 0;
    s.phoneme_edits += best;
    s.reference_phonemes += best_length;
  }
  s.wer = s.words > 0 ? static_cast<double>(s.word_errors) / static_cast<double>(s.words) : 0.0;
  s.per = s.reference_phonemes > 0
              ? static_cast<double>(s.phoneme_edits) / static_cast<double>(s.reference_phonemes)
              : 0.0;
  return s;
}

}  // namespace recur::data
