#pragma once
/// \file ThreadWorld: data-parallel ranks as threads of one process (`recur train CONFIG
/// --devices cpu,cpu` or `--devices cuda:0,cuda:1`), with a "threads" communicator per rank whose
/// collectives work on shared memory: no MPI, no copies through a transport.
///
/// Each rank runs the same training loop on its own thread, with its own model replica, its own
/// thread pool (ThreadPoolScope) and its own device; the collectives meet at barriers in the
/// world. Like the MPI communicator's, no wait is endless: a rank that fails (throws) or does not
/// arrive within CommOptions::timeout_s makes every waiting rank throw recur::Error naming it, and
/// ranks calling different collectives are told so at once. On GPUs, NCCL rides on a rank's
/// communicator (make_nccl_communicator) for the device buffers, as it rides on MPI across processes.
#include <functional>
#include <memory>
#include <string>

#include "recur/dist/communicator.h"

namespace recur::dist {

class ThreadWorld {
 public:
  /// A world of `size` ranks (>= 1).
  explicit ThreadWorld(int size, const CommOptions& options = {});
  ~ThreadWorld();
  ThreadWorld(const ThreadWorld&) = delete;
  ThreadWorld& operator=(const ThreadWorld&) = delete;

  int size() const;
  /// Sets CommOptions::timeout_s for every rank's later waits (the replicas of `recur train` read
  /// it from their config once they have started; each sets the same value).
  void set_timeout(double timeout_s);
  /// Rank `rank`'s communicator (name "threads", device cpu; local rank = rank). Every collective
  /// takes host tensors directly and stages device tensors through the host. Used by one thread at
  /// a time; the world must outlive it.
  std::unique_ptr<Communicator> communicator(int rank);
  /// Records that `rank` failed (`why`): every rank waiting in a collective, and every collective
  /// called later, throws recur::Error naming it. The first failure recorded is kept.
  void fail(int rank, const std::string& why);
  /// The first failure recorded ("" when none).
  std::string failure() const;

  /// Runs fn(rank) on one thread per rank, each under a ThreadPoolScope of `threads` threads, and
  /// returns when all have returned. When one throws, the world fails (so that nobody waits for
  /// it) and, after every thread has ended, the first exception thrown is rethrown here: the
  /// cause, not the other ranks' "rank r failed" errors that follow from it. A rank still running
  /// CommOptions::timeout_s after the failure (stuck outside collectives) cannot be stopped from
  /// outside: the process then prints the cause and exits with status 1, as MPI_Abort ends a job.
  void run(int threads, const std::function<void(int rank)>& fn);

  struct State;  // shared by the world and its communicators (thread_world.cc)

 private:
  std::shared_ptr<State> s_;
};

}  // namespace recur::dist
