// Host side of the multi-tensor optimizer kernels: builds the per-tensor table, uploads it through
// a pinned buffer (no host synchronisation on the step path) and launches one kernel per step.
#include "optim.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "optim_kernels.h"
#include "runtime.h"

namespace recur::cuda {

struct OptimScratch {
  struct PerDevice {
    void* host = nullptr;  // pinned copy of the table, reused once its last upload has completed
    size_t host_bytes = 0;
    cudaEvent_t uploaded = nullptr;  // recorded after the last upload from `host`
    bool pending = false;
    Tensor table;  // device copy of the table (I64 words); reuse is ordered on the device's stream
  };
  std::mutex mu;
  std::map<int, PerDevice> devices;

  OptimScratch() = default;
  OptimScratch(const OptimScratch&) = delete;
  OptimScratch& operator=(const OptimScratch&) = delete;
  ~OptimScratch() {
    for (auto& [device, d] : devices) {
      if (d.uploaded) {
        (void)cudaEventSynchronize(d.uploaded);
        (void)cudaEventDestroy(d.uploaded);
      }
      if (d.host) (void)cudaFreeHost(d.host);
    }
  }
};

std::shared_ptr<OptimScratch> make_optim_scratch() { return std::make_shared<OptimScratch>(); }

namespace {

// The scratch used by clip_grad_norm (a free function). Never destroyed: it may be used until exit.
OptimScratch& shared_scratch() {
  static auto* s = new OptimScratch();
  return *s;
}

struct Table {
  std::vector<kern::OptimTensor> rows;
  int64_t chunks = 0;
  void add(kern::OptimTensor row) {
    if (row.n == 0) return;
    row.chunk_begin = chunks;
    chunks += (row.n + kern::kOptimChunk - 1) / kern::kOptimChunk;
    rows.push_back(row);
  }
  int count() const {
    RECUR_CHECK(rows.size() < (size_t(1) << 30), "optimizer: too many tensors ({}) for one launch", rows.size());
    return static_cast<int>(rows.size());
  }
};

// Checks that `t` is a float tensor on `device` with `numel` elements and `dtype`; `what` names it.
void check_tensor(const Tensor* t, int device, DType dtype, int64_t numel, const char* what) {
  RECUR_CHECK(t != nullptr && t->defined(), "CUDA optimizer: {} is undefined", what);
  RECUR_CHECK(t->device() == Device::cuda(device), "CUDA optimizer: {} is on {}, expected cuda:{}", what,
              t->device().str(), device);
  RECUR_CHECK(t->dtype() == dtype, "CUDA optimizer: {} has dtype {}, expected {}", what, dtype_name(t->dtype()),
              dtype_name(dtype));
  RECUR_CHECK(t->numel() == numel, "CUDA optimizer: {} has {} elements, expected {}", what, t->numel(), numel);
}

void check_float(const Tensor* t, int device, const char* what) {
  RECUR_CHECK(t != nullptr && t->defined(), "CUDA optimizer: {} is undefined", what);
  RECUR_CHECK(t->dtype() == DType::F32 || t->dtype() == DType::F64, "CUDA optimizer: {} has dtype {}, expected F32 or F64",
              what, dtype_name(t->dtype()));
  check_tensor(t, device, t->dtype(), t->numel(), what);
}

// Copies the table to the device through the pinned buffer; returns the device pointer. The caller
// holds s.mu and a DeviceGuard for `device`.
const kern::OptimTensor* upload(OptimScratch& s, int device, const Table& t) {
  const size_t bytes = t.rows.size() * sizeof(kern::OptimTensor);
  OptimScratch::PerDevice& d = s.devices[device];
  cudaStream_t st = stream(device);
  if (!d.uploaded) RECUR_CUDA_CHECK(cudaEventCreateWithFlags(&d.uploaded, cudaEventDisableTiming));
  if (d.pending) {
    // The previous upload must have left the pinned buffer before it is overwritten.
    RECUR_CUDA_CHECK(cudaEventSynchronize(d.uploaded));
    d.pending = false;
  }
  if (d.host_bytes < bytes) {
    if (d.host) {
      RECUR_CUDA_CHECK(cudaFreeHost(d.host));
      d.host = nullptr;
      d.host_bytes = 0;
    }
    const size_t cap = std::max(bytes * 2, size_t(64) * sizeof(kern::OptimTensor));
    RECUR_CUDA_CHECK(cudaHostAlloc(&d.host, cap, cudaHostAllocPortable));
    d.host_bytes = cap;
  }
  if (!d.table.defined() || d.table.nbytes() < bytes)
    d.table = Tensor({static_cast<int64_t>((d.host_bytes + 7) / 8)}, DType::I64, Device::cuda(device));
  std::memcpy(d.host, t.rows.data(), bytes);
  RECUR_CUDA_CHECK(cudaMemcpyAsync(d.table.raw(), d.host, bytes, cudaMemcpyHostToDevice, st));
  RECUR_CUDA_CHECK(cudaEventRecord(d.uploaded, st));
  d.pending = true;
  return static_cast<const kern::OptimTensor*>(d.table.raw());
}

kern::OptimTensor grad_row(const Tensor* g) {
  kern::OptimTensor r;
  r.param = const_cast<void*>(g->raw());
  r.n = g->numel();
  r.f64 = g->dtype() == DType::F64 ? 1 : 0;
  return r;
}

}  // namespace

void sgd_step(OptimScratch& scratch, int device, const std::vector<SgdItem>& items, const SgdArgs& args) {
  Table table;
  for (const SgdItem& it : items) {
    check_float(it.param, device, "parameter");
    const DType dt = it.param->dtype();
    const int64_t n = it.param->numel();
    check_tensor(it.grad, device, dt, n, "gradient");
    RECUR_CHECK((args.momentum != 0) == (it.buf != nullptr), "CUDA SGD: momentum buffer {} expected",
                args.momentum != 0 ? "is" : "is not");
    if (it.buf) check_tensor(it.buf, device, dt, n, "momentum_buffer");
    kern::OptimTensor r;
    r.param = it.param->raw();
    r.grad = it.grad->raw();
    r.slot1 = it.buf ? it.buf->raw() : nullptr;
    r.n = n;
    r.f64 = dt == DType::F64 ? 1 : 0;
    r.first = it.first ? 1 : 0;
    table.add(r);
  }
  if (table.rows.empty()) return;
  kern::SgdHyper h;
  h.lr = args.lr;
  h.momentum = args.momentum;
  h.weight_decay = args.weight_decay;
  h.nesterov = args.nesterov ? 1 : 0;
  std::lock_guard<std::mutex> lock(scratch.mu);
  DeviceGuard g(device);
  const kern::OptimTensor* dev_table = upload(scratch, device, table);
  RECUR_CUDA_CHECK(kern::sgd_multi(dev_table, table.count(), table.chunks, h, stream(device)));
}

void adam_step(OptimScratch& scratch, int device, const std::vector<AdamItem>& items, const AdamArgs& args) {
  Table table;
  for (const AdamItem& it : items) {
    check_float(it.param, device, "parameter");
    const DType dt = it.param->dtype();
    const int64_t n = it.param->numel();
    check_tensor(it.grad, device, dt, n, "gradient");
    check_tensor(it.exp_avg, device, dt, n, "exp_avg");
    check_tensor(it.exp_avg_sq, device, dt, n, "exp_avg_sq");
    kern::OptimTensor r;
    r.param = it.param->raw();
    r.grad = it.grad->raw();
    r.slot1 = it.exp_avg->raw();
    r.slot2 = it.exp_avg_sq->raw();
    r.n = n;
    r.step_size = it.step_size;
    r.bc2_sqrt = it.bc2_sqrt;
    r.f64 = dt == DType::F64 ? 1 : 0;
    table.add(r);
  }
  if (table.rows.empty()) return;
  kern::AdamHyper h;
  h.lr = args.lr;
  h.beta1 = args.beta1;
  h.beta2 = args.beta2;
  h.eps = args.eps;
  h.weight_decay = args.weight_decay;
  h.decoupled = args.decoupled ? 1 : 0;
  std::lock_guard<std::mutex> lock(scratch.mu);
  DeviceGuard g(device);
  const kern::OptimTensor* dev_table = upload(scratch, device, table);
  RECUR_CUDA_CHECK(kern::adam_multi(dev_table, table.count(), table.chunks, h, stream(device)));
}

double grad_sum_of_squares(int device, const std::vector<const Tensor*>& grads) {
  Table table;
  for (const Tensor* g : grads) {
    check_float(g, device, "gradient");
    table.add(grad_row(g));
  }
  if (table.rows.empty()) return 0.0;
  OptimScratch& scratch = shared_scratch();
  std::lock_guard<std::mutex> lock(scratch.mu);
  DeviceGuard guard(device);
  cudaStream_t st = stream(device);
  const kern::OptimTensor* dev_table = upload(scratch, device, table);
  const int blocks = kern::optim_blocks(table.chunks);
  Tensor partials({blocks + 1}, DType::F64, Device::cuda(device));
  double* p = partials.data<double>();
  RECUR_CUDA_CHECK(kern::sumsq_multi(dev_table, table.count(), table.chunks, p, st));
  double sum = 0;
  RECUR_CUDA_CHECK(cudaMemcpyAsync(&sum, p + blocks, sizeof(double), cudaMemcpyDeviceToHost, st));
  RECUR_CUDA_CHECK(cudaStreamSynchronize(st));
  return sum;
}

void scale_grads(int device, const std::vector<Tensor*>& grads, double coef) {
  Table table;
  for (Tensor* g : grads) {
    check_float(g, device, "gradient");
    table.add(grad_row(g));
  }
  if (table.rows.empty()) return;
  OptimScratch& scratch = shared_scratch();
  std::lock_guard<std::mutex> lock(scratch.mu);
  DeviceGuard guard(device);
  const kern::OptimTensor* dev_table = upload(scratch, device, table);
  RECUR_CUDA_CHECK(kern::scale_multi(dev_table, table.count(), table.chunks, coef, stream(device)));
}

void ema_update(int device, const std::vector<EmaItem>& items, double weight) {
  Table table;
  for (const EmaItem& it : items) {
    check_float(it.param, device, "parameter");
    check_tensor(it.avg, device, it.param->dtype(), it.param->numel(), "moving average");
    kern::OptimTensor r;
    r.param = it.avg->raw();
    r.grad = it.param->raw();
    r.n = it.param->numel();
    r.f64 = it.param->dtype() == DType::F64 ? 1 : 0;
    table.add(r);
  }
  if (table.rows.empty()) return;
  OptimScratch& scratch = shared_scratch();
  std::lock_guard<std::mutex> lock(scratch.mu);
  DeviceGuard guard(device);
  const kern::OptimTensor* dev_table = upload(scratch, device, table);
  RECUR_CUDA_CHECK(kern::ema_multi(dev_table, table.count(), table.chunks, weight, stream(device)));
}

}  // namespace recur::cuda
