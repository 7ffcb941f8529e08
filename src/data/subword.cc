#include "recur/data/subword.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdint>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include "recur/core/error.h"

namespace recur::data {

namespace {

// Feeds the non-empty lines of the training texts to the trainer without a temporary file.
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<std::string>& texts) {
    for (const auto& t : texts) {
      std::stringstream ss(t);
      std::string line;
      while (std::getline(ss, line))
        if (!line.empty()) lines_.push_back(line.substr(0, 4000));  // the trainer skips longer lines
    }
  }
  bool done() const override { return i_ >= lines_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return lines_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  std::vector<std::string> lines_;
  size_t i_ = 0;
};

// What a training depends on: the vocabulary size and the texts (their count, total size and a
// 64-bit FNV-1a hash over them, each followed by a separator).
std::string training_key(const std::vector<std::string>& texts, int64_t vocab_size) {
  uint64_t h = 14695981039346656037ull;
  size_t bytes = 0;
  auto mix = [&](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (const auto& t : texts) {
    for (unsigned char c : t) mix(c);
    mix(0xff);
    bytes += t.size();
  }
  return std::to_string(vocab_size) + "/" + std::to_string(texts.size()) + "/" + std::to_string(bytes) + "/" +
         std::to_string(h);
}

// SentencePiece's trainer keeps process-wide state (its logging flags among others), so trainings
// in one process take turns. Data-parallel replicas run as threads (recur train --devices) each
// train on the same texts: the later ones take the first one's model from here. Training is
// deterministic, so this changes no result, only the time.
std::mutex g_train_mu;
std::vector<std::pair<std::string, std::string>>& trained() {  // key -> model, the last few
  static auto* models = new std::vector<std::pair<std::string, std::string>>();  // never destroyed
  return *models;
}

}  // namespace

SubwordModel SubwordModel::train(const std::vector<std::string>& texts, int64_t vocab_size) {
  RECUR_CHECK(vocab_size >= 8, "sentencepiece: vocab_size {} is too small", vocab_size);
  const std::string key = training_key(texts, vocab_size);
  std::lock_guard<std::mutex> lock(g_train_mu);
  for (const auto& [k, proto] : trained())
    if (k == key) return from_serialized(proto);
  LineIterator it(texts);
  RECUR_CHECK(!it.done(), "sentencepiece: no training text");
  std::string proto;
  const std::string args = "--model_type=unigram --vocab_size=" + std::to_string(vocab_size) +
                           " --hard_vocab_limit=false --character_coverage=1.0 --pad_id=0 --unk_id=1 --bos_id=-1"
                           " --eos_id=-1 --minloglevel=2 --num_threads=2 --shuffle_input_sentence=false";
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  RECUR_CHECK(status.ok(), "sentencepiece training failed: {}", status.ToString());
  auto& models = trained();
  models.emplace_back(key, proto);
  if (models.size() > 4) models.erase(models.begin());
  return from_serialized(proto);
}

SubwordModel SubwordModel::from_serialized(const std::string& proto) {
  SubwordModel m;
  m.sp_ = std::make_shared<sentencepiece::SentencePieceProcessor>();
  const auto status = m.sp_->LoadFromSerializedProto(proto);
  RECUR_CHECK(status.ok(), "sentencepiece: cannot load the model: {}", status.ToString());
  m.proto_ = proto;
  return m;
}

std::vector<int64_t> SubwordModel::encode(const std::string& text, int64_t max_tokens) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  RECUR_CHECK(status.ok(), "sentencepiece: cannot encode: {}", status.ToString());
  std::vector<int64_t> out(ids.begin(), ids.end());
  if (max_tokens > 0 && static_cast<int64_t>(out.size()) > max_tokens) out.resize(static_cast<size_t>(max_tokens));
  return out;
}

std::string SubwordModel::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (int64_t id : ids) {
    RECUR_CHECK(id >= 0 && id < size(), "sentencepiece: id {} is outside the {} pieces", id, size());
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = sp_->Decode(pieces, &text);
  RECUR_CHECK(status.ok(), "sentencepiece: cannot decode: {}", status.ToString());
  return text;
}

std::string SubwordModel::piece(int64_t id) const {
  RECUR_CHECK(id >= 0 && id < size(), "sentencepiece: id {} is outside the {} pieces", id, size());
  return sp_->IdToPiece(static_cast<int>(id));
}

int64_t SubwordModel::size() const { return sp_->GetPieceSize(); }

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64_encode(const std::string& bytes) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out += kAlphabet[(v >> (6 * k)) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text) {
  RECUR_CHECK(text.size() % 4 == 0, "base64: length {} is not a multiple of 4", text.size());
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      int d = 0;
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
      } else {
        d = value(c);
        RECUR_CHECK(d >= 0 && pad == 0, "base64: bad character at {}", i + static_cast<size_t>(k));
      }
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out += static_cast<char>((v >> 16) & 255);
    if (pad < 2) out += static_cast<char>((v >> 8) & 255);
    if (pad < 1) out += static_cast<char>(v & 255);
  }
  return out;
}

}  // namespace recur::data
