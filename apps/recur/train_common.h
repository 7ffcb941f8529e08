#pragma once
// What every `recur train` task shares: the optimizer and schedule from the config, the process
// setup (threads, device, communicator), Ctrl-C handling, and one data-parallel optimizer step with
// gradient accumulation (docs/DISTRIBUTED.md). The tasks keep their own epoch loops, logs and
// validation.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "config.h"
#include "recur/core/tape.h"
#include "recur/dist/data_parallel.h"
#include "recur/train/ema.h"
#include "recur/train/optimizer.h"
#include "recur/train/schedule.h"

namespace recur::nn {
class Module;
}

namespace recur::cli {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0);
double seconds_between(Clock::time_point t0, Clock::time_point t1);
/// A stream that discards what it is given (the log of ranks other than 0).
std::ostream& null_stream();

/// The train.* keys every training task reads (batching, optimizer, schedule, data parallelism,
/// threads, device, seed); each task's schema adds its own keys to these.
std::vector<ConfigKey> common_train_keys();

/// A config of `schema` from a YAML file with `key=value` overrides applied in order.
Config load_config(std::vector<ConfigKey> schema, const std::string& path, const std::vector<std::string>& sets);
/// `recur train`'s --seed, --threads and --device over the config (when given: >= 0, > 0,
/// non-empty). With --print-config prints the resolved config and returns false (nothing to train).
bool apply_train_flags(Config& c, int64_t seed, int threads, const std::string& device, bool print_config);

/// train.optimizer (adam | adamw | sgd) with train.lr, train.weight_decay, train.momentum.
std::unique_ptr<train::Optimizer> make_optimizer(const Config& c, const train::NamedParams& params);
/// train.ema_decay > 0: a moving average of `params` (null when 0); checks the value is in [0, 1).
std::unique_ptr<train::ParamEma> make_ema(const Config& c, const train::NamedParams& params);
/// train.schedule (constant | step | cosine), train.lr and train.warmup_steps over
/// train.epochs * steps_per_epoch steps (step decay: once an epoch). With `cap_warmup` the warmup
/// takes at most a tenth of the run, so that a short run still reaches the peak rate and anneals.
train::LrScheduleOptions schedule_options(const Config& c, int64_t steps_per_epoch, bool cap_warmup);

/// The device a command runs on (a bare "cuda" under mpirun is the rank's local GPU), checked to
/// exist; sets the GPU's TF32 choice.
Device select_device(const std::string& name, bool allow_tf32);

/// Thrown by a training loop that stopped on Ctrl-C after saving; `recur train` exits with status 130.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

/// `recur train --devices LIST` (comma-separated, e.g. "cuda:0,cuda:1" or "cpu,cpu"). Started by
/// mpirun: sets `device` to the entry of this process's local rank and runs `task` once. Otherwise
/// runs `task` on one thread per entry, a data-parallel world of threads (dist::ThreadWorld): on
/// each, start_training_process gives the task that rank's device and communicator ("threads";
/// NCCL over it for GPUs when built with NCCL), and its own thread pool of train.threads threads.
/// Rethrows the first failure of any replica after all have ended.
void run_on_devices(const std::string& list, std::string& device, const std::function<void()>& task);

/// A training process: train.threads, the device (train.device, train.allow_tf32), and the
/// communicator (train.communicator, train.comm_timeout; one process is a world of one; inside
/// run_on_devices, the replica's rank of the world of threads). Only rank 0 (`lead`) logs and
/// writes files; `log` discards on the other ranks.
struct TrainProcess {
  Device device = Device::cpu();
  std::unique_ptr<dist::Communicator> comm;
  bool lead = true;
  std::ostream* log = nullptr;
};
TrainProcess start_training_process(const Config& c);

/// Ctrl-C while training: the handler only sets an atomic flag (with the count of live scopes, the
/// only global state in the CLI); the loop finishes its step, saves and stops. Replicas run as
/// threads each hold a scope: the first installs the handler, the last restores the default.
class SigintScope {
 public:
  SigintScope();
  ~SigintScope();
  SigintScope(const SigintScope&) = delete;
  SigintScope& operator=(const SigintScope&) = delete;
  static bool raised();
};

/// The loss of a micro-batch: `items` are indices into the global batch given to
/// DataParallelStep::run; returns the mean loss over the micro-batch's loss terms (a scalar Var).
using MicroLossFn = std::function<Var(Tape& tape, const std::vector<int64_t>& items, uint64_t seed)>;

/// What one step's collective agreed on (identical on every rank).
struct StepTotals {
  double loss = 0;       ///< mean loss over every loss term of the global batch
  double terms = 0;      ///< loss terms of the global batch (examples, or target tokens)
  double work = 0;       ///< the global batch's work (the tokens ShardItem counts)
  bool stop = false;     ///< some rank saw Ctrl-C
  double lead_time = 0;  ///< the `lead_time` rank 0 passed (its clock: every rank then decides alike)
  bool finite() const;
};

/// One data-parallel optimizer step with gradient accumulation. Every rank takes its share of the
/// global batch (dist::shard, balanced by work) and splits it into `accumulate` micro-batches; each
/// micro-batch's mean loss is weighted by its share of the shard's loss terms, so the accumulated
/// gradient is that of the mean over the shard; the reducer then averages the shards' gradients
/// weighted by their terms. One small collective per step carries the loss, the counts, Ctrl-C and
/// rank 0's clock.
class DataParallelStep {
 public:
  /// `balance_by_speed`: shard each global batch by the ranks' measured speeds (tokens per second
  /// of forward+backward, a moving average agreed on by all ranks) rather than by tokens alone,
  /// so a slower rank (a busier core, an older GPU) takes less and the others do not wait for it.
  /// The split then depends on timing, so runs are no longer bit-reproducible.
  DataParallelStep(dist::Communicator& comm, train::Optimizer& optimizer, const train::NamedParams& params,
                   int64_t accumulate, double clip, bool balance_by_speed = false);
  /// Zeroes the gradients and runs forward and backward on this rank's micro-batches. `items`:
  /// the global batch (ShardItem::index = the item's position in it, tokens = its work);
  /// `terms(i)`: the loss terms of item i. A non-finite micro-batch loss is not back-propagated.
  StepTotals run(const std::vector<dist::ShardItem>& items, const std::function<int64_t(int64_t)>& terms,
                 const MicroLossFn& loss, uint64_t step_seed, double lead_time);
  /// After a finite run(): averages the gradients over ranks, clips them (clip > 0), and takes an
  /// optimizer step at rate `lr`.
  void apply(double lr);

  /// Where this rank's step time went since the last take_times(): forward and backward
  /// ("compute"), waiting for the other ranks to finish theirs ("wait"), the gradient all-reduce,
  /// and gradient clipping plus the optimizer step ("update"). Seconds; resets the sums.
  /// `rank_compute`: every rank's forward+backward seconds (to see an uneven machine).
  struct Times {
    double compute = 0, wait = 0, all_reduce = 0, update = 0;
    std::vector<double> rank_compute;
    nlohmann::json json() const;  ///< the four shares of this rank's step time
  };
  Times take_times();

 private:
  void update_speeds(const std::vector<double>& gathered, size_t slots);
  Times times_;
  dist::Communicator& comm_;
  train::Optimizer& opt_;
  train::NamedParams params_;
  int64_t accumulate_;
  double clip_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  int64_t shard_terms_ = 0;
  bool balance_by_speed_;
  std::vector<double> rates_;   // per rank: moving average of tokens per second of compute
  std::vector<double> speeds_;  // what dist::shard balances by (empty: tokens alone)
};

/// What a task gives run_epochs: its batches, its loss and its validation.
struct EpochTask {
  /// The global batches of an epoch (seeded by it): each a list of items, ShardItem::index its
  /// position in the batch and tokens its work.
  std::function<std::vector<std::vector<dist::ShardItem>>(int64_t epoch)> batches;
  /// The loss terms of item `item` of batch `batch` of the current epoch.
  std::function<int64_t(size_t batch, int64_t item)> terms;
  /// The mean loss of those items of batch `batch` (see MicroLossFn).
  std::function<Var(Tape& tape, size_t batch, const std::vector<int64_t>& items, uint64_t seed)> loss;
  /// Rank 0, model in evaluation mode: the validation score (higher is better), its summary for the
  /// log, and its JSON for metrics.jsonl.
  struct Validation {
    double score = 0;
    std::string summary;
    nlohmann::json json;
  };
  std::function<Validation()> validate;
  std::string throughput_unit = "tok/s";  ///< what the progress line calls the loss terms per second
  /// What the optimizer updates; empty: every parameter of the model (a frozen part is left out).
  train::NamedParams parameters;
};

/// Items 0..n-1 shuffled by (seed, epoch) and cut into global batches of `batch`: `*batches` gets
/// each batch's item numbers, the result its ShardItems (index: the position in the batch, tokens:
/// work(item)), as EpochTask::batches returns them.
std::vector<std::vector<dist::ShardItem>> shuffled_batches(size_t n, int64_t batch, uint64_t seed, int64_t epoch,
                                                           const std::function<int64_t(size_t)>& work,
                                                           std::vector<std::vector<size_t>>* batches);

/// Where run_epochs writes and what it resumes.
struct EpochsArgs {
  std::string out;     ///< folder: last.safetensors, best.safetensors, interrupted.safetensors, metrics.jsonl
  std::string resume;  ///< a last.safetensors (or interrupted) to continue from, or empty
};

/// The training loop every task shares: epochs of data-parallel steps (DataParallelStep) under
/// train.epochs, train.max_minutes (a cosine schedule anneals by the deadline), train.clip,
/// train.patience and the warmup-capped schedule; a progress line every train.log_every steps;
/// after each epoch rank 0 validates, every rank takes its score, and rank 0 writes metrics.jsonl,
/// last.safetensors (with the optimizer) and best.safetensors. With train.ema_decay every step also
/// updates a moving average of the weights (ParamEma), which validation and best.safetensors use;
/// last.safetensors keeps both. Ctrl-C saves interrupted.safetensors (resuming reruns that epoch)
/// and exits with status 130. `task_meta` goes into every checkpoint's metadata beside the config
/// and the counters. Returns after a barrier, so that every rank can read the checkpoints.
void run_epochs(const Config& c, const EpochsArgs& a, TrainProcess& proc, nn::Module& model,
                const nlohmann::json& task_meta, EpochTask& task);

/// best.safetensors of `out` into `fresh` (else, with a note on stderr, the weights of `trained`).
void load_best(const std::string& out, nn::Module& fresh, const nn::Module& trained);

/// End of an epoch: rank 0's validation score goes to every rank (they stop at the same epoch);
/// updates `best` and `bad_epochs`; returns whether the score improved on `best`.
bool track_validation(dist::Communicator& comm, bool lead, double score, double& best, int64_t& bad_epochs);

}  // namespace recur::cli
