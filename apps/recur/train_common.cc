#include "train_common.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>
#include <utility>
#include <yaml-cpp/yaml.h>

#include "commands.h"

#include "recur/core/cuda.h"
#include "recur/core/rng.h"
#include "recur/core/thread_pool.h"
#include "recur/dist/thread_world.h"
#include "recur/ops/basic.h"
#include "recur/train/checkpoint.h"

namespace recur::cli {

namespace fs = std::filesystem;

double seconds_since(Clock::time_point t0) { return seconds_between(t0, Clock::now()); }
double seconds_between(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double>(t1 - t0).count();
}

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
       "data parallelism: auto (MPI when started by mpirun; with --devices in one process NCCL when every device is a "
       "GPU, else threads; else local), local, mpi, nccl or threads (--devices replicas, GPU tensors through the host)",
       {"auto", "local", "mpi", "nccl", "threads"}},
      {"train.balance", V::String, "tokens",
       "data parallelism: split each global batch by tokens (deterministic), or by tokens and each rank's measured "
       "speed (for uneven ranks; the split, and so the run, then depends on timing)",
       {"tokens", "speed"}},
      {"train.comm_timeout", V::Float, "600",
       "seconds a rank waits at a collective (e.g. while rank 0 validates) before ending the job", {}},
      {"train.optimizer", V::String, "adam", "optimizer", {"adam", "adamw", "sgd"}},
      {"train.lr", V::Float, "0.002", "peak learning rate", {}},
      {"train.momentum", V::Float, "0.9", "sgd momentum", {}},
      {"train.clip", V::Float, "5.0", "global gradient-norm clip (0: off)", {}},
      {"train.ema_decay", V::Float, "0",
       "exponential moving average of the weights, updated after every step (0: off; e.g. 0.999): validation, "
       "best.safetensors and the final test use the averaged weights",
       {}},
      {"train.schedule", V::String, "cosine", "learning-rate schedule", {"constant", "step", "cosine"}},
      {"train.seed", V::Int, "1", "seed for initialisation, shuffling and dropout", {}},
      {"train.threads", V::Int, "2", "threads for GEMMs and pointwise loops", {}},
      {"train.device", V::String, "cpu", "where to train: cpu, cuda or cuda:N", {}},
      {"train.allow_tf32", V::Bool, "false", "GPU: TF32 tensor-core math for float32 GEMMs (faster, ~1e-3 precision)",
       {}},
  };
}

Config load_config(std::vector<ConfigKey> schema, const std::string& path, const std::vector<std::string>& sets) {
  Config c(std::move(schema));
  c.load_yaml_file(path);
  for (const auto& s : sets) c.set(s);
  return c;
}

bool apply_train_flags(Config& c, int64_t seed, int threads, const std::string& device, bool print_config) {
  if (seed >= 0) c.set("train.seed=" + std::to_string(seed));
  if (threads > 0) c.set("train.threads=" + std::to_string(threads));
  if (!device.empty()) c.set("train.device=" + device);
  if (print_config) std::cout << c.dump_yaml();
  return !print_config;
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

std::unique_ptr<train::ParamEma> make_ema(const Config& c, const train::NamedParams& params) {
  const double decay = c.get_float("train.ema_decay");
  RECUR_CHECK(decay >= 0 && decay < 1, "config: train.ema_decay must be in [0, 1) (0: off), got {}", decay);
  return decay > 0 ? std::make_unique<train::ParamEma>(params, decay) : nullptr;
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

namespace {
// Set on each replica thread of run_on_devices: its rank of the world and its device.
struct Replica {
  dist::ThreadWorld* world = nullptr;
  int rank = 0;
  Device device;
  bool all_cuda = false;  // every replica is on a GPU of its own: NCCL can carry the gradients
};
thread_local const Replica* t_replica = nullptr;

std::vector<Device> parse_devices(const std::string& list) {
  std::vector<Device> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    RECUR_CHECK(!item.empty(), "--devices '{}': an empty entry (expected e.g. cuda:0,cuda:1 or cpu,cpu)", list);
    out.push_back(Device::parse(item));
  }
  RECUR_CHECK(!out.empty(), "--devices is empty (expected e.g. cuda:0,cuda:1 or cpu,cpu)");
  return out;
}
}  // namespace

void run_on_devices(const std::string& list, std::string& device, const std::function<void()>& task) {
  const std::vector<Device> devices = parse_devices(list);
  if (dist::launched_by_mpirun()) {
    device = dist::select_device(devices, dist::launched_local_rank(), dist::launched_local_size()).str();
    task();
    return;
  }
  if (devices.size() == 1) {
    device = devices[0].str();
    task();
    return;
  }
  bool all_cuda = std::all_of(devices.begin(), devices.end(), [](const Device& d) { return d.is_cuda(); });
  for (size_t i = 0; i < devices.size(); ++i)  // NCCL takes one rank per GPU
    for (size_t j = i + 1; j < devices.size(); ++j) all_cuda = all_cuda && !(devices[i] == devices[j]);
  dist::ThreadWorld world(static_cast<int>(devices.size()));
  world.run(1, [&](int rank) {
    const Replica replica{&world, rank, devices[static_cast<size_t>(rank)], all_cuda};
    t_replica = &replica;
    struct Reset {
      ~Reset() { t_replica = nullptr; }
    } reset;
    task();
  });
}

TrainProcess start_training_process(const Config& c) {
  const int threads = static_cast<int>(c.get_int("train.threads"));
  set_num_threads(threads);
  TrainProcess p;
  dist::CommOptions copt;
  copt.timeout_s = c.get_float("train.comm_timeout");
  const std::string kind = c.get_string("train.communicator");
  if (t_replica) {
    // A replica of run_on_devices: its device, its rank of the world of threads.
    p.device = select_device(t_replica->device.str(), c.get_bool("train.allow_tf32"));
    if (p.device.is_cuda()) cuda::set_current_device(p.device.index);
    t_replica->world->set_timeout(copt.timeout_s);
    std::unique_ptr<dist::Communicator> host = t_replica->world->communicator(t_replica->rank);
    RECUR_CHECK(kind == "auto" || kind == "nccl" || kind == "threads",
                "config: train.communicator is '{}', but --devices runs {} replicas as threads of this process; use "
                "auto (NCCL when every device is a GPU and the build has it, else threads), nccl or threads",
                kind, host->size());
    RECUR_CHECK(kind != "nccl" || t_replica->all_cuda,
                "config: train.communicator nccl needs every --devices entry to be a different GPU (NCCL takes one "
                "rank per GPU); train.communicator threads stages GPU tensors through the host instead");
    const bool nccl = kind == "nccl" || (kind == "auto" && t_replica->all_cuda && dist::nccl_compiled());
    if (nccl) copt.device = p.device;
    p.comm = nccl ? dist::make_nccl_communicator(std::move(host), copt) : std::move(host);
    const unsigned cores = std::thread::hardware_concurrency();
    if (p.comm->rank() == 0 && p.device.is_cpu() && cores > 0 &&
        static_cast<unsigned>(p.comm->size() * threads) > cores)
      std::cerr << fmt::format("note: {} replicas x {} threads (train.threads) on {} cores; set --threads {} so that "
                               "they do not compete for cores\n",
                               p.comm->size(), threads, cores, std::max<unsigned>(1, cores / static_cast<unsigned>(p.comm->size())));
  } else {
    RECUR_CHECK(kind != "threads",
                "config: train.communicator threads is a world of replicas in one process: it needs --devices with "
                "several devices (e.g. --devices cpu,cpu)");
    p.device = select_device(c.get_string("train.device"), c.get_bool("train.allow_tf32"));
    if (p.device.is_cuda()) copt.device = p.device;
    p.comm = dist::make_communicator(kind, copt);
  }
  p.lead = p.comm->rank() == 0;
  p.log = p.lead ? &std::cerr : &null_stream();
  return p;
}

namespace {
// A lock-free atomic: set by the handler on whichever thread takes the signal, read by every
// replica's thread (a volatile sig_atomic_t is only safe within one thread).
std::atomic<bool> g_sigint{false};
static_assert(std::atomic<bool>::is_always_lock_free);
extern "C" void on_training_sigint(int) {
  const int saved = errno;
  g_sigint.store(true);
  errno = saved;
}
// Replicas run as threads each hold a scope: the first installs the handler, the last restores it.
std::mutex g_sigint_mu;
int g_sigint_scopes = 0;
}  // namespace

SigintScope::SigintScope() {
  std::lock_guard<std::mutex> lock(g_sigint_mu);
  if (g_sigint_scopes++ == 0) {
    g_sigint.store(false);
    std::signal(SIGINT, on_training_sigint);
  }
}
SigintScope::~SigintScope() {
  std::lock_guard<std::mutex> lock(g_sigint_mu);
  if (--g_sigint_scopes == 0) std::signal(SIGINT, SIG_DFL);
}
bool SigintScope::raised() { return g_sigint.load(); }

bool StepTotals::finite() const { return std::isfinite(loss); }

DataParallelStep::DataParallelStep(dist::Communicator& comm, train::Optimizer& optimizer,
                                   const train::NamedParams& params, int64_t accumulate, double clip,
                                   bool balance_by_speed)
    : comm_(comm), opt_(optimizer), params_(params), accumulate_(accumulate), clip_(clip),
      balance_by_speed_(balance_by_speed) {
  RECUR_CHECK(accumulate >= 1, "train.accumulate must be at least 1, got {}", accumulate);
  if (comm.size() > 1) reducer_ = std::make_unique<dist::GradientReducer>(params_, comm_);
}

StepTotals DataParallelStep::run(const std::vector<dist::ShardItem>& items, const std::function<int64_t(int64_t)>& terms,
                                 const MicroLossFn& loss_fn, uint64_t step_seed, double lead_time) {
  const auto t_start = Clock::now();
  const dist::Shard mine = dist::shard(items, comm_.rank(), comm_.size(), speeds_);
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
  const auto t_gathered = Clock::now();
  const double compute_s = seconds_between(t_start, t_gathered);
  constexpr size_t kSlots = 6;
  const std::vector<double> all = comm_.all_gather(std::vector<double>{
      local_sum, static_cast<double>(shard_terms_), static_cast<double>(mine.tokens),
      SigintScope::raised() ? 1.0 : 0.0, comm_.rank() == 0 ? lead_time : 0.0, compute_s});
  std::vector<double> g(kSlots - 1, 0.0);  // sums over ranks of the first five slots
  const size_t ranks = static_cast<size_t>(comm_.size());
  for (size_t r = 0; r < ranks; ++r)
    for (size_t i = 0; i + 1 < kSlots; ++i) g[i] += all[r * kSlots + i];
  times_.compute += compute_s;
  times_.wait += seconds_since(t_gathered);
  times_.rank_compute.resize(ranks, 0.0);
  for (size_t r = 0; r < ranks; ++r) times_.rank_compute[r] += all[r * kSlots + 5];
  if (balance_by_speed_ && ranks > 1) update_speeds(all, kSlots);
  StepTotals t;
  t.loss = g[1] > 0 ? g[0] / g[1] : 0.0;
  t.terms = g[1];
  t.work = g[2];
  t.stop = g[3] > 0;
  t.lead_time = g[4];
  return t;
}

void DataParallelStep::apply(double lr) {
  const auto t0 = Clock::now();
  if (reducer_) reducer_->reduce(shard_terms_);
  const auto t1 = reducer_ ? Clock::now() : t0;  // one process: no all-reduce, no time for it
  if (clip_ > 0) train::clip_grad_norm(params_, clip_);
  opt_.set_lr(lr);
  opt_.step();
  times_.all_reduce += seconds_between(t0, t1);
  times_.update += seconds_since(t1);
}

void DataParallelStep::update_speeds(const std::vector<double>& all, size_t slots) {
  // Every rank runs this on the same gathered numbers, so all agree on the speeds bit for bit.
  constexpr double kSmooth = 0.05;  // about the last 20 steps; one step's time is noisy (+-10%)
  const size_t ranks = static_cast<size_t>(comm_.size());
  rates_.resize(ranks, 0.0);
  for (size_t r = 0; r < ranks; ++r) {
    const double tokens = all[r * slots + 2], secs = all[r * slots + 5];
    if (tokens <= 0 || secs <= 0) continue;  // an empty shard says nothing about speed
    const double rate = tokens / secs;
    rates_[r] = rates_[r] > 0 ? rates_[r] + kSmooth * (rate - rates_[r]) : rate;
  }
  double mean = 0;
  for (double v : rates_) {
    if (v <= 0) return;  // some rank not measured yet: keep balancing by tokens
    mean += v / static_cast<double>(ranks);
  }
  speeds_.resize(ranks);
  for (size_t r = 0; r < ranks; ++r) speeds_[r] = std::clamp(rates_[r], mean / 4, mean * 4);
}

DataParallelStep::Times DataParallelStep::take_times() { return std::exchange(times_, Times{}); }

nlohmann::json DataParallelStep::Times::json() const {
  return {{"compute_s", compute}, {"wait_s", wait}, {"all_reduce_s", all_reduce}, {"update_s", update}};
}

std::string config_task(const std::string& path, const std::vector<std::string>& sets) {
  std::string task;
  for (const auto& s : sets)
    if (s.rfind("task=", 0) == 0) task = s.substr(5);
  if (!task.empty()) return task;
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (root.IsMap() && root["task"] && root["task"].IsScalar()) task = root["task"].as<std::string>();
  } catch (const YAML::Exception&) {
    return "";
  }
  return task;
}

bool track_validation(dist::Communicator& comm, bool lead, double score, double& best, int64_t& bad_epochs) {
  const double shared = dist::sum_over_ranks(comm, {lead ? score : 0.0})[0];
  const bool improved = shared > best;
  if (improved) best = shared;
  bad_epochs = improved ? 0 : bad_epochs + 1;
  return improved;
}

std::vector<std::vector<dist::ShardItem>> shuffled_batches(size_t n, int64_t batch, uint64_t seed, int64_t epoch,
                                                           const std::function<int64_t(size_t)>& work,
                                                           std::vector<std::vector<size_t>>* batches) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  Rng r(mix64(seed ^ static_cast<uint64_t>(epoch)));
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[r.next_u64() % i]);
  batches->clear();
  std::vector<std::vector<dist::ShardItem>> out;
  const size_t b = static_cast<size_t>(batch);
  for (size_t at = 0; at < idx.size(); at += b) {
    batches->emplace_back(idx.begin() + static_cast<std::ptrdiff_t>(at),
                          idx.begin() + static_cast<std::ptrdiff_t>(std::min(idx.size(), at + b)));
    out.emplace_back();
    for (size_t k = 0; k < batches->back().size(); ++k)
      out.back().push_back({static_cast<int64_t>(k), work(batches->back()[k])});
  }
  return out;
}

void run_epochs(const Config& c, const EpochsArgs& a, TrainProcess& proc, nn::Module& model,
                const nlohmann::json& task_meta, EpochTask& hooks) {
  std::ostream& log = *proc.log;
  dist::Communicator& comm = *proc.comm;
  const train::NamedParams params = hooks.parameters.empty() ? model.named_parameters() : hooks.parameters;
  auto opt = make_optimizer(c, params);
  auto ema = make_ema(c, params);
  const int64_t epochs = c.get_int("train.epochs"), accumulate = c.get_int("train.accumulate");
  const int64_t steps_per_epoch = static_cast<int64_t>(hooks.batches(1).size());
  const train::LrScheduleOptions so = schedule_options(c, steps_per_epoch, true);
  const double max_minutes = c.get_float("train.max_minutes");
  if (proc.lead) fs::create_directories(a.out);
  int64_t start_epoch = 1, step = 0, bad_epochs = 0;
  double best = -1e300, spent_before = 0;
  auto t_train = Clock::now();
  auto meta = [&](int64_t epoch) {
    nlohmann::json m = task_meta;
    m.update({{"config", c.to_json()}, {"epoch", epoch}, {"step", step}, {"best_score", best},
              {"bad_epochs", bad_epochs}, {"train_seconds", spent_before + seconds_since(t_train)}});
    return m;
  };
  if (!a.resume.empty()) {
    const nlohmann::json m = train::load_checkpoint(a.resume, model, opt.get(), ema.get());
    start_epoch = m.at("epoch").get<int64_t>() + 1;
    step = m.at("step").get<int64_t>();
    best = m.at("best_score").get<double>();
    bad_epochs = m.value("bad_epochs", int64_t{0});
    spent_before = m.value("train_seconds", 0.0);
    log << fmt::format("resumed from {} after epoch {} (step {})\n", a.resume, start_epoch - 1, step);
  }
  dist::broadcast_parameters(params, comm);
  if (ema && a.resume.empty()) ema = make_ema(c, params);  // start from rank 0's initial weights
  DataParallelStep stepper(comm, *opt, params, accumulate, c.get_float("train.clip"),
                           c.get_string("train.balance") == "speed");
  std::ofstream metrics;
  if (proc.lead) metrics.open(fs::path(a.out) / "metrics.jsonl", std::ios::app);
  SigintScope sigint;
  const bool tty = isatty(STDERR_FILENO);
  const int64_t log_every = c.get_int("train.log_every");
  const uint64_t seed = static_cast<uint64_t>(c.get_int("train.seed"));
  log << fmt::format("train: {} parameters, {} steps per epoch{}\n", model.num_parameters(), steps_per_epoch,
                     comm.size() > 1 ? fmt::format(" over {} ranks ({})", comm.size(), comm.name()) : "");
  t_train = Clock::now();
  bool out_of_time = false;
  for (int64_t epoch = start_epoch; epoch <= epochs && !out_of_time; ++epoch) {
    const auto t_epoch = Clock::now();
    model.train(true);
    double loss_sum = 0;
    int64_t tokens = 0, seen = 0;
    const auto batches = hooks.batches(epoch);
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      const StepTotals st = stepper.run(
          batches[bi], [&](int64_t i) { return hooks.terms(bi, i); },
          [&](Tape& tape, const std::vector<int64_t>& items, uint64_t s) { return hooks.loss(tape, bi, items, s); },
          seed ^ static_cast<uint64_t>(step), spent_before + seconds_since(t_train));
      RECUR_CHECK(st.finite(), "train: the loss became {} at epoch {} step {}; lower train.lr or set train.clip",
                  st.loss, epoch, step);
      const double time_share = max_minutes > 0 ? std::min(1.0, st.lead_time / (60 * max_minutes)) : 0.0;
      stepper.apply(train::lr_at(so, step, so.kind == train::LrScheduleKind::Cosine ? time_share : 0.0));
      if (ema) ema->update();
      ++step;
      loss_sum += st.loss;
      ++seen;
      tokens += static_cast<int64_t>(st.terms);
      const double secs = seconds_since(t_epoch);
      if (tty || (log_every > 0 && step % log_every == 0)) {
        const double eta = secs / static_cast<double>(bi + 1) * static_cast<double>(batches.size() - bi - 1);
        log << fmt::format("{}epoch {} step {}/{} loss {:.4f} {:.0f} {} ETA {:.0f}s{}", tty ? "\r" : "", epoch,
                           bi + 1, batches.size(), loss_sum / static_cast<double>(seen),
                           static_cast<double>(tokens) / secs, hooks.throughput_unit, eta, tty ? "   " : "\n");
      }
      // Step rows in metrics.jsonl, as the sequence-to-vector loop writes them (the GPU check
      // compares these per-step losses between CPU and GPU runs).
      if (proc.lead && log_every > 0 && step % log_every == 0)
        metrics << nlohmann::json{{"kind", "step"}, {"epoch", epoch}, {"step", step},
                                  {"train_loss", loss_sum / static_cast<double>(seen)}, {"lr", opt->lr()},
                                  {"throughput", static_cast<double>(tokens) / secs}}
                       .dump()
                << std::endl;
      if (max_minutes > 0 && st.lead_time > 60 * max_minutes) {
        out_of_time = true;
        log << fmt::format("\ntrain.max_minutes {} reached at epoch {} step {}/{}\n", max_minutes, epoch, bi + 1,
                           batches.size());
        break;
      }
      if (st.stop) {
        const std::string path = (fs::path(a.out) / "interrupted.safetensors").string();
        // Resuming from it reruns this epoch from its start (with the weights reached so far).
        if (proc.lead) train::save_checkpoint(path, model, opt.get(), meta(epoch - 1), ema.get());
        log << fmt::format("\ninterrupted at epoch {} step {}: saved {}\n", epoch, step, path);
        throw Interrupted();
      }
    }
    model.train(false);
    const double train_secs = seconds_since(t_epoch);
    // With a moving average, the live weights are validated too (logged, not used): what the
    // average buys is then visible epoch by epoch.
    EpochTask::Validation live;
    if (ema && proc.lead) live = hooks.validate();
    if (ema) ema->swap();  // validate, and keep as best, the averaged weights
    EpochTask::Validation v;
    if (proc.lead) v = hooks.validate();
    const bool improved = track_validation(comm, proc.lead, v.score, best, bad_epochs);
    if (tty) log << "\n";
    log << fmt::format("epoch {} train loss {:.4f} valid {}{}{} ({:.0f} s train, {:.0f} s valid)\n", epoch,
                       loss_sum / static_cast<double>(std::max<int64_t>(1, seen)), v.summary, improved ? " *" : "",
                       ema ? "; live weights: " + live.summary : std::string(), train_secs,
                       seconds_since(t_epoch) - train_secs);
    const DataParallelStep::Times times = stepper.take_times();
    if (proc.lead) {
      nlohmann::json row{{"kind", "epoch"}, {"epoch", epoch}, {"step", step},
                         {"train_loss", loss_sum / static_cast<double>(std::max<int64_t>(1, seen))},
                         {"lr", opt->lr()}, {"seconds", seconds_since(t_epoch)},
                         {"tokens_per_s", static_cast<double>(tokens) / train_secs},
                         {"time_split", times.json()}, {"rank_compute_s", times.rank_compute},
                         {"valid", v.json}};
      if (ema) row["valid_live"] = live.json;
      metrics << row.dump() << std::endl;
      if (improved) train::save_checkpoint((fs::path(a.out) / "best.safetensors").string(), model, nullptr, meta(epoch));
    }
    if (ema) ema->swap();  // back to the live weights, which training continues from
    if (proc.lead)
      train::save_checkpoint((fs::path(a.out) / "last.safetensors").string(), model, opt.get(), meta(epoch), ema.get());
    if (c.get_int("train.patience") > 0 && bad_epochs >= c.get_int("train.patience")) {
      log << fmt::format("early stop: no validation improvement for {} epochs\n", bad_epochs);
      break;
    }
  }
  comm.barrier();  // checkpoints written before anyone reads them
}

void load_best(const std::string& out, nn::Module& fresh, const nn::Module& trained) {
  const fs::path best = fs::path(out) / "best.safetensors";
  if (fs::exists(best)) {
    train::load_checkpoint(best.string(), fresh, nullptr);
  } else {
    std::cerr << fmt::format("no {}: testing the last weights\n", best.string());
    fresh.load_state_dict(trained.state_dict());
  }
}

}  // namespace recur::cli
