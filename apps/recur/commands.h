#pragma once
// Subcommand registration for the recur CLI; each lives in its own file.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace recur::cli {

/// `recur bench [rnn ...]`.
void add_bench(CLI::App& app);
/// `recur demo`: a small LSTM trained on generated data.
void add_demo(CLI::App& app);
/// `recur data fetch|list`.
void add_data(CLI::App& app);
/// `recur train`, `recur eval` and `recur predict`.
void add_train(CLI::App& app);

/// `recur translate`.
void add_translate(CLI::App& app);

/// Whether a config (with its --set overrides) is a sequence-to-sequence task (g2p, translation),
/// which `recur train` and `recur eval` hand to train_seq2seq / eval_seq2seq.
bool is_seq2seq_config(const std::string& path, const std::vector<std::string>& sets);
struct Seq2SeqTrainArgs {
  std::string config_path;
  std::vector<std::string> sets;
  std::string resume, out, device;
  int threads = 0;
  int64_t seed = -1;
  bool print_config = false;
};
void train_seq2seq(const Seq2SeqTrainArgs& args);
struct Seq2SeqEvalArgs {
  std::string config_path, checkpoint, split = "test", device;
  std::vector<std::string> sets;
  int64_t beam = 0;  ///< > 0: overrides decode.beam
  bool json = false;
  std::string output;  ///< sequence-to-sequence: file for each item's source, hypothesis and references
};
void eval_seq2seq(const Seq2SeqEvalArgs& args);

/// Whether a config is a vector-to-sequence task (style-lm, autoencoder), which `recur train` and
/// `recur eval` hand to train_vec2seq / eval_vec2seq.
bool is_vec2seq_config(const std::string& path, const std::vector<std::string>& sets);
using Vec2SeqTrainArgs = Seq2SeqTrainArgs;
using Vec2SeqEvalArgs = Seq2SeqEvalArgs;
void train_vec2seq(const Vec2SeqTrainArgs& args);
void eval_vec2seq(const Vec2SeqEvalArgs& args);
/// `recur generate` and `recur encode`.
void add_generate(CLI::App& app);

/// Whether a config is a video task (`task: video`), which `recur train` and `recur eval` hand to
/// train_video / eval_video.
bool is_video_config(const std::string& path, const std::vector<std::string>& sets);
void train_video(const Seq2SeqTrainArgs& args);
void eval_video(const Seq2SeqEvalArgs& args);
/// Whether a checkpoint holds a video model (its metadata says task: video).
bool is_video_checkpoint(const std::string& checkpoint);
struct VideoPredictArgs {
  std::string checkpoint, input, device = "cpu";
  bool json = false;
  int threads = 1;
};
/// `recur predict` for a video checkpoint: --input is a video file or a folder of them.
void predict_video(const VideoPredictArgs& args);

/// The `task` of a config file, with --set task=... taking precedence; "" when it has none (or the
/// YAML does not parse: the config loader reports that with its position).
std::string config_task(const std::string& path, const std::vector<std::string>& sets);

}  // namespace recur::cli
