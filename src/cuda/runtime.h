#pragma once
// The CUDA runtime layer (internal): per-device stream and cuBLAS handle, checked calls.
// Compiled by the host compiler; the .cu files see only src/cuda/kernels.h.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "recur/core/cuda.h"
#include "recur/core/tensor.h"

namespace recur::cuda {

[[noreturn]] void fail_cuda(cudaError_t e, const char* file, int line, const char* expr);
[[noreturn]] void fail_cublas(cublasStatus_t s, const char* file, int line, const char* expr);

/// The one compute stream of a device (created on first use, non-blocking).
cudaStream_t stream(int device);
/// The device's cuBLAS handle, bound to its stream, math mode per allow_tf32().
cublasHandle_t cublas(int device);
/// Makes `device` current for this thread for the scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

/// The device of a CUDA tensor (throws naming `what` for a CPU tensor).
int device_of(const Tensor& t, const char* what);

/// An op's device, made current for the scope, and its stream.
struct OnDevice {
  int device;
  DeviceGuard guard;
  cudaStream_t s;
  OnDevice(const Tensor& t, const char* what) : device(device_of(t, what)), guard(device), s(stream(device)) {}
};

/// Small host arrays (batch sizes, offsets, indices) copied to the device as int32, for one op.
/// Lives until the stream has used it (the allocator's blocks are stream-ordered).
Tensor upload_i32(const std::vector<int64_t>& values, int device);

/// Throws with file:line, the expression and CUDA's message when the call fails.
#define RECUR_CUDA_CHECK(expr)                                                             \
  do {                                                                                     \
    cudaError_t recur_e_ = (expr);                                                         \
    if (recur_e_ != cudaSuccess) ::recur::cuda::fail_cuda(recur_e_, __FILE__, __LINE__, #expr); \
  } while (0)
#define RECUR_CUBLAS_CHECK(expr)                                                                      \
  do {                                                                                                \
    cublasStatus_t recur_s_ = (expr);                                                                 \
    if (recur_s_ != CUBLAS_STATUS_SUCCESS) ::recur::cuda::fail_cublas(recur_s_, __FILE__, __LINE__, #expr); \
  } while (0)
/// After a kernel launch: the launch error, if any.
#define RECUR_CUDA_LAUNCHED() RECUR_CUDA_CHECK(cudaGetLastError())

}  // namespace recur::cuda
