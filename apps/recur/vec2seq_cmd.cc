// Vector-to-sequence tasks for `recur train` and `recur eval` — style-lm (a character language
// model conditioned on its source: State of the Union addresses, Moby Dick) and autoencoder (a
// sequence autoencoder of CMUdict spellings) — and `recur generate` / `recur encode`.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>

#include <fmt/ranges.h>

#include "commands.h"
#include "config.h"
#include "recur/core/rng.h"
#include "recur/core/thread_pool.h"
#include "recur/data/corpus.h"
#include "recur/data/fetch.h"
#include "recur/data/g2p.h"
#include "recur/models/autoencoder.h"
#include "recur/models/vec2seq.h"
#include "recur/ops/basic.h"
#include "recur/ops/loss.h"
#include "recur/train/checkpoint.h"
#include "train_common.h"

namespace recur::cli {

namespace {

namespace fs = std::filesystem;

std::vector<ConfigKey> vec2seq_schema() {
  using V = ValueType;
  std::vector<ConfigKey> keys = {
      {"task", V::String, "style-lm",
       "style-lm (character language model conditioned on its source) or autoencoder (CMUdict spellings "
       "through a code vector)",
       {"style-lm", "autoencoder"}},
      {"data.sources", V::String, "sotu,moby-dick",
       "style-lm: the corpora, comma-separated (sotu, moby-dick); each is one condition", {}},
      {"data.dir", V::String, "",
       "style-lm: folder holding one sub-folder per source (sotu/, moby-dick/); autoencoder: the CMUdict folder; "
       "empty: fetch into the cache",
       {}},
      {"data.window", V::Int, "256", "style-lm: characters per training window", {}},
      {"data.eval_window", V::Int, "0",
       "style-lm: characters per evaluation window, context included (0: data.window)", {}},
      {"data.burn_in", V::Int, "64",
       "style-lm: characters read before the scored ones of an evaluation window (its context)", {}},
      {"data.min_count", V::Int, "5", "style-lm: a character seen fewer times in training becomes <unk>", {}},
      {"data.normalize", V::Bool, "false", "style-lm: typographic quotes and dashes become ASCII", {}},
      {"data.min_share", V::Float, "0.3",
       "style-lm: each source's windows repeat so that it holds at least this share of an epoch", {}},
      {"data.valid_every", V::Int, "20", "style-lm: every Nth training document validates instead", {}},
      {"data.test_words", V::Int, "12000", "autoencoder: words held out for test (the G2P split)", {}},
      {"data.valid_words", V::Int, "6000", "autoencoder: words held out for validation", {}},
      {"data.limit", V::Int, "0", "use only the first N training windows or words (0: all)", {}},
      {"model.cell", V::String, "lstm", "recurrent cell", {"lstm", "gru"}},
      {"model.embed", V::Int, "64", "token embedding width", {}},
      {"model.hidden", V::Int, "512", "decoder units", {}},
      {"model.layers", V::Int, "1", "stacked decoder layers", {}},
      {"model.dropout", V::Float, "0.1", "dropout on embeddings, between layers and on outputs", {}},
      {"model.condition", V::String, "category",
       "style-lm: category (a learned vector per source) or none (an unconditioned language model)",
       {"category", "none"}},
      {"model.condition_dim", V::Int, "16", "style-lm: width of a source's learned vector", {}},
      {"model.init_state", V::Bool, "true", "the condition initialises the decoder's states", {}},
      {"model.concat_input", V::Bool, "true", "the condition is concatenated to every input step", {}},
      {"model.code", V::Int, "64", "autoencoder: width of the code vector", {}},
      {"model.encoder_hidden", V::Int, "256", "autoencoder: encoder units per direction", {}},
      {"model.encoder_layers", V::Int, "1", "autoencoder: stacked encoder layers", {}},
      {"model.bidirectional", V::Bool, "true", "autoencoder: bidirectional encoder", {}},
      {"train.epochs", V::Int, "10", "passes over the training windows or words", {}},
      {"train.weight_decay", V::Float, "0.0", "weight decay", {}},
      {"train.warmup_steps", V::Int, "200", "linear warmup steps (at most a tenth of all steps)", {}},
      {"train.patience", V::Int, "3", "epochs without validation improvement before stopping (0: never)", {}},
      {"train.max_minutes", V::Float, "0",
       "stop training after this many minutes (0: no limit); a cosine schedule then anneals by that time", {}},
      {"train.valid_limit", V::Int, "0",
       "validation: score at most N windows (style-lm) or words (autoencoder) each epoch, spread evenly (0: all)", {}},
      {"train.log_every", V::Int, "100", "steps between progress lines (non-terminal stderr)", {}},
      {"decode.max_len", V::Int, "400", "generate: longest output in tokens (style-lm: characters)", {}},
      {"decode.batch", V::Int, "256", "autoencoder evaluation: words decoded together", {}},
  };
  for (ConfigKey& k : common_train_keys()) keys.push_back(std::move(k));
  return keys;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// ---------------------------------------------------------------- style-lm data

struct LmData {
  std::vector<std::string> conditions;  // category id i names conditions[i]
  data::CharVocab vocab;
  // Each document's stream: <bos> then its characters. Window [b, b + len) reads ids b .. b+len-2
  // and predicts ids b+1 .. b+len-1.
  std::vector<data::EncodedDoc> train, valid, test;
};

std::vector<data::Document> read_source(const std::string& name, const std::string& dir) {
  std::string path;
  if (dir.empty()) path = data::fetch_dataset(name, data::default_cache_dir(), &std::cerr).path;
  else path = (fs::path(dir) / name).string();
  if (name == "sotu") return data::read_sotu(path);
  if (name == "moby-dick") return data::read_moby_dick(path);
  RECUR_CHECK(false, "config: data.sources names '{}'; known sources: sotu, moby-dick", name);
  return {};
}

data::EncodedDoc encode_doc(const data::CharVocab& vocab, int64_t condition, const std::string& text) {
  data::EncodedDoc d;
  d.condition = condition;
  d.ids.push_back(data::CharVocab::kBos);
  const std::vector<int64_t> ids = vocab.encode(text);
  d.ids.insert(d.ids.end(), ids.begin(), ids.end());
  return d;
}

// The splits: SOTU holds out every 10th address, Moby Dick its last 10% of chapters; every
// `valid_every`-th remaining document validates.
LmData load_lm(const Config& c, const nlohmann::json& meta) {
  LmData d;
  d.conditions = split_commas(c.get_string("data.sources"));
  RECUR_CHECK(!d.conditions.empty(), "config: data.sources is empty; name at least one of sotu, moby-dick");
  std::vector<std::vector<data::Document>> train(d.conditions.size()), valid(d.conditions.size()),
      test(d.conditions.size());
  for (size_t i = 0; i < d.conditions.size(); ++i) {
    const std::vector<data::Document> docs = read_source(d.conditions[i], c.get_string("data.dir"));
    const data::DocumentSplit held = d.conditions[i] == "sotu" ? data::split_every_nth(docs, 10)
                                                               : data::split_last_fraction(docs, 0.1);
    test[i] = held.held_out;
    const data::DocumentSplit v = data::split_every_nth(held.train, c.get_int("data.valid_every"));
    train[i] = v.train;
    valid[i] = v.held_out;
  }
  if (meta.contains("vocab")) {
    d.vocab = data::CharVocab::deserialize(meta.at("vocab").get<std::string>());
  } else {
    std::vector<std::string> texts;
    for (const auto& part : train)
      for (const auto& doc : part) texts.push_back(doc.text);
    data::CharVocabOptions vo;
    vo.min_count = c.get_int("data.min_count");
    vo.normalize = c.get_bool("data.normalize");
    d.vocab = data::CharVocab::build(texts, vo);
  }
  for (size_t i = 0; i < d.conditions.size(); ++i) {
    const auto ci = static_cast<int64_t>(i);
    for (const auto& doc : train[i]) d.train.push_back(encode_doc(d.vocab, ci, doc.text));
    for (const auto& doc : valid[i]) d.valid.push_back(encode_doc(d.vocab, ci, doc.text));
    for (const auto& doc : test[i]) d.test.push_back(encode_doc(d.vocab, ci, doc.text));
  }
  return d;
}

int64_t chars_of(const std::vector<data::EncodedDoc>& docs, int64_t condition) {
  int64_t n = 0;
  for (const auto& d : docs)
    if (d.condition == condition) n += static_cast<int64_t>(d.ids.size()) - 1;
  return n;
}

// One epoch's training windows: every document cut into windows of `length` ids (stride length - 1,
// so every transition is predicted once), sources repeated up to `min_share` of the epoch, shuffled.
std::vector<data::Window> epoch_windows(const LmData& d, int64_t length, double min_share, int64_t limit,
                                        uint64_t seed) {
  const std::vector<data::Window> all = data::make_windows(d.train, length, length - 1);
  std::vector<std::vector<data::Window>> by(d.conditions.size());
  for (const auto& w : all)
    if (w.length >= 2) by[static_cast<size_t>(d.train[static_cast<size_t>(w.doc)].condition)].push_back(w);
  size_t total = 0;
  for (const auto& b : by) total += b.size();
  std::vector<data::Window> out;
  for (const auto& b : by) {
    int64_t repeat = 1;
    // n r / (total - n + n r) >= share  <=>  r >= share (total - n) / (n (1 - share))
    if (!b.empty() && min_share > 0 && min_share < 1) {
      const double n = static_cast<double>(b.size()), rest = static_cast<double>(total) - n;
      repeat = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(min_share * rest / (n * (1 - min_share)))));
    }
    for (int64_t r = 0; r < repeat; ++r) out.insert(out.end(), b.begin(), b.end());
  }
  data::shuffle_windows(out, seed);
  if (limit > 0 && static_cast<int64_t>(out.size()) > limit) out.resize(static_cast<size_t>(limit));
  return out;
}

// An evaluation window: `burn` context ids (not scored) before the chunk's scored predictions.
struct ScoredWindow {
  int64_t doc = 0, begin = 0, length = 0;  // ids [begin, begin + length)
  int64_t scored_from = 0;                 // predictions of ids begin + scored_from + 1 .. are scored
};

std::vector<ScoredWindow> scored_windows(const std::vector<data::EncodedDoc>& docs, int64_t window, int64_t burn,
                                         int64_t limit) {
  std::vector<ScoredWindow> out;
  for (const data::Window& ch : data::eval_chunks(docs, window - burn)) {
    const int64_t start = std::max<int64_t>(0, ch.begin - burn);
    out.push_back({ch.doc, start, ch.length + (ch.begin - start), ch.begin - start});
  }
  if (limit > 0 && static_cast<int64_t>(out.size()) > limit) {
    std::vector<ScoredWindow> spread;
    const auto n = static_cast<int64_t>(out.size());
    for (int64_t k = 0; k < limit; ++k) spread.push_back(out[static_cast<size_t>(k * n / limit)]);
    out = std::move(spread);
  }
  return out;
}

// A batch of windows as model inputs: ids (N) packed, targets (N) packed with the same layout
// (-100 where a prediction is not scored), and the rows' categories.
struct LmBatch {
  Tensor input, target, categories;
  PackedBatch layout;
  int64_t scored = 0;
};

LmBatch lm_batch(const std::vector<data::EncodedDoc>& docs, const std::vector<ScoredWindow>& ws,
                 int64_t condition_override) {
  std::vector<std::vector<int64_t>> in, out;
  std::vector<int64_t> cats;
  LmBatch b;
  for (const auto& w : ws) {
    const auto& ids = docs[static_cast<size_t>(w.doc)].ids;
    const auto* p = ids.data() + w.begin;
    in.emplace_back(p, p + w.length - 1);
    out.emplace_back(p + 1, p + w.length);
    for (int64_t k = 0; k < w.scored_from; ++k) out.back()[static_cast<size_t>(k)] = -100;
    b.scored += w.length - 1 - w.scored_from;
    cats.push_back(condition_override >= 0 ? condition_override : docs[static_cast<size_t>(w.doc)].condition);
  }
  b.input = models::pack_ids(in, &b.layout);
  PackedBatch same;
  b.target = models::pack_ids(out, &same);
  b.categories = Tensor::from_i64({static_cast<int64_t>(cats.size())}, cats);
  return b;
}

Var lm_loss(Tape& tape, const models::Vec2Seq& model, const LmBatch& b, uint64_t seed) {
  const Device dev = model.device();
  Var cond;
  if (model.options().condition == models::ConditionKind::Category) cond = model.condition(tape, b.categories);
  Var logits = model.forward(tape, cond, b.input.to(dev), b.layout, seed);
  return cross_entropy(tape, logits, b.target.to(dev));
}

// Bits per character of each condition's documents (model in evaluation mode). With
// `wrong` the documents of condition i are read under condition (i + 1) mod K instead.
struct LmScores {
  std::vector<double> bits;   // per condition
  std::vector<int64_t> chars;
  double mean_bits() const {
    double s = 0;
    int64_t n = 0;
    for (size_t i = 0; i < bits.size(); ++i) {
      s += bits[i] * static_cast<double>(chars[i]);
      n += chars[i];
    }
    return n ? s / static_cast<double>(n) : 0.0;
  }
};

LmScores lm_scores(const models::Vec2Seq& model, const LmData& d, const std::vector<data::EncodedDoc>& docs,
                   int64_t window, int64_t burn, int64_t limit, bool wrong) {
  const auto K = static_cast<int64_t>(d.conditions.size());
  LmScores s;
  s.bits.assign(static_cast<size_t>(K), 0.0);
  s.chars.assign(static_cast<size_t>(K), 0);
  for (int64_t ci = 0; ci < K; ++ci) {
    std::vector<data::EncodedDoc> mine;
    for (const auto& doc : docs)
      if (doc.condition == ci) mine.push_back(doc);
    if (mine.empty()) continue;
    const std::vector<ScoredWindow> ws = scored_windows(mine, window, burn, limit);
    double nats = 0;
    int64_t n = 0;
    for (size_t at = 0; at < ws.size(); at += 64) {
      const std::vector<ScoredWindow> part(ws.begin() + static_cast<std::ptrdiff_t>(at),
                                           ws.begin() + static_cast<std::ptrdiff_t>(std::min(ws.size(), at + 64)));
      const LmBatch b = lm_batch(mine, part, wrong ? (ci + 1) % K : -1);
      if (b.scored == 0) continue;
      Tape tape;
      NoGrad ng(tape);
      nats += lm_loss(tape, model, b, 0).value().to(Device::cpu()).item() * static_cast<double>(b.scored);
      n += b.scored;
    }
    s.bits[static_cast<size_t>(ci)] = n ? nats / static_cast<double>(n) / std::log(2.0) : 0.0;
    s.chars[static_cast<size_t>(ci)] = n;
  }
  return s;
}

std::string format_bits(const LmData& d, const LmScores& s) {
  std::string out;
  for (size_t i = 0; i < d.conditions.size(); ++i)
    out += fmt::format("{}{} {:.4f} bpc", i ? ", " : "", d.conditions[i], s.bits[i]);
  return out;
}

nlohmann::json bits_json(const LmData& d, const LmScores& s) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < d.conditions.size(); ++i)
    j[d.conditions[i]] = {{"bits_per_char", s.bits[i]}, {"cross_entropy", s.bits[i] * std::log(2.0)}, {"chars", s.chars[i]}};
  return j;
}

models::Vec2SeqOptions lm_options(const Config& c, int64_t vocab, int64_t conditions) {
  models::Vec2SeqOptions o;
  o.vocab = vocab;
  o.embed = c.get_int("model.embed");
  o.cell = c.get_string("model.cell") == "gru" ? ops::CellType::GRU : ops::CellType::LSTM;
  o.hidden = c.get_int("model.hidden");
  o.layers = c.get_int("model.layers");
  o.dropout = static_cast<float>(c.get_float("model.dropout"));
  if (c.get_string("model.condition") == "category") {
    o.condition = models::ConditionKind::Category;
    o.num_categories = conditions;
    o.condition_dim = c.get_int("model.condition_dim");
    o.init_state = c.get_bool("model.init_state");
    o.concat_input = c.get_bool("model.concat_input");
  }
  return o;
}

// ---------------------------------------------------------------- autoencoder data

struct WordData {
  data::Vocabulary letters = data::g2p_source_vocab();
  std::vector<std::vector<int64_t>> train, valid, test;  // letter ids, no <bos>/<eos>
  std::vector<std::string> valid_words, test_words;
};

std::vector<std::string> distinct_words(const std::vector<data::G2pEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& w : data::group_by_word(entries)) out.push_back(w.word);
  return out;
}

WordData load_words(const Config& c) {
  std::string dir = c.get_string("data.dir");
  if (dir.empty()) dir = data::fetch_dataset("cmudict", data::default_cache_dir(), &std::cerr).path;
  const data::G2pSplit split =
      data::split_g2p(data::read_cmudict(dir), c.get_int("data.test_words"), c.get_int("data.valid_words"));
  WordData w;
  for (const auto& s : distinct_words(split.train)) w.train.push_back(data::g2p_source_ids(s, w.letters));
  w.valid_words = distinct_words(split.valid);
  w.test_words = distinct_words(split.test);
  for (const auto& s : w.valid_words) w.valid.push_back(data::g2p_source_ids(s, w.letters));
  for (const auto& s : w.test_words) w.test.push_back(data::g2p_source_ids(s, w.letters));
  const int64_t limit = c.get_int("data.limit");
  if (limit > 0 && static_cast<int64_t>(w.train.size()) > limit) w.train.resize(static_cast<size_t>(limit));
  return w;
}

models::AutoencoderOptions autoencoder_options(const Config& c, int64_t vocab) {
  models::AutoencoderOptions o;
  o.code = c.get_int("model.code");
  o.encoder.vocab_size = vocab;
  o.encoder.embed_dim = c.get_int("model.embed");
  o.encoder.cell = c.get_string("model.cell") == "gru" ? ops::CellType::GRU : ops::CellType::LSTM;
  o.encoder.hidden = c.get_int("model.encoder_hidden");
  o.encoder.layers = c.get_int("model.encoder_layers");
  o.encoder.bidirectional = c.get_bool("model.bidirectional");
  o.encoder.pooling = models::Pooling::Last;
  o.decoder = lm_options(c, vocab, 0);
  o.decoder.condition = models::ConditionKind::Dense;
  o.decoder.init_state = c.get_bool("model.init_state");
  o.decoder.concat_input = c.get_bool("model.concat_input");
  return o;
}

Var autoencoder_loss(Tape& tape, models::SequenceAutoencoder& model, const std::vector<std::vector<int64_t>>& words,
                     uint64_t seed) {
  const Device dev = model.device();
  PackedBatch sl;
  const Tensor src = models::pack_ids(words, &sl).to(dev);
  const models::TargetBatch tb = models::make_target_batch(words, data::g2p::kBos, data::g2p::kEos);
  Var codes = model.encode(tape, src, sl, seed);
  return cross_entropy(tape, model.decode(tape, codes, tb.input.to(dev), tb.layout, seed), tb.output.to(dev));
}

// Codes (B, code) of words, on the CPU (model in evaluation mode).
Tensor encode_words(models::SequenceAutoencoder& model, const std::vector<std::vector<int64_t>>& words) {
  Tape tape;
  NoGrad ng(tape);
  PackedBatch sl;
  const Tensor src = models::pack_ids(words, &sl).to(model.device());
  return model.encode(tape, src, sl, 0).value().to(Device::cpu());
}

struct AeScores {
  double exact = 0, bits = 0;  // share of words rebuilt exactly (greedy); bits per letter
  int64_t words = 0;
};

AeScores autoencoder_scores(models::SequenceAutoencoder& model, const std::vector<std::vector<int64_t>>& all,
                            int64_t batch, int64_t limit) {
  std::vector<std::vector<int64_t>> words = all;
  if (limit > 0 && static_cast<int64_t>(all.size()) > limit) {
    words.clear();
    const auto n = static_cast<int64_t>(all.size());
    for (int64_t k = 0; k < limit; ++k) words.push_back(all[static_cast<size_t>(k * n / limit)]);
  }
  AeScores s;
  double nats = 0;
  int64_t terms = 0, exact = 0;
  for (size_t at = 0; at < words.size(); at += static_cast<size_t>(batch)) {
    const std::vector<std::vector<int64_t>> part(
        words.begin() + static_cast<std::ptrdiff_t>(at),
        words.begin() + static_cast<std::ptrdiff_t>(std::min(words.size(), at + static_cast<size_t>(batch))));
    int64_t t = 0;
    for (const auto& w : part) t += static_cast<int64_t>(w.size()) + 1;
    {
      Tape tape;
      NoGrad ng(tape);
      nats += autoencoder_loss(tape, model, part, 0).value().to(Device::cpu()).item() * static_cast<double>(t);
    }
    terms += t;
    const Tensor codes = encode_words(model, part);
    models::GenerateOptions go;
    go.mode = models::DecodeMode::Greedy;
    int64_t longest = 0;
    for (const auto& w : part) longest = std::max<int64_t>(longest, static_cast<int64_t>(w.size()));
    go.max_len = longest + 5;
    const auto hyps = models::generate(model.decoder(), codes, static_cast<int64_t>(part.size()), go);
    for (size_t i = 0; i < part.size(); ++i) {
      std::vector<int64_t> got = hyps[i][0].tokens;
      if (!got.empty() && got.back() == data::g2p::kEos) got.pop_back();
      exact += got == part[i];
    }
  }
  s.words = static_cast<int64_t>(words.size());
  s.exact = s.words ? static_cast<double>(exact) / static_cast<double>(s.words) : 0.0;
  s.bits = terms ? nats / static_cast<double>(terms) / std::log(2.0) : 0.0;
  return s;
}

// ---------------------------------------------------------------- train

// The evaluation window (context + scored characters): data.eval_window, or data.window when 0.
int64_t eval_window(const Config& c) {
  return c.get_int("data.eval_window") > 0 ? c.get_int("data.eval_window") : c.get_int("data.window");
}

void check_config(const Config& c) {
  for (const char* key : {"train.epochs", "data.window", "decode.max_len", "decode.batch", "model.hidden",
                          "model.embed", "model.layers", "model.code", "model.condition_dim", "data.valid_every"})
    RECUR_CHECK(c.get_int(key) >= 1, "config: {} must be at least 1, got {}", key, c.get_int(key));
  for (const char* key :
       {"data.burn_in", "data.eval_window", "data.limit", "train.valid_limit", "train.patience", "train.warmup_steps"})
    RECUR_CHECK(c.get_int(key) >= 0, "config: {} must not be negative, got {}", key, c.get_int(key));
  RECUR_CHECK(c.get_int("data.window") >= 2, "config: data.window must be at least 2, got {}", c.get_int("data.window"));
  RECUR_CHECK(c.get_int("data.burn_in") < eval_window(c) - 1,
              "config: data.burn_in ({}) must be below the evaluation window ({}, data.eval_window or data.window) - 1",
              c.get_int("data.burn_in"), eval_window(c));
  RECUR_CHECK(c.get_float("data.min_share") >= 0 && c.get_float("data.min_share") < 1,
              "config: data.min_share must be in [0, 1), got {}", c.get_float("data.min_share"));
  RECUR_CHECK(c.get_float("train.max_minutes") >= 0, "config: train.max_minutes must not be negative, got {}",
              c.get_float("train.max_minutes"));
}

Config resolve(const std::string& path, const std::vector<std::string>& sets) {
  Config c = load_config(vec2seq_schema(), path, sets);
  check_config(c);
  return c;
}

nlohmann::json lm_meta(const LmData& d) {
  return {{"task", "style-lm"}, {"vocab", d.vocab.serialize()}, {"conditions", d.conditions}};
}

void print_lm_test(const models::Vec2Seq& model, const LmData& d, const Config& c, std::ostream& metrics) {
  const int64_t window = eval_window(c), burn = c.get_int("data.burn_in");
  const LmScores right = lm_scores(model, d, d.test, window, burn, 0, false);
  std::cout << fmt::format("test: {} (mean {:.4f} bpc)\n", format_bits(d, right), right.mean_bits());
  nlohmann::json j{{"kind", "test"}, {"right", bits_json(d, right)}};
  if (model.options().condition != models::ConditionKind::None && d.conditions.size() > 1) {
    const LmScores wrong = lm_scores(model, d, d.test, window, burn, 0, true);
    std::cout << fmt::format("test with the wrong condition: {} (gaps: ", format_bits(d, wrong));
    for (size_t i = 0; i < d.conditions.size(); ++i)
      std::cout << fmt::format("{}{} {:+.4f}", i ? ", " : "", d.conditions[i], wrong.bits[i] - right.bits[i]);
    std::cout << " bpc)\n";
    j["wrong"] = bits_json(d, wrong);
  }
  metrics << j.dump() << std::endl;
}

void train_style_lm(const Config& c, const Vec2SeqTrainArgs& a) {
  const auto t_start = Clock::now();
  TrainProcess proc = start_training_process(c);
  const nlohmann::json resume_meta = a.resume.empty() ? nlohmann::json() : train::read_checkpoint_config(a.resume);
  const LmData d = load_lm(c, resume_meta);
  std::ostream& log = *proc.log;
  for (size_t i = 0; i < d.conditions.size(); ++i)
    log << fmt::format("{}: {} training / {} validation / {} test characters\n", d.conditions[i],
                       chars_of(d.train, static_cast<int64_t>(i)), chars_of(d.valid, static_cast<int64_t>(i)),
                       chars_of(d.test, static_cast<int64_t>(i)));
  log << fmt::format("vocabulary: {} symbols\n", d.vocab.size());
  Rng rng(static_cast<uint64_t>(c.get_int("train.seed")));
  models::Vec2Seq model(lm_options(c, d.vocab.size(), static_cast<int64_t>(d.conditions.size())), rng);
  model.to(proc.device);
  const int64_t window = c.get_int("data.window"), burn = c.get_int("data.burn_in"), scored_window = eval_window(c);
  const int64_t batch = c.get_int("train.batch") * c.get_int("train.accumulate");
  std::vector<std::vector<data::Window>> windows;  // the current epoch's global batches
  EpochTask hooks;
  hooks.batches = [&](int64_t epoch) {
    const auto ws = epoch_windows(d, window, c.get_float("data.min_share"), c.get_int("data.limit"),
                                  static_cast<uint64_t>(c.get_int("train.seed")) ^ mix64(static_cast<uint64_t>(epoch)));
    windows.clear();
    std::vector<std::vector<dist::ShardItem>> out;
    for (size_t at = 0; at < ws.size(); at += static_cast<size_t>(batch)) {
      windows.emplace_back(ws.begin() + static_cast<std::ptrdiff_t>(at),
                           ws.begin() + static_cast<std::ptrdiff_t>(std::min(ws.size(), at + static_cast<size_t>(batch))));
      out.emplace_back();
      for (size_t k = 0; k < windows.back().size(); ++k)
        out.back().push_back({static_cast<int64_t>(k), windows.back()[k].length - 1});
    }
    return out;
  };
  hooks.terms = [&](size_t bi, int64_t i) { return windows[bi][static_cast<size_t>(i)].length - 1; };
  hooks.throughput_unit = "chars/s";
  hooks.loss = [&](Tape& tape, size_t bi, const std::vector<int64_t>& items, uint64_t seed) {
    std::vector<ScoredWindow> ws;
    for (int64_t i : items) {
      const data::Window& w = windows[bi][static_cast<size_t>(i)];
      ws.push_back({w.doc, w.begin, w.length, 0});
    }
    return lm_loss(tape, model, lm_batch(d.train, ws, -1), seed);
  };
  hooks.validate = [&] {
    const LmScores s = lm_scores(model, d, d.valid, scored_window, burn, c.get_int("train.valid_limit"), false);
    return EpochTask::Validation{-s.mean_bits(), format_bits(d, s), bits_json(d, s)};
  };
  run_epochs(c, {a.out, a.resume}, proc, model, lm_meta(d), hooks);
  if (!proc.lead) return;
  Rng rng2(0);
  models::Vec2Seq best(lm_options(c, d.vocab.size(), static_cast<int64_t>(d.conditions.size())), rng2);
  load_best(a.out, best, model);
  best.to(proc.device);
  best.train(false);
  std::ofstream metrics(fs::path(a.out) / "metrics.jsonl", std::ios::app);
  print_lm_test(best, d, c, metrics);
  std::cout << fmt::format("training and testing took {:.1f} minutes\n", seconds_since(t_start) / 60);
}

void train_autoencoder(const Config& c, const Vec2SeqTrainArgs& a) {
  const auto t_start = Clock::now();
  TrainProcess proc = start_training_process(c);
  const WordData w = load_words(c);
  *proc.log << fmt::format("words: {} training / {} validation / {} test\n", w.train.size(), w.valid.size(),
                           w.test.size());
  Rng rng(static_cast<uint64_t>(c.get_int("train.seed")));
  models::SequenceAutoencoder model(autoencoder_options(c, w.letters.size()), rng);
  model.to(proc.device);
  const int64_t batch = c.get_int("train.batch") * c.get_int("train.accumulate");
  std::vector<std::vector<size_t>> batches;
  EpochTask hooks;
  hooks.batches = [&](int64_t epoch) {
    return shuffled_batches(w.train.size(), batch, static_cast<uint64_t>(c.get_int("train.seed")), epoch,
                            [&](size_t i) { return 2 * static_cast<int64_t>(w.train[i].size()) + 1; }, &batches);
  };
  hooks.terms = [&](size_t bi, int64_t i) {
    return static_cast<int64_t>(w.train[batches[bi][static_cast<size_t>(i)]].size()) + 1;
  };
  hooks.loss = [&](Tape& tape, size_t bi, const std::vector<int64_t>& items, uint64_t seed) {
    std::vector<std::vector<int64_t>> words;
    for (int64_t i : items) words.push_back(w.train[batches[bi][static_cast<size_t>(i)]]);
    return autoencoder_loss(tape, model, words, seed);
  };
  hooks.validate = [&] {
    const AeScores s = autoencoder_scores(model, w.valid, c.get_int("decode.batch"), c.get_int("train.valid_limit"));
    return EpochTask::Validation{
        s.exact - 1e-3 * s.bits,
        fmt::format("exact {:.2f}% ({} words), {:.4f} bits/letter", 100 * s.exact, s.words, s.bits),
        {{"exact", s.exact}, {"bits_per_letter", s.bits}, {"words", s.words}}};
  };
  hooks.throughput_unit = "target tok/s";
  run_epochs(c, {a.out, a.resume}, proc, model, {{"task", "autoencoder"}}, hooks);
  if (!proc.lead) return;
  Rng rng2(0);
  models::SequenceAutoencoder best(autoencoder_options(c, w.letters.size()), rng2);
  load_best(a.out, best, model);
  best.to(proc.device);
  best.train(false);
  const AeScores s = autoencoder_scores(best, w.test, c.get_int("decode.batch"), 0);
  std::cout << fmt::format("test: {:.2f}% of {} held-out words rebuilt exactly (greedy), {:.4f} bits/letter\n",
                           100 * s.exact, s.words, s.bits);
  std::ofstream metrics(fs::path(a.out) / "metrics.jsonl", std::ios::app);
  metrics << nlohmann::json{{"kind", "test"}, {"exact", s.exact}, {"bits_per_letter", s.bits}, {"words", s.words}}.dump()
          << std::endl;
  std::cout << fmt::format("training and testing took {:.1f} minutes\n", seconds_since(t_start) / 60);
}

// ---------------------------------------------------------------- generate / encode

struct GenerateArgs {
  std::string checkpoint, condition, vector_file, prompt, device = "cpu";
  int64_t max_len = -1, top_k = 0, beam = 1, num = 1, threads = 1;
  double temperature = 1.0, top_p = 1.0;
  int64_t seed = 0;
  bool greedy = false, json = false;
};

Config checkpoint_config(const nlohmann::json& meta, const std::string& path) {
  RECUR_CHECK(meta.contains("config") && meta.contains("task"),
              "{} is not a vector-to-sequence checkpoint (no task in its metadata)", path);
  const std::string task = meta.at("task").get<std::string>();
  RECUR_CHECK(task == "style-lm" || task == "autoencoder",
              "{} holds a '{}' model; generate and encode need a style-lm or autoencoder checkpoint", path, task);
  Config c(vec2seq_schema());
  c.load_json(meta.at("config"));
  return c;
}

// Whitespace-separated floats, one vector per line (blank lines skipped); every vector `dim` wide.
std::vector<std::vector<float>> read_vectors(const std::string& path, int64_t dim) {
  std::ifstream in(path);
  RECUR_CHECK(in.good(), "generate: cannot open vector file '{}'", path);
  std::vector<std::vector<float>> out;
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    std::istringstream ls(line);
    std::vector<float> v;
    std::string field;
    while (ls >> field) {
      size_t used = 0;
      float x = 0;
      bool ok = true;
      try {
        x = std::stof(field, &used);
      } catch (const std::exception&) {
        ok = false;
      }
      RECUR_CHECK(ok && used == field.size() && std::isfinite(x), "{}:{}: '{}' is not a number", path, no, field);
      v.push_back(x);
    }
    if (v.empty()) continue;
    RECUR_CHECK(static_cast<int64_t>(v.size()) == dim, "{}:{}: a vector of {} numbers; this model takes {}", path, no,
                v.size(), dim);
    out.push_back(std::move(v));
  }
  RECUR_CHECK(!out.empty(), "generate: vector file '{}' holds no vectors", path);
  return out;
}

void run_generate(const GenerateArgs& a) {
  RECUR_CHECK(a.max_len != 0, "generate: --max-len must be at least 1, got 0");
  RECUR_CHECK(a.max_len >= -1, "generate: --max-len must be at least 1, got {}", a.max_len);
  RECUR_CHECK(a.num >= 1 && a.beam >= 1, "generate: --num ({}) and --beam ({}) must be at least 1", a.num, a.beam);
  RECUR_CHECK(a.temperature > 0, "generate: --temperature must be positive, got {}", a.temperature);
  RECUR_CHECK(a.top_p > 0 && a.top_p <= 1 && a.top_k >= 0, "generate: --top-p must be in (0, 1] and --top-k >= 0 (got {} and {})",
              a.top_p, a.top_k);
  set_num_threads(static_cast<int>(a.threads));
  const nlohmann::json meta = train::read_checkpoint_config(a.checkpoint);
  const Config c = checkpoint_config(meta, a.checkpoint);
  const Device dev = select_device(a.device, false);
  const bool lm = meta.at("task").get<std::string>() == "style-lm";
  Rng rng(0);
  std::unique_ptr<models::Vec2Seq> lm_model;
  std::unique_ptr<models::SequenceAutoencoder> ae;
  data::CharVocab vocab;
  const data::Vocabulary letters = data::g2p_source_vocab();
  std::vector<std::string> conditions;
  if (lm) {
    vocab = data::CharVocab::deserialize(meta.at("vocab").get<std::string>());
    conditions = meta.at("conditions").get<std::vector<std::string>>();
    lm_model = std::make_unique<models::Vec2Seq>(
        lm_options(c, vocab.size(), static_cast<int64_t>(conditions.size())), rng);
    train::load_checkpoint(a.checkpoint, *lm_model, nullptr);
  } else {
    ae = std::make_unique<models::SequenceAutoencoder>(autoencoder_options(c, letters.size()), rng);
    train::load_checkpoint(a.checkpoint, *ae, nullptr);
  }
  nn::Module& module = lm ? static_cast<nn::Module&>(*lm_model) : static_cast<nn::Module&>(*ae);
  module.to(dev);
  module.train(false);
  const models::Vec2Seq& model = lm ? *lm_model : ae->decoder();
  // The rows to generate: one per condition/vector, each repeated --num times.
  Tensor conds;
  std::vector<std::string> labels;
  int64_t rows = 0;
  const models::ConditionKind kind = model.options().condition;
  if (!a.vector_file.empty()) {
    RECUR_CHECK(kind == models::ConditionKind::Dense,
                "generate: --vector needs a model conditioned on vectors (an autoencoder); this one {}",
                kind == models::ConditionKind::Category ? "takes --condition" : "is unconditioned");
    RECUR_CHECK(a.condition.empty(), "generate: give --condition or --vector, not both");
    const auto vs = read_vectors(a.vector_file, model.condition_size());
    std::vector<float> flat;
    for (size_t i = 0; i < vs.size(); ++i)
      for (int64_t r = 0; r < a.num; ++r) {
        flat.insert(flat.end(), vs[i].begin(), vs[i].end());
        labels.push_back(fmt::format("vector {}", i + 1));
      }
    rows = static_cast<int64_t>(labels.size());
    conds = Tensor::from({rows, model.condition_size()}, flat);
  } else if (kind == models::ConditionKind::Category) {
    std::vector<std::string> names = conditions;
    if (!a.condition.empty()) {
      RECUR_CHECK(std::find(conditions.begin(), conditions.end(), a.condition) != conditions.end(),
                  "generate: unknown condition '{}'; this model knows: {}", a.condition, fmt::join(conditions, ", "));
      names = {a.condition};
    }
    std::vector<int64_t> ids;
    for (const auto& n : names)
      for (int64_t r = 0; r < a.num; ++r) {
        ids.push_back(std::find(conditions.begin(), conditions.end(), n) - conditions.begin());
        labels.push_back(n);
      }
    rows = static_cast<int64_t>(ids.size());
    conds = Tensor::from_i64({rows}, ids);
  } else {
    RECUR_CHECK(kind == models::ConditionKind::None, "generate: this model is conditioned on vectors; give --vector FILE");
    RECUR_CHECK(a.condition.empty(), "generate: --condition '{}' given, but this model is unconditioned", a.condition);
    rows = a.num;
    labels.assign(static_cast<size_t>(rows), "");
  }
  models::GenerateOptions go;
  go.max_len = a.max_len > 0 ? a.max_len : c.get_int("decode.max_len");
  if (!a.prompt.empty()) {
    std::vector<int64_t> p;
    if (lm) p = vocab.encode(a.prompt);
    else p = data::g2p_source_ids(a.prompt, letters);
    go.prompts = {p};
  }
  if (a.beam > 1) {
    go.mode = models::DecodeMode::Beam;
    go.beam.beam = a.beam;
  } else if (a.greedy) {
    go.mode = models::DecodeMode::Greedy;
  } else {
    go.mode = models::DecodeMode::Sample;
    go.sampling.temperature = a.temperature;
    go.sampling.top_k = a.top_k;
    go.sampling.top_p = a.top_p;
    go.sampling.seed = static_cast<uint64_t>(a.seed);
  }
  const auto hyps = models::generate(model, conds, rows, go);
  for (int64_t r = 0; r < rows; ++r) {
    const decode::Hypothesis& h = hyps[static_cast<size_t>(r)][0];
    std::vector<int64_t> toks = h.tokens;
    const bool stopped = !toks.empty() && toks.back() == model.options().eos;
    if (stopped) toks.pop_back();
    const std::string text = lm ? vocab.decode(toks) : data::g2p_word(toks, letters);
    if (a.json) {
      nlohmann::json j{{"text", a.prompt + text}, {"log_prob", h.log_prob}, {"stopped", stopped}};
      if (!labels[static_cast<size_t>(r)].empty()) j["condition"] = labels[static_cast<size_t>(r)];
      std::cout << j.dump() << "\n";
    } else if (kind == models::ConditionKind::Category && a.condition.empty() && conditions.size() > 1) {
      std::cout << labels[static_cast<size_t>(r)] << "\t" << a.prompt << text << "\n";  // which condition
    } else {
      std::cout << a.prompt << text << "\n";
    }
  }
  std::cout.flush();
}

struct EncodeArgs {
  std::string checkpoint, input = "-", device = "cpu";
  int64_t threads = 1;
};

void run_encode(const EncodeArgs& a) {
  set_num_threads(static_cast<int>(a.threads));
  const nlohmann::json meta = train::read_checkpoint_config(a.checkpoint);
  const Config c = checkpoint_config(meta, a.checkpoint);
  RECUR_CHECK(meta.at("task").get<std::string>() == "autoencoder",
              "encode: {} is a {} checkpoint; encode needs an autoencoder", a.checkpoint, meta.at("task").get<std::string>());
  const data::Vocabulary letters = data::g2p_source_vocab();
  Rng rng(0);
  models::SequenceAutoencoder model(autoencoder_options(c, letters.size()), rng);
  train::load_checkpoint(a.checkpoint, model, nullptr);
  model.to(select_device(a.device, false));
  model.train(false);
  std::ifstream file;
  if (a.input != "-") {
    file.open(a.input);
    RECUR_CHECK(file.good(), "encode: cannot open '{}'", a.input);
  }
  std::istream& in = a.input == "-" ? std::cin : file;
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    std::string word;
    std::istringstream ls(line);
    ls >> word;
    std::vector<int64_t> ids = data::g2p_source_ids(word, letters);
    if (ids.empty()) {
      std::cerr << fmt::format("warning: line {}: an empty word; encoding <unk>\n", no);
      ids = {data::g2p::kUnk};
    }
    const Tensor code = encode_words(model, {ids});
    std::string out;
    for (int64_t k = 0; k < code.dim(1); ++k) out += fmt::format("{}{:.6g}", k ? " " : "", code.f32()[k]);
    std::cout << out << "\n";
  }
  std::cout.flush();
}

}  // namespace

bool is_vec2seq_config(const std::string& path, const std::vector<std::string>& sets) {
  const std::string task = config_task(path, sets);
  return task == "style-lm" || task == "autoencoder";
}

void train_vec2seq(const Vec2SeqTrainArgs& a) {
  Config c = resolve(a.config_path, a.sets);
  if (!apply_train_flags(c, a.seed, a.threads, a.device, a.print_config)) return;
  if (c.get_string("task") == "style-lm") train_style_lm(c, a);
  else train_autoencoder(c, a);
}

void eval_vec2seq(const Vec2SeqEvalArgs& a) {
  Config c = resolve(a.config_path, a.sets);
  if (!a.device.empty()) c.set("train.device=" + a.device);
  set_num_threads(static_cast<int>(c.get_int("train.threads")));
  const Device dev = select_device(c.get_string("train.device"), c.get_bool("train.allow_tf32"));
  const nlohmann::json meta = train::read_checkpoint_config(a.checkpoint);
  Rng rng(0);
  if (c.get_string("task") == "style-lm") {
    const LmData d = load_lm(c, meta);
    models::Vec2Seq model(lm_options(c, d.vocab.size(), static_cast<int64_t>(d.conditions.size())), rng);
    train::load_checkpoint(a.checkpoint, model, nullptr);
    model.to(dev);
    model.train(false);
    const auto& docs = a.split == "valid" ? d.valid : d.test;
    const int64_t window = eval_window(c), burn = c.get_int("data.burn_in");
    const LmScores right = lm_scores(model, d, docs, window, burn, 0, false);
    nlohmann::json j{{"split", a.split}, {"right", bits_json(d, right)}, {"mean_bits_per_char", right.mean_bits()}};
    std::string text = fmt::format("{}: {} (mean {:.4f} bpc)", a.split, format_bits(d, right), right.mean_bits());
    if (model.options().condition != models::ConditionKind::None && d.conditions.size() > 1) {
      const LmScores wrong = lm_scores(model, d, docs, window, burn, 0, true);
      j["wrong"] = bits_json(d, wrong);
      text += fmt::format("\n{} with the wrong condition: {}", a.split, format_bits(d, wrong));
    }
    std::cout << (a.json ? j.dump() : text) << std::endl;
    return;
  }
  const WordData w = load_words(c);
  models::SequenceAutoencoder model(autoencoder_options(c, w.letters.size()), rng);
  train::load_checkpoint(a.checkpoint, model, nullptr);
  model.to(dev);
  model.train(false);
  const AeScores s = autoencoder_scores(model, a.split == "valid" ? w.valid : w.test, c.get_int("decode.batch"), 0);
  if (a.json)
    std::cout << nlohmann::json{{"split", a.split}, {"exact", s.exact}, {"bits_per_letter", s.bits}, {"words", s.words}}.dump()
              << std::endl;
  else
    std::cout << fmt::format("{}: {:.2f}% of {} words rebuilt exactly (greedy), {:.4f} bits/letter\n", a.split,
                             100 * s.exact, s.words, s.bits);
}

void add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate sequences from a style-lm or autoencoder checkpoint");
  cmd->add_option("--checkpoint", a->checkpoint, "Checkpoint written by recur train")->required()->check(CLI::ExistingFile);
  cmd->add_option("--condition", a->condition, "Condition name (style-lm; default: every condition in turn)");
  cmd->add_option("--vector", a->vector_file, "File of whitespace-separated floats, one vector per line (autoencoder)");
  cmd->add_option("--prompt", a->prompt, "Text that primes the state; generation continues after it");
  cmd->add_option("--max-len", a->max_len, "Longest output in tokens (default: decode.max_len)");
  cmd->add_option("--temperature", a->temperature, "Sampling temperature");
  cmd->add_option("--top-k", a->top_k, "Sample among the K most likely tokens (0: all)");
  cmd->add_option("--top-p", a->top_p, "Sample from the smallest set reaching probability P (1: all)");
  cmd->add_option("--beam", a->beam, "Beam search with this width instead of sampling (1: sample)");
  cmd->add_flag("--greedy", a->greedy, "Greedy decoding instead of sampling");
  cmd->add_option("--seed", a->seed, "Sampling seed");
  cmd->add_option("--num", a->num, "Sequences per condition or vector");
  cmd->add_flag("--json", a->json, "One JSON object per sequence (text, log_prob, condition, stopped)");
  cmd->add_option("--threads", a->threads, "Threads")->check(CLI::PositiveNumber);
  cmd->add_option("--device", a->device, "cpu | cuda | cuda:N");
  cmd->callback([a] { run_generate(*a); });

  auto e = std::make_shared<EncodeArgs>();
  CLI::App* enc = app.add_subcommand("encode", "Write the code vector of each input word (autoencoder checkpoints)");
  enc->add_option("--checkpoint", e->checkpoint, "Autoencoder checkpoint")->required()->check(CLI::ExistingFile);
  enc->add_option("--input", e->input, "Words, one a line; - for stdin (default)");
  enc->add_option("--threads", e->threads, "Threads")->check(CLI::PositiveNumber);
  enc->add_option("--device", e->device, "cpu | cuda | cuda:N");
  enc->callback([e] { run_encode(*e); });
}

}  // namespace recur::cli
