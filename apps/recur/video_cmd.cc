// `recur train|eval CONFIG` for `task: video` (a CNN per frame, an RNN over the frames) and
// `recur predict --checkpoint CKPT --input VIDEO|DIR` for video checkpoints.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>

#include "commands.h"
#include "config.h"
#include "train_common.h"
#include "recur/core/thread_pool.h"
#include "recur/data/fetch.h"
#include "recur/data/idx.h"
#include "recur/data/video.h"
#include "recur/models/video.h"
#include "recur/ops/loss.h"
#include "recur/ops/norm.h"
#include "recur/train/checkpoint.h"
#include "recur/train/safetensors.h"

namespace recur::cli {

namespace {

namespace fs = std::filesystem;

std::vector<ConfigKey> video_schema() {
  using V = ValueType;
  std::vector<ConfigKey> keys = {
      {"task", V::String, "video", "video: classify clips with a CNN per frame and an RNN over the frames", {"video"}},
      {"data.dir", V::String, "",
       "folder with train/, valid/ and test/ (each a folder per class); empty: Moving Fashion in the cache, generated "
       "there on first use (recur data make-moving-fashion)",
       {}},
      {"data.train", V::String, "", "training clips: a folder per class or a CSV of path,label (overrides data.dir)", {}},
      {"data.valid", V::String, "", "validation clips (folder or CSV); needed with data.train", {}},
      {"data.test", V::String, "", "test clips (folder or CSV); empty with data.train: no test", {}},
      {"data.images", V::String, "",
       "fashion-mnist: instead of videos, single Fashion-MNIST images as one-frame clips, each placed at a random "
       "spot of a data.canvas-wide black frame like a Moving Fashion frame (to train a frame CNN for "
       "model.cnn_checkpoint); every 10th training image validates, the test images test",
       {"", "fashion-mnist"}},
      {"data.canvas", V::Int, "64", "data.images: side of the black frame the 28x28 item is placed on", {}},
      {"data.limit", V::Int, "0", "data.images: use only the first N training images (0: all)", {}},
      {"data.height", V::Int, "32", "frames are resized to this height", {}},
      {"data.width", V::Int, "32", "frames are resized to this width", {}},
      {"data.grey", V::Bool, "true", "grey frames (1 channel); false: RGB", {}},
      {"data.max_frames", V::Int, "0", "keep at most this many frames of a clip (0: all)", {}},
      {"data.frame_stride", V::Int, "1", "keep every N-th frame", {}},
      {"data.on_bad_video", V::String, "error",
       "an unreadable or truncated video: error (stop, naming it) or skip (a warning naming it)", {"error", "skip"}},
      {"model.cnn_channels", V::IntList, "[16, 32, 32]", "channels of the CNN blocks (conv, group norm, ReLU, 2x2 max pool)", {}},
      {"model.cnn_kernel", V::Int, "3", "convolution kernel size (odd)", {}},
      {"model.cnn_stride", V::Int, "1", "stride of the first convolution", {}},
      {"model.cnn_groups", V::Int, "4", "group norm groups per block (0: no normalisation)", {}},
      {"model.frame_pool", V::String, "flatten", "how a frame's feature map becomes a vector", {"flatten", "average"}},
      {"model.frame_features", V::Int, "128", "width of the frame vector (0: the pooled map as is)", {}},
      {"model.cnn_dropout", V::Float, "0.0", "dropout on the frame vectors", {}},
      {"model.cnn_checkpoint", V::String, "",
       "start the CNN from the cnn.* tensors of this checkpoint (a video model trained before)", {}},
      {"model.freeze_cnn", V::Bool, "false", "do not train the CNN (use with model.cnn_checkpoint)", {}},
      {"model.temporal", V::String, "rnn",
       "rnn: a recurrent network over the frames; mean: the frame-order-blind baseline (mean of the frame vectors)",
       {"rnn", "mean"}},
      {"model.cell", V::String, "lstm", "recurrent cell", {"lstm", "gru", "rnn"}},
      {"model.hidden", V::Int, "128", "hidden units per direction", {}},
      {"model.layers", V::Int, "1", "stacked recurrent layers", {}},
      {"model.bidirectional", V::Bool, "false", "read the frames both ways", {}},
      {"model.pooling", V::String, "last", "how the outputs over time become one vector", {"last", "mean", "max", "attention"}},
      {"model.mlp", V::IntList, "", "widths of the ReLU layers of the classifier head", {}},
      {"model.dropout", V::Float, "0.0", "dropout on the clip vector and the head", {}},
      {"model.rnn_dropout", V::Float, "0.0", "dropout between stacked recurrent layers", {}},
      {"train.epochs", V::Int, "20", "passes over the training clips", {}},
      {"train.weight_decay", V::Float, "0.0", "weight decay", {}},
      {"train.warmup_steps", V::Int, "100", "linear warmup steps (at most a tenth of all steps)", {}},
      {"train.patience", V::Int, "5", "epochs without validation improvement before stopping (0: never)", {}},
      {"train.max_minutes", V::Float, "0", "time budget in minutes (0: none); the cosine schedule anneals by it", {}},
      {"train.log_every", V::Int, "50", "steps between progress lines (non-terminal stderr)", {}},
      {"eval.batch", V::Int, "64", "clips per evaluation batch", {}},
  };
  for (ConfigKey& k : common_train_keys()) keys.push_back(std::move(k));
  return keys;
}

Config resolve(const std::string& path, const std::vector<std::string>& sets) {
  return load_config(video_schema(), path, sets);
}

data::VideoReadOptions read_options(const Config& c) {
  data::VideoReadOptions o;
  o.height = c.get_int("data.height");
  o.width = c.get_int("data.width");
  o.grey = c.get_bool("data.grey");
  o.max_frames = c.get_int("data.max_frames");
  o.stride = c.get_int("data.frame_stride");
  RECUR_CHECK(o.height >= 1 && o.width >= 1, "data.height ({}) and data.width ({}) must be positive", o.height, o.width);
  RECUR_CHECK(o.max_frames >= 0, "data.max_frames ({}) must be >= 0", o.max_frames);
  RECUR_CHECK(o.stride >= 1, "data.frame_stride ({}) must be >= 1", o.stride);
  return o;
}

data::OnBadVideo on_bad(const Config& c) {
  return c.get_string("data.on_bad_video") == "skip" ? data::OnBadVideo::Skip : data::OnBadVideo::Error;
}

struct Sources {
  std::string train, valid, test;
};

// data.train/valid/test when given; else data.dir's train/, valid/, test/; else Moving Fashion in
// the cache, generated on first use.
Sources sources(const Config& c) {
  if (!c.get_string("data.train").empty()) {
    RECUR_CHECK(!c.get_string("data.valid").empty(), "data.train is set but data.valid is not; give both");
    return {c.get_string("data.train"), c.get_string("data.valid"), c.get_string("data.test")};
  }
  std::string dir = c.get_string("data.dir");
  if (dir.empty()) {
    dir = (fs::path(data::default_cache_dir()) / "moving-fashion").string();
    if (!fs::exists(dir)) {
      std::cerr << fmt::format("data: generating Moving Fashion into {} (once)\n", dir);
      data::MovingFashionOptions mo;
      mo.fashion_dir = data::fetch_dataset("fashion-mnist", data::default_cache_dir(), &std::cerr).path;
      mo.out = dir;
      data::make_moving_fashion(mo, &std::cerr);
    }
  }
  const fs::path d(dir);
  for (const char* split : {"train", "valid", "test"})
    RECUR_CHECK(fs::is_directory(d / split), "data.dir '{}' has no {}/ folder (expected train/, valid/ and test/)", dir,
                split);
  return {(d / "train").string(), (d / "valid").string(), (d / "test").string()};
}

struct VideoData {
  data::VideoDataset train, valid, test;
  data::PixelNorm norm;
};

// Mean and standard deviation of the training pixels (0..1).
data::PixelNorm fit_norm(const data::VideoDataset& ds) {
  double sum = 0, sq = 0, n = 0;
  for (const auto& clip : ds.clips) {
    for (uint8_t p : clip.pixels) {
      const double v = p / 255.0;
      sum += v, sq += v * v;
    }
    n += static_cast<double>(clip.pixels.size());
  }
  RECUR_CHECK(n > 0, "video: the training clips have no pixels");
  const double mean = sum / n, var = std::max(sq / n - mean * mean, 1e-12);
  return {static_cast<float>(mean), static_cast<float>(std::sqrt(var))};
}

// One-frame clips of Fashion-MNIST images: each 28x28 item at a seeded random spot of a black
// canvas x canvas frame, shrunk to height x width by averaging (canvas must be a whole multiple).
data::VideoDataset image_clips(const data::SequenceDataset& images, const Config& c, uint64_t seed) {
  const int64_t canvas = c.get_int("data.canvas"), h = c.get_int("data.height"), w = c.get_int("data.width");
  RECUR_CHECK(canvas >= 28, "data.canvas ({}) must be at least 28 (the item's side)", canvas);
  RECUR_CHECK(c.get_bool("data.grey"), "data.images: Fashion-MNIST is grey; set data.grey: true");
  RECUR_CHECK(canvas % h == 0 && canvas % w == 0,
              "data.images: data.canvas {} must be a whole multiple of data.height {} and data.width {}", canvas, h, w);
  const int64_t fy = canvas / h, fx = canvas / w;
  data::VideoDataset out;
  out.class_names = images.class_names;
  std::vector<float> frame(static_cast<size_t>(canvas * canvas));
  for (size_t i = 0; i < images.examples.size(); ++i) {
    Rng r(mix64(seed ^ mix64(i)));
    const int64_t top = static_cast<int64_t>(r.below(static_cast<uint64_t>(canvas - 28 + 1)));
    const int64_t left = static_cast<int64_t>(r.below(static_cast<uint64_t>(canvas - 28 + 1)));
    std::fill(frame.begin(), frame.end(), 0.0f);
    const float* px = images.examples[i].features.f32();
    for (int64_t y = 0; y < 28; ++y)
      for (int64_t x = 0; x < 28; ++x) frame[static_cast<size_t>((top + y) * canvas + left + x)] = px[y * 28 + x];
    data::Clip clip;
    clip.frames = 1, clip.channels = 1, clip.height = h, clip.width = w;
    clip.label = images.examples[i].label;
    clip.pixels.resize(static_cast<size_t>(h * w));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        float sum = 0;
        for (int64_t dy = 0; dy < fy; ++dy)
          for (int64_t dx = 0; dx < fx; ++dx) sum += frame[static_cast<size_t>((y * fy + dy) * canvas + x * fx + dx)];
        clip.pixels[static_cast<size_t>(y * w + x)] =
            static_cast<uint8_t>(std::lround(std::clamp(sum / static_cast<float>(fy * fx), 0.0f, 1.0f) * 255.0f));
      }
    out.clips.push_back(std::move(clip));
  }
  return out;
}

VideoData load_images(const Config& c, bool need_train, const nlohmann::json* meta) {
  std::string dir = c.get_string("data.dir");
  if (dir.empty()) dir = data::fetch_dataset("fashion-mnist", data::default_cache_dir(), &std::cerr).path;
  VideoData d;
  const data::SequenceDataset train = data::load_fashion_mnist_rows(dir, "train", c.get_int("data.limit"));
  const data::VideoDataset all = image_clips(train, c, 1);
  d.train.class_names = d.valid.class_names = all.class_names;
  for (size_t i = 0; i < all.clips.size(); ++i) (i % 10 == 0 ? d.valid : d.train).clips.push_back(all.clips[i]);
  d.test = image_clips(data::load_fashion_mnist_rows(dir, "test", 0), c, 2);
  if (need_train || !meta) d.norm = fit_norm(d.train);
  else d.norm = {meta->at("pixel_norm").at(0).get<float>(), meta->at("pixel_norm").at(1).get<float>()};
  if (!need_train) d.train.clips.clear();
  std::cerr << fmt::format("data: Fashion-MNIST as one-frame clips: {} training / {} validation / {} test\n",
                           need_train ? d.train.clips.size() : 0, d.valid.clips.size(), d.test.clips.size());
  return d;
}

VideoData load_data(const Config& c, bool need_train, const nlohmann::json* meta) {
  if (!c.get_string("data.images").empty()) return load_images(c, need_train, meta);
  const Sources src = sources(c);
  const data::VideoReadOptions ro = read_options(c);
  VideoData d;
  const auto t0 = Clock::now();
  std::vector<std::string> classes;
  if (need_train || !meta) {
    d.train = data::load_video_dataset(src.train, ro, on_bad(c), &std::cerr);
    classes = d.train.class_names;
    d.norm = fit_norm(d.train);
  } else {
    classes = meta->at("classes").get<std::vector<std::string>>();
    d.norm = {meta->at("pixel_norm").at(0).get<float>(), meta->at("pixel_norm").at(1).get<float>()};
  }
  d.valid = data::load_video_dataset(src.valid, ro, on_bad(c), &std::cerr, &classes);
  if (!src.test.empty()) d.test = data::load_video_dataset(src.test, ro, on_bad(c), &std::cerr, &classes);
  d.train.class_names = classes;
  int64_t frames = 0;
  for (const auto* ds : {&d.train, &d.valid, &d.test})
    for (const auto& clip : ds->clips) frames += clip.frames;
  std::cerr << fmt::format("data: {} training / {} validation / {} test clips, {} classes, {} frames decoded in {:.1f} s\n",
                           d.train.clips.size(), d.valid.clips.size(), d.test.clips.size(), classes.size(), frames,
                           seconds_since(t0));
  return d;
}

models::VideoClassifierOptions model_options(const Config& c, int64_t classes) {
  models::VideoClassifierOptions o;
  o.cnn.in_channels = c.get_bool("data.grey") ? 1 : 3;
  o.cnn.height = c.get_int("data.height");
  o.cnn.width = c.get_int("data.width");
  o.cnn.channels = c.get_int_list("model.cnn_channels");
  o.cnn.kernel = c.get_int("model.cnn_kernel");
  o.cnn.first_stride = c.get_int("model.cnn_stride");
  o.cnn.norm_groups = c.get_int("model.cnn_groups");
  o.cnn.pooling = c.get_string("model.frame_pool") == "average" ? models::FramePooling::Average
                                                                : models::FramePooling::Flatten;
  o.cnn.features = c.get_int("model.frame_features");
  o.cnn.dropout = static_cast<float>(c.get_float("model.cnn_dropout"));
  o.temporal = c.get_string("model.temporal") == "mean" ? models::Temporal::MeanFeatures : models::Temporal::Rnn;
  const std::string cell = c.get_string("model.cell");
  o.cell = cell == "lstm" ? ops::CellType::LSTM : cell == "gru" ? ops::CellType::GRU : ops::CellType::RNN_TANH;
  o.hidden = c.get_int("model.hidden");
  o.layers = c.get_int("model.layers");
  o.bidirectional = c.get_bool("model.bidirectional");
  o.rnn_dropout = static_cast<float>(c.get_float("model.rnn_dropout"));
  const std::string pool = c.get_string("model.pooling");
  o.pooling = pool == "mean"        ? models::Pooling::Mean
              : pool == "max"       ? models::Pooling::Max
              : pool == "attention" ? models::Pooling::Attention
                                    : models::Pooling::Last;
  o.mlp_hidden = c.get_int_list("model.mlp");
  o.dropout = static_cast<float>(c.get_float("model.dropout"));
  o.classes = classes;
  o.freeze_cnn = c.get_bool("model.freeze_cnn");
  RECUR_CHECK(o.hidden >= 1 && o.layers >= 1, "model.hidden ({}) and model.layers ({}) must be positive", o.hidden,
              o.layers);
  return o;
}

// The cnn.* tensors of another checkpoint into the model's CNN.
void load_cnn(models::VideoClassifier& model, const std::string& path) {
  const SafetensorsFile f = load_safetensors(path);
  std::map<std::string, Tensor> cnn;
  for (const auto& [name, t] : f.tensors)
    if (name.rfind("cnn.", 0) == 0) cnn.emplace(name.substr(4), t);
  RECUR_CHECK(!cnn.empty(), "model.cnn_checkpoint '{}' has no cnn.* tensors (not a video model checkpoint)", path);
  model.cnn().load_state_dict(cnn, true);
}

// A clip as normalised floats (T, C, H, W).
Tensor clip_tensor(const data::Clip& clip, const data::PixelNorm& norm) {
  Tensor t({clip.frames, clip.channels, clip.height, clip.width});
  float* p = t.f32();
  const float scale = 1.0f / (255.0f * norm.std), shift = norm.mean / norm.std;
  for (size_t i = 0; i < clip.pixels.size(); ++i) p[i] = static_cast<float>(clip.pixels[i]) * scale - shift;
  return t;
}

struct Batch {
  Tensor frames, labels;
  PackedBatch layout;
};

Batch make_batch(const data::VideoDataset& ds, const std::vector<size_t>& idx, const data::PixelNorm& norm,
                 Device dev) {
  std::vector<Tensor> clips;
  std::vector<int64_t> labels;
  for (size_t i : idx) {
    clips.push_back(clip_tensor(ds.clips[i], norm));
    labels.push_back(ds.clips[i].label);
  }
  Batch b;
  b.frames = models::pack_frames(clips, &b.layout).to(dev);
  b.labels = Tensor::from_i64({static_cast<int64_t>(labels.size())}, labels).to(dev);
  return b;
}

// Class probabilities (B, classes) on the host, in batch order.
Tensor probabilities(models::VideoClassifier& model, const Batch& b) {
  Tape tape;
  NoGrad ng(tape);
  return softmax(tape, model.forward(tape, b.frames, b.layout, 0)).value().cpu();
}

struct Scores {
  int64_t clips = 0, right = 0;
  double loss = 0;
  std::vector<std::vector<int64_t>> confusion;  // [truth][predicted]
  double accuracy() const { return clips ? static_cast<double>(right) / static_cast<double>(clips) : 0.0; }
  std::string summary() const { return fmt::format("accuracy {:.2f}% loss {:.4f} ({} clips)", 100 * accuracy(), loss, clips); }
  nlohmann::json json() const {
    return {{"accuracy", accuracy()}, {"loss", loss}, {"clips", clips}, {"confusion", confusion}};
  }
};

Scores evaluate(models::VideoClassifier& model, const data::VideoDataset& ds, const data::PixelNorm& norm,
                int64_t batch) {
  const bool was = model.is_training();
  model.train(false);
  Scores s;
  const size_t K = ds.class_names.size();
  s.confusion.assign(K, std::vector<int64_t>(K, 0));
  for (size_t at = 0; at < ds.clips.size(); at += static_cast<size_t>(batch)) {
    std::vector<size_t> idx(std::min(static_cast<size_t>(batch), ds.clips.size() - at));
    std::iota(idx.begin(), idx.end(), at);
    const Batch b = make_batch(ds, idx, norm, model.device());
    const Tensor p = probabilities(model, b);
    const int64_t C = p.dim(1);
    for (size_t r = 0; r < idx.size(); ++r) {
      const float* row = p.f32() + static_cast<int64_t>(r) * C;
      const int64_t best = std::max_element(row, row + C) - row;
      const int64_t truth = ds.clips[idx[r]].label;
      s.right += best == truth;
      s.loss -= std::log(std::max(row[truth], 1e-30f));
      if (static_cast<size_t>(truth) < K && static_cast<size_t>(best) < K)
        ++s.confusion[static_cast<size_t>(truth)][static_cast<size_t>(best)];
    }
    s.clips += static_cast<int64_t>(idx.size());
  }
  if (s.clips) s.loss /= static_cast<double>(s.clips);
  model.train(was);
  return s;
}

void print_confusion(const Scores& s, const std::vector<std::string>& names, std::ostream& out) {
  out << "per class (right / clips):";
  for (size_t k = 0; k < names.size(); ++k) {
    int64_t n = 0;
    for (int64_t v : s.confusion[k]) n += v;
    out << fmt::format(" {} {}/{}", names[k], s.confusion[k][k], n);
  }
  out << "\n";
}

bool is_video_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  const auto& known = data::video_extensions();
  return std::find(known.begin(), known.end(), ext) != known.end();
}

nlohmann::json task_meta(const VideoData& d) {
  return {{"task", "video"}, {"classes", d.train.class_names}, {"pixel_norm", {d.norm.mean, d.norm.std}}};
}

}  // namespace

bool is_video_config(const std::string& path, const std::vector<std::string>& sets) {
  return config_task(path, sets) == "video";
}

void train_video(const Seq2SeqTrainArgs& a) {
  const auto t_start = Clock::now();
  Config c = resolve(a.config_path, a.sets);
  if (!apply_train_flags(c, a.seed, a.threads, a.device, a.print_config)) return;
  TrainProcess proc = start_training_process(c);
  const VideoData d = load_data(c, true, nullptr);
  RECUR_CHECK(!d.train.clips.empty() && !d.valid.clips.empty(), "video: need training and validation clips ({} and {})",
              d.train.clips.size(), d.valid.clips.size());
  Rng rng(static_cast<uint64_t>(c.get_int("train.seed")));
  const int64_t classes = static_cast<int64_t>(d.train.class_names.size());
  models::VideoClassifier model(model_options(c, classes), rng);
  if (!c.get_string("model.cnn_checkpoint").empty()) load_cnn(model, c.get_string("model.cnn_checkpoint"));
  model.to(proc.device);
  *proc.log << fmt::format("model: {} parameters ({} in the CNN){}\n", model.num_parameters(),
                           model.cnn().num_parameters(), c.get_bool("model.freeze_cnn") ? ", CNN frozen" : "");
  const int64_t batch = c.get_int("train.batch") * c.get_int("train.accumulate");
  std::vector<std::vector<size_t>> batches;
  EpochTask task;
  task.batches = [&](int64_t epoch) {
    return shuffled_batches(d.train.clips.size(), batch, static_cast<uint64_t>(c.get_int("train.seed")), epoch,
                            [&](size_t i) { return d.train.clips[i].frames; }, &batches);
  };
  task.terms = [](size_t, int64_t) { return int64_t{1}; };
  task.loss = [&](Tape& tape, size_t bi, const std::vector<int64_t>& items, uint64_t seed) {
    std::vector<size_t> idx;
    for (int64_t i : items) idx.push_back(batches[bi][static_cast<size_t>(i)]);
    const Batch b = make_batch(d.train, idx, d.norm, model.device());
    return cross_entropy(tape, model.forward(tape, b.frames, b.layout, seed), b.labels);
  };
  task.validate = [&] {
    const Scores s = evaluate(model, d.valid, d.norm, c.get_int("eval.batch"));
    return EpochTask::Validation{s.accuracy() - 1e-4 * s.loss, s.summary(), s.json()};
  };
  task.throughput_unit = "clips/s";
  task.parameters = model.trainable_parameters();
  run_epochs(c, {a.out, a.resume}, proc, model, task_meta(d), task);
  if (!proc.lead) return;
  if (d.test.clips.empty()) return;
  Rng rng2(0);
  models::VideoClassifier best(model_options(c, classes), rng2);
  load_best(a.out, best, model);
  best.to(proc.device);
  const Scores s = evaluate(best, d.test, d.norm, c.get_int("eval.batch"));
  std::cout << fmt::format("test: {}\n", s.summary());
  print_confusion(s, d.train.class_names, std::cout);
  std::ofstream metrics(fs::path(a.out) / "metrics.jsonl", std::ios::app);
  nlohmann::json row = s.json();
  row["kind"] = "test";
  metrics << row.dump() << std::endl;
  std::cout << fmt::format("training and testing took {:.1f} minutes\n", seconds_since(t_start) / 60);
}

void eval_video(const Seq2SeqEvalArgs& a) {
  Config c = resolve(a.config_path, a.sets);
  if (!a.device.empty()) c.set("train.device=" + a.device);
  set_num_threads(static_cast<int>(c.get_int("train.threads")));
  const Device dev = select_device(c.get_string("train.device"), c.get_bool("train.allow_tf32"));
  const nlohmann::json meta = train::read_checkpoint_config(a.checkpoint);
  RECUR_CHECK(meta.contains("task") && meta.at("task") == "video" && meta.contains("classes") &&
                  meta.contains("pixel_norm"),
              "eval: checkpoint '{}' is not a video model (no task: video in its metadata)", a.checkpoint);
  const VideoData d = load_data(c, false, &meta);
  const auto& ds = a.split == "valid" ? d.valid : d.test;
  RECUR_CHECK(!ds.clips.empty(), "eval: the {} split has no clips", a.split);
  Rng rng(0);
  models::VideoClassifier model(model_options(c, static_cast<int64_t>(d.train.class_names.size())), rng);
  train::load_checkpoint(a.checkpoint, model, nullptr);
  model.to(dev);
  const Scores s = evaluate(model, ds, d.norm, c.get_int("eval.batch"));
  if (a.json) {
    nlohmann::json j = s.json();
    j["split"] = a.split;
    std::cout << j.dump() << std::endl;
    return;
  }
  std::cout << fmt::format("{}: {}\n", a.split, s.summary());
  print_confusion(s, d.train.class_names, std::cout);
}

bool is_video_checkpoint(const std::string& checkpoint) {
  const nlohmann::json meta = train::read_checkpoint_config(checkpoint);
  return meta.contains("task") && meta.at("task") == "video";
}

void predict_video(const VideoPredictArgs& a) {
  set_num_threads(a.threads);
  const nlohmann::json meta = train::read_checkpoint_config(a.checkpoint);
  RECUR_CHECK(meta.contains("config") && meta.contains("classes") && meta.contains("pixel_norm"),
              "predict: checkpoint '{}' is a video model without its config, classes or pixel_norm", a.checkpoint);
  Config c(video_schema());
  c.load_json(meta.at("config"));
  const auto names = meta.at("classes").get<std::vector<std::string>>();
  const data::PixelNorm norm{meta.at("pixel_norm").at(0).get<float>(), meta.at("pixel_norm").at(1).get<float>()};
  Rng rng(0);
  models::VideoClassifier model(model_options(c, static_cast<int64_t>(names.size())), rng);
  train::load_checkpoint(a.checkpoint, model, nullptr);
  model.to(select_device(a.device, false));
  model.train(false);
  RECUR_CHECK(a.input != "-" && !a.input.empty(),
              "predict: a video model reads video files: give --input FILE or --input DIR (not stdin)");
  RECUR_CHECK(fs::exists(a.input), "predict: --input '{}' does not exist", a.input);
  std::vector<std::string> files;
  if (fs::is_directory(a.input)) {
    for (const auto& e : fs::recursive_directory_iterator(a.input))
      if (e.is_regular_file() && is_video_file(e.path())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    RECUR_CHECK(!files.empty(), "predict: no video files (.avi, .mp4, .mkv, .mov, .webm) under '{}'", a.input);
  } else {
    files.push_back(a.input);
  }
  const data::VideoReadOptions ro = read_options(c);
  const bool skip = on_bad(c) == data::OnBadVideo::Skip;
  for (const std::string& f : files) {
    data::VideoDataset one;
    one.class_names = names;
    try {
      one.clips.push_back(data::read_video(f, ro));
    } catch (const Error& e) {
      if (!skip) throw;
      std::cerr << fmt::format("warning: skipping {}: {}\n", f, e.what());
      continue;
    }
    one.clips.back().label = 0;
    const Tensor p = probabilities(model, make_batch(one, {0}, norm, model.device()));
    const int64_t C = p.dim(1);
    const int64_t best = std::max_element(p.f32(), p.f32() + C) - p.f32();
    const double prob = p.f32()[best];
    if (a.json)
      std::cout << nlohmann::json{{"file", f}, {"label", names[static_cast<size_t>(best)]}, {"class", best},
                                  {"probability", prob}, {"frames", one.clips[0].frames}}
                       .dump()
                << std::endl;
    else
      std::cout << f << "\t" << names[static_cast<size_t>(best)] << "\t" << fmt::format("{:.4f}", prob) << std::endl;
  }
}

}  // namespace recur::cli
