#pragma once
// Device memory primitives behind Storage and Tensor (internal). In a CUDA build they live in
// src/cuda/runtime.cc; without CUDA, src/core/cuda_stub.cc refuses every CUDA device clearly.
#include <cstddef>
#include <cstdint>

#include "recur/core/dtype.h"

namespace recur::devmem {

/// A block of at least `bytes` on `dev` (a GPU); `*block_bytes` receives its real size.
void* allocate(Device dev, size_t bytes, size_t* block_bytes);
void release(Device dev, void* ptr, size_t block_bytes);
/// Copies `bytes` between any two devices (host memory goes through pinned staging buffers).
/// Returns once the data is usable by the destination: host destinations are complete; device
/// destinations are ordered on the device's stream.
void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void zero(Device dev, void* ptr, size_t bytes);
/// Elementwise on a GPU: fill with a value of the given dtype; dst += src (float dtypes).
void fill(Device dev, void* ptr, DType dtype, int64_t n, double value);
void add(Device dev, void* dst, const void* src, DType dtype, int64_t n);

}  // namespace recur::devmem
