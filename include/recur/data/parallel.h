#pragma once
/// \file Parallel text for translation (sentence pairs from a TSV file or from two aligned files)
/// and the tokenizer of one side of a translation model: characters, words or SentencePiece
/// pieces, with the ids of g2p.h (<pad> 0, <unk> 1, <bos> 2, <eos> 3, then tokens).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "recur/data/text.h"

namespace recur::data {

class SubwordModel;

/// One sentence pair and the 1-based line it came from (the same line in both aligned files).
struct ParallelPair {
  std::string source, target;
  int64_t line = 0;
};

/// Reads `source<TAB>target` lines. A trailing '\r' (CRLF files) is dropped; both sides are kept
/// exactly as written otherwise (no trimming). Lines made only of spaces and tabs (a bare "\t"
/// included) are skipped. One side may be empty ("\tBonjour" is a pair with an empty source).
/// Errors (recur::Error) name file:line: a non-blank line without a tab, a line with more than one
/// tab. A missing file and a file without any pair are errors naming the file.
std::vector<ParallelPair> read_parallel_tsv(const std::string& path);

/// Reads two files of aligned lines: line i of `source_path` translates to line i of
/// `target_path`. As in read_parallel_tsv, a trailing '\r' is dropped and a line pair whose two
/// lines are both blank (only spaces and tabs) is skipped; one blank side is kept. Errors: a
/// missing file (named), files with different numbers of lines (both files and both counts named),
/// no pair at all.
std::vector<ParallelPair> read_parallel_files(const std::string& source_path, const std::string& target_path);

/// Maps the text of one side of a translation model to ids and back.
///
/// Ids: 0 <pad>, 1 <unk>, 2 <bos>, 3 <eos> (g2p::kPad, kUnk, kBos, kEos), then the tokens.
/// - kChar: a token is one UTF-8 code point (data::char_tokens: spaces are tokens too, an invalid
///   byte reads as U+FFFD); decode concatenates the tokens.
/// - kWord: tokens are split on ASCII whitespace (space, \t, \n, \v, \f, \r); case and
///   punctuation are kept as written ("Hello," is one token, distinct from "hello,"); invalid
///   UTF-8 bytes inside a word read as U+FFFD. decode joins the tokens with single spaces.
/// - kSentencePiece: a unigram SubwordModel trained on the texts; its pieces 2.. become ids 4..
///   (its <pad> 0 and <unk> 1 keep their ids). decode is SentencePiece's detokenization, which
///   gives the NFKC-normalized text with runs of whitespace collapsed to one space.
/// The 4 special tokens are never learned from the text; for kWord a literal "<unk>" (or "<pad>",
/// "<bos>", "<eos>") word in the text gets that special's id.
class Tokenizer {
 public:
  enum class Kind { kChar, kWord, kSentencePiece };
  static constexpr int64_t kPad = 0, kUnk = 1, kBos = 2, kEos = 3;

  /// "char", "word" or "sentencepiece"; anything else is an error naming the three.
  static Kind kind_of(const std::string& name);
  static std::string kind_name(Kind kind);

  /// Learns the tokens from `texts`. kChar/kWord: tokens seen at least `min_count` times, by
  /// decreasing count (ties in byte order), at most `max_size` ids in all (the 4 specials
  /// included). kSentencePiece: SubwordModel::train with max_size - 2 pieces (its <pad> and <unk>
  /// included; a soft limit), so that size() <= max_size as well; min_count is not used.
  /// Errors: max_size < 5 (< 10 for kSentencePiece), min_count < 1, texts without any token.
  static Tokenizer build(Kind kind, const std::vector<std::string>& texts, int64_t min_count, int64_t max_size);

  /// Token ids of `text`, without <bos> or <eos>; a token that is not in the vocabulary is <unk>.
  std::vector<int64_t> encode(const std::string& text) const;
  /// Text of ids: a leading <bos> is skipped, the first <eos> ends the text, <pad> (and any later
  /// <bos>) is dropped; <unk> and an id outside [0, size()) decode to "<unk>" for kChar and kWord,
  /// and to SentencePiece's unknown surface (U+2047 between spaces) for kSentencePiece.
  std::string decode(const std::vector<int64_t>& ids) const;
  /// The token of an id, for inspection: "<pad>", "<unk>", "<bos>", "<eos>", then
  /// the characters, words or pieces (an id outside [0, size()) is "<unk>").
  std::string token(int64_t id) const;

  int64_t size() const;
  Kind kind() const { return kind_; }

  /// A JSON string for checkpoint metadata: {"format": "recur.tokenizer", "version": 1,
  /// "kind": ..., "tokens": [...]} for kChar/kWord, {..., "model": base64 of the SentencePiece
  /// model} for kSentencePiece.
  std::string serialize() const;
  /// Restores serialize()'s string; errors name what is missing or malformed.
  static Tokenizer deserialize(const std::string& text);

 private:
  Kind kind_ = Kind::kChar;
  Vocabulary vocab_;                       // kChar / kWord: <pad> <unk> <bos> <eos> tokens...
  std::shared_ptr<SubwordModel> subword_;  // kSentencePiece
};

}  // namespace recur::data
