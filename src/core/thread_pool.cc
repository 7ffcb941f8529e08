#include "recur/core/thread_pool.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "recur/core/error.h"

namespace recur {

namespace {
thread_local bool in_pool_job = false;

// Denormal floats (|x| < 1.2e-38) take a microcode assist on x86: an op on them costs ~100x a
// normal one. A trained LSTM's gradients drift into that range (products of saturated gate
// derivatives), which made long training runs slow down several-fold. Flush-to-zero (results) and
// denormals-are-zero (inputs) trade that for a relative error below 1e-38. On by default;
// RECUR_KEEP_DENORMALS=1 turns it off (to measure the difference).
std::atomic<bool> g_flush{[] {
  const char* e = std::getenv("RECUR_KEEP_DENORMALS");
  return !(e && *e && std::strcmp(e, "0") != 0);
}()};

void apply_denormal_mode(bool flush) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned csr = _mm_getcsr();
  constexpr unsigned kFtzDaz = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
  _mm_setcsr(flush ? (csr | kFtzDaz) : (csr & ~kFtzDaz));
#else
  (void)flush;
#endif
}
}  // namespace

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {
  for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker(int index) {
  apply_denormal_mode(g_flush.load());
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    // Spin a little before sleeping: jobs often come microseconds apart (one per GEMM or per
    // step), and a condition-variable wake-up costs tens of microseconds.
    for (int spin = 0; spin < 20000 && generation_seen_.load(std::memory_order_acquire) == seen; ++spin)
      cpu_relax();
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    in_pool_job = true;
    (*job)(index);
    in_pool_job = false;
    // The last worker out wakes the caller if it went to sleep; taking the lock first means the
    // caller is either not yet waiting (and will see pending_ == 0) or already asleep.
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (threads_ == 1 || in_pool_job) {
    for (int i = 0; i < threads_; ++i) fn(i);
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  RECUR_CHECK(!busy_, "ThreadPool::run_on_all called concurrently from two threads");
  busy_ = true;
  job_ = &fn;
  pending_.store(threads_ - 1, std::memory_order_relaxed);
  ++generation_;
  generation_seen_.store(generation_, std::memory_order_release);
  lock.unlock();
  cv_.notify_all();
  in_pool_job = true;
  fn(0);
  in_pool_job = false;
  // The workers usually finish within microseconds of the caller: spin for them first, since
  // sleeping on the condition variable and being woken costs tens of microseconds a job (most
  // jobs are a GEMM or a pointwise loop of a few microseconds to a millisecond).
  for (int spin = 0; spin < 20000 && pending_.load(std::memory_order_acquire) != 0; ++spin) cpu_relax();
  lock.lock();
  done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  job_ = nullptr;
  busy_ = false;
}

void ThreadPool::parallel_for(int64_t n, int64_t min_grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int64_t grain = std::max<int64_t>(1, min_grain);
  int64_t chunks = std::min<int64_t>(threads_, n / grain);
  if (chunks <= 1 || in_pool_job) {
    fn(0, n);
    return;
  }
  run_on_all([&](int i) {
    if (i >= chunks) return;
    int64_t b = n * i / chunks, e = n * (i + 1) / chunks;
    if (b < e) fn(b, e);
  });
}

namespace {
// The calling thread's own pool while a ThreadPoolScope is alive on it (null: the global one).
thread_local std::unique_ptr<ThreadPool>* t_scoped = nullptr;

std::unique_ptr<ThreadPool>& pool_slot() {
  if (t_scoped) return *t_scoped;
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}
int default_threads() {
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}
}  // namespace

ThreadPool& thread_pool() {
  auto& p = pool_slot();
  if (!p) {
    p = std::make_unique<ThreadPool>(default_threads());
    openblas_set_num_threads(1);
    apply_denormal_mode(g_flush.load());
  }
  return *p;
}

void set_num_threads(int n) {
  RECUR_CHECK(n >= 1, "--threads must be >= 1, got {}", n);
  auto& p = pool_slot();
  if (!p || p->size() != n) {
    p.reset();
    p = std::make_unique<ThreadPool>(n);
  }
  // recur partitions GEMMs over its own pool; OpenBLAS runs single-threaded inside each part.
  openblas_set_num_threads(1);
  apply_denormal_mode(g_flush.load());
}

int num_threads() { return thread_pool().size(); }

ThreadPoolScope::ThreadPoolScope(int threads) : pool_(std::make_unique<ThreadPool>(threads)), previous_(t_scoped) {
  t_scoped = &pool_;
  openblas_set_num_threads(1);
  apply_denormal_mode(g_flush.load());
}

ThreadPoolScope::~ThreadPoolScope() { t_scoped = previous_; }

void set_flush_denormals(bool on) {
  g_flush.store(on);
  thread_pool().run_on_all([on](int) { apply_denormal_mode(on); });
  apply_denormal_mode(on);
}

bool flush_denormals() { return g_flush.load(); }

}  // namespace recur
