// `recur train CONFIG` and `recur eval CONFIG --checkpoint CKPT`: sequence-to-vector training
// with validation every epoch, early stopping, best/last checkpoints and metrics.jsonl.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>

#include "commands.h"
#include "train_common.h"
#include "recur/core/cuda.h"
#include "config.h"
#include "recur/core/thread_pool.h"
#include "recur/data/dataset.h"
#include "recur/data/fetch.h"
#include "recur/data/idx.h"
#include "recur/data/series.h"
#include "recur/data/subword.h"
#include "recur/data/text.h"
#include "recur/dist/data_parallel.h"
#include "recur/models/seq2vec.h"
#include "recur/ops/basic.h"
#include "recur/ops/loss.h"
#include "recur/train/checkpoint.h"
#include "recur/train/optimizer.h"
#include "recur/train/schedule.h"

namespace recur::cli {

namespace {

namespace fs = std::filesystem;

std::vector<ConfigKey> train_schema() {
  using V = ValueType;
  std::vector<ConfigKey> keys = {
      {"task", V::String, "fashion-rows",
       "fashion-rows (images read row by row), births (7-day forecasts), spam (mail classification) or text "
       "(your own labelled documents)",
       {"fashion-rows", "births", "spam", "text"}},
      {"data.dir", V::String, "", "data folder; empty: fetch into the cache (recur data fetch)", {}},
      {"data.limit", V::Int, "0", "use only the first N training examples (0: all)", {}},
      {"data.valid_fraction", V::Float, "0.1", "fashion-rows: share of the training set held out for validation", {}},
      {"data.test_fraction", V::Float, "0.2", "spam/text: share held out for test (by hash) when no test file is given", {}},
      {"data.format", V::String, "tsv", "text: tsv (label<TAB>text lines), jsonl (text/label fields) or dirs "
       "(a folder per label)", {"tsv", "jsonl", "dirs"}},
      {"data.train", V::String, "", "text: training documents (file or folder)", {}},
      {"data.valid", V::String, "", "text: validation documents; empty: split from data.train by hash", {}},
      {"data.test", V::String, "", "text: test documents; empty: split from data.train by hash", {}},
      {"data.tokenizer", V::String, "word",
       "spam/text: word, char, or sentencepiece (a unigram model of data.vocab_size pieces trained on the training "
       "documents)",
       {"word", "char", "sentencepiece"}},
      {"data.max_tokens", V::Int, "400", "spam: words read from the start of each mail (headers included)", {}},
      {"data.min_count", V::Int, "2", "spam: a word enters the vocabulary after this many training mails' uses", {}},
      {"data.vocab_size", V::Int, "30000", "spam: vocabulary entries at most, <pad> and <unk> included", {}},
      {"data.window", V::Int, "56", "births: days of history the model reads", {}},
      {"data.horizon", V::Int, "7", "births: days forecast", {}},
      {"data.stride", V::Int, "1", "births: days between training windows", {}},
      {"data.test_from_year", V::Int, "1987", "births: forecasts of this year on are the test set", {}},
      {"model.cell", V::String, "gru", "recurrent cell", {"lstm", "gru", "rnn"}},
      {"model.hidden", V::Int, "128", "hidden units per direction", {}},
      {"model.layers", V::Int, "1", "stacked recurrent layers", {}},
      {"model.bidirectional", V::Bool, "false", "read the sequence both ways", {}},
      {"model.pooling", V::String, "last", "how the outputs over time become one vector",
       {"last", "mean", "max", "attention"}},
      {"model.input_proj", V::Int, "0", "linear projection of each input row first (0: none)", {}},
      {"model.embed", V::Int, "64", "spam: word embedding width", {}},
      {"model.mlp", V::IntList, "", "widths of the ReLU layers of the classifier head", {}},
      {"model.dropout", V::Float, "0.0", "dropout on the pooled vector and the head", {}},
      {"model.rnn_dropout", V::Float, "0.0", "dropout between stacked recurrent layers", {}},
      {"train.epochs", V::Int, "10", "passes over the training set", {}},
      {"train.max_tokens", V::Int, "0", "token budget per batch (0: none)", {}},
      {"train.weight_decay", V::Float, "0.0", "weight decay (L2 for adam/sgd, decoupled for adamw)", {}},
      {"train.warmup_steps", V::Int, "0", "linear warmup steps", {}},
      {"train.patience", V::Int, "3", "epochs without validation improvement before stopping", {}},
      {"train.metric", V::String, "auto",
       "validation metric for early stopping and the best checkpoint: auto (accuracy, or MAE for forecasts), "
       "accuracy, f1, loss or mae",
       {"auto", "accuracy", "f1", "loss", "mae"}},
      {"train.log_every", V::Int, "100", "steps between progress lines (non-terminal stderr) and step rows in metrics.jsonl", {}},
      {"train.skip_nonfinite", V::Bool, "false", "skip a batch whose loss is NaN/Inf instead of stopping", {}},
  };
  for (ConfigKey& k : common_train_keys()) keys.push_back(std::move(k));
  return keys;
}

ops::CellType cell_of(const std::string& s) {
  return s == "lstm" ? ops::CellType::LSTM : s == "gru" ? ops::CellType::GRU : ops::CellType::RNN_TANH;
}

models::Pooling pooling_of(const std::string& s) {
  return s == "mean"        ? models::Pooling::Mean
         : s == "max"       ? models::Pooling::Max
         : s == "attention" ? models::Pooling::Attention
                            : models::Pooling::Last;
}

struct TaskData {
  data::SequenceDataset train, valid, test;
  bool regression = false;
  data::Vocabulary vocab;        // spam/text with word or char tokens
  std::shared_ptr<data::SubwordModel> subwords;  // spam/text with sentencepiece
  int64_t vocab_size() const { return subwords ? subwords->size() : vocab.size(); }
  data::PixelNorm norm;        // fashion-rows
  data::SeriesNorm series_norm;  // births
  // births: per example, the actual values and the seasonal-naive forecasts (value a week earlier),
  // and the level (mean z of the observed days) taken out of its inputs and targets.
  std::vector<std::vector<double>> valid_actual, valid_naive, test_actual, test_naive;
  std::vector<double> valid_level, test_level;
  nlohmann::json meta() const {
    if (regression) return nlohmann::json{{"series_norm", {series_norm.mean, series_norm.std}}};
    if (subwords)
      return nlohmann::json{{"sentencepiece", data::base64_encode(subwords->serialized())},
                            {"classes", train.class_names}};
    if (vocab.size() > 0) return nlohmann::json{{"vocab", vocab.words()}, {"classes", train.class_names}};
    return nlohmann::json{{"pixel_norm", {norm.mean, norm.std}}};
  }
};

// Each window is expressed relative to its own level (the mean z of its observed days): the
// births level drifts upwards over the years, and a model that learned absolute levels on
// 1969-1985 would have to extrapolate on 1987-1988. Returns each window's level.
std::vector<double> remove_levels(data::SequenceDataset& ds, int64_t window) {
  std::vector<double> levels;
  for (auto& ex : ds.examples) {
    Tensor f = ex.features.clone();
    double level = 0;
    for (int64_t r = 0; r < window; ++r) level += f.f32()[r * f.dim(1)];
    level /= static_cast<double>(window);
    for (int64_t r = 0; r < window; ++r) f.f32()[r * f.dim(1)] -= static_cast<float>(level);
    Tensor tg = ex.target.clone();
    for (int64_t k = 0; k < tg.numel(); ++k) tg.f32()[k] -= static_cast<float>(level);
    ex.features = f, ex.target = tg;
    levels.push_back(level);
  }
  return levels;
}

// Births: train on forecasts before the validation year, validate on the year before
// data.test_from_year, test on the rest; the normalisation sees the training days only.
TaskData load_births(const Config& c) {
  std::string dir = c.get_string("data.dir");
  if (dir.empty()) dir = data::fetch_dataset("births", data::default_cache_dir(), &std::cerr).path;
  const data::DailySeries s = data::read_daily_csv((fs::path(dir) / "data" / "data.csv").string(), "births");
  const int64_t year = c.get_int("data.test_from_year");
  const int64_t test_from = data::first_day_of_year(s, static_cast<int32_t>(year));
  const int64_t valid_from = data::first_day_of_year(s, static_cast<int32_t>(year - 1));
  const int64_t n = static_cast<int64_t>(s.value.size());
  data::WindowOptions w{c.get_int("data.window"), c.get_int("data.horizon"), c.get_int("data.stride")};
  TaskData t;
  t.regression = true;
  t.series_norm = data::fit_norm(s, 0, valid_from - 1);
  t.train = data::make_windows(s, w, t.series_norm, 0, valid_from - 1).data;
  data::WindowOptions every_day = w;
  every_day.stride = 1;
  data::SeriesWindows v = data::make_windows(s, every_day, t.series_norm, valid_from, test_from - 1);
  data::SeriesWindows te = data::make_windows(s, every_day, t.series_norm, test_from, n - 1);
  t.valid = v.data, t.valid_actual = v.actual, t.valid_naive = v.naive;
  t.test = te.data, t.test_actual = te.actual, t.test_naive = te.naive;
  remove_levels(t.train, w.window);
  t.valid_level = remove_levels(t.valid, w.window);
  t.test_level = remove_levels(t.test, w.window);
  return t;
}

// A document as subword ids (L, 1); an empty one is a single <unk>.
data::Example subword_example(const data::SubwordModel& m, const std::string& text, int64_t max_tokens, int64_t label) {
  std::vector<int64_t> ids = m.encode(text, max_tokens);
  if (ids.empty()) ids.push_back(data::Vocabulary::kUnk);
  data::Example e;
  e.features = Tensor::from_i64({static_cast<int64_t>(ids.size()), 1}, ids);
  e.label = label;
  return e;
}

// Documents in train/valid/test (index 0, 1, 2) -> token-id datasets; the vocabulary and the
// label set come from the training documents only, and a label only seen in valid/test is an
// error naming the document.
TaskData text_task(const Config& c, const std::vector<data::LabeledText> (&docs)[3]) {
  const int64_t max_tokens = c.get_int("data.max_tokens");
  const std::string tokenizer = c.get_string("data.tokenizer");
  const data::LabelMap labels(docs[0]);
  TaskData t;
  data::SequenceDataset* sets[3] = {&t.train, &t.valid, &t.test};
  for (int k = 0; k < 3; ++k) {
    sets[k]->num_classes = static_cast<int64_t>(labels.names().size());
    sets[k]->class_names = labels.names();
  }
  if (tokenizer == "sentencepiece") {
    std::vector<std::string> texts;
    for (const auto& d : docs[0]) texts.push_back(d.text);
    t.subwords = std::make_shared<data::SubwordModel>(data::SubwordModel::train(texts, c.get_int("data.vocab_size")));
    for (int k = 0; k < 3; ++k)
      for (const auto& d : docs[k]) sets[k]->push_back(subword_example(*t.subwords, d.text, max_tokens, labels.id(d)));
    return t;
  }
  std::vector<std::vector<std::string>> tokens[3];
  for (int k = 0; k < 3; ++k)
    for (const auto& d : docs[k])
      tokens[k].push_back(tokenizer == "char" ? data::char_tokens(d.text, max_tokens)
                                              : data::word_tokens(d.text, max_tokens));
  t.vocab.build(tokens[0], c.get_int("data.min_count"), c.get_int("data.vocab_size"));
  for (int k = 0; k < 3; ++k)
    for (size_t i = 0; i < tokens[k].size(); ++i)
      sets[k]->push_back(data::text_example(tokens[k][i], t.vocab, labels.id(docs[k][i])));
  return t;
}

int split_index(const Config& c, const std::string& key) {
  const data::Split sp = data::split_of(key, c.get_float("data.valid_fraction"), c.get_float("data.test_fraction"));
  return sp == data::Split::Train ? 0 : sp == data::Split::Valid ? 1 : 2;
}

// Spam: mails split by a hash of their file (group/id), so a mail never moves between splits.
TaskData load_spam(const Config& c) {
  std::string dir = c.get_string("data.dir");
  if (dir.empty()) dir = data::fetch_dataset("spam", data::default_cache_dir(), &std::cerr).path;
  std::vector<data::LabeledText> docs[3];
  for (auto& m : data::read_spam_assassin(dir))
    docs[split_index(c, m.group + "/" + m.id)].push_back(
        {m.group.rfind("spam", 0) == 0 ? "spam" : "ham", std::move(m.text), m.group + "/" + m.id});
  return text_task(c, docs);
}

// Your own labelled documents; valid/test files when given, else hash splits of the training file.
TaskData load_text(const Config& c) {
  const std::string format = c.get_string("data.format");
  auto read = [&](const std::string& path) {
    return format == "tsv" ? data::read_labeled_tsv(path)
           : format == "jsonl" ? data::read_labeled_jsonl(path)
                               : data::read_labeled_dirs(path);
  };
  RECUR_CHECK(!c.get_string("data.train").empty(), "task text: set data.train (a {} file or folder)", format);
  std::vector<data::LabeledText> docs[3];
  for (auto& d : read(c.get_string("data.train"))) {
    const int k = split_index(c, d.where);
    const bool own_file = (k == 1 && !c.get_string("data.valid").empty()) || (k == 2 && !c.get_string("data.test").empty());
    docs[own_file ? 0 : k].push_back(std::move(d));
  }
  if (!c.get_string("data.valid").empty()) docs[1] = read(c.get_string("data.valid"));
  if (!c.get_string("data.test").empty()) docs[2] = read(c.get_string("data.test"));
  return text_task(c, docs);
}

TaskData load_task(const Config& c, bool need_train) {
  if (c.get_string("task") == "births") return load_births(c);
  if (c.get_string("task") == "spam") return load_spam(c);
  if (c.get_string("task") == "text") return load_text(c);
  std::string dir = c.get_string("data.dir");
  if (dir.empty()) dir = data::fetch_dataset("fashion-mnist", data::default_cache_dir(), &std::cerr).path;
  TaskData t;
  data::SequenceDataset all = data::load_fashion_mnist_rows(dir, "train", c.get_int("data.limit"));
  const double vf = c.get_float("data.valid_fraction");
  t.train = all;
  t.train.examples.clear();
  t.valid = t.train;
  for (size_t i = 0; i < all.examples.size(); ++i) {
    const bool valid = data::split_of("fashion-train-" + std::to_string(i), vf, 0.0) == data::Split::Valid;
    (valid ? t.valid : t.train).examples.push_back(all.examples[i]);
  }
  t.norm = data::fit_pixel_norm(t.train);
  data::apply_pixel_norm(t.train, t.norm);
  data::apply_pixel_norm(t.valid, t.norm);
  if (!need_train) t.train.examples.clear();
  t.test = data::load_fashion_mnist_rows(dir, "test", 0);
  data::apply_pixel_norm(t.test, t.norm);
  return t;
}

models::Seq2VecOptions model_options(const Config& c, const data::SequenceDataset& ds, bool regression,
                                     int64_t vocab_size = 0) {
  models::Seq2VecOptions o;
  if (vocab_size > 0) {
    o.vocab_size = vocab_size;
    o.embed_dim = c.get_int("model.embed");
  } else {
    o.input_size = ds.feature_dim;
  }
  o.input_proj = c.get_int("model.input_proj");
  o.cell = cell_of(c.get_string("model.cell"));
  o.hidden = c.get_int("model.hidden");
  o.layers = c.get_int("model.layers");
  o.bidirectional = c.get_bool("model.bidirectional");
  o.rnn_dropout = static_cast<float>(c.get_float("model.rnn_dropout"));
  o.pooling = pooling_of(c.get_string("model.pooling"));
  o.mlp_hidden = c.get_int_list("model.mlp");
  o.dropout = static_cast<float>(c.get_float("model.dropout"));
  o.outputs = regression ? c.get_int("data.horizon") : ds.num_classes;
  return o;
}

struct Metrics {
  bool regression = false;
  double loss = 0, accuracy = 0, mae = 0, naive_mae = 0;
  double f1 = -1;  // F1 of class 1 for two-class tasks (spam), -1 otherwise
  int64_t count = 0;
  /// The early-stopping score of `metric` (see train.metric); higher is better.
  double score(const std::string& metric) const {
    const std::string m = metric == "auto" ? (regression ? "mae" : "accuracy") : metric;
    if (m == "loss") return -loss;
    if (m == "mae") {
      RECUR_CHECK(regression, "train.metric: mae needs a forecasting task");
      return -mae;
    }
    RECUR_CHECK(!regression, "train.metric: {} needs a classification task", m);
    if (m == "f1") {
      RECUR_CHECK(f1 >= 0, "train.metric: f1 needs a two-class task");
      return f1;
    }
    return accuracy;
  }
  std::string summary() const {
    if (!regression)
      return fmt::format("accuracy {:.2f}%{} loss {:.4f}", 100 * accuracy,
                         f1 >= 0 ? fmt::format(" F1(class 1) {:.4f}", f1) : std::string(), loss);
    return fmt::format("MAE {:.1f} (seasonal naive {:.1f}: {:+.1f}%) loss {:.4f}", mae, naive_mae,
                       100 * (mae / naive_mae - 1), loss);
  }
};

// Metrics over a split; `actual`/`naive` are the births forecasts' truth and baseline per example.
Metrics evaluate(models::Seq2Vec& model, const data::SequenceDataset& ds, int64_t batch, const TaskData& t,
                 const std::vector<std::vector<double>>* actual = nullptr,
                 const std::vector<std::vector<double>>* naive = nullptr, const std::vector<double>* level = nullptr) {
  model.train(false);
  Metrics m;
  m.regression = t.regression;
  data::BatchingOptions bo;
  bo.max_batch = batch;
  bo.shuffle = false;
  bo.bucket_by_length = false;
  int64_t right = 0, tp = 0, fp = 0, fn = 0;
  double loss_sum = 0, err = 0, naive_err = 0, points = 0;
  for (const auto& idx : data::make_batches(ds, bo, 0)) {
    data::Batch b = data::collate(ds, idx);
    Tape tape;
    NoGrad ng(tape);
    const Device dev = model.device();
    Var out = model.forward(tape, b.x.to(dev), b.layout, 0);
    Var loss = t.regression ? mse(tape, out, b.targets.to(dev)) : cross_entropy(tape, out, b.labels.to(dev));
    const int64_t B = b.layout.batch(), C = out.value().dim(1);
    loss_sum += loss.value().item() * static_cast<double>(B);
    const Tensor host_out = out.value().cpu();
    const float* l = host_out.f32();
    for (int64_t r = 0; r < B; ++r) {
      if (t.regression) {
        const size_t e = static_cast<size_t>(b.indices[static_cast<size_t>(r)]);
        const auto& act = (*actual)[e];
        const auto& nv = (*naive)[e];
        for (int64_t k = 0; k < C; ++k) {
          const double pred = (l[r * C + k] + (*level)[e]) * t.series_norm.std + t.series_norm.mean;
          err += std::fabs(pred - act[static_cast<size_t>(k)]);
          naive_err += std::fabs(nv[static_cast<size_t>(k)] - act[static_cast<size_t>(k)]);
          points += 1;
        }
        continue;
      }
      int64_t best = 0;
      for (int64_t k = 1; k < C; ++k)
        if (l[r * C + k] > l[r * C + best]) best = k;
      const int64_t truth = b.labels.data<int64_t>()[r];
      right += best == truth;
      tp += best == 1 && truth == 1, fp += best == 1 && truth != 1, fn += best != 1 && truth == 1;
    }
    m.count += B;
  }
  model.train(true);
  if (m.count) {
    m.loss = loss_sum / static_cast<double>(m.count);
    m.accuracy = static_cast<double>(right) / static_cast<double>(m.count);
  }
  if (points > 0) m.mae = err / points, m.naive_mae = naive_err / points;
  if (!t.regression && ds.num_classes == 2)
    m.f1 = tp ? 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn) : 0.0;
  return m;
}

Metrics evaluate_split(models::Seq2Vec& model, const TaskData& t, bool test) {
  return test ? evaluate(model, t.test, 256, t, &t.test_actual, &t.test_naive, &t.test_level)
              : evaluate(model, t.valid, 256, t, &t.valid_actual, &t.valid_naive, &t.valid_level);
}

struct TrainSettings {
  std::string config_path;
  std::vector<std::string> sets;
  std::string resume;
  std::string out = "out/train";
  std::string device;
  std::string devices;
  int threads = 0;
  int64_t seed = -1;
  bool print_config = false;
};

Config resolve_config(const std::string& path, const std::vector<std::string>& sets) {
  return load_config(train_schema(), path, sets);
}

void run_train(const TrainSettings& s) {
  Config c = resolve_config(s.config_path, s.sets);
  if (!apply_train_flags(c, s.seed, s.threads, s.device, s.print_config)) return;
  // Data parallelism (docs/DISTRIBUTED.md): token-balanced shards of every global batch, gradients
  // averaged by example count; one process is a world of one. Only rank 0 logs and writes.
  TrainProcess proc = start_training_process(c);
  const Device dev = proc.device;
  dist::Communicator& comm = *proc.comm;
  const bool lead = proc.lead;
  std::ostream& log = *proc.log;
  TaskData t = load_task(c, true);
  RECUR_CHECK(!t.train.examples.empty() && !t.valid.examples.empty(),
              "train: {} training and {} validation examples; need at least one of each", t.train.examples.size(),
              t.valid.examples.size());
  const uint64_t seed = static_cast<uint64_t>(c.get_int("train.seed"));
  Rng rng(seed);
  models::Seq2Vec model(model_options(c, t.train, t.regression, t.vocab_size()), rng);
  model.to(dev);  // before the optimizer: its slots live beside the parameters
  auto params = model.named_parameters();
  auto opt = make_optimizer(c, params);
  auto ema = make_ema(c, params);
  const int64_t epochs = c.get_int("train.epochs"), accumulate = c.get_int("train.accumulate");
  RECUR_CHECK(accumulate >= 1 && c.get_int("train.batch") >= 1, "train: train.batch ({}) and train.accumulate ({}) must be at least 1",
              c.get_int("train.batch"), accumulate);
  const int64_t batch = c.get_int("train.batch") * accumulate;  // the global batch of one step
  data::BatchingOptions bo;
  bo.max_batch = batch;
  bo.max_tokens = c.get_int("train.max_tokens") * accumulate;
  bo.seed = seed;
  const int64_t steps_per_epoch = static_cast<int64_t>(data::make_batches(t.train, bo, 0).size());
  const train::LrScheduleOptions so = schedule_options(c, steps_per_epoch, false);

  if (lead) fs::create_directories(s.out);
  int64_t start_epoch = 1, step = 0, bad_epochs = 0;
  double best = -1e300;
  auto meta = [&](int64_t epoch) {
    nlohmann::json m = t.meta();
    m.update({{"config", c.to_json()}, {"epoch", epoch}, {"step", step}, {"best_score", best}});
    return m;
  };
  if (!s.resume.empty()) {
    nlohmann::json m = train::load_checkpoint(s.resume, model, opt.get(), ema.get());
    start_epoch = m.at("epoch").get<int64_t>() + 1;
    step = m.at("step").get<int64_t>();
    best = m.at("best_score").get<double>();
    log << fmt::format("resumed from {} after epoch {} (step {})\n", s.resume, start_epoch - 1, step);
  }
  dist::broadcast_parameters(params, comm);
  if (ema && s.resume.empty()) ema = make_ema(c, params);  // start from rank 0's initial weights
  DataParallelStep stepper(comm, *opt, params, accumulate, c.get_float("train.clip"),
                           c.get_string("train.balance") == "speed");
  std::ofstream metrics;
  if (lead) metrics.open(fs::path(s.out) / "metrics.jsonl", std::ios::app);
  SigintScope sigint;
  const bool tty = isatty(STDERR_FILENO);
  const int64_t log_every = c.get_int("train.log_every");
  log << fmt::format("train: {} train / {} valid / {} test examples, {} parameters, {} steps per epoch{}\n",
                     t.train.examples.size(), t.valid.examples.size(), t.test.examples.size(), model.num_parameters(),
                     steps_per_epoch,
                     comm.size() > 1 ? fmt::format(" over {} ranks ({})", comm.size(), comm.name()) : "");
  const auto t_start = Clock::now();
  for (int64_t epoch = start_epoch; epoch <= epochs; ++epoch) {
    const auto t_epoch = Clock::now();
    double loss_sum = 0;
    int64_t tokens = 0, seen = 0;
    auto batches = data::make_batches(t.train, bo, static_cast<uint64_t>(epoch));
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      // Sharded by tokens (the work); the loss terms are examples.
      const std::vector<int64_t>& global = batches[bi];
      std::vector<dist::ShardItem> items;
      for (size_t k = 0; k < global.size(); ++k) items.push_back({static_cast<int64_t>(k), t.train.length(global[k])});
      const StepTotals st = stepper.run(
          items, [](int64_t) { return int64_t{1}; },
          [&](Tape& tape, const std::vector<int64_t>& micro, uint64_t sseed) {
            std::vector<int64_t> idx;
            for (int64_t i : micro) idx.push_back(global[static_cast<size_t>(i)]);
            data::Batch b = data::collate(t.train, idx);
            Var out = model.forward(tape, b.x.to(dev), b.layout, sseed);
            return t.regression ? mse(tape, out, b.targets.to(dev)) : cross_entropy(tape, out, b.labels.to(dev));
          },
          seed ^ static_cast<uint64_t>(step), 0.0);
      if (!st.finite()) {
        RECUR_CHECK(c.get_bool("train.skip_nonfinite"),
                    "train: the loss became {} at epoch {} step {}; lower train.lr, set train.clip, or set "
                    "train.skip_nonfinite: true",
                    st.loss, epoch, step);
        log << fmt::format("\nskipping batch {} of epoch {}: loss {}\n", bi + 1, epoch, st.loss);
        continue;
      }
      stepper.apply(train::lr_at(so, step));
      if (ema) ema->update();
      ++step;
      loss_sum += st.loss;
      ++seen;
      tokens += static_cast<int64_t>(st.work);
      const double secs = seconds_since(t_epoch);
      const bool log_step = log_every > 0 && step % log_every == 0;
      if (tty || log_step) {
        const double eta = secs / static_cast<double>(bi + 1) * static_cast<double>(batches.size() - bi - 1);
        // On a terminal the line redraws in place with a bar; elsewhere it is a plain log line.
        const int filled = static_cast<int>(20 * (bi + 1) / batches.size());
        const std::string bar = tty ? "[" + std::string(static_cast<size_t>(filled), '#') +
                                          std::string(static_cast<size_t>(20 - filled), '.') + "] "
                                    : std::string();
        log << fmt::format("{}{}epoch {} step {}/{} loss {:.4f} {:.0f} tok/s ETA {:.0f}s{}", tty ? "\r" : "", bar,
                                 epoch, bi + 1, batches.size(), loss_sum / static_cast<double>(seen),
                                 static_cast<double>(tokens) / secs, eta, tty ? "   " : "\n");
      }
      if (log_step && lead)
        metrics << nlohmann::json{{"kind", "step"}, {"epoch", epoch}, {"step", step},
                                  {"train_loss", loss_sum / static_cast<double>(seen)}, {"lr", opt->lr()},
                                  {"tokens_per_s", static_cast<double>(tokens) / secs}}
                       .dump()
                << std::endl;
      if (st.stop) {
        // `last` stays the end of the previous epoch (what --resume continues exactly); the
        // interrupted state goes beside it.
        const std::string path = (fs::path(s.out) / "interrupted.safetensors").string();
        if (lead) train::save_checkpoint(path, model, opt.get(), meta(epoch), ema.get());
        log << fmt::format("\ninterrupted at epoch {} step {}: saved {}; resume with --resume {}\n", epoch, step,
                                 path, (fs::path(s.out) / "last.safetensors").string());
        throw Interrupted();
      }
    }
    const double train_secs = seconds_since(t_epoch);
    // Rank 0 validates; the others take its score, so that every rank stops at the same epoch.
    // With a moving average the live weights are validated too, for the log.
    Metrics v, live;
    if (ema && lead) live = evaluate_split(model, t, false);
    if (ema) ema->swap();  // validate, and keep as best, the averaged weights
    if (lead) v = evaluate_split(model, t, false);
    const bool improved = track_validation(comm, lead, lead ? v.score(c.get_string("train.metric")) : 0.0, best, bad_epochs);
    const double secs = seconds_since(t_epoch);
    if (tty) log << "\n";
    log << fmt::format("epoch {} train loss {:.4f} valid {}{}{} ({:.0f} s)\n", epoch,
                       loss_sum / static_cast<double>(seen), v.summary(), improved ? " *" : "",
                       ema ? "; live weights: " + live.summary() : std::string(), secs);
    const DataParallelStep::Times times = stepper.take_times();
    nlohmann::json row{{"kind", "epoch"}, {"epoch", epoch}, {"step", step}, {"train_loss", loss_sum / static_cast<double>(seen)},
                       {"valid_loss", v.loss}, {"lr", opt->lr()}, {"seconds", secs},
                       {"tokens_per_s", static_cast<double>(tokens) / train_secs},
                       {"time_split", times.json()}, {"rank_compute_s", times.rank_compute}};
    if (t.regression) row.update({{"valid_mae", v.mae}, {"valid_naive_mae", v.naive_mae}});
    else row["valid_accuracy"] = v.accuracy;
    if (v.f1 >= 0) row["valid_f1"] = v.f1;
    if (ema) row["valid_live"] = {{"loss", live.loss}, {"score", live.score(c.get_string("train.metric"))}};
    if (lead) {
      metrics << row.dump() << std::endl;
      if (improved) train::save_checkpoint((fs::path(s.out) / "best.safetensors").string(), model, nullptr, meta(epoch));
    }
    if (ema) ema->swap();  // back to the live weights, which training continues from
    if (lead)
      train::save_checkpoint((fs::path(s.out) / "last.safetensors").string(), model, opt.get(), meta(epoch), ema.get());
    if (bad_epochs >= c.get_int("train.patience")) {
      log << fmt::format("early stop: no validation improvement for {} epochs\n", bad_epochs);
      break;
    }
  }
  comm.barrier();  // checkpoints written before anyone reads them
  if (!lead) return;
  models::Seq2Vec best_model(model_options(c, t.train, t.regression, t.vocab_size()), rng);
  train::load_checkpoint((fs::path(s.out) / "best.safetensors").string(), best_model, nullptr);
  best_model.to(dev);
  Metrics test = evaluate_split(best_model, t, true);
  std::cout << fmt::format("test {} ({} examples); best valid score {:.4f}; {:.0f} s\n", test.summary(), test.count, best,
                           seconds_since(t_start));
}

struct EvalSettings {
  std::string config_path, checkpoint, split = "test", device;
  std::vector<std::string> sets;
  int64_t beam = 0;
  bool json = false;
  std::string output;
};

void run_eval(const EvalSettings& s) {
  Config c = resolve_config(s.config_path, s.sets);
  if (!s.device.empty()) c.set("train.device=" + s.device);
  set_num_threads(static_cast<int>(c.get_int("train.threads")));
  const Device dev = select_device(c.get_string("train.device"), c.get_bool("train.allow_tf32"));
  TaskData t = load_task(c, false);
  const data::SequenceDataset& ds = s.split == "valid" ? t.valid : t.test;
  Rng rng(0);
  models::Seq2Vec model(model_options(c, ds, t.regression, t.vocab_size()), rng);
  train::load_checkpoint(s.checkpoint, model, nullptr);
  model.to(dev);
  Metrics m = evaluate_split(model, t, s.split == "test");
  if (s.json) {
    nlohmann::json j{{"split", s.split}, {"loss", m.loss}, {"examples", m.count}};
    if (t.regression) j.update({{"mae", m.mae}, {"naive_mae", m.naive_mae}});
    else j["accuracy"] = m.accuracy;
    if (m.f1 >= 0) j["f1"] = m.f1;
    std::cout << j.dump() << std::endl;
  } else {
    std::cout << fmt::format("{}: {} ({} examples)\n", s.split, m.summary(), m.count);
  }
}

struct PredictSettings {
  std::string checkpoint, input = "-", device = "cpu";
  bool json = false;
  int threads = 1;
};

// One image per input line: 784 pixel values (0-255), separated by spaces or commas.
Tensor parse_image_line(const std::string& line, const std::string& where, const data::PixelNorm& norm) {
  Tensor img({28, 28});
  int64_t n = 0;
  const char* p = line.c_str();
  while (*p) {
    while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\r') ++p;
    if (!*p) break;
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    RECUR_CHECK(end != p, "{}: not a number at '{}'", where, std::string(p).substr(0, 12));
    RECUR_CHECK(n < 784, "{}: more than 784 pixel values", where);
    RECUR_CHECK(v >= 0 && v <= 255, "{}: pixel {} is {}, outside 0..255", where, n, v);
    img.f32()[n++] = static_cast<float>((v / 255.0 - norm.mean) / norm.std);
    p = end;
  }
  RECUR_CHECK(n == 784, "{}: {} pixel values, expected 784 (28x28)", where, n);
  return img;
}

// Calls fn(line, line_no, "file:line") for each non-blank line of --input (a file, or - for stdin),
// as the lines arrive, so output streams.
void for_each_input_line(const PredictSettings& s,
                         const std::function<void(const std::string&, int64_t, const std::string&)>& fn) {
  std::ifstream file;
  if (s.input != "-") {
    file.open(s.input);
    RECUR_CHECK(file.good(), "predict: cannot open input '{}'", s.input);
  }
  std::istream& in = s.input == "-" ? std::cin : file;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no)
    if (line.find_first_not_of(" \t\r") != std::string::npos)
      fn(line, line_no, fmt::format("{}:{}", s.input == "-" ? "stdin" : s.input, line_no));
}

// Births: each input line is "YYYY-MM-DD v1 ... vW", the first day of the window and the W
// observed values; prints the forecast of the next `horizon` days.
void predict_forecast(const PredictSettings& s, const nlohmann::json& meta) {
  Config c(train_schema());
  c.load_json(meta.at("config"));
  const data::SeriesNorm norm{meta.at("series_norm").at(0).get<double>(), meta.at("series_norm").at(1).get<double>()};
  const int64_t window = c.get_int("data.window"), horizon = c.get_int("data.horizon");
  data::SequenceDataset shape;
  shape.feature_dim = data::kSeriesFeatureDim;
  Rng rng(0);
  models::Seq2Vec model(model_options(c, shape, true), rng);
  train::load_checkpoint(s.checkpoint, model, nullptr);
  model.to(select_device(s.device, false));
  model.train(false);
  for_each_input_line(s, [&](const std::string& line, int64_t line_no, const std::string& where) {
    std::stringstream ss(line);
    std::string date;
    ss >> date;
    int y = 0, m = 0, d = 0;
    RECUR_CHECK(std::sscanf(date.c_str(), "%d-%d-%d", &y, &m, &d) == 3,
                "{}: expected 'YYYY-MM-DD v1 ... v{}' (the window's first day, then its values), got '{}'", where,
                window, date);
    std::vector<double> values;
    double v = 0;
    while (ss >> v) values.push_back(v);
    RECUR_CHECK(ss.eof(), "{}: a value is not a number", where);
    RECUR_CHECK(static_cast<int64_t>(values.size()) == window, "{}: {} values, the model reads a window of {}", where,
                values.size(), window);
    values.resize(static_cast<size_t>(window + horizon), 0.0);  // the forecast days: calendar only
    const data::DailySeries series = data::consecutive_days(y, m, d, values);
    data::SequenceDataset one =
        data::make_windows(series, {window, horizon, 1}, norm, window, window + horizon - 1).data;
    const double level = remove_levels(one, window).at(0);
    PackedBatch pb = PackedBatch::from_lengths({one[0].features.dim(0)});
    Tape tape;
    NoGrad ng(tape);
    Var out = model.forward(tape, one[0].features.to(model.device()), pb, 0);
    const Tensor host_out = out.value().cpu();
    std::vector<double> forecast;
    for (int64_t k = 0; k < horizon; ++k) forecast.push_back((host_out.f32()[k] + level) * norm.std + norm.mean);
    if (s.json) {
      std::cout << nlohmann::json{{"line", line_no}, {"forecast", forecast}}.dump() << std::endl;
    } else {
      for (size_t k = 0; k < forecast.size(); ++k) std::cout << (k ? "\t" : "") << fmt::format("{:.1f}", forecast[k]);
      std::cout << std::endl;
    }
  });
}

void run_predict(const PredictSettings& s) {
  if (is_video_checkpoint(s.checkpoint)) {
    predict_video({s.checkpoint, s.input, s.device, s.json, s.threads});
    return;
  }
  set_num_threads(s.threads);
  const nlohmann::json meta = train::read_checkpoint_config(s.checkpoint);
  if (meta.contains("series_norm")) {
    predict_forecast(s, meta);
    return;
  }
  RECUR_CHECK(meta.contains("config") &&
                  (meta.contains("pixel_norm") || meta.contains("vocab") || meta.contains("sentencepiece")),
              "predict: checkpoint '{}' was not written by recur train for a classification task (no config with "
              "pixel_norm or vocab in its metadata)",
              s.checkpoint);
  Config c(train_schema());
  c.load_json(meta.at("config"));
  const bool text = c.get_string("task") == "spam" || c.get_string("task") == "text";
  RECUR_CHECK(text || c.get_string("task") == "fashion-rows",
              "predict: checkpoint '{}' is for task '{}', which predict does not serve", s.checkpoint,
              c.get_string("task"));
  data::PixelNorm norm;
  data::Vocabulary vocab;
  std::shared_ptr<data::SubwordModel> subwords;
  data::SequenceDataset shape;
  std::vector<std::string> names;
  if (text) {
    if (meta.contains("sentencepiece"))
      subwords = std::make_shared<data::SubwordModel>(
          data::SubwordModel::from_serialized(data::base64_decode(meta.at("sentencepiece").get<std::string>())));
    else
      vocab.assign(meta.at("vocab").get<std::vector<std::string>>());
    shape.feature_dim = 1;
    names = meta.at("classes").get<std::vector<std::string>>();
  } else {
    norm = {meta.at("pixel_norm").at(0).get<float>(), meta.at("pixel_norm").at(1).get<float>()};
    shape.feature_dim = 28;
    names = data::fashion_mnist_class_names();
  }
  shape.num_classes = static_cast<int64_t>(names.size());
  Rng rng(0);
  models::Seq2Vec model(model_options(c, shape, false, subwords ? subwords->size() : vocab.size()), rng);
  train::load_checkpoint(s.checkpoint, model, nullptr);
  model.to(select_device(s.device, false));
  model.train(false);
  for_each_input_line(s, [&](const std::string& line, int64_t line_no, const std::string& where) {
    // One input per line: a mail's text (spam), or 784 pixel values (fashion-rows).
    const int64_t max_tokens = c.get_int("data.max_tokens");
    Tensor x = subwords ? subword_example(*subwords, line, max_tokens, 0).features
               : text   ? data::text_example(c.get_string("data.tokenizer") == "char" ? data::char_tokens(line, max_tokens)
                                                                                    : data::word_tokens(line, max_tokens),
                                             vocab, 0)
                            .features
                    : parse_image_line(line, where, norm);
    PackedBatch pb = PackedBatch::from_lengths({x.dim(0)});
    Tape tape;
    NoGrad ng(tape);
    Var logits = model.forward(tape, x.to(model.device()), pb, 0);
    const Tensor host_logits = logits.value().cpu();
    const float* l = host_logits.f32();
    const int64_t C = logits.value().dim(1);
    int64_t best = 0;
    double mx = l[0], z = 0;
    for (int64_t k = 1; k < C; ++k) {
      if (l[k] > l[best]) best = k;
      mx = std::max(mx, static_cast<double>(l[k]));
    }
    for (int64_t k = 0; k < C; ++k) z += std::exp(l[k] - mx);
    const double prob = std::exp(l[best] - mx) / z;
    if (s.json)
      std::cout << nlohmann::json{{"line", line_no}, {"label", names[static_cast<size_t>(best)]}, {"class", best},
                                  {"probability", prob}}
                       .dump()
                << std::endl;
    else
      std::cout << names[static_cast<size_t>(best)] << "\t" << fmt::format("{:.4f}", prob) << std::endl;
  });
}

}  // namespace

void add_train(CLI::App& app) {
  auto s = std::make_shared<TrainSettings>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model from a YAML config");
  cmd->add_option("config", s->config_path, "YAML config")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", s->sets, "Override a config key: key=value (repeatable)");
  cmd->add_option("--resume", s->resume, "Continue from a last.safetensors checkpoint")->check(CLI::ExistingFile);
  cmd->add_option("--out", s->out, "Output folder (checkpoints, metrics.jsonl)");
  cmd->add_option("--threads", s->threads, "Threads (overrides train.threads)")->check(CLI::PositiveNumber);
  cmd->add_option("--device", s->device, "cpu | cuda | cuda:N (overrides train.device)");
  cmd->add_option("--devices", s->devices,
                  "Data parallelism in one process: one replica per listed device, as threads, e.g. cuda:0,cuda:1 "
                  "or cpu,cpu (under mpirun: local rank i trains on the i-th device)");
  cmd->add_option("--seed", s->seed, "Seed (overrides train.seed)");
  cmd->add_flag("--print-config", s->print_config, "Print the resolved config with a line of doc per key and exit");
  cmd->callback([s] {
    auto task = [s] {
      const Seq2SeqTrainArgs a{s->config_path, s->sets, s->resume, s->out, s->device, s->threads, s->seed, s->print_config};
      if (is_video_config(s->config_path, s->sets)) train_video(a);
      else if (is_vec2seq_config(s->config_path, s->sets)) train_vec2seq(a);
      else if (is_seq2seq_config(s->config_path, s->sets)) train_seq2seq(a);
      else run_train(*s);
    };
    try {
      if (s->devices.empty() || s->print_config) {
        task();
        return;
      }
      RECUR_CHECK(s->device.empty(), "train: give --device or --devices, not both (--device {}, --devices {})", s->device,
                  s->devices);
      // One process per rank (mpirun): this rank's device from the list; else one replica per device.
      run_on_devices(s->devices, s->device, task);
    } catch (const Interrupted&) {
      std::exit(130);
    }
  });

  auto e = std::make_shared<EvalSettings>();
  CLI::App* ev = app.add_subcommand("eval", "Evaluate a checkpoint");
  ev->add_option("config", e->config_path, "YAML config")->required()->check(CLI::ExistingFile);
  ev->add_option("--checkpoint", e->checkpoint, "Checkpoint")->required()->check(CLI::ExistingFile);
  ev->add_option("--split", e->split, "valid or test")->check(CLI::IsMember({"valid", "test"}));
  ev->add_option("--set", e->sets, "Override a config key: key=value (repeatable)");
  ev->add_flag("--json", e->json, "Print the metrics as JSON");
  ev->add_option("--device", e->device, "cpu | cuda | cuda:N (overrides train.device)");
  ev->add_option("--beam", e->beam, "Sequence-to-sequence: beam size (1: greedy; default: decode.beam)");
  ev->add_option("--output", e->output, "Sequence-to-sequence: write source<TAB>hypothesis<TAB>references per item to this file");
  ev->callback([e] {
    RECUR_CHECK(e->output.empty() || is_seq2seq_config(e->config_path, e->sets),
                "eval --output: '{}' is not a sequence-to-sequence config (g2p or translation)", e->config_path);
    if (is_video_config(e->config_path, e->sets))
      eval_video({e->config_path, e->checkpoint, e->split, e->device, e->sets, e->beam, e->json});
    else if (is_vec2seq_config(e->config_path, e->sets))
      eval_vec2seq({e->config_path, e->checkpoint, e->split, e->device, e->sets, e->beam, e->json});
    else if (is_seq2seq_config(e->config_path, e->sets))
      eval_seq2seq({e->config_path, e->checkpoint, e->split, e->device, e->sets, e->beam, e->json, e->output});
    else
      run_eval(*e);
  });

  auto p = std::make_shared<PredictSettings>();
  CLI::App* pr = app.add_subcommand("predict", "Label inputs with a trained checkpoint: one input per line, streaming (a video model: --input is a video file or a folder of them)");
  pr->add_option("--checkpoint", p->checkpoint, "Checkpoint written by recur train")->required()->check(CLI::ExistingFile);
  pr->add_option("--input", p->input, "Input file, or - for stdin (default); a video model: a video file or folder");
  pr->add_flag("--json", p->json, "One JSON object per input");
  pr->add_option("--threads", p->threads, "Threads")->check(CLI::PositiveNumber);
  pr->add_option("--device", p->device, "cpu | cuda | cuda:N");
  pr->callback([p] { run_predict(*p); });
}

}  // namespace recur::cli
