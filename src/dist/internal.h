#pragma once
// Internal to src/dist: the pieces the MPI and NCCL communicators share (no MPI or NCCL headers,
// so this compiles in every build).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "recur/dist/communicator.h"

namespace recur::dist::detail {

enum class OpKind : int64_t { None = 0, AllReduce = 1, Broadcast = 2, AllGather = 3, Barrier = 4, Setup = 5 };
const char* op_name(OpKind k);

/// The collective a rank is in: the same (kind, seq) on every rank when all call collectives in
/// the same order.
struct OpState {
  OpKind kind = OpKind::None;
  int64_t seq = 0;    ///< 1 for this communicator's first collective
  int64_t bytes = 0;  ///< payload of this rank
};
/// "all_reduce #12 (4.0 MiB)".
std::string describe(const OpState& op);

/// Fault detection a host-side communicator (MPI) offers while a collective waits, also to a
/// device communicator (NCCL) riding on it.
class PeerMonitor {
 public:
  virtual ~PeerMonitor() = default;
  /// The collective this rank now waits in (what it answers when a peer asks), or None.
  virtual void set_waiting(const OpState& op) = 0;
  /// Answers peers' questions that have arrived. Cheap; called on every poll.
  virtual void service() = 0;
  /// Throws recur::Error (and marks the job failed) when a peer process on this machine is gone.
  virtual void check_peers(const OpState& op) = 0;
  /// After the timeout: asks every peer what it is doing, then throws recur::Error naming the
  /// ranks that did not answer, those that have exited and those in another collective.
  [[noreturn]] virtual void fail_timeout(const OpState& op, double waited_s) = 0;
};

/// Polls done() until it returns true: in between, answers peers and checks local peers are
/// alive (monitor, may be null), yields the CPU, and fails after options.timeout_s.
void wait_for(const std::function<bool()>& done, const OpState& op, double timeout_s, PeerMonitor* monitor);

/// In place: t *= factor on the host (F32/F64) or on its GPU.
void scale_tensor(Tensor& t, double factor);

/// Implemented by mpi_communicator.cc (or mpi_stub.cc) and nccl_communicator.cc (or nccl_stub.cc).
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions& options);
/// `host` carries the unique id at start-up, metrics and barriers (MPI, or local for one process).
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, const CommOptions& options);

}  // namespace recur::dist::detail
