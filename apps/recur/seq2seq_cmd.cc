// Sequence-to-sequence tasks for `recur train` and `recur eval` (grapheme-to-phoneme on CMUdict,
// general translation from parallel text), and `recur translate`.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>

#include "commands.h"
#include "train_common.h"
#include "config.h"
#include "recur/core/cuda.h"
#include "recur/core/thread_pool.h"
#include "recur/data/bleu.h"
#include "recur/data/fetch.h"
#include "recur/data/g2p.h"
#include "recur/data/parallel.h"
#include "recur/dist/data_parallel.h"
#include "recur/models/seq2seq.h"
#include "recur/ops/basic.h"
#include "recur/ops/loss.h"
#include "recur/train/checkpoint.h"
#include "recur/train/optimizer.h"
#include "recur/train/schedule.h"

namespace recur::cli {

namespace {

namespace fs = std::filesystem;

std::vector<ConfigKey> seq2seq_schema() {
  using V = ValueType;
  std::vector<ConfigKey> keys = {
      {"task", V::String, "g2p",
       "g2p (CMUdict grapheme-to-phoneme) or translation (your own parallel text)", {"g2p", "translation"}},
      {"data.dir", V::String, "", "g2p: the CMUdict folder or file; empty: fetch into the cache (recur data fetch cmudict)", {}},
      {"data.test_words", V::Int, "12000", "g2p: words held out for test (by a hash of the word)", {}},
      {"data.valid_words", V::Int, "6000", "g2p: words held out for validation", {}},
      {"data.train", V::String, "",
       "translation: training pairs, a TSV file (source<TAB>target) or two aligned files as SOURCE,TARGET", {}},
      {"data.valid", V::String, "", "translation: validation pairs (same forms)", {}},
      {"data.test", V::String, "", "translation: test pairs (same forms); empty: none", {}},
      {"data.source_tokenizer", V::String, "word", "translation: source tokens", {"char", "word", "sentencepiece"}},
      {"data.target_tokenizer", V::String, "word", "translation: target tokens", {"char", "word", "sentencepiece"}},
      {"data.vocab_size", V::Int, "8000", "translation: vocabulary entries at most per side (sentencepiece: pieces)", {}},
      {"data.min_count", V::Int, "1", "translation (char/word): a token enters the vocabulary after this many uses", {}},
      {"data.max_source_len", V::Int, "100",
       "source tokens read at most; longer inputs are truncated (with a warning in translate), longer training "
       "pairs skipped",
       {}},
      {"data.max_target_len", V::Int, "100", "longer training targets are skipped", {}},
      {"data.limit", V::Int, "0", "use only the first N training pairs (0: all)", {}},
      {"model.cell", V::String, "lstm", "recurrent cell of encoder and decoder", {"lstm", "gru"}},
      {"model.embed", V::Int, "64", "source embedding width", {}},
      {"model.target_embed", V::Int, "64", "target embedding width", {}},
      {"model.encoder_hidden", V::Int, "128", "encoder units per direction", {}},
      {"model.encoder_layers", V::Int, "1", "stacked encoder layers", {}},
      {"model.bidirectional", V::Bool, "true", "bidirectional encoder", {}},
      {"model.decoder_hidden", V::Int, "256", "decoder units", {}},
      {"model.decoder_layers", V::Int, "1", "stacked decoder layers", {}},
      {"model.attention", V::String, "general", "attention score: Luong dot/general, Bahdanau additive",
       {"dot", "general", "additive"}},
      {"model.attention_hidden", V::Int, "0", "additive: width of the score layer (0: encoder output size)", {}},
      {"model.input_feeding", V::Bool, "false", "feed the previous attentional vector to the decoder (Luong)", {}},
      {"model.bridge", V::String, "dense", "decoder initial states from the encoder's final states",
       {"none", "dense", "copy"}},
      {"model.attentional", V::Int, "0", "width of the attentional vector tanh(W [context; h]) (0: decoder_hidden)", {}},
      {"model.tie_embeddings", V::Bool, "false", "output layer shares the target embedding (target_embed == attentional)", {}},
      {"model.dropout", V::Float, "0.2", "dropout on embeddings, between layers, on keys and attentional vectors", {}},
      {"train.epochs", V::Int, "10", "passes over the training pairs", {}},
      {"train.weight_decay", V::Float, "0.0", "weight decay", {}},
      {"train.warmup_steps", V::Int, "200", "linear warmup steps (at most a tenth of all steps)", {}},
      {"train.label_smoothing", V::Float, "0.1", "label smoothing of the target cross-entropy", {}},
      {"train.patience", V::Int, "4", "epochs without validation improvement before stopping (0: never stop early)", {}},
      {"train.valid_limit", V::Int, "0",
       "validation: decode only N items each epoch, spread evenly over the split (0: all)", {}},
      {"train.max_minutes", V::Float, "0", "stop training after this many minutes (0: no limit); a cosine schedule then anneals by that time", {}},
      {"train.log_every", V::Int, "200", "steps between progress lines (non-terminal stderr)", {}},
      {"decode.beam", V::Int, "5", "beam size for the final test evaluation, eval and translate (1: greedy)", {}},
      {"decode.alpha", V::Float, "0.6", "GNMT length penalty exponent (0: none)", {}},
      {"decode.beta", V::Float, "0.0", "GNMT coverage penalty weight (0: none)", {}},
      {"decode.max_len_ratio", V::Float, "2.0", "longest output: ratio times the source length ...", {}},
      {"decode.max_len_constant", V::Int, "10", "... plus this many tokens", {}},
      {"decode.batch", V::Int, "128", "sentences decoded together", {}},
  };
  for (ConfigKey& k : common_train_keys()) keys.push_back(std::move(k));
  return keys;
}

ops::CellType cell_of(const std::string& s) { return s == "gru" ? ops::CellType::GRU : ops::CellType::LSTM; }

nn::AttentionKind attention_of(const std::string& s) {
  return s == "dot" ? nn::AttentionKind::Dot : s == "additive" ? nn::AttentionKind::Additive : nn::AttentionKind::General;
}

models::Bridge bridge_of(const std::string& s) {
  return s == "none" ? models::Bridge::None : s == "copy" ? models::Bridge::Copy : models::Bridge::Dense;
}

/// One side's tokens: the fixed G2P inventories, or a data::Tokenizer.
struct Side {
  bool g2p_source = false, g2p_target = false;
  data::Vocabulary vocab;                 // g2p
  std::shared_ptr<data::Tokenizer> tok;   // translation
  int64_t size() const { return tok ? tok->size() : vocab.size(); }
  std::vector<int64_t> encode(const std::string& text) const {
    if (tok) return tok->encode(text);
    if (g2p_source) {
      const auto b = text.find_first_not_of(" \t"), e = text.find_last_not_of(" \t");
      return b == std::string::npos ? std::vector<int64_t>() : data::g2p_source_ids(text.substr(b, e - b + 1), vocab);
    }
    std::vector<std::string> phonemes;
    std::istringstream in(text);
    for (std::string p; in >> p;) phonemes.push_back(p);
    std::vector<int64_t> ids = data::g2p_target_ids(phonemes, vocab);
    return std::vector<int64_t>(ids.begin() + 1, ids.end() - 1);
  }
  std::string decode(const std::vector<int64_t>& ids) const {
    if (tok) return tok->decode(ids);
    if (g2p_source) return data::g2p_word(ids, vocab);
    std::string out;
    for (const auto& p : data::g2p_tokens(ids, vocab)) out += (out.empty() ? "" : " ") + p;
    return out;
  }
};

/// Items to evaluate: a source and its references (G2P: every pronunciation of the word).
struct EvalSet {
  std::vector<std::string> sources;
  std::vector<std::vector<std::string>> references;
};

struct Pair {
  std::vector<int64_t> source, target;
};

struct Task {
  std::string kind;
  Side source, target;
  std::vector<Pair> train;
  EvalSet valid, test;
  nlohmann::json meta() const {
    nlohmann::json m{{"task", kind}};
    if (source.tok) m["source_tokenizer"] = source.tok->serialize();
    if (target.tok) m["target_tokenizer"] = target.tok->serialize();
    return m;
  }
};

void g2p_sides(Task& t) {
  t.source.g2p_source = true;
  t.source.vocab = data::g2p_source_vocab();
  t.target.g2p_target = true;
  t.target.vocab = data::g2p_target_vocab();
}

EvalSet g2p_eval_set(const std::vector<data::G2pEntry>& entries) {
  EvalSet e;
  for (const auto& w : data::group_by_word(entries)) {
    e.sources.push_back(w.word);
    e.references.emplace_back();
    for (const auto& p : w.pronunciations) {
      std::string s;
      for (const auto& ph : p) s += (s.empty() ? "" : " ") + ph;
      e.references.back().push_back(s);
    }
  }
  return e;
}

std::vector<data::ParallelPair> read_pairs(const std::string& spec) {
  const auto comma = spec.find(',');
  if (comma == std::string::npos) return data::read_parallel_tsv(spec);
  return data::read_parallel_files(spec.substr(0, comma), spec.substr(comma + 1));
}

EvalSet pairs_eval_set(const std::vector<data::ParallelPair>& pairs) {
  EvalSet e;
  for (const auto& p : pairs) {
    e.sources.push_back(p.source);
    e.references.push_back({p.target});
  }
  return e;
}

// Loads the task's data (need_train: the training pairs and tokenizers; otherwise the tokenizers
// come from `meta`, a checkpoint's metadata).
Task load_task(const Config& c, bool need_train, const nlohmann::json& meta) {
  Task t;
  t.kind = c.get_string("task");
  const int64_t max_src = c.get_int("data.max_source_len"), max_tgt = c.get_int("data.max_target_len");
  int64_t skipped = 0;
  auto add_pair = [&](std::vector<int64_t> s, std::vector<int64_t> y) {
    if (s.empty() || static_cast<int64_t>(s.size()) > max_src || static_cast<int64_t>(y.size()) > max_tgt) {
      ++skipped;
      return;
    }
    t.train.push_back({std::move(s), std::move(y)});
  };
  if (t.kind == "g2p") {
    g2p_sides(t);
    std::string dir = c.get_string("data.dir");
    if (dir.empty()) dir = data::fetch_dataset("cmudict", data::default_cache_dir(), &std::cerr).path;
    const data::G2pSplit split = data::split_g2p(data::read_cmudict(dir), c.get_int("data.test_words"), c.get_int("data.valid_words"));
    t.valid = g2p_eval_set(split.valid);
    t.test = g2p_eval_set(split.test);
    if (need_train)
      for (const auto& e : split.train) {
        std::string ph;
        for (const auto& p : e.phonemes) ph += (ph.empty() ? "" : " ") + p;
        add_pair(t.source.encode(e.word), t.target.encode(ph));
      }
  } else {
    RECUR_CHECK(!c.get_string("data.valid").empty(), "translation: set data.valid (validation pairs)");
    t.valid = pairs_eval_set(read_pairs(c.get_string("data.valid")));
    if (!c.get_string("data.test").empty()) t.test = pairs_eval_set(read_pairs(c.get_string("data.test")));
    if (need_train) {
      RECUR_CHECK(!c.get_string("data.train").empty(), "translation: set data.train (training pairs)");
      const auto pairs = read_pairs(c.get_string("data.train"));
      std::vector<std::string> src, tgt;
      for (const auto& p : pairs) {
        src.push_back(p.source);
        tgt.push_back(p.target);
      }
      const int64_t vs = c.get_int("data.vocab_size"), mc = c.get_int("data.min_count");
      if (meta.contains("source_tokenizer") && meta.contains("target_tokenizer")) {
        t.source.tok = std::make_shared<data::Tokenizer>(data::Tokenizer::deserialize(meta.at("source_tokenizer")));
        t.target.tok = std::make_shared<data::Tokenizer>(data::Tokenizer::deserialize(meta.at("target_tokenizer")));
      } else {
        t.source.tok = std::make_shared<data::Tokenizer>(
            data::Tokenizer::build(data::Tokenizer::kind_of(c.get_string("data.source_tokenizer")), src, mc, vs));
        t.target.tok = std::make_shared<data::Tokenizer>(
            data::Tokenizer::build(data::Tokenizer::kind_of(c.get_string("data.target_tokenizer")), tgt, mc, vs));
      }
      for (const auto& p : pairs) add_pair(t.source.encode(p.source), t.target.encode(p.target));
    } else {
      RECUR_CHECK(meta.contains("source_tokenizer") && meta.contains("target_tokenizer"),
                  "translation: the checkpoint's metadata has no tokenizers");
      t.source.tok = std::make_shared<data::Tokenizer>(data::Tokenizer::deserialize(meta.at("source_tokenizer")));
      t.target.tok = std::make_shared<data::Tokenizer>(data::Tokenizer::deserialize(meta.at("target_tokenizer")));
    }
  }
  if (need_train) {
    const int64_t limit = c.get_int("data.limit");
    if (limit > 0 && static_cast<int64_t>(t.train.size()) > limit) t.train.resize(static_cast<size_t>(limit));
    if (skipped > 0)
      std::cerr << fmt::format("skipped {} training pairs that are empty or longer than data.max_source_len {} / "
                               "data.max_target_len {}\n",
                               skipped, max_src, max_tgt);
  }
  return t;
}

models::Seq2SeqOptions model_options(const Config& c, const Task& t) {
  models::Seq2SeqOptions o;
  o.source_vocab = t.source.size();
  o.target_vocab = t.target.size();
  o.source_embed = c.get_int("model.embed");
  o.target_embed = c.get_int("model.target_embed");
  o.cell = cell_of(c.get_string("model.cell"));
  o.encoder_hidden = c.get_int("model.encoder_hidden");
  o.encoder_layers = c.get_int("model.encoder_layers");
  o.bidirectional = c.get_bool("model.bidirectional");
  o.decoder_hidden = c.get_int("model.decoder_hidden");
  o.decoder_layers = c.get_int("model.decoder_layers");
  o.attention = attention_of(c.get_string("model.attention"));
  o.attention_hidden = c.get_int("model.attention_hidden");
  o.input_feeding = c.get_bool("model.input_feeding");
  o.bridge = bridge_of(c.get_string("model.bridge"));
  o.attentional = c.get_int("model.attentional");
  o.tie_embeddings = c.get_bool("model.tie_embeddings");
  o.dropout = static_cast<float>(c.get_float("model.dropout"));
  o.pad = data::g2p::kPad;
  o.bos = data::g2p::kBos;
  o.eos = data::g2p::kEos;
  return o;
}

models::TranslateOptions decode_options(const Config& c, int64_t beam) {
  models::TranslateOptions o;
  o.mode = beam <= 1 ? models::DecodeMode::Greedy : models::DecodeMode::Beam;
  o.beam.beam = std::max<int64_t>(1, beam);
  o.beam.alpha = c.get_float("decode.alpha");
  o.beam.beta = c.get_float("decode.beta");
  o.max_len_ratio = c.get_float("decode.max_len_ratio");
  o.max_len_constant = c.get_int("decode.max_len_constant");
  return o;
}

/// Decodes sources in batches (sorted by length, so a batch's sentences finish together), returning
/// each one's hypotheses in input order. An empty source gives no hypothesis tokens.
std::vector<std::vector<decode::Hypothesis>> translate_all(const models::Seq2Seq& model, const Side& source,
                                                           const std::vector<std::string>& texts,
                                                           const models::TranslateOptions& opt, int64_t batch,
                                                           int64_t max_source_len,
                                                           std::vector<std::pair<size_t, std::string>>* warnings) {
  std::vector<std::vector<int64_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ids[i] = source.encode(texts[i]);
    if (static_cast<int64_t>(ids[i].size()) > max_source_len) {
      if (warnings)
        warnings->emplace_back(i, fmt::format("{} tokens, truncated to data.max_source_len {}", ids[i].size(),
                                              max_source_len));
      ids[i].resize(static_cast<size_t>(max_source_len));
    }
  }
  std::vector<size_t> order;
  for (size_t i = 0; i < ids.size(); ++i)
    if (!ids[i].empty()) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a].size() > ids[b].size(); });
  std::vector<std::vector<decode::Hypothesis>> out(texts.size(), std::vector<decode::Hypothesis>(1));
  for (size_t at = 0; at < order.size(); at += static_cast<size_t>(batch)) {
    const size_t end = std::min(order.size(), at + static_cast<size_t>(batch));
    std::vector<std::vector<int64_t>> chunk;
    for (size_t k = at; k < end; ++k) chunk.push_back(ids[order[k]]);
    auto hyps = models::translate(model, chunk, opt);
    for (size_t k = at; k < end; ++k) out[order[k]] = std::move(hyps[k - at]);
  }
  return out;
}

struct Scores {
  double main = 0;  ///< higher is better: -WER (g2p) or BLEU (translation)
  std::string summary;
  nlohmann::json json;
};

Scores score(const Task& t, const EvalSet& set, const std::vector<std::string>& hyps) {
  Scores s;
  if (t.kind == "g2p") {
    std::vector<std::vector<std::string>> h;
    std::vector<std::vector<std::vector<std::string>>> r;
    auto split_ws = [](const std::string& text) {
      std::vector<std::string> v;
      std::istringstream in(text);
      for (std::string p; in >> p;) v.push_back(p);
      return v;
    };
    for (size_t i = 0; i < hyps.size(); ++i) {
      h.push_back(split_ws(hyps[i]));
      r.emplace_back();
      for (const auto& ref : set.references[i]) r.back().push_back(split_ws(ref));
    }
    const data::G2pScores g = data::g2p_scores(h, r);
    s.main = -g.wer;
    s.summary = fmt::format("WER {:.2f}% PER {:.2f}% ({} words)", 100 * g.wer, 100 * g.per, g.words);
    s.json = {{"wer", g.wer}, {"per", g.per}, {"words", g.words}, {"word_errors", g.word_errors},
              {"phoneme_edits", g.phoneme_edits}, {"reference_phonemes", g.reference_phonemes}};
  } else {
    std::vector<std::string> refs;
    for (const auto& r : set.references) refs.push_back(r.at(0));
    const data::BleuScore b = data::corpus_bleu(hyps, {refs});
    s.main = b.score;
    s.summary = data::format_bleu(b);
    s.json = {{"bleu", b.score}, {"bp", b.bp}, {"ratio", b.ratio}, {"hyp_len", b.sys_len}, {"ref_len", b.ref_len}};
  }
  return s;
}

Scores evaluate(const models::Seq2Seq& model, const Task& t, const EvalSet& set, const models::TranslateOptions& opt,
                int64_t batch, int64_t max_source_len, int64_t limit = 0,
                std::vector<std::string>* hypotheses = nullptr) {
  EvalSet use = set;
  const int64_t n = static_cast<int64_t>(set.sources.size());
  if (limit > 0 && n > limit) {
    // Evenly spread items: the splits are in dictionary (alphabetical) order, so the first N would
    // all start with the same few letters.
    use = EvalSet();
    for (int64_t k = 0; k < limit; ++k) {
      const auto i = static_cast<size_t>(k * n / limit);
      use.sources.push_back(set.sources[i]);
      use.references.push_back(set.references[i]);
    }
  }
  auto hyps = translate_all(model, t.source, use.sources, opt, batch, max_source_len, nullptr);
  std::vector<std::string> text;
  for (const auto& h : hyps) text.push_back(t.target.decode(h[0].tokens));
  Scores s = score(t, use, text);
  if (hypotheses) *hypotheses = std::move(text);
  return s;
}

/// Writes one line per item, `source<TAB>hypothesis<TAB>references` (several references joined by
/// " | "), to `path` through a temporary file renamed over it, so a failed write leaves no partial file.
void write_hypotheses(const std::string& path, const EvalSet& set, const std::vector<std::string>& hyps) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    RECUR_CHECK(out.good(), "eval --output '{}': cannot create '{}'", path, tmp);
    for (size_t i = 0; i < hyps.size(); ++i) {
      out << set.sources[i] << '\t' << hyps[i] << '\t';
      for (size_t r = 0; r < set.references[i].size(); ++r) out << (r ? " | " : "") << set.references[i][r];
      out << '\n';
    }
    out.flush();
    if (!out.good()) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      RECUR_FAIL("eval --output '{}': writing '{}' failed", path, tmp);
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    RECUR_FAIL("eval --output '{}': cannot rename '{}' over it: {}", path, tmp, ec.message());
  }
}

// Batches of sentence indices: shuffled, then sorted by source length within windows of 50 batches
// so that a batch's sentences have similar lengths (few wasted steps), then the batches shuffled.
std::vector<std::vector<size_t>> make_batches(const std::vector<Pair>& pairs, int64_t batch, uint64_t seed) {
  std::vector<size_t> idx(pairs.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  Rng rng(mix64(seed));
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng.next_u64() % i]);
  const size_t window = static_cast<size_t>(batch) * 50;
  for (size_t at = 0; at < idx.size(); at += window) {
    auto end = idx.begin() + static_cast<std::ptrdiff_t>(std::min(idx.size(), at + window));
    std::stable_sort(idx.begin() + static_cast<std::ptrdiff_t>(at), end,
                     [&](size_t a, size_t b) { return pairs[a].source.size() < pairs[b].source.size(); });
  }
  std::vector<std::vector<size_t>> out;
  for (size_t at = 0; at < idx.size(); at += static_cast<size_t>(batch))
    out.emplace_back(idx.begin() + static_cast<std::ptrdiff_t>(at),
                     idx.begin() + static_cast<std::ptrdiff_t>(std::min(idx.size(), at + static_cast<size_t>(batch))));
  for (size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[rng.next_u64() % i]);
  return out;
}

// Values the schema's types allow but the task cannot use.
void check_config(const Config& c) {
  for (const char* key : {"train.epochs", "train.batch", "train.accumulate", "decode.batch", "decode.beam", "data.max_source_len",
                          "data.max_target_len"})
    RECUR_CHECK(c.get_int(key) >= 1, "config: {} must be at least 1, got {}", key, c.get_int(key));
  for (const char* key : {"train.warmup_steps", "data.limit", "train.valid_limit", "train.patience"})
    RECUR_CHECK(c.get_int(key) >= 0, "config: {} must not be negative, got {}", key, c.get_int(key));
  RECUR_CHECK(c.get_float("train.max_minutes") >= 0, "config: train.max_minutes must not be negative, got {}",
              c.get_float("train.max_minutes"));
  RECUR_CHECK(c.get_float("decode.max_len_ratio") >= 0 && c.get_int("decode.max_len_constant") >= 0,
              "config: decode.max_len_ratio ({}) and decode.max_len_constant ({}) must not be negative",
              c.get_float("decode.max_len_ratio"), c.get_int("decode.max_len_constant"));
}

Config resolve(const std::string& path, const std::vector<std::string>& sets) {
  Config c = load_config(seq2seq_schema(), path, sets);
  check_config(c);
  return c;
}

Device select_device(const Config& c) {
  return cli::select_device(c.get_string("train.device"), c.get_bool("train.allow_tf32"));
}

}  // namespace

bool is_seq2seq_config(const std::string& path, const std::vector<std::string>& sets) {
  const std::string task = config_task(path, sets);
  return task == "g2p" || task == "translation";
}

void train_seq2seq(const Seq2SeqTrainArgs& a) {
  Config c = resolve(a.config_path, a.sets);
  if (!apply_train_flags(c, a.seed, a.threads, a.device, a.print_config)) return;
  const auto t_start = Clock::now();
  // Data parallelism: every rank holds the model, takes a token-balanced shard of each global
  // batch, and the gradients are averaged by token count (docs/DISTRIBUTED.md). One process is
  // the local communicator, a world of one. Only rank 0 writes logs and checkpoints.
  TrainProcess proc = start_training_process(c);
  const Device dev = proc.device;
  std::ostream& log = *proc.log;
  // Resuming keeps the checkpoint's tokenizers: the weights belong to its id mapping.
  const nlohmann::json resume_meta = a.resume.empty() ? nlohmann::json() : train::read_checkpoint_config(a.resume);
  Task t = load_task(c, true, resume_meta);
  RECUR_CHECK(!t.train.empty() && !t.valid.sources.empty(), "train: {} training pairs and {} validation items; need both",
              t.train.size(), t.valid.sources.size());
  const uint64_t seed = static_cast<uint64_t>(c.get_int("train.seed"));
  Rng rng(seed);
  models::Seq2Seq model(model_options(c, t), rng);
  model.to(dev);
  const int64_t batch = c.get_int("train.batch") * c.get_int("train.accumulate");  // the global batch of one step
  CrossEntropyOptions ce;
  ce.label_smoothing = static_cast<float>(c.get_float("train.label_smoothing"));
  ce.ignore_index = -100;
  const models::TranslateOptions greedy = decode_options(c, 1);
  const int64_t dbatch = c.get_int("decode.batch"), max_src = c.get_int("data.max_source_len");
  log << fmt::format("{} pairs, {} validation / {} test items, {} sentences a step\n", t.train.size(),
                     t.valid.sources.size(), t.test.sources.size(), batch);
  std::vector<std::vector<size_t>> batches;  // the current epoch's global batches
  EpochTask task;
  task.throughput_unit = "target tok/s";
  task.batches = [&](int64_t epoch) {
    batches = make_batches(t.train, batch, seed ^ mix64(static_cast<uint64_t>(epoch)));
    // Shards balanced by source + target tokens (the work); gradients weighted by target tokens
    // (the loss terms, <eos> included).
    std::vector<std::vector<dist::ShardItem>> out;
    for (const auto& global : batches) {
      out.emplace_back();
      for (size_t k = 0; k < global.size(); ++k) {
        const Pair& p = t.train[global[k]];
        out.back().push_back({static_cast<int64_t>(k), static_cast<int64_t>(p.source.size() + p.target.size()) + 1});
      }
    }
    return out;
  };
  auto pair = [&](size_t bi, int64_t i) -> const Pair& { return t.train[batches[bi][static_cast<size_t>(i)]]; };
  task.terms = [&](size_t bi, int64_t i) { return static_cast<int64_t>(pair(bi, i).target.size()) + 1; };
  task.loss = [&](Tape& tape, size_t bi, const std::vector<int64_t>& micro, uint64_t sseed) {
    std::vector<std::vector<int64_t>> src, tgt;
    for (int64_t i : micro) {
      src.push_back(pair(bi, i).source);
      tgt.push_back(pair(bi, i).target);
    }
    PackedBatch sl;
    const Tensor src_ids = models::pack_ids(src, &sl).to(dev);
    const models::TargetBatch tb = models::make_target_batch(tgt, data::g2p::kBos, data::g2p::kEos);
    models::Encoded enc = model.encode(tape, src_ids, sl, sseed);
    Var logits = model.forward(tape, enc, tb.input.to(dev), tb.layout, sseed);
    return cross_entropy(tape, logits, tb.output.to(dev), ce);
  };
  task.validate = [&] {
    const Scores v = evaluate(model, t, t.valid, greedy, dbatch, max_src, c.get_int("train.valid_limit"));
    return EpochTask::Validation{v.main, "(greedy) " + v.summary, v.json};
  };
  run_epochs(c, {a.out, a.resume}, proc, model, t.meta(), task);
  const double train_minutes = seconds_since(t_start) / 60;
  if (t.test.sources.empty() || !proc.lead) return;
  Rng rng_best(0);
  models::Seq2Seq best_model(model_options(c, t), rng_best);
  load_best(a.out, best_model, model);
  best_model.to(dev);
  best_model.train(false);
  std::vector<int64_t> beams{1};
  if (c.get_int("decode.beam") > 1) beams.push_back(c.get_int("decode.beam"));
  std::ofstream metrics(fs::path(a.out) / "metrics.jsonl", std::ios::app);
  for (int64_t beam : beams) {
    const auto t0 = Clock::now();
    const Scores s = evaluate(best_model, t, t.test, decode_options(c, beam), dbatch, max_src);
    std::cout << fmt::format("test {}: {} [{:.0f} s decoding]\n", beam <= 1 ? "greedy" : fmt::format("beam {}", beam),
                             s.summary, seconds_since(t0));
    metrics << nlohmann::json{{"kind", "test"}, {"beam", beam}, {"scores", s.json}}.dump() << std::endl;
  }
  std::cout << fmt::format("training took {:.1f} minutes (data loading included)\n", train_minutes);
}

void eval_seq2seq(const Seq2SeqEvalArgs& a) {
  Config c = resolve(a.config_path, a.sets);
  if (!a.device.empty()) c.set("train.device=" + a.device);
  if (a.beam > 0) c.set("decode.beam=" + std::to_string(a.beam));
  set_num_threads(static_cast<int>(c.get_int("train.threads")));
  const Device dev = select_device(c);
  const nlohmann::json meta = train::read_checkpoint_config(a.checkpoint);
  Task t = load_task(c, false, meta);
  Rng rng(0);
  models::Seq2Seq model(model_options(c, t), rng);
  train::load_checkpoint(a.checkpoint, model, nullptr);
  model.to(dev);
  model.train(false);
  const EvalSet& set = a.split == "valid" ? t.valid : t.test;
  RECUR_CHECK(!set.sources.empty(), "eval: the {} split is empty (set data.{})", a.split, a.split);
  const auto t0 = Clock::now();
  std::vector<std::string> hyps;
  const Scores s = evaluate(model, t, set, decode_options(c, c.get_int("decode.beam")), c.get_int("decode.batch"),
                            c.get_int("data.max_source_len"), 0, &hyps);
  if (!a.output.empty()) write_hypotheses(a.output, set, hyps);
  if (a.json) {
    nlohmann::json j = s.json;
    j.update({{"split", a.split}, {"beam", c.get_int("decode.beam")}, {"seconds", seconds_since(t0)}});
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << fmt::format("{} (beam {}): {}\n", a.split, c.get_int("decode.beam"), s.summary);
  }
}

namespace {

struct TranslateArgs {
  std::string checkpoint, device = "cpu", input = "-";
  int64_t beam = -1, n_best = 1, batch = 64, top_k = 0, threads = 1;
  double alpha = -1, beta = -1, max_len_ratio = -1, temperature = 1.0, top_p = 1.0;
  int64_t seed = 0;
  bool sample = false, json = false;
};

void run_translate(const TranslateArgs& a) {
  set_num_threads(static_cast<int>(a.threads));
  const nlohmann::json meta = train::read_checkpoint_config(a.checkpoint);
  RECUR_CHECK(meta.contains("config") && meta.contains("task"),
              "translate: {} is not a sequence-to-sequence checkpoint (no task in its metadata)", a.checkpoint);
  Config c(seq2seq_schema());
  c.load_json(meta.at("config"));
  c.set("train.device=" + a.device);
  const Device dev = select_device(c);
  Task t;
  t.kind = meta.at("task").get<std::string>();
  if (t.kind == "g2p") {
    g2p_sides(t);
  } else {
    t.source.tok = std::make_shared<data::Tokenizer>(data::Tokenizer::deserialize(meta.at("source_tokenizer")));
    t.target.tok = std::make_shared<data::Tokenizer>(data::Tokenizer::deserialize(meta.at("target_tokenizer")));
  }
  Rng rng(0);
  models::Seq2Seq model(model_options(c, t), rng);
  train::load_checkpoint(a.checkpoint, model, nullptr);
  model.to(dev);
  model.train(false);
  models::TranslateOptions o = decode_options(c, a.beam > 0 ? a.beam : c.get_int("decode.beam"));
  if (a.alpha >= 0) o.beam.alpha = a.alpha;
  if (a.beta >= 0) o.beam.beta = a.beta;
  if (a.max_len_ratio > 0) o.max_len_ratio = a.max_len_ratio;
  RECUR_CHECK(a.n_best >= 1 && (a.n_best == 1 || (o.mode == models::DecodeMode::Beam && !a.sample)) &&
                  a.n_best <= o.beam.beam,
              "translate: --n-best {} needs beam search (not --sample) with --beam >= it (beam {})", a.n_best, o.beam.beam);
  o.beam.n_best = a.n_best;
  if (a.sample) {
    o.mode = models::DecodeMode::Sample;
    o.sampling.temperature = a.temperature;
    o.sampling.top_k = a.top_k;
    o.sampling.top_p = a.top_p;
    o.sampling.seed = static_cast<uint64_t>(a.seed);
  }
  o.keep_attention = a.json && !a.sample;
  std::ifstream file;
  if (a.input != "-") {
    file.open(a.input);
    RECUR_CHECK(file.good(), "translate: cannot read {}", a.input);
  }
  std::istream& in = a.input == "-" ? std::cin : file;
  const int64_t max_src = c.get_int("data.max_source_len");
  int64_t line_no = 0;
  std::vector<std::string> lines;
  auto flush = [&]() {
    std::vector<std::pair<size_t, std::string>> warnings;
    auto hyps = translate_all(model, t.source, lines, o, a.batch, max_src, &warnings);
    const int64_t first_line = line_no - static_cast<int64_t>(lines.size()) + 1;
    for (const auto& [i, w] : warnings)
      std::cerr << fmt::format("warning: line {}: {}\n", first_line + static_cast<int64_t>(i), w);
    std::cerr.flush();
    for (size_t i = 0; i < lines.size(); ++i) {
      const auto& best = hyps[i][0];
      if (!a.json) {
        std::cout << t.target.decode(best.tokens) << "\n";
        continue;
      }
      nlohmann::json j{{"source", lines[i]}, {"translation", t.target.decode(best.tokens)},
                       {"score", best.score}, {"log_prob", best.log_prob}};
      nlohmann::json nbest = nlohmann::json::array();
      for (const auto& h : hyps[i])
        nbest.push_back({{"translation", t.target.decode(h.tokens)}, {"score", h.score}, {"log_prob", h.log_prob}});
      j["n_best"] = nbest;
      if (!best.attention.empty()) j["attention"] = best.attention;
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    std::cout.flush();
    lines.clear();
  };
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
    if (static_cast<int64_t>(lines.size()) >= a.batch) flush();
  }
  flush();
}

}  // namespace

void add_translate(CLI::App& app) {
  auto a = std::make_shared<TranslateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "translate", "Translate lines (stdin or --input) with a sequence-to-sequence checkpoint; one output line each");
  cmd->add_option("--checkpoint", a->checkpoint, "Checkpoint written by recur train")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input", a->input, "Input file, or - for stdin (default)");
  cmd->add_option("--beam", a->beam, "Beam size (1: greedy; default: the config's decode.beam)");
  cmd->add_option("--n-best", a->n_best, "Hypotheses per input in --json output (<= beam)");
  cmd->add_option("--alpha", a->alpha, "GNMT length penalty exponent");
  cmd->add_option("--beta", a->beta, "GNMT coverage penalty weight");
  cmd->add_option("--max-len-ratio", a->max_len_ratio, "Longest output: this times the source length plus decode.max_len_constant");
  cmd->add_flag("--sample", a->sample, "Sample instead of searching");
  cmd->add_option("--temperature", a->temperature, "Sampling temperature")->check(CLI::PositiveNumber);
  cmd->add_option("--top-k", a->top_k, "Sample among the k most likely tokens (0: all)");
  cmd->add_option("--top-p", a->top_p, "Sample among the smallest set reaching this probability");
  cmd->add_option("--seed", a->seed, "Sampling seed");
  cmd->add_option("--batch-size", a->batch, "Lines translated together")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", a->json, "One JSON object per line: translation, score, n-best, attention");
  cmd->add_option("--threads", a->threads, "Threads")->check(CLI::PositiveNumber);
  cmd->add_option("--device", a->device, "cpu | cuda | cuda:N");
  cmd->callback([a] { run_translate(*a); });
}

}  // namespace recur::cli
