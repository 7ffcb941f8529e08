#pragma once
/// \file Subword tokens with SentencePiece (a unigram model trained on the training text).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace recur::data {

/// Id 0 is <pad> and id 1 is <unk>, as in Vocabulary, so the two are interchangeable in models.
class SubwordModel {
 public:
  /// Trains a unigram model of at most `vocab_size` pieces on the lines of `texts` (a soft limit:
  /// small corpora get fewer pieces instead of an error).
  static SubwordModel train(const std::vector<std::string>& texts, int64_t vocab_size);
  /// Restores a model from serialized() (as stored in a checkpoint).
  static SubwordModel from_serialized(const std::string& proto);

  std::vector<int64_t> encode(const std::string& text, int64_t max_tokens) const;
  int64_t size() const;
  const std::string& serialized() const { return proto_; }

 private:
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string proto_;
};

/// Base64 (RFC 4648, with padding), for binary blobs inside checkpoint metadata.
std::string base64_encode(const std::string& bytes);
/// Throws recur::Error on characters outside the alphabet or a bad length.
std::string base64_decode(const std::string& text);

}  // namespace recur::data
