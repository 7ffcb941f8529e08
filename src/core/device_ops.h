#pragma once
// Device memory primitives behind Storage and Tensor (internal). In a CUDA build they live in
// src/cuda/runtime.cc; without CUDA, src/core/cuda_stub.cc refuses every CUDA device clearly.
#include <cstddef>
#include <cstdint>
#include <vector>

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
/// out row i = in row idx[i] for a GPU tensor of rows of `row_elems` elements; rows with idx < 0
/// get `pad` (float dtypes) or 0. `out` is allocated by the caller with idx.size() rows.
void gather_rows(Device dev, void* out, const void* in, const std::vector<int64_t>& idx, int64_t row_elems, DType dtype,
                 double pad);

}  // namespace recur::devmem
