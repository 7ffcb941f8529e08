// The backend-independent half of recur::dist: the local communicator, the factory, and the
// polling wait every collective goes through (timeouts and peer checks live there).
#include "recur/dist/communicator.h"

#include <sched.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "internal.h"
#include "recur/core/cuda.h"
#include "recur/ops/basic.h"

namespace recur::dist {

Backend parse_backend(const std::string& kind) {
  if (kind == "auto") return Backend::Auto;
  if (kind == "local") return Backend::Local;
  if (kind == "mpi") return Backend::Mpi;
  if (kind == "nccl") return Backend::Nccl;
  RECUR_FAIL("unknown communicator '{}': expected auto, local, mpi or nccl", kind);
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Auto: return "auto";
    case Backend::Local: return "local";
    case Backend::Mpi: return "mpi";
    case Backend::Nccl: return "nccl";
  }
  return "?";
}

void Communicator::all_reduce(Tensor& t, ReduceOp op, double scale) { all_reduce_async(t, op, scale)->wait(); }

std::vector<double> Communicator::all_gather(double value) { return all_gather(std::vector<double>{value}); }

std::vector<int64_t> Communicator::all_gather(int64_t value) { return all_gather(std::vector<int64_t>{value}); }

namespace {
class DoneWork final : public Work {
 public:
  void wait() override {}
  bool test() override { return true; }
};
}  // namespace

std::unique_ptr<Work> LocalCommunicator::all_reduce_async(Tensor& t, ReduceOp, double scale) {
  RECUR_CHECK(t.defined(), "all_reduce: undefined tensor");
  const bool is_float = t.dtype() == DType::F32 || t.dtype() == DType::F64;
  RECUR_CHECK(is_float || scale == 1.0, "all_reduce: scale {} needs a float tensor, got {}", scale, dtype_name(t.dtype()));
  // Avg over a world of one divides by 1.
  if (scale != 1.0) detail::scale_tensor(t, scale);
  return std::make_unique<DoneWork>();
}

void LocalCommunicator::broadcast(Tensor& t, int root) {
  RECUR_CHECK(t.defined(), "broadcast: undefined tensor");
  RECUR_CHECK(root == 0, "broadcast: root {} is not a rank of a world of 1", root);
}

void LocalCommunicator::abort(int code) { std::_Exit(code); }

bool launched_by_mpirun() { return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr; }

int launched_local_rank() {
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  return local ? std::atoi(local) : 0;
}

int launched_local_size() {
  const char* size = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  return size ? std::atoi(size) : 1;
}

Device rank_device(const std::string& name) {
  if (name == "cuda" && launched_by_mpirun()) return Device::parse(fmt::format("cuda:{}", launched_local_rank()));
  return Device::parse(name);
}

std::unique_ptr<Communicator> make_communicator(Backend backend, const CommOptions& options) {
  switch (backend) {
    case Backend::Auto:
      if (launched_by_mpirun()) {
        RECUR_CHECK(mpi_compiled(),
                    "this process was started by mpirun (OMPI_COMM_WORLD_SIZE={}) but this build of recur has no MPI; "
                    "install libopenmpi-dev (scripts/setup.sh) and reconfigure, or run without mpirun",
                    std::getenv("OMPI_COMM_WORLD_SIZE"));
        return detail::make_mpi_communicator(options);
      }
      return std::make_unique<LocalCommunicator>(options);
    case Backend::Local: return std::make_unique<LocalCommunicator>(options);
    case Backend::Mpi: return detail::make_mpi_communicator(options);
    case Backend::Nccl: {
      std::unique_ptr<Communicator> host = launched_by_mpirun() ? detail::make_mpi_communicator(options)
                                                                : std::make_unique<LocalCommunicator>(options);
      return detail::make_nccl_communicator(std::move(host), options);
    }
  }
  RECUR_FAIL("make_communicator: bad backend");
}

std::unique_ptr<Communicator> make_communicator(const std::string& kind, const CommOptions& options) {
  return make_communicator(parse_backend(kind), options);
}

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, const CommOptions& options) {
  RECUR_CHECK(host != nullptr, "make_nccl_communicator: no host communicator");
  return detail::make_nccl_communicator(std::move(host), options);
}

Device select_device(const std::vector<Device>& devices, int local_rank, int local_size) {
  RECUR_CHECK(!devices.empty(), "select_device: empty device list");
  std::vector<std::string> names;
  for (const Device& d : devices) names.push_back(d.str());
  RECUR_CHECK(local_rank < static_cast<int>(devices.size()),
              "--devices {}: this process is local rank {} of {} on its machine, but only {} device(s) are listed; "
              "start at most {} processes per machine (mpirun -npernode {}) or list more devices",
              fmt::join(names, ","), local_rank, local_size, devices.size(), devices.size(), devices.size());
  return devices[static_cast<size_t>(local_rank)];
}

Device select_device(const std::vector<Device>& devices, const Communicator& comm) {
  return select_device(devices, comm.local_rank(), comm.local_size());
}

namespace detail {

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::None: return "no collective";
    case OpKind::AllReduce: return "all_reduce";
    case OpKind::Broadcast: return "broadcast";
    case OpKind::AllGather: return "all_gather";
    case OpKind::Barrier: return "barrier";
    case OpKind::Setup: return "communicator setup";
  }
  return "unknown collective";
}

std::string describe(const OpState& op) {
  if (op.kind == OpKind::None) return op_name(op.kind);
  const double b = static_cast<double>(op.bytes);
  std::string size = b >= (1 << 20) ? fmt::format("{:.1f} MiB", b / (1 << 20))
                     : b >= 1024    ? fmt::format("{:.1f} KiB", b / 1024)
                                    : fmt::format("{} B", op.bytes);
  return fmt::format("{} #{} ({})", op_name(op.kind), op.seq, size);
}

void wait_for(const std::function<bool()>& done, const OpState& op, double timeout_s, PeerMonitor* monitor) {
  if (done()) return;
  struct Waiting {  // what this rank answers to a peer's question, for the duration of the wait
    PeerMonitor* m;
    Waiting(PeerMonitor* mon, const OpState& o) : m(mon) { if (m) m->set_waiting(o); }
    ~Waiting() { if (m) m->set_waiting(OpState{}); }
  } waiting(monitor, op);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  double next_check = 0.1;  // collectives that finish within 100 ms never pay for peer checks
  for (;;) {
    if (done()) return;
    if (monitor) monitor->service();
    const double waited = std::chrono::duration<double>(clock::now() - start).count();
    if (monitor && waited >= next_check) {
      monitor->check_peers(op);
      next_check = waited + 0.1;
    }
    if (timeout_s > 0 && waited >= timeout_s) {
      if (monitor) monitor->fail_timeout(op, waited);
      RECUR_FAIL("{} did not complete within {} s", describe(op), timeout_s);
    }
    // Spin (yielding, as MPI's own waits do when oversubscribed) while a fast completion is
    // likely; after a second the peers are clearly busy elsewhere, so stop burning a core.
    if (waited < 1.0) sched_yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void scale_tensor(Tensor& t, double factor) {
  if (factor == 1.0 || t.numel() == 0) return;
  if (t.device().is_cuda()) {
    Tape tape;
    NoGrad no_grad(tape);
    Var y = scale(tape, Var(t), static_cast<float>(factor));
    t.copy_from(y.value());
    return;
  }
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::F32: {
      float* p = t.f32();
      const float f = static_cast<float>(factor);
      for (int64_t i = 0; i < n; ++i) p[i] *= f;
      return;
    }
    case DType::F64: {
      double* p = t.data<double>();
      for (int64_t i = 0; i < n; ++i) p[i] *= factor;
      return;
    }
    default: RECUR_FAIL("scale: {} tensor, expected F32 or F64", dtype_name(t.dtype()));
  }
}

}  // namespace detail
}  // namespace recur::dist
