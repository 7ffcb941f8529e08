#pragma once
/// \file Word tokenisation, vocabularies, and the SpamAssassin corpus as token-id sequences.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "recur/data/dataset.h"

namespace recur::data {

/// Lower-cased words: runs of letters and digits (ASCII; other bytes, UTF-8 included, separate
/// words, so invalid UTF-8 cannot break anything), plus '$' and '!' as words of their own.
std::vector<std::string> word_tokens(const std::string& text, int64_t max_tokens);

/// Characters: one token per UTF-8 code point; a byte that does not start a valid sequence becomes
/// U+FFFD (the replacement character), so invalid UTF-8 is read, never fatal.
std::vector<std::string> char_tokens(const std::string& text, int64_t max_tokens);

/// One labelled document and where it came from ("file:line" or a path), for error messages.
struct LabeledText {
  std::string label, text, where;
};
/// "label<TAB>text" per line; blank lines are skipped. Errors name file:line: a missing tab, an
/// empty label; a missing or empty file is an error too.
std::vector<LabeledText> read_labeled_tsv(const std::string& path);
/// One JSON object per line with string fields `text_key` and `label_key` (numbers are accepted
/// as labels); errors name file:line and the key.
std::vector<LabeledText> read_labeled_jsonl(const std::string& path, const std::string& text_key = "text",
                                            const std::string& label_key = "label");
/// A folder per label, each file one document (sorted by path).
std::vector<LabeledText> read_labeled_dirs(const std::string& dir);

/// Label names -> class ids, from the training documents (sorted, so ids do not depend on order).
/// `id` of a label never seen in training is an error naming the label and where it appears.
class LabelMap {
 public:
  explicit LabelMap(const std::vector<LabeledText>& training);
  int64_t id(const LabeledText& doc) const;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
};

/// Word vocabulary built from training text: id 0 is <pad>, 1 is <unk>, then words by
/// decreasing count (ties alphabetical), keeping those seen at least min_count times, at most
/// max_size entries in all.
class Vocabulary {
 public:
  static constexpr int64_t kPad = 0, kUnk = 1;
  Vocabulary() = default;
  void build(const std::vector<std::vector<std::string>>& docs, int64_t min_count, int64_t max_size);
  int64_t id(const std::string& word) const;
  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  const std::vector<std::string>& words() const { return words_; }
  /// Rebuilds from a word list in id order (as stored in a checkpoint).
  void assign(std::vector<std::string> words);

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
};

/// One mail: its group folder (easy-ham-1, hard-ham-1, spam-2, ...), id and text.
struct Mail {
  std::string group, id, text;
};
/// Reads every data/<group>/*.json of the @stdlib SpamAssassin package folder; the label is
/// spam when the group starts with "spam". Errors name the file.
std::vector<Mail> read_spam_assassin(const std::string& dir);

/// Token ids of a document as an example: features (L, 1) int64 (L >= 1: an empty document is one
/// <unk>), label as given.
Example text_example(const std::vector<std::string>& tokens, const Vocabulary& vocab, int64_t label);

}  // namespace recur::data
