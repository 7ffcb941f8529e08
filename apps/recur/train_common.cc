#include "train_common.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <iostream>

#include "recur/core/cuda.h"
#include "recur/core/rng.h"
#include "recur/core/thread_pool.h"
#include "recur/ops/basic.h"

namespace recur::cli {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::ostream& null_stream() {
  static std::ostream discard(nullptr);
  return discard;
}

std::vector<ConfigKey> common_train_keys() {
  using V = ValueType;
  return {
      {"train.batch", V::Int, "64",
       "examples (sentences) per micro-batch; a step's global batch is batch x accumulate, split over all ranks", {}},
      {"train.accumulate", V::Int, "1", "micro-batches whose gradients are accumulated into one step", {}},
      {"train.communicator", V::String, "auto",
       "data parallelism: auto (MPI when started by mpirun, else local), local, mpi or nccl",
       {"auto", "local", "mpi", "nccl"}},
      {"train.comm_timeout", V::Float, "600",
       "seconds a rank waits at a collective (e.g. while rank 0 validates) before ending the job", {}},
      {"train.optimizer", V::String, "adam", "optimizer", {"adam", "adamw", "sgd"}},
      {"train.lr", V::Float, "0.002", "peak learning rate", {}},
      {"train.momentum", V::Float, "0.9", "sgd momentum", {}},
      {"train.clip", V::Float, "5.0", "global gradient-norm clip (0: off)", {}},
      {"train.schedule", V::String, "cosine", "learning-rate schedule", {"constant", "step", "cosine"}},
      {"train.seed", V::Int, "1", "seed for initialisation, shuffling and dropout", {}},
      {"train.threads", V::Int, "2", "threads for GEMMs and pointwise loops", {}},
      {"train.device", V::String, "cpu", "where to train: cpu, cuda or cuda:N", {}},
      {"train.allow_tf32", V::Bool, "false", "GPU: TF32 tensor-core math for float32 GEMMs (faster, ~1e-3 precision)",
       {}},
  };
}

std::unique_ptr<train::Optimizer> make_optimizer(const Config& c, const train::NamedParams& params) {
  const std::string kind = c.get_string("train.optimizer");
  const double lr = c.get_float("train.lr"), wd = c.get_float("train.weight_decay");
  if (kind == "sgd") {
    train::SgdOptions o;
    o.lr = lr;
    o.momentum = c.get_float("train.momentum");
    o.weight_decay = wd;
    return std::make_unique<train::Sgd>(params, o);
  }
  if (kind == "adamw") {
    train::AdamWOptions o;
    o.lr = lr;
    o.weight_decay = wd;
    return std::make_unique<train::AdamW>(params, o);
  }
  train::AdamOptions o;
  o.lr = lr;
  o.weight_decay = wd;
  return std::make_unique<train::Adam>(params, o);
}

train::LrScheduleOptions schedule_options(const Config& c, int64_t steps_per_epoch, bool cap_warmup) {
  const int64_t epochs = c.get_int("train.epochs");
  train::LrScheduleOptions so;
  const std::string sched = c.get_string("train.schedule");
  so.kind = sched == "cosine" ? train::LrScheduleKind::Cosine
            : sched == "step" ? train::LrScheduleKind::Step
                              : train::LrScheduleKind::Constant;
  so.base_lr = c.get_float("train.lr");
  so.warmup_steps = c.get_int("train.warmup_steps");
  if (cap_warmup) so.warmup_steps = std::min(so.warmup_steps, epochs * steps_per_epoch / 10);
  so.total_steps = epochs * steps_per_epoch;
  so.step_size = std::max<int64_t>(1, steps_per_epoch);
  return so;
}

Device select_device(const std::string& name, bool allow_tf32) {
  const Device dev = dist::rank_device(name);
  cuda::require(dev);
  cuda::set_allow_tf32(allow_tf32);
  return dev;
}

TrainProcess start_training_process(const Config& c) {
  set_num_threads(static_cast<int>(c.get_int("train.threads")));
  TrainProcess p;
  p.device = select_device(c.get_string("train.device"), c.get_bool("train.allow_tf32"));
  dist::CommOptions copt;
  copt.timeout_s = c.get_float("train.comm_timeout");
  if (p.device.is_cuda()) copt.device = p.device;
  p.comm = dist::make_communicator(c.get_string("train.communicator"), copt);
  p.lead = p.comm->rank() == 0;
  p.log = p.lead ? &std::cerr : &null_stream();
  return p;
}

namespace {
volatile std::sig_atomic_t g_sigint = 0;
extern "C" void on_training_sigint(int) { g_sigint = 1; }
}  // namespace

SigintScope::SigintScope() {
  g_sigint = 0;
  std::signal(SIGINT, on_training_sigint);
}
SigintScope::~SigintScope() { std::signal(SIGINT, SIG_DFL); }
bool SigintScope::raised() { return g_sigint != 0; }

bool StepTotals::finite() const { return std::isfinite(loss); }

DataParallelStep::DataParallelStep(dist::Communicator& comm, train::Optimizer& optimizer,
                                   const train::NamedParams& params, int64_t accumulate, double clip)
    : comm_(comm), opt_(optimizer), params_(params), accumulate_(accumulate), clip_(clip) {
  RECUR_CHECK(accumulate >= 1, "train.accumulate must be at least 1, got {}", accumulate);
  if (comm.size() > 1) reducer_ = std::make_unique<dist::GradientReducer>(params_, comm_);
}

StepTotals DataParallelStep::run(const std::vector<dist::ShardItem>& items, const std::function<int64_t(int64_t)>& terms,
                                 const MicroLossFn& loss_fn, uint64_t step_seed, double lead_time) {
  const dist::Shard mine = dist::shard(items, comm_.rank(), comm_.size());
  shard_terms_ = 0;
  for (int64_t i : mine.indices) shard_terms_ += terms(i);
  opt_.zero_grad();
  double local_sum = 0;  // sum over this rank's loss terms of their loss
  const int64_t n = static_cast<int64_t>(mine.indices.size());
  const bool several = comm_.size() * accumulate_ > 1;
  for (int64_t k = 0; k < accumulate_; ++k) {
    std::vector<int64_t> micro;
    int64_t micro_terms = 0;
    for (int64_t i = k * n / accumulate_; i < (k + 1) * n / accumulate_; ++i) {
      const int64_t item = mine.indices[static_cast<size_t>(i)];
      micro.push_back(item);
      micro_terms += terms(item);
    }
    if (micro.empty()) continue;
    Tape tape;
    // Each micro-batch of each rank draws its own dropout masks.
    const uint64_t seed =
        mix64(step_seed) ^ (several ? mix64(static_cast<uint64_t>(comm_.rank() * accumulate_ + k + 1)) : 0);
    Var loss = loss_fn(tape, micro, seed);
    const double lv = loss.value().to(Device::cpu()).item();
    local_sum += lv * static_cast<double>(micro_terms);
    if (!std::isfinite(lv)) continue;  // every rank learns of it from the collective below
    if (micro_terms != shard_terms_)
      loss = scale(tape, loss, static_cast<float>(static_cast<double>(micro_terms) / static_cast<double>(shard_terms_)));
    tape.backward(loss);
  }
  const std::vector<double> g = dist::sum_over_ranks(
      comm_, {local_sum, static_cast<double>(shard_terms_), static_cast<double>(mine.tokens),
              SigintScope::raised() ? 1.0 : 0.0, comm_.rank() == 0 ? lead_time : 0.0});
  StepTotals t;
  t.loss = g[1] > 0 ? g[0] / g[1] : 0.0;
  t.terms = g[1];
  t.work = g[2];
  t.stop = g[3] > 0;
  t.lead_time = g[4];
  return t;
}

void DataParallelStep::apply(double lr) {
  if (reducer_) reducer_->reduce(shard_terms_);
  if (clip_ > 0) train::clip_grad_norm(params_, clip_);
  opt_.set_lr(lr);
  opt_.step();
}

bool track_validation(dist::Communicator& comm, bool lead, double score, double& best, int64_t& bad_epochs) {
  const double shared = dist::sum_over_ranks(comm, {lead ? score : 0.0})[0];
  const bool improved = shared > best;
  if (improved) best = shared;
  bad_epochs = improved ? 0 : bad_epochs + 1;
  return improved;
}

}  // namespace recur::cli
