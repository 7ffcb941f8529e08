#pragma once
/// \file The CUDA backend's public face: whether it is built, which GPUs there are, device memory
/// statistics. Everything here also exists in a build without CUDA (it then reports no devices and
/// refuses CUDA tensors with a clear error).
#include <cstdint>
#include <string>

#include "recur/core/dtype.h"

namespace recur::cuda {

/// True when this build contains the CUDA backend (RECUR_CUDA on).
bool compiled();
/// GPUs visible to this process; 0 without the backend or without a GPU.
int device_count();
inline bool available() { return device_count() > 0; }
/// Throws recur::Error unless `d` is the CPU or an existing GPU, naming what is missing.
void require(Device d);
/// "NVIDIA H200" etc.
std::string device_name(int device);

struct MemoryStats {
  int64_t current = 0;  ///< bytes held by live tensors (rounded block sizes)
  int64_t peak = 0;     ///< maximum of current since the last reset_peak
  int64_t cached = 0;   ///< freed bytes kept for reuse
};
MemoryStats memory_stats(int device);
void reset_peak(int device);
/// Returns every cached block of the device to the driver.
void empty_cache(int device);
/// Waits for all work queued on the device's stream.
void synchronize(int device);
/// Makes cuda:device the calling thread's current device (each data-parallel replica run as a
/// thread calls it for its own GPU, so that nothing of it lands on another one by default).
void set_current_device(int device);

/// TF32 tensor-core math for float32 GEMMs (off by default: results then match float32).
void set_allow_tf32(bool on);
bool allow_tf32();

/// Whether recurrent forwards may use the persistent kernel (one cooperative launch for the whole
/// time loop, W_hh held in shared memory) when the shapes fit; otherwise each step runs a cuBLAS
/// GEMM and a fused pointwise kernel. On by default; RECUR_RNN_PERSISTENT=0 turns it off.
void set_rnn_persistent(bool on);
bool rnn_persistent();
/// "persistent" or "steps": the path the last recurrent forward on a GPU took ("" before any).
const char* last_rnn_forward_path();
/// "persistent", "splitk" or "cublas": the path the last recurrent backward on a GPU took. By
/// default split-K partials at batch >= 32, cuBLAS below; RECUR_RNN_BACKWARD=persistent|splitk|cublas
/// chooses.
const char* last_rnn_backward_path();

/// Elapsed milliseconds between two points on the device's stream, measured with CUDA events.
class Timer {
 public:
  explicit Timer(int device);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void start();
  /// Records the stop event, waits for it and returns the milliseconds since start().
  double stop();

 private:
  int device_;
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

}  // namespace recur::cuda
