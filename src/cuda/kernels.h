#pragma once
// Launchers of the elementary CUDA kernels (internal). Plain declarations with raw pointers, so
// that .cu files need no recur headers; each returns the launch's cudaError_t, which the host
// side checks with RECUR_CUDA_CHECK.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace recur::kern {

cudaError_t fill_f32(float* p, int64_t n, float v, cudaStream_t s);
cudaError_t fill_f64(double* p, int64_t n, double v, cudaStream_t s);
cudaError_t fill_i32(int32_t* p, int64_t n, int32_t v, cudaStream_t s);
cudaError_t fill_i64(int64_t* p, int64_t n, int64_t v, cudaStream_t s);
cudaError_t add_f32(float* dst, const float* src, int64_t n, cudaStream_t s);
cudaError_t add_f64(double* dst, const double* src, int64_t n, cudaStream_t s);

}  // namespace recur::kern
