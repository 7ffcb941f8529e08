#include "recur/data/corpus.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "recur/core/error.h"
#include "recur/core/rng.h"
#include "utf8.h"

namespace recur::data {

namespace fs = std::filesystem;

namespace {


bool is_scalar_value(uint64_t cp) { return cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF); }

// Calls fn(symbol) for each symbol of `text`, with -1 for an invalid byte (code-point unit only).
template <class Fn> void for_each_symbol(const std::string& text, CharUnit unit, Fn&& fn) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  if (unit == CharUnit::Byte) {
    for (size_t i = 0; i < n; ++i) fn(static_cast<int32_t>(p[i]));
    return;
  }
  for (size_t i = 0; i < n;) {
    size_t len = 1;
    fn(utf8::decode_at(p, n, i, len));
    i += len;
  }
}

// ---- readers ---------------------------------------------------------------------------------

// The folder holding the data files: path/data, path/package/data, or path itself.
fs::path data_dir(const std::string& path, const std::string& name) {
  std::error_code ec;
  RECUR_CHECK(fs::exists(path, ec), "{}: '{}' does not exist (fetch it with `recur data fetch {}`)", name, path, name);
  RECUR_CHECK(fs::is_directory(path, ec), "{}: '{}' is not a folder (expected the folder of `recur data fetch {}` or its data/)",
              name, path, name);
  for (const fs::path& sub : {fs::path("data"), fs::path("package") / "data"})
    if (fs::is_directory(fs::path(path) / sub, ec)) return fs::path(path) / sub;
  return fs::path(path);
}

// The text of a corpus file: checked UTF-8, less a byte-order mark and trailing line breaks.
std::string read_text(const fs::path& file, const std::string& name) {
  std::error_code ec;
  RECUR_CHECK(fs::is_regular_file(file, ec), "{}: '{}' is not a regular file", name, file.string());
  std::ifstream in(file, std::ios::binary);
  RECUR_CHECK(in.good(), "{}: cannot open '{}'", name, file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  RECUR_CHECK(!in.bad(), "{}: error reading '{}'", name, file.string());
  std::string text = ss.str();
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  RECUR_CHECK(!text.empty(), "{}: '{}' is empty", name, file.string());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  int64_t line = 1;
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    RECUR_CHECK(utf8::decode_at(p, text.size(), i, len) >= 0, "{}: {}:{}: invalid UTF-8 (byte 0x{:02x} at offset {})", name,
                file.string(), line, p[i], i);
    line += p[i] == '\n';
    i += len;
  }
  return text;
}

// Digits only, 1..9 of them (so the value fits an int64_t).
bool all_digits(const std::string& s) {
  return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

struct Found {
  int64_t number;    // year or chapter
  std::string stem;  // file name without ".txt"
  fs::path file;
};

// The files "<stem>.txt" of `dir` for which match(stem) gives a number (not -1), sorted by
// (number, name).
template <class Match> std::vector<Found> list_files(const fs::path& dir, Match&& match) {
  std::vector<Found> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    if (f.size() <= 4 || f.compare(f.size() - 4, 4, ".txt") != 0) continue;
    const std::string stem = f.substr(0, f.size() - 4);
    const int64_t number = match(stem);
    if (number >= 0) found.push_back({number, stem, e.path()});
  }
  RECUR_CHECK(!ec, "cannot list '{}': {}", dir.string(), ec.message());
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.number != b.number ? a.number < b.number : a.stem < b.stem;
  });
  return found;
}

// "YYYY_name" -> YYYY; anything else -> -1.
int64_t sotu_year(const std::string& stem) {
  if (stem.size() < 6 || stem[4] != '_' || !all_digits(stem.substr(0, 4))) return -1;
  return std::stoll(stem.substr(0, 4));
}

// "chapter_N" -> N; anything else -> -1.
int64_t chapter_number(const std::string& stem) {
  const std::string prefix = "chapter_";
  if (stem.rfind(prefix, 0) != 0 || !all_digits(stem.substr(prefix.size()))) return -1;
  return std::stoll(stem.substr(prefix.size()));
}

}  // namespace

std::vector<Document> read_sotu(const std::string& path) {
  const fs::path dir = data_dir(path, "sotu");
  const std::vector<Found> files = list_files(dir, sotu_year);
  RECUR_CHECK(!files.empty(), "sotu: no addresses (files YYYY_name.txt) in '{}' (fetch them with `recur data fetch sotu`)",
              dir.string());
  std::vector<Document> docs;
  docs.reserve(files.size());
  for (const auto& f : files) docs.push_back({"sotu", f.stem, read_text(f.file, "sotu")});
  return docs;
}

std::vector<Document> read_moby_dick(const std::string& path) {
  const fs::path dir = data_dir(path, "moby-dick");
  const std::vector<Found> files = list_files(dir, chapter_number);
  RECUR_CHECK(!files.empty(),
              "moby-dick: no chapters (files chapter_N.txt) in '{}' (fetch them with `recur data fetch moby-dick`)",
              dir.string());
  std::vector<Document> docs;
  docs.reserve(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    RECUR_CHECK(i == 0 || files[i].number != files[i - 1].number, "moby-dick: '{}' and '{}' are both chapter {}",
                files[i - 1].file.string(), files[i].file.string(), files[i].number);
    docs.push_back({"moby-dick", "chapter_" + std::to_string(files[i].number), read_text(files[i].file, "moby-dick")});
  }
  return docs;
}

DocumentSplit split_every_nth(const std::vector<Document>& docs, int64_t n) {
  RECUR_CHECK(n >= 2, "split_every_nth: n must be at least 2, got {}", n);
  RECUR_CHECK(docs.size() >= 2, "split_every_nth: needs at least 2 documents, got {}", docs.size());
  DocumentSplit s;
  for (size_t i = 0; i < docs.size(); ++i) (static_cast<int64_t>(i) % n == n - 1 ? s.held_out : s.train).push_back(docs[i]);
  RECUR_CHECK(!s.held_out.empty(), "split_every_nth: {} documents hold no {}th one to hold out", docs.size(), n);
  return s;
}

DocumentSplit split_last_fraction(const std::vector<Document>& docs, double fraction) {
  RECUR_CHECK(fraction > 0 && fraction < 1, "split_last_fraction: fraction must be in (0, 1), got {}", fraction);
  RECUR_CHECK(docs.size() >= 2, "split_last_fraction: needs at least 2 documents, got {}", docs.size());
  DocumentSplit s;
  const int64_t size = static_cast<int64_t>(docs.size());
  const int64_t k = std::max<int64_t>(1, std::llround(fraction * static_cast<double>(size)));
  RECUR_CHECK(k < size, "split_last_fraction: holding out {} of {} documents leaves none to train", k, size);
  s.train.assign(docs.begin(), docs.end() - k);
  s.held_out.assign(docs.end() - k, docs.end());
  return s;
}

std::string normalize_typography(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    size_t len = 1;
    const int32_t cp = utf8::decode_at(p, text.size(), i, len);
    switch (cp) {
      case 0x2018: case 0x2019: case 0x201A: case 0x2032: out += '\''; break;
      case 0x201C: case 0x201D: case 0x201E: case 0x2033: out += '"'; break;
      case 0x2014: case 0x2015: out += "--"; break;
      case 0x2010: case 0x2011: case 0x2013: case 0x2212: out += '-'; break;
      case 0x2026: out += "..."; break;
      case 0x00A0: out += ' '; break;
      default: out.append(text, i, len);
    }
    i += len;
  }
  return out;
}

// ---- CharVocab -------------------------------------------------------------------------------

CharVocab::CharVocab(CharUnit unit, bool normalize, std::vector<uint32_t> symbols)
    : unit_(unit), normalize_(normalize), symbols_(std::move(symbols)) {
  index();
}

void CharVocab::index() {
  // Dense lookup for the Basic Multilingual Plane (all of both corpora), a hash map beyond it.
  dense_.clear();
  sparse_.clear();
  uint32_t top = 0;
  for (uint32_t s : symbols_)
    if (s < 0x10000) top = std::max(top, s + 1);
  dense_.assign(top, -1);
  for (size_t i = 0; i < symbols_.size(); ++i) {
    const int64_t id = kFirstSymbol + static_cast<int64_t>(i);
    if (symbols_[i] < top)
      dense_[symbols_[i]] = static_cast<int32_t>(id);
    else
      sparse_.emplace(symbols_[i], id);
  }
}

CharVocab CharVocab::build(const std::vector<std::string>& texts, const CharVocabOptions& options) {
  RECUR_CHECK(options.min_count >= 1, "char vocab: min_count must be at least 1, got {}", options.min_count);
  std::vector<int64_t> low(0x10000, 0);  // counts of the BMP (or bytes)
  std::map<uint32_t, int64_t> high;
  for (const auto& t : texts) {
    std::string normalized;
    if (options.normalize) normalized = normalize_typography(t);
    for_each_symbol(options.normalize ? normalized : t, options.unit, [&](int32_t s) {
      if (s < 0) return;
      if (s < 0x10000)
        ++low[static_cast<size_t>(s)];
      else
        ++high[static_cast<uint32_t>(s)];
    });
  }
  std::vector<uint32_t> symbols;
  for (uint32_t s = 0; s < low.size(); ++s)
    if (low[s] >= options.min_count) symbols.push_back(s);
  for (const auto& [s, c] : high)
    if (c >= options.min_count) symbols.push_back(s);
  return CharVocab(options.unit, options.normalize, std::move(symbols));
}

CharVocab CharVocab::build(const std::vector<Document>& docs, const CharVocabOptions& options) {
  std::vector<std::string> texts;
  texts.reserve(docs.size());
  for (const auto& d : docs) texts.push_back(d.text);
  return build(texts, options);
}

int64_t CharVocab::id(uint32_t symbol) const {
  if (symbol < dense_.size()) return dense_[symbol] < 0 ? kUnk : dense_[symbol];
  auto it = sparse_.find(symbol);
  return it == sparse_.end() ? kUnk : it->second;
}

std::vector<int64_t> CharVocab::encode(const std::string& raw) const {
  std::string normalized;
  if (normalize_) normalized = normalize_typography(raw);
  const std::string& text = normalize_ ? normalized : raw;
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for_each_symbol(text, unit_, [&](int32_t s) { ids.push_back(s < 0 ? kUnk : id(static_cast<uint32_t>(s))); });
  return ids;
}

std::string CharVocab::decode(std::span<const int64_t> ids) const {
  std::string out;
  out.reserve(ids.size());
  const int64_t n = size();
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    RECUR_CHECK(id >= 0 && id < n, "char vocab: id {} at position {} is outside the vocabulary [0, {})", id, i, n);
    if (id == kUnk) {
      out += "\xEF\xBF\xBD";  // U+FFFD
    } else if (id >= kFirstSymbol) {
      const uint32_t s = symbols_[static_cast<size_t>(id - kFirstSymbol)];
      if (unit_ == CharUnit::Byte)
        out += static_cast<char>(s);
      else
        utf8::append_utf8(out, s);
    }
  }
  return out;
}

std::string CharVocab::decode(const std::vector<int64_t>& ids) const { return decode(std::span<const int64_t>(ids)); }

namespace {
constexpr const char* kMagic = "recur-charvocab";
}

std::string CharVocab::serialize() const {
  std::string out = fmt::format("{} 1 unit={} normalize={} count={} symbols=[", kMagic,
                                unit_ == CharUnit::Byte ? "byte" : "codepoint", normalize_ ? 1 : 0, symbols_.size());
  for (size_t i = 0; i < symbols_.size(); ++i) out += fmt::format("{}{:x}", i ? "," : "", symbols_[i]);
  return out + "]";
}

CharVocab CharVocab::deserialize(const std::string& text) {
  std::vector<std::string> fields;
  for (size_t i = 0; i <= text.size();) {
    const size_t j = std::min(text.find(' ', i), text.size());
    fields.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  const std::string head = text.substr(0, std::min<size_t>(text.size(), 40));
  RECUR_CHECK(fields[0] == kMagic, "char vocab: not a serialized CharVocab (expected '{} 1 ...', got '{}')", kMagic, head);
  RECUR_CHECK(fields.size() >= 2 && fields[1] == "1", "char vocab: unsupported format version '{}' (this build reads 1)",
              fields.size() >= 2 ? fields[1] : "");
  RECUR_CHECK(fields.size() == 6,
              "char vocab: expected 6 space-separated fields (magic, version, unit=, normalize=, count=, symbols=), got "
              "{} in '{}'",
              fields.size(), head);
  auto value = [&](size_t k, const std::string& key) {
    RECUR_CHECK(fields[k].rfind(key + "=", 0) == 0, "char vocab: field {} should be '{}=...', got '{}'", k + 1, key,
                fields[k].substr(0, 40));
    return fields[k].substr(key.size() + 1);
  };
  const std::string unit_s = value(2, "unit"), norm_s = value(3, "normalize"), count_s = value(4, "count"),
                    bracketed = value(5, "symbols");
  RECUR_CHECK(unit_s == "codepoint" || unit_s == "byte", "char vocab: unknown unit '{}' (codepoint or byte)", unit_s);
  RECUR_CHECK(norm_s == "0" || norm_s == "1", "char vocab: normalize must be 0 or 1, got '{}'", norm_s);
  RECUR_CHECK(all_digits(count_s), "char vocab: count '{}' is not a number", count_s);
  // The closing bracket shows that nothing was cut off the end.
  RECUR_CHECK(bracketed.size() >= 2 && bracketed.front() == '[' && bracketed.back() == ']',
              "char vocab: symbols should be '[hex,hex,...]', got '{}' (truncated?)", bracketed.substr(0, 40));
  const std::string list = bracketed.substr(1, bracketed.size() - 2);
  const CharUnit unit = unit_s == "byte" ? CharUnit::Byte : CharUnit::Codepoint;
  const size_t count = std::stoull(count_s);
  std::vector<uint32_t> symbols;
  if (!list.empty()) {
    for (size_t i = 0; i <= list.size();) {
      const size_t j = std::min(list.find(',', i), list.size());
      const std::string h = list.substr(i, j - i);
      const size_t pos = symbols.size();
      RECUR_CHECK(!h.empty() && h.size() <= 6 && std::all_of(h.begin(), h.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  }),
                  "char vocab: symbol {} '{}' is not a lower-case hex number", pos, h.substr(0, 20));
      const uint64_t v = std::stoull(h, nullptr, 16);
      RECUR_CHECK(unit == CharUnit::Byte ? v <= 0xFF : is_scalar_value(v), "char vocab: symbol {} 0x{:x} is not a valid {}",
                  pos, v, unit == CharUnit::Byte ? "byte" : "Unicode scalar value");
      RECUR_CHECK(symbols.empty() || v > symbols.back(),
                  "char vocab: symbol {} 0x{:x} is not above the one before (0x{:x}): symbols must be sorted and distinct",
                  pos, v, symbols.empty() ? 0u : symbols.back());
      symbols.push_back(static_cast<uint32_t>(v));
      i = j + 1;
    }
  }
  RECUR_CHECK(symbols.size() == count, "char vocab: count={} but {} symbols are listed (truncated?)", count,
              symbols.size());
  return CharVocab(unit, norm_s == "1", std::move(symbols));
}

// ---- encoding and windows --------------------------------------------------------------------

std::vector<std::string> condition_names(const std::vector<Document>& docs) {
  std::set<std::string> names;
  for (const auto& d : docs) names.insert(d.condition);
  return {names.begin(), names.end()};
}

std::vector<EncodedDoc> encode_documents(const std::vector<Document>& docs, const CharVocab& vocab,
                                         const std::vector<std::string>& conditions, const EncodeOptions& options) {
  std::vector<EncodedDoc> out;
  out.reserve(docs.size());
  for (const auto& d : docs) {
    const auto it = std::find(conditions.begin(), conditions.end(), d.condition);
    RECUR_CHECK(it != conditions.end(), "encode_documents: document '{}' has condition '{}', not one of [{}]", d.id,
                d.condition, fmt::join(conditions, ", "));
    EncodedDoc e;
    e.condition = it - conditions.begin();
    std::vector<int64_t> ids = vocab.encode(d.text);
    e.ids.reserve(ids.size() + 2);
    if (options.add_bos) e.ids.push_back(CharVocab::kBos);
    e.ids.insert(e.ids.end(), ids.begin(), ids.end());
    if (options.add_eos) e.ids.push_back(CharVocab::kEos);
    out.push_back(std::move(e));
  }
  return out;
}

int64_t count_ids(const std::vector<EncodedDoc>& docs) {
  int64_t n = 0;
  for (const auto& d : docs) n += static_cast<int64_t>(d.ids.size());
  return n;
}

std::vector<Window> make_windows(const std::vector<EncodedDoc>& docs, int64_t length, int64_t stride) {
  RECUR_CHECK(length >= 1, "make_windows: length must be at least 1, got {}", length);
  RECUR_CHECK(stride >= 1 && stride <= length,
              "make_windows: stride must be in [1, length = {}] so that windows cover every id, got {}", length, stride);
  std::vector<Window> windows;
  for (size_t d = 0; d < docs.size(); ++d) {
    const int64_t n = static_cast<int64_t>(docs[d].ids.size());
    for (int64_t begin = 0; begin < n; begin += stride) {
      windows.push_back({static_cast<int64_t>(d), begin, std::min(length, n - begin)});
      if (begin + length >= n) break;
    }
  }
  return windows;
}

void shuffle_windows(std::vector<Window>& windows, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = windows.size(); i > 1; --i) std::swap(windows[i - 1], windows[rng.below(i)]);
}

std::vector<Window> eval_chunks(const std::vector<EncodedDoc>& docs, int64_t steps) {
  RECUR_CHECK(steps >= 1, "eval_chunks: steps must be at least 1, got {}", steps);
  std::vector<Window> chunks;
  for (size_t d = 0; d < docs.size(); ++d) {
    const int64_t n = static_cast<int64_t>(docs[d].ids.size());
    for (int64_t begin = 0; begin + 1 < n; begin += steps)
      chunks.push_back({static_cast<int64_t>(d), begin, std::min(steps + 1, n - begin)});
  }
  return chunks;
}

std::span<const int64_t> window_ids(const std::vector<EncodedDoc>& docs, const Window& w) {
  RECUR_CHECK(w.doc >= 0 && w.doc < static_cast<int64_t>(docs.size()), "window: document {} of {}", w.doc, docs.size());
  const auto& ids = docs[static_cast<size_t>(w.doc)].ids;
  RECUR_CHECK(w.begin >= 0 && w.length >= 0 && w.begin + w.length <= static_cast<int64_t>(ids.size()),
              "window: ids [{}, {}) of document {} with {} ids", w.begin, w.begin + w.length, w.doc, ids.size());
  return std::span<const int64_t>(ids).subspan(static_cast<size_t>(w.begin), static_cast<size_t>(w.length));
}

}  // namespace recur::data
