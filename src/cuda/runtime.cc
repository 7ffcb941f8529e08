// CUDA runtime layer: device discovery, caching device allocator, streams, cuBLAS handles,
// pinned-staging copies, events.
#include "runtime.h"

#include <array>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>

#include "../core/device_ops.h"
#include "kernels.h"
#include "rnn_kernels.h"
#include "recur/core/allocator.h"

namespace recur::cuda {

namespace {

constexpr int kMaxDevices = 16;

const char* base_name(const char* file) {
  const char* b = std::strrchr(file, '/');
  return b ? b + 1 : file;
}

void* device_malloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error so the retry can succeed
    return nullptr;
  }
  return p;
}
void device_free(void* p) { (void)cudaFree(p); }

struct DeviceState {
  std::once_flag once;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  CachingAllocator* alloc = nullptr;  // never destroyed: tensors may outlive main
  std::atomic<bool> tf32{false};  // the math mode set on `cublas` (replicas as threads share it)
  std::mutex tf32_mu;
  // Pinned staging buffer for host<->device copies of pageable memory.
  std::mutex staging_mu;
  void* staging = nullptr;
  size_t staging_bytes = 0;
};

std::array<DeviceState, kMaxDevices>& states() {
  static auto* s = new std::array<DeviceState, kMaxDevices>();
  return *s;
}

std::atomic<bool> g_tf32{false};

DeviceState& state(int device) {
  RECUR_CHECK(device >= 0 && device < device_count(), "cuda:{} does not exist ({} GPU(s) visible)", device,
              device_count());
  DeviceState& s = states()[static_cast<size_t>(device)];
  std::call_once(s.once, [&] {
    DeviceGuard g(device);
    RECUR_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    RECUR_CUBLAS_CHECK(cublasCreate(&s.cublas));
    RECUR_CUBLAS_CHECK(cublasSetStream(s.cublas, s.stream));
    RECUR_CUBLAS_CHECK(cublasSetMathMode(s.cublas, CUBLAS_DEFAULT_MATH));
    s.alloc = new CachingAllocator(device_malloc, device_free);
  });
  return s;
}

}  // namespace

void fail_cuda(cudaError_t e, const char* file, int line, const char* expr) {
  (void)cudaGetLastError();
  throw Error(fmt::format("CUDA error {} ({}): {} — in {} ({}:{})", static_cast<int>(e), cudaGetErrorName(e),
                          cudaGetErrorString(e), expr, base_name(file), line));
}

void fail_cublas(cublasStatus_t s, const char* file, int line, const char* expr) {
  throw Error(fmt::format("cuBLAS error {} ({}): {} — in {} ({}:{})", static_cast<int>(s), cublasGetStatusName(s),
                          cublasGetStatusString(s), expr, base_name(file), line));
}

bool compiled() { return true; }

int device_count() {
  static const int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return c < kMaxDevices ? c : kMaxDevices;
  }();
  return n;
}

void require(Device d) {
  if (!d.is_cuda()) return;
  const int n = device_count();
  RECUR_CHECK(n > 0, "device {}: no CUDA GPU is visible to this process (driver missing or no GPU)", d.str());
  RECUR_CHECK(d.index >= 0 && d.index < n, "device {}: only {} GPU(s) visible (cuda:0..cuda:{})", d.str(), n, n - 1);
}

std::string device_name(int device) {
  require(Device::cuda(device));
  cudaDeviceProp p{};
  RECUR_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return p.name;
}

DeviceGuard::DeviceGuard(int device) {
  RECUR_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != device) RECUR_CUDA_CHECK(cudaSetDevice(device));
}
DeviceGuard::~DeviceGuard() {
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != prev_ && prev_ >= 0) (void)cudaSetDevice(prev_);
}

cudaStream_t stream(int device) { return state(device).stream; }

cublasHandle_t cublas(int device) {
  DeviceState& s = state(device);
  const bool want = g_tf32.load();
  if (s.tf32.load() != want) {
    std::lock_guard<std::mutex> lock(s.tf32_mu);
    if (s.tf32.load() != want) {
      RECUR_CUBLAS_CHECK(cublasSetMathMode(s.cublas, want ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
      s.tf32.store(want);
    }
  }
  return s.cublas;
}

void set_allow_tf32(bool on) { g_tf32.store(on); }
bool allow_tf32() { return g_tf32.load(); }

MemoryStats memory_stats(int device) {
  if (device < 0 || device >= device_count()) return {};
  DeviceState& s = state(device);
  return {s.alloc->current_bytes(), s.alloc->peak_bytes(), s.alloc->cached_bytes()};
}
void reset_peak(int device) {
  if (device >= 0 && device < device_count()) state(device).alloc->reset_peak();
}
void empty_cache(int device) {
  if (device < 0 || device >= device_count()) return;
  DeviceState& s = state(device);
  DeviceGuard g(device);
  RECUR_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  s.alloc->empty_cache();
}
void synchronize(int device) {
  DeviceGuard g(device);
  RECUR_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
}

void set_current_device(int device) {
  require(Device::cuda(device));
  RECUR_CUDA_CHECK(cudaSetDevice(device));
}

int device_of(const Tensor& t, const char* what) {
  RECUR_CHECK(t.defined() && t.device().is_cuda(), "{}: expected a CUDA tensor, got {} on {}", what, t.shape_str(),
              t.defined() ? t.device().str() : std::string("(undefined)"));
  return t.device().index;
}

Tensor upload_i32(const std::vector<int64_t>& values, int device) {
  std::vector<int32_t> v(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    RECUR_CHECK(values[i] >= INT32_MIN && values[i] <= INT32_MAX, "upload_i32: value {} does not fit in int32",
                values[i]);
    v[i] = static_cast<int32_t>(values[i]);
  }
  Tensor t({static_cast<int64_t>(v.size())}, DType::I32, Device::cuda(device));
  if (!v.empty()) devmem::copy(t.raw(), t.device(), v.data(), Device::cpu(), v.size() * sizeof(int32_t));
  return t;
}

Timer::Timer(int device) : device_(device) {
  require(Device::cuda(device));
  DeviceGuard g(device);
  cudaEvent_t a = nullptr, b = nullptr;
  RECUR_CUDA_CHECK(cudaEventCreate(&a));
  RECUR_CUDA_CHECK(cudaEventCreate(&b));
  start_ = a;
  stop_ = b;
}
Timer::~Timer() {
  if (start_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  if (stop_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}
void Timer::start() { RECUR_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(start_), stream(device_))); }
double Timer::stop() {
  RECUR_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(stop_), stream(device_)));
  RECUR_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)));
  float ms = 0;
  RECUR_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)));
  return ms;
}

}  // namespace recur::cuda

namespace recur::devmem {

using cuda::DeviceGuard;
using cuda::state;

void* allocate(Device dev, size_t bytes, size_t* block_bytes) {
  cuda::require(dev);
  cuda::DeviceState& s = state(dev.index);
  DeviceGuard g(dev.index);
  try {
    return s.alloc->allocate(bytes, block_bytes);
  } catch (const std::bad_alloc&) {
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    RECUR_FAIL("CUDA out of memory on {}: asked for {} bytes; recur holds {} bytes in tensors, the GPU has {} of {} "
               "bytes free",
               dev.str(), bytes, s.alloc->current_bytes(), free_b, total_b);
  }
}

void release(Device dev, void* ptr, size_t block_bytes) {
  if (!ptr) return;
  state(dev.index).alloc->release(ptr, block_bytes);
}

namespace {

constexpr size_t kStagingBytes = size_t(8) << 20;

// Copies between pageable host memory and the device through a pinned buffer, chunk by chunk.
void staged_copy(void* dst, const void* src, size_t bytes, int device, bool to_device) {
  cuda::DeviceState& s = state(device);
  std::lock_guard<std::mutex> lock(s.staging_mu);
  if (!s.staging) {
    RECUR_CUDA_CHECK(cudaHostAlloc(&s.staging, kStagingBytes, cudaHostAllocDefault));
    s.staging_bytes = kStagingBytes;
  }
  char* d = static_cast<char*>(dst);
  const char* sp = static_cast<const char*>(src);
  for (size_t off = 0; off < bytes; off += s.staging_bytes) {
    const size_t n = bytes - off < s.staging_bytes ? bytes - off : s.staging_bytes;
    if (to_device) {
      std::memcpy(s.staging, sp + off, n);
      RECUR_CUDA_CHECK(cudaMemcpyAsync(d + off, s.staging, n, cudaMemcpyHostToDevice, s.stream));
      // The staging buffer is reused by the next chunk (and the next copy): wait for this one.
      RECUR_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    } else {
      RECUR_CUDA_CHECK(cudaMemcpyAsync(s.staging, sp + off, n, cudaMemcpyDeviceToHost, s.stream));
      RECUR_CUDA_CHECK(cudaStreamSynchronize(s.stream));
      std::memcpy(d + off, s.staging, n);
    }
  }
}

}  // namespace

void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev.is_cpu() && src_dev.is_cpu()) {
    std::memmove(dst, src, bytes);
    return;
  }
  cuda::require(dst_dev);
  cuda::require(src_dev);
  if (dst_dev.is_cuda() && src_dev.is_cuda()) {
    DeviceGuard g(dst_dev.index);
    if (dst_dev.index == src_dev.index) {
      RECUR_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda::stream(dst_dev.index)));
    } else {
      // Work queued on the source device must finish before the peer copy reads it.
      cuda::synchronize(src_dev.index);
      RECUR_CUDA_CHECK(
          cudaMemcpyPeerAsync(dst, dst_dev.index, src, src_dev.index, bytes, cuda::stream(dst_dev.index)));
    }
    return;
  }
  const int device = dst_dev.is_cuda() ? dst_dev.index : src_dev.index;
  DeviceGuard g(device);
  staged_copy(dst, src, bytes, device, dst_dev.is_cuda());
}

void zero(Device dev, void* ptr, size_t bytes) {
  if (bytes == 0) return;
  DeviceGuard g(dev.index);
  RECUR_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, cuda::stream(dev.index)));
}

void fill(Device dev, void* ptr, DType dtype, int64_t n, double value) {
  if (n == 0) return;
  DeviceGuard g(dev.index);
  cudaStream_t st = cuda::stream(dev.index);
  switch (dtype) {
    case DType::F32: RECUR_CUDA_CHECK(kern::fill_f32(static_cast<float*>(ptr), n, static_cast<float>(value), st)); return;
    case DType::F64: RECUR_CUDA_CHECK(kern::fill_f64(static_cast<double*>(ptr), n, value, st)); return;
    case DType::I32:
      RECUR_CUDA_CHECK(kern::fill_i32(static_cast<int32_t*>(ptr), n, static_cast<int32_t>(value), st));
      return;
    case DType::I64:
      RECUR_CUDA_CHECK(kern::fill_i64(static_cast<int64_t*>(ptr), n, static_cast<int64_t>(value), st));
      return;
  }
}

void add(Device dev, void* dst, const void* src, DType dtype, int64_t n) {
  if (n == 0) return;
  DeviceGuard g(dev.index);
  cudaStream_t st = cuda::stream(dev.index);
  switch (dtype) {
    case DType::F32:
      RECUR_CUDA_CHECK(kern::add_f32(static_cast<float*>(dst), static_cast<const float*>(src), n, st));
      return;
    case DType::F64:
      RECUR_CUDA_CHECK(kern::add_f64(static_cast<double*>(dst), static_cast<const double*>(src), n, st));
      return;
    default: RECUR_FAIL("add_ on {}: dtype {} is not a float type", dev.str(), dtype_name(dtype));
  }
}

void gather_rows(Device dev, void* out, const void* in, const std::vector<int64_t>& idx, int64_t row_elems, DType dtype,
                 double pad) {
  if (idx.empty() || row_elems == 0) return;
  DeviceGuard g(dev.index);
  const int64_t words = row_elems * static_cast<int64_t>(dtype_size(dtype)) / 4;
  RECUR_CHECK(words <= INT32_MAX && static_cast<int64_t>(idx.size()) <= INT32_MAX, "gather_rows: {} rows of {} too large",
              idx.size(), row_elems);
  uint32_t pad_bits = 0;
  if (dtype == DType::F32) {
    const float f = static_cast<float>(pad);
    std::memcpy(&pad_bits, &f, 4);
  }
  RECUR_CHECK(dtype != DType::F64 || pad == 0.0, "gather_rows: non-zero padding of F64 rows is not supported on {}",
              dev.str());
  Tensor table = cuda::upload_i32(idx, dev.index);
  RECUR_CUDA_CHECK(kern::gather_rows(out, in, table.data<int32_t>(), static_cast<int>(idx.size()),
                                     static_cast<int>(words), pad_bits, cuda::stream(dev.index)));
}

}  // namespace recur::devmem
