// The NCCL communicator (built with the CUDA backend when NCCL is found; nccl_stub.cc otherwise).
//
// One GPU per process. GPU tensors are reduced by NCCL on the device's compute stream (so they are
// ordered with the kernels that produced the gradients, with no extra synchronisation); the wait
// polls a CUDA event so that the same timeout and peer checks as MPI's apply, and a timed-out
// communicator is aborted (ncclCommAbort) so that no kernel spins forever. Host values (metrics,
// barriers, the unique id at start-up) go over the host communicator: MPI when launched by mpirun,
// local for a single process.
#include <nccl.h>

#include <cstdlib>
#include <cstring>

#include "../cuda/runtime.h"
#include "internal.h"
#include "recur/core/cuda.h"
#include "recur/core/error.h"

namespace recur::dist {
namespace {

[[noreturn]] void fail_nccl(ncclResult_t r, ncclComm_t comm, const char* file, int line, const char* expr) {
  std::string detail = ncclGetErrorString(r);
  const char* last = comm ? ncclGetLastError(comm) : nullptr;
  if (last && *last) detail += std::string(": ") + last;
  ::recur::detail::fail(file, line, fmt::format("NCCL error in {}: {}", expr, detail));
}

/// Throws recur::Error with file:line, the call and NCCL's own message when an NCCL call fails.
#define RECUR_NCCL_CHECK(expr)                                                       \
  do {                                                                               \
    const ncclResult_t recur_nccl_r_ = (expr);                                       \
    if (recur_nccl_r_ != ncclSuccess) fail_nccl(recur_nccl_r_, comm_, __FILE__, __LINE__, #expr); \
  } while (0)

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
  }
  RECUR_FAIL("nccl: unsupported dtype");
}

class NcclCommunicator;

class NcclWork final : public Work {
 public:
  NcclWork(NcclCommunicator* comm, detail::OpState op, Tensor keep, cudaEvent_t event)
      : comm_(comm), op_(op), keep_(std::move(keep)), event_(event) {}
  ~NcclWork() override;
  void wait() override;
  bool test() override;

 private:
  NcclCommunicator* comm_;
  detail::OpState op_;
  Tensor keep_;  // the device buffer NCCL works on (the stream-ordered allocator keeps it anyway)
  cudaEvent_t event_;
  bool done_ = false;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> host, const CommOptions& options);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  std::string name() const override { return "nccl"; }
  Device device() const override { return Device::cuda(device_); }
  const CommOptions& options() const override { return options_; }

  std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op, double scale) override;
  void broadcast(Tensor& t, int root) override;
  std::vector<double> all_gather(const std::vector<double>& values) override { return host_->all_gather(values); }
  std::vector<int64_t> all_gather(const std::vector<int64_t>& values) override { return host_->all_gather(values); }
  using Communicator::all_gather;
  void barrier() override;
  [[noreturn]] void abort(int code) override;

  /// Polls the event until the device has passed it, with the timeout and peer checks.
  void wait_event(cudaEvent_t event, const detail::OpState& op);
  bool event_done(cudaEvent_t event);
  bool broken() const { return !broken_.empty(); }

 private:
  void ensure_usable() const;
  void check_device_tensor(const Tensor& t, const char* what) const;
  cudaEvent_t record_event();
  void abort_nccl(const std::string& why);

  std::unique_ptr<Communicator> host_;
  detail::PeerMonitor* monitor_;  // host_ when it is MPI
  CommOptions options_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  int64_t seq_ = 0;
  std::string broken_;
};

NcclWork::~NcclWork() {
  if (!done_ && !comm_->broken()) {
    try {
      wait();
    } catch (const Error&) {  // a destructor cannot report; the communicator is marked broken
    }
  }
  cudaEventDestroy(event_);
}

void NcclWork::wait() {
  if (done_) return;
  comm_->wait_event(event_, op_);
  done_ = true;
}

bool NcclWork::test() {
  if (!done_ && comm_->event_done(event_)) done_ = true;
  return done_;
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> host, const CommOptions& options)
    : host_(std::move(host)), monitor_(dynamic_cast<detail::PeerMonitor*>(host_.get())), options_(options) {
  const int gpus = cuda::device_count();
  RECUR_CHECK(gpus > 0, "nccl communicator on rank {}: no CUDA GPU is visible", host_->rank());
  if (options_.device) {
    RECUR_CHECK(options_.device->is_cuda(), "nccl communicator: device {} is not a GPU", options_.device->str());
    device_ = options_.device->index;
  } else {
    device_ = host_->local_rank() % gpus;
  }
  cuda::require(Device::cuda(device_));
  // Rank 0 makes the unique id; the host communicator carries it to everyone.
  ncclUniqueId id;
  static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0);
  Tensor id_bytes({static_cast<int64_t>(sizeof(ncclUniqueId) / sizeof(int64_t))}, DType::I64);
  if (host_->rank() == 0) {
    RECUR_NCCL_CHECK(ncclGetUniqueId(&id));
    std::memcpy(id_bytes.raw(), &id, sizeof id);
  }
  host_->broadcast(id_bytes, 0);
  std::memcpy(&id, id_bytes.raw(), sizeof id);
  cuda::DeviceGuard guard(device_);
  RECUR_NCCL_CHECK(ncclCommInitRank(&comm_, host_->size(), id, host_->rank()));
}

NcclCommunicator::~NcclCommunicator() {
  if (!comm_) return;
  cuda::DeviceGuard guard(device_);
  if (broken_.empty()) ncclCommDestroy(comm_);
  else ncclCommAbort(comm_);
}

void NcclCommunicator::ensure_usable() const {
  RECUR_CHECK(broken_.empty(), "rank {}: the nccl communicator is unusable after an earlier failure: {}", rank(), broken_);
}

void NcclCommunicator::check_device_tensor(const Tensor& t, const char* what) const {
  RECUR_CHECK(t.defined(), "{}: undefined tensor", what);
  RECUR_CHECK(t.device() == Device::cuda(device_), "{}: tensor on {} but this rank's nccl communicator uses {}", what,
              t.device().str(), Device::cuda(device_).str());
}

cudaEvent_t NcclCommunicator::record_event() {
  cudaEvent_t ev;
  RECUR_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  RECUR_CUDA_CHECK(cudaEventRecord(ev, cuda::stream(device_)));
  return ev;
}

void NcclCommunicator::abort_nccl(const std::string& why) {
  if (broken_.empty()) broken_ = why;
  if (comm_) {
    ncclCommAbort(comm_);  // makes NCCL's kernels give up, so the stream drains
    comm_ = nullptr;
  }
}

bool NcclCommunicator::event_done(cudaEvent_t event) {
  ensure_usable();
  cuda::DeviceGuard guard(device_);
  const cudaError_t e = cudaEventQuery(event);
  if (e == cudaSuccess) return true;
  if (e != cudaErrorNotReady) RECUR_CUDA_CHECK(e);
  ncclResult_t async = ncclSuccess;
  RECUR_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
  if (async != ncclSuccess && async != ncclInProgress) fail_nccl(async, comm_, __FILE__, __LINE__, "asynchronous NCCL error");
  return false;
}

void NcclCommunicator::wait_event(cudaEvent_t event, const detail::OpState& op) {
  try {
    detail::wait_for([&] { return event_done(event); }, op, options_.timeout_s, monitor_);
  } catch (const Error& e) {
    abort_nccl(e.what());
    throw;
  }
}

std::unique_ptr<Work> NcclCommunicator::all_reduce_async(Tensor& t, ReduceOp op, double scale) {
  if (t.defined() && t.device().is_cpu()) return host_->all_reduce_async(t, op, scale);
  ensure_usable();
  check_device_tensor(t, "all_reduce");
  const bool is_float = t.dtype() == DType::F32 || t.dtype() == DType::F64;
  const double factor = scale * (op == ReduceOp::Avg ? 1.0 / size() : 1.0);
  RECUR_CHECK(is_float || factor == 1.0, "all_reduce: {} tensors support only Sum with scale 1", dtype_name(t.dtype()));
  const detail::OpState st{detail::OpKind::AllReduce, ++seq_, static_cast<int64_t>(t.nbytes())};
  cuda::DeviceGuard guard(device_);
  const ncclDataType_t type = nccl_type(t.dtype());
  cudaStream_t stream = cuda::stream(device_);
  const size_t count = static_cast<size_t>(t.numel());
  if (factor == 1.0) {
    RECUR_NCCL_CHECK(ncclAllReduce(t.raw(), t.raw(), count, type, ncclSum, comm_, stream));
  } else {
    // Each rank's contribution is multiplied by its own factor inside NCCL's kernel: the token
    // weighting costs no extra pass over the buffer.
    float f32 = static_cast<float>(factor);
    double f64 = factor;
    ncclRedOp_t premul;
    RECUR_NCCL_CHECK(ncclRedOpCreatePreMulSum(&premul, type == ncclFloat32 ? static_cast<void*>(&f32) : &f64, type,
                                              ncclScalarHostImmediate, comm_));
    RECUR_NCCL_CHECK(ncclAllReduce(t.raw(), t.raw(), count, type, premul, comm_, stream));
    RECUR_NCCL_CHECK(ncclRedOpDestroy(premul, comm_));
  }
  return std::make_unique<NcclWork>(this, st, t, record_event());
}

void NcclCommunicator::broadcast(Tensor& t, int root) {
  if (t.defined() && t.device().is_cpu()) return host_->broadcast(t, root);
  ensure_usable();
  check_device_tensor(t, "broadcast");
  RECUR_CHECK(root >= 0 && root < size(), "broadcast: root {} is not a rank of {}", root, size());
  const detail::OpState st{detail::OpKind::Broadcast, ++seq_, static_cast<int64_t>(t.nbytes())};
  cuda::DeviceGuard guard(device_);
  RECUR_NCCL_CHECK(ncclBroadcast(t.raw(), t.raw(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), root, comm_,
                                 cuda::stream(device_)));
  NcclWork work(this, st, t, record_event());
  work.wait();
}

void NcclCommunicator::barrier() {
  ensure_usable();
  cuda::synchronize(device_);  // this rank's queued device work is done, then every rank meets
  host_->barrier();
}

void NcclCommunicator::abort(int code) {
  abort_nccl("aborted");
  host_->abort(code);
  std::_Exit(code);  // not reached: host_->abort does not return
}

}  // namespace

bool nccl_compiled() { return true; }

namespace detail {
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> host, const CommOptions& options) {
  return std::make_unique<NcclCommunicator>(std::move(host), options);
}
}  // namespace detail

}  // namespace recur::dist
