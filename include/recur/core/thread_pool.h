#pragma once
/// \file A small explicit thread pool for pointwise loops, and the --threads knob.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace recur {

/// A pause hint for spin-wait loops.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/// Fixed-size pool. parallel_for splits [0, n) into one contiguous chunk per thread (the caller
/// runs chunk 0), so a given (n, threads) always gives the same partition: results are
/// deterministic. Nested calls run serially.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return threads_; }
  /// Runs fn(begin, end) over [0, n) in chunks; runs inline when n < min_grain * 2 or one thread.
  void parallel_for(int64_t n, int64_t min_grain, const std::function<void(int64_t, int64_t)>& fn);
  /// Runs fn(worker_index) once on each of the pool's threads (index 0 is the caller).
  void run_on_all(const std::function<void(int)>& fn);

 private:
  void worker(int index);
  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> generation_seen_{0};  // generation_, readable without the lock
  std::atomic<int> pending_{0};  // workers still running the current job
  bool stop_ = false;
  bool busy_ = false;
};

/// The calling thread's pool: its own one while a ThreadPoolScope is alive on it, else the
/// process-wide pool (one of the two allowed global objects, with the allocator).
ThreadPool& thread_pool();
/// Sets the size (n >= 1) of the calling thread's pool (see thread_pool()) and makes OpenBLAS
/// single-threaded: recur splits GEMMs over its own n threads (src/cpu/gemm.h), so GEMMs, pointwise
/// loops and the persistent RNN steps share the same n threads and never oversubscribe the cores.
void set_num_threads(int n);
int num_threads();

/// Gives the calling thread a pool of its own for the scope's lifetime: thread_pool(),
/// set_num_threads() and num_threads() on this thread then use it. Data-parallel replicas that run
/// as threads of one process (dist::ThreadWorld) each drive their own pool this way, since a pool
/// serves one caller at a time. Scopes nest; each restores the previous pool when it ends.
class ThreadPoolScope {
 public:
  explicit ThreadPoolScope(int threads);
  ~ThreadPoolScope();
  ThreadPoolScope(const ThreadPoolScope&) = delete;
  ThreadPoolScope& operator=(const ThreadPoolScope&) = delete;

 private:
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ThreadPool>* previous_;
};
/// Flush-to-zero / denormals-are-zero on the caller and every pool thread (on by default; the
/// environment variable RECUR_KEEP_DENORMALS=1 starts with it off). Arithmetic on denormals is
/// ~100x slower on x86 and the values are below float's useful range for training.
void set_flush_denormals(bool on);
bool flush_denormals();

}  // namespace recur
