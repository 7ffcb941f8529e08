#pragma once
/// \file Communicator: the collectives data-parallel training needs (all-reduce, broadcast,
/// all-gather, barrier) behind one interface, with three implementations:
///
/// - local: a world of one process; every collective is a no-op (or a scale);
/// - mpi:   OpenMPI processes on one or many machines (`mpirun -np N ...`); CPU tensors go over the
///          wire directly, GPU tensors are staged through the host;
/// - nccl:  one GPU per process (compiled with the CUDA backend and NCCL); GPU tensors are reduced
///          by NCCL on the device's compute stream, host values (metrics) go over MPI.
///
/// Every collective is called by every rank, in the same order, with the same shapes (as in MPI).
/// None of them hangs forever: a collective that has not completed after CommOptions::timeout_s,
/// or whose peer process on this machine has exited, throws recur::Error naming the ranks
/// involved, and the process then ends the whole job (MPI_Abort) on its way out instead of
/// finalizing. docs/DISTRIBUTED.md describes the fault handling in full.
///
/// A communicator is used by one thread at a time.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "recur/core/tensor.h"

namespace recur::dist {

enum class ReduceOp { Sum, Avg };

/// Which implementation make_communicator builds.
enum class Backend {
  Auto,   ///< Mpi when launched by mpirun (OMPI_COMM_WORLD_SIZE is set), else Local
  Local,  ///< a world of one
  Mpi,    ///< OpenMPI; needs a build with MPI
  Nccl,   ///< NCCL over this process's GPU; needs a build with CUDA and NCCL (and MPI for > 1 process)
};

/// Parses "auto", "local", "mpi" or "nccl"; throws recur::Error listing them otherwise.
Backend parse_backend(const std::string& kind);
const char* backend_name(Backend b);

struct CommOptions {
  /// A collective that has not completed after this many seconds fails with an error naming the
  /// ranks that did not arrive; <= 0 waits forever. Raise it when one rank legitimately works
  /// alone for long (e.g. evaluation on rank 0 only) while the others wait at a collective.
  double timeout_s = 300.0;
  /// NCCL only: this process's GPU. Unset: cuda:(local_rank % visible GPUs).
  std::optional<Device> device;
};

/// A collective in flight (from all_reduce_async). wait() must be called before the tensor is
/// read or the communicator is used for a later blocking collective's result; a Work destroyed
/// without wait() leaves the communicator unusable (the collective can no longer be matched).
class Work {
 public:
  virtual ~Work() = default;
  /// Blocks until the collective has completed. Throws recur::Error on a timeout, a dead peer or
  /// a library error.
  virtual void wait() = 0;
  /// Drives progress without blocking; true once the collective has completed (wait() is then
  /// immediate but must still be called).
  virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  /// This process's rank in [0, size()).
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Rank among the processes on this machine (picks the GPU), and how many there are.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  /// "local", "mpi" or "nccl".
  virtual std::string name() const = 0;
  /// Where the fast path wants tensors: the CPU for local and MPI, this process's GPU for NCCL.
  /// Tensors elsewhere still work (NCCL hands CPU tensors to MPI; MPI stages GPU tensors through
  /// the host).
  virtual Device device() const = 0;
  virtual const CommOptions& options() const = 0;

  /// In place, on every rank: t = sum over ranks r of (scale_r * t_r) for Sum, that divided by
  /// size() for Avg, where scale_r is the `scale` rank r passed (each rank its own; 1 by
  /// default). F32 and F64 tensors; I32/I64 only with Sum and scale 1. The tensor must stay
  /// alive and untouched until the returned Work is waited for.
  virtual std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::Sum, double scale = 1.0) = 0;
  /// all_reduce_async(...)->wait().
  void all_reduce(Tensor& t, ReduceOp op = ReduceOp::Sum, double scale = 1.0);
  /// Copies rank `root`'s values of t into t on every rank (same shape and dtype everywhere).
  virtual void broadcast(Tensor& t, int root) = 0;
  /// Every rank passes k values (the same k everywhere); returns size()*k values, rank-major:
  /// element r*k + i is rank r's values[i]. For metrics and small host-side agreements.
  virtual std::vector<double> all_gather(const std::vector<double>& values) = 0;
  virtual std::vector<int64_t> all_gather(const std::vector<int64_t>& values) = 0;
  /// One value per rank, indexed by rank.
  std::vector<double> all_gather(double value);
  std::vector<int64_t> all_gather(int64_t value);
  /// Returns once every rank has called it.
  virtual void barrier() = 0;
  /// Ends this process and (MPI) every other process of the job now, with exit status `code`.
  [[noreturn]] virtual void abort(int code) = 0;
};

/// A world of one: rank 0 of 1; collectives only apply `scale` (and Avg over one rank).
class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(const CommOptions& options = {}) : options_(options) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string name() const override { return "local"; }
  Device device() const override { return Device::cpu(); }
  const CommOptions& options() const override { return options_; }
  std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::Sum, double scale = 1.0) override;
  void broadcast(Tensor& t, int root) override;
  std::vector<double> all_gather(const std::vector<double>& values) override { return values; }
  std::vector<int64_t> all_gather(const std::vector<int64_t>& values) override { return values; }
  using Communicator::all_gather;
  void barrier() override {}
  [[noreturn]] void abort(int code) override;

 private:
  CommOptions options_;
};

/// Builds the communicator for `backend`. Mpi initialises MPI on first use (MPI_Init_thread,
/// once per process; finalized at exit, or MPI_Abort at exit after a fault). Throws recur::Error
/// when the build lacks the backend, and for Auto under mpirun in a build without MPI (rather
/// than silently training N unrelated copies).
std::unique_ptr<Communicator> make_communicator(Backend backend, const CommOptions& options = {});
/// The same from "auto", "local", "mpi" or "nccl".
std::unique_ptr<Communicator> make_communicator(const std::string& kind, const CommOptions& options = {});

/// NCCL on this rank's GPU (options.device; unset: cuda:(local rank % GPUs)) over `host`, which
/// carries the unique id at start-up, host tensors, metrics and barriers: an MPI rank, or a rank
/// of a ThreadWorld for several GPUs driven by one process. Every rank calls it at the same time
/// (NCCL's set-up waits for all of them). Throws recur::Error in a build without NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, const CommOptions& options);

/// True when this process was started by OpenMPI's mpirun (OMPI_COMM_WORLD_SIZE is set).
bool launched_by_mpirun();
/// The device a rank trains on: Device::parse(name), except that a bare "cuda" in a process
/// started by mpirun means cuda:<local rank> — one GPU per process on each machine.
Device rank_device(const std::string& name);
/// Whether this build contains the MPI / NCCL communicators.
bool mpi_compiled();
bool nccl_compiled();

/// This process's rank among those mpirun started on its machine (OMPI_COMM_WORLD_LOCAL_RANK) and
/// how many there are (OMPI_COMM_WORLD_LOCAL_SIZE): 0 and 1 when not started by mpirun.
int launched_local_rank();
int launched_local_size();
/// A process's device from a list such as --devices cuda:0,cuda:1: devices[local_rank]. Throws
/// naming the local rank when the machine runs more processes than the list has devices.
Device select_device(const std::vector<Device>& devices, int local_rank, int local_size);
/// The same for the process of `comm`.
Device select_device(const std::vector<Device>& devices, const Communicator& comm);

}  // namespace recur::dist
