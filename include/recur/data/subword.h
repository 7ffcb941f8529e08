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
  /// Text of piece ids (as encode() gives them), detokenized by SentencePiece: pieces are joined
  /// and the word marker U+2581 becomes a space; <pad> decodes to nothing and <unk> to U+2047
  /// between spaces. An id outside [0, size()) is an error naming it.
  std::string decode(const std::vector<int64_t>& ids) const;
  /// The piece of an id: "<pad>", "<unk>", or the piece text with U+2581 marking a word start.
  /// An id outside [0, size()) is an error.
  std::string piece(int64_t id) const;
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
