// Ranks as threads of one process: the "threads" communicator. A collective is two meetings at a
// barrier of the world: ranks publish their buffers, meet, read (or reduce) each other's, meet
// again, and return. All-reduce splits the work: rank r sums slice r of every rank's buffer into
// a scratch slice of its own, and after the second meeting each rank copies all the summed slices
// into its buffer, so every element is summed once, in rank order, and no buffer is written while
// another rank reads it.
#include "recur/dist/thread_world.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "internal.h"
#include "recur/core/error.h"
#include "recur/core/thread_pool.h"

namespace recur::dist {

namespace {

// What a rank publishes for the collective in progress.
struct Slot {
  void* data = nullptr;  // its tensor (all-reduce, broadcast) or its values (all-gather)
  int64_t count = 0;     // elements
  DType dtype = DType::F32;
  double scale = 1.0;
};

}  // namespace

struct ThreadWorld::State {
  int size;
  CommOptions options;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  std::atomic<uint64_t> generation{0};    // meetings completed (written under mu)
  std::atomic<bool> failed{false};        // failure is set (written under mu)
  std::vector<uint64_t> waiting_for;      // per rank: generation + 1 while it waits at the barrier
  std::vector<detail::OpState> entered;   // per rank: the last collective it entered
  std::vector<Slot> slots;
  std::vector<std::vector<unsigned char>> partial;  // per rank: its summed slice of an all-reduce
  std::string failure;
  int failed_rank = -1;

  State(int n, const CommOptions& o)
      : size(n), options(o), waiting_for(static_cast<size_t>(n), 0), entered(static_cast<size_t>(n)),
        slots(static_cast<size_t>(n)), partial(static_cast<size_t>(n)) {}

  // Records a failure (the first one is kept) and wakes every waiting rank. Caller holds mu.
  void fail_locked(int rank, const std::string& why) {
    if (failure.empty()) {
      failure = why;
      failed_rank = rank;
      failed = true;
    }
    cv.notify_all();
  }

  // The error a rank throws once the world has failed. Caller holds mu.
  [[noreturn]] void throw_failed(int rank, const detail::OpState& op) const {
    if (failed_rank < 0 || failed_rank == rank) RECUR_FAIL("{}", failure);
    RECUR_FAIL("rank {} of {} (threads): rank {} failed while this rank was in {}; ending: {}", rank, size, failed_rank,
               detail::describe(op), failure);
  }

  // "" when every rank entered the same collective (kind, sequence number and size), else which
  // rank is in which. Caller holds mu.
  std::string mismatch() const {
    bool same = true;
    for (const auto& e : entered)
      same = same && e.kind == entered[0].kind && e.seq == entered[0].seq && e.bytes == entered[0].bytes;
    if (same) return "";
    std::string where;
    for (int r = 0; r < size; ++r)
      where += fmt::format("{}rank {} in {}", r ? ", " : "", r, detail::describe(entered[static_cast<size_t>(r)]));
    return fmt::format("the ranks called different collectives (or the same one with different sizes): {}", where);
  }

  // Waits until all ranks have met here. `entering`: the first meeting of collective `op` (its
  // kind and size are compared across ranks).
  void meet(int rank, const detail::OpState& op, bool entering) {
    std::unique_lock<std::mutex> lock(mu);
    if (!failure.empty()) throw_failed(rank, op);
    if (entering) entered[static_cast<size_t>(rank)] = op;
    const uint64_t gen = generation.load();
    if (++arrived == size) {
      arrived = 0;
      if (entering) {
        const std::string m = mismatch();
        if (!m.empty()) {
          fail_locked(-1, fmt::format("rank {} of {} (threads): {}", rank, size, m));
          throw_failed(rank, op);
        }
      }
      ++generation;
      cv.notify_all();
      return;
    }
    waiting_for[static_cast<size_t>(rank)] = gen + 1;
    struct Leave {
      uint64_t& slot;
      ~Leave() { slot = 0; }
    } leave{waiting_for[static_cast<size_t>(rank)]};
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    // Poll first, yielding the core, as MPI's own waits do: the others usually arrive within a
    // step's compute, and a thread put to sleep on the condition variable wakes late and often on
    // another core (measured: spam's 2-replica speed-up 1.82x with sleeping waits). After 50 ms
    // the others are clearly busy for longer; sleep then.
    lock.unlock();
    for (int i = 0; generation.load(std::memory_order_acquire) == gen && !failed.load(std::memory_order_acquire); ++i) {
      if ((i & 255) == 255 && clock::now() - start > std::chrono::milliseconds(50)) break;
      sched_yield();
    }
    lock.lock();
    const double timeout = options.timeout_s;
    while (generation == gen) {
      if (!failure.empty()) throw_failed(rank, op);
      cv.wait_for(lock, std::chrono::milliseconds(100));
      if (generation != gen) break;
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (timeout > 0 && waited >= timeout && failure.empty()) {
        std::string missing;
        for (int r = 0; r < size; ++r)
          if (waiting_for[static_cast<size_t>(r)] != gen + 1)
            missing += fmt::format("{}rank {} (last entered {})", missing.empty() ? "" : ", ", r,
                                   detail::describe(entered[static_cast<size_t>(r)]));
        fail_locked(rank, fmt::format("rank {} of {} (threads): {} did not complete within {:.0f} s (timeout {} s): "
                                      "not arrived: {}. Ending the job",
                                      rank, size, detail::describe(op), waited, timeout, missing));
        throw_failed(rank, op);
      }
    }
  }
};

namespace {

class ThreadCommunicator final : public Communicator, public detail::PeerMonitor {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadWorld::State> s, int rank) : s_(std::move(s)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return s_->size; }
  int local_rank() const override { return rank_; }
  int local_size() const override { return s_->size; }
  std::string name() const override { return "threads"; }
  Device device() const override { return Device::cpu(); }
  const CommOptions& options() const override { return s_->options; }

  std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op, double scale) override {
    RECUR_CHECK(t.defined(), "all_reduce: undefined tensor");
    const bool is_float = t.dtype() == DType::F32 || t.dtype() == DType::F64;
    RECUR_CHECK(is_float || (scale == 1.0 && op == ReduceOp::Sum),
                "all_reduce: {} tensors support only Sum with scale 1", dtype_name(t.dtype()));
    on_host(t, [&](Tensor& h) { reduce_host(h, op, scale); });
    return std::make_unique<Done>();
  }

  void broadcast(Tensor& t, int root) override {
    RECUR_CHECK(t.defined(), "broadcast: undefined tensor");
    RECUR_CHECK(root >= 0 && root < size(), "broadcast: root {} is not a rank of {}", root, size());
    on_host(t, [&](Tensor& h) { broadcast_host(h, root); });
  }

  std::vector<double> all_gather(const std::vector<double>& values) override { return gather(values); }
  std::vector<int64_t> all_gather(const std::vector<int64_t>& values) override { return gather(values); }
  using Communicator::all_gather;

  void barrier() override { s_->meet(rank_, next(detail::OpKind::Barrier, 0), true); }

  [[noreturn]] void abort(int code) override { std::_Exit(code); }

  // PeerMonitor, for NCCL riding on this communicator: a failed rank ends NCCL's waits too.
  void set_waiting(const detail::OpState&) override {}
  void service() override {}
  void check_peers(const detail::OpState& op) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    if (!s_->failure.empty()) s_->throw_failed(rank_, op);
  }
  [[noreturn]] void fail_timeout(const detail::OpState& op, double waited_s) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->fail_locked(rank_, fmt::format("rank {} of {} (threads): {} did not complete within {:.0f} s (timeout {} s). "
                                       "Ending the job",
                                       rank_, size(), detail::describe(op), waited_s, s_->options.timeout_s));
    s_->throw_failed(rank_, op);
  }

 private:
  struct Done final : Work {
    void wait() override {}
    bool test() override { return true; }
  };

  detail::OpState next(detail::OpKind kind, int64_t bytes) { return {kind, ++seq_, bytes}; }

  // Runs fn on t, or on a host copy of a device tensor that is then copied back (as MPI stages).
  template <class F>
  static void on_host(Tensor& t, F&& fn) {
    if (!t.device().is_cuda()) return fn(t);
    Tensor h = t.to(Device::cpu());
    fn(h);
    t.copy_from(h);
  }

  Slot& mine() { return s_->slots[static_cast<size_t>(rank_)]; }

  // Rank r sums elements [n r / size, n (r+1) / size) of every rank's buffer, in rank order.
  template <class T>
  void reduce_slice(int64_t n, ReduceOp op) {
    const int64_t size = this->size(), b = n * rank_ / size, e = n * (rank_ + 1) / size;
    std::vector<unsigned char>& part = s_->partial[static_cast<size_t>(rank_)];
    part.resize(static_cast<size_t>(e - b) * sizeof(T));
    T* out = reinterpret_cast<T*>(part.data());
    const std::vector<Slot>& slots = s_->slots;
    thread_pool().parallel_for(e - b, 1 << 14, [&](int64_t lo, int64_t hi) {
      for (int64_t k = 0; k < size; ++k) {
        const T* x = static_cast<const T*>(slots[static_cast<size_t>(k)].data) + b;
        const T f = static_cast<T>(slots[static_cast<size_t>(k)].scale);
        if (k == 0 && f == T(1)) {
          for (int64_t i = lo; i < hi; ++i) out[i] = x[i];
        } else if (k == 0) {
          for (int64_t i = lo; i < hi; ++i) out[i] = x[i] * f;
        } else if (f == T(1)) {
          for (int64_t i = lo; i < hi; ++i) out[i] += x[i];
        } else {
          for (int64_t i = lo; i < hi; ++i) out[i] += x[i] * f;
        }
      }
      if (op == ReduceOp::Avg) {
        const T inv = static_cast<T>(1.0 / static_cast<double>(size));
        for (int64_t i = lo; i < hi; ++i) out[i] *= inv;
      }
    });
  }

  void reduce_host(Tensor& t, ReduceOp op, double scale) {
    const detail::OpState st = next(detail::OpKind::AllReduce, static_cast<int64_t>(t.nbytes()));
    mine() = Slot{t.raw(), t.numel(), t.dtype(), scale};
    s_->meet(rank_, st, true);
    const int64_t n = t.numel();
    for (int k = 0; k < size(); ++k)  // the sizes matched; so must the types
      RECUR_CHECK(s_->slots[static_cast<size_t>(k)].dtype == t.dtype(), "all_reduce #{}: rank {} passed {}, rank {} {}",
                  st.seq, rank_, dtype_name(t.dtype()), k, dtype_name(s_->slots[static_cast<size_t>(k)].dtype));
    switch (t.dtype()) {
      case DType::F32: reduce_slice<float>(n, op); break;
      case DType::F64: reduce_slice<double>(n, op); break;
      case DType::I32: reduce_slice<int32_t>(n, op); break;
      case DType::I64: reduce_slice<int64_t>(n, op); break;
    }
    s_->meet(rank_, st, false);
    const size_t elem = dtype_size(t.dtype());
    auto* dst = static_cast<unsigned char*>(t.raw());
    for (int k = 0; k < size(); ++k) {
      const int64_t b = n * k / size();
      const auto& part = s_->partial[static_cast<size_t>(k)];
      if (!part.empty()) std::memcpy(dst + static_cast<size_t>(b) * elem, part.data(), part.size());
    }
    // Nobody reads this rank's slice again before the next collective's first meeting, after
    // which this rank rewrites it.
  }

  void broadcast_host(Tensor& t, int root) {
    const detail::OpState st = next(detail::OpKind::Broadcast, static_cast<int64_t>(t.nbytes()));
    mine() = Slot{t.raw(), t.numel(), t.dtype(), 1.0};
    s_->meet(rank_, st, true);
    if (rank_ != root && t.nbytes() > 0) std::memcpy(t.raw(), s_->slots[static_cast<size_t>(root)].data, t.nbytes());
    s_->meet(rank_, st, false);  // the root's buffer stays untouched until everyone has copied it
  }

  template <class T>
  std::vector<T> gather(const std::vector<T>& values) {
    const int64_t k = static_cast<int64_t>(values.size());
    const detail::OpState st = next(detail::OpKind::AllGather, k * static_cast<int64_t>(sizeof(T)));
    mine() = Slot{const_cast<T*>(values.data()), k, DType::F64, 1.0};  // dtype unused: sizes matched
    s_->meet(rank_, st, true);
    std::vector<T> all;
    all.reserve(static_cast<size_t>(k * size()));
    for (const Slot& s : s_->slots) {
      const T* p = static_cast<const T*>(s.data);
      all.insert(all.end(), p, p + k);
    }
    s_->meet(rank_, st, false);
    return all;
  }

  std::shared_ptr<ThreadWorld::State> s_;
  int rank_;
  int64_t seq_ = 0;
};

std::string message_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

ThreadWorld::ThreadWorld(int size, const CommOptions& options) {
  RECUR_CHECK(size >= 1, "ThreadWorld: size must be >= 1, got {}", size);
  s_ = std::make_shared<State>(size, options);
}

ThreadWorld::~ThreadWorld() = default;

int ThreadWorld::size() const { return s_->size; }

void ThreadWorld::set_timeout(double timeout_s) {
  std::lock_guard<std::mutex> lock(s_->mu);
  // Written once: replicas setting the value already there do not write, so a rank reading
  // options() without the lock after its own call never races with another's.
  if (s_->options.timeout_s != timeout_s) s_->options.timeout_s = timeout_s;
}

std::unique_ptr<Communicator> ThreadWorld::communicator(int rank) {
  RECUR_CHECK(rank >= 0 && rank < s_->size, "ThreadWorld: rank {} is not in [0, {})", rank, s_->size);
  return std::make_unique<ThreadCommunicator>(s_, rank);
}

void ThreadWorld::fail(int rank, const std::string& why) {
  std::lock_guard<std::mutex> lock(s_->mu);
  s_->fail_locked(rank, why);
}

std::string ThreadWorld::failure() const {
  std::lock_guard<std::mutex> lock(s_->mu);
  return s_->failure;
}

void ThreadWorld::run(int threads, const std::function<void(int rank)>& fn) {
  std::vector<std::exception_ptr> errors(static_cast<size_t>(s_->size));
  std::mutex done_mu;
  std::condition_variable done_cv;
  int first = -1, running = s_->size;
  std::vector<std::thread> ranks;
  for (int r = 0; r < s_->size; ++r) {
    ranks.emplace_back([&, r] {
      try {
        ThreadPoolScope pool(threads);
        fn(r);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
        {
          std::lock_guard<std::mutex> lock(done_mu);
          if (first < 0) first = r;
        }
        fail(r, message_of(errors[static_cast<size_t>(r)]));
      }
      std::lock_guard<std::mutex> lock(done_mu);
      --running;
      done_cv.notify_all();
    });
  }
  {
    // After a failure the others end at their next collective. One that does not (stuck outside
    // collectives) would keep the process alive forever: as MPI_Abort ends the ranks of a job,
    // end the process once it has had the collective timeout to notice.
    std::unique_lock<std::mutex> lock(done_mu);
    done_cv.wait(lock, [&] { return running == 0 || first >= 0; });
    double grace = 0;
    {
      std::lock_guard<std::mutex> options_lock(s_->mu);  // replicas may still be setting it
      grace = s_->options.timeout_s;
    }
    if (running > 0 && grace > 0 &&
        !done_cv.wait_for(lock, std::chrono::duration<double>(grace), [&] { return running == 0; })) {
      std::fprintf(stderr, "%s\n%d of %d ranks (threads) still running %.0f s after rank %d failed; ending the process\n",
                   message_of(errors[static_cast<size_t>(first)]).c_str(), running, s_->size, grace, first);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
  for (auto& t : ranks) t.join();
  if (first >= 0) std::rethrow_exception(errors[static_cast<size_t>(first)]);
}

}  // namespace recur::dist
