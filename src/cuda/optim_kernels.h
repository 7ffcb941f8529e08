#pragma once
// Launchers of the multi-tensor optimizer kernels (internal). Like kernels.h: raw pointers and
// plain structs only, so that optim_kernels.cu needs no recur headers. Each launcher returns the
// launch's cudaError_t; the host side (optim.cc) checks it with RECUR_CUDA_CHECK.
//
// A "table" is an array of OptimTensor rows in device memory, one per tensor, ordered by
// chunk_begin: tensor k owns the chunks [chunk_begin[k], chunk_begin[k] + ceil(n[k] / kOptimChunk)).
// The blocks of one launch walk all chunks of all tensors (grid-stride over the chunk index), so
// one launch updates every tensor of the table whatever their sizes.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace recur::kern {

/// Elements per chunk (one block handles one chunk at a time).
constexpr int64_t kOptimChunk = 4096;

/// One tensor (with its gradient and slots) of a multi-tensor launch. Same layout for the host
/// compiler and nvcc (only 8-byte and 4-byte members, no padding surprises).
struct OptimTensor {
  void* param = nullptr;       // parameter values (or, for the norm/scale kernels, the gradient)
  const void* grad = nullptr;  // gradient
  void* slot1 = nullptr;       // SGD: momentum_buffer (or null); Adam: exp_avg
  void* slot2 = nullptr;       // Adam: exp_avg_sq
  int64_t n = 0;               // elements (> 0)
  int64_t chunk_begin = 0;     // index of this tensor's first chunk
  double step_size = 0;        // Adam: lr / (1 - beta1^k)
  double bc2_sqrt = 0;         // Adam: sqrt(1 - beta2^k)
  int32_t f64 = 0;             // 1: the tensors are double, 0: float
  int32_t first = 0;           // SGD: 1 on the parameter's first step (the buffer takes the gradient)
};
static_assert(sizeof(OptimTensor) == 72, "OptimTensor layout must be identical on host and device");

struct SgdHyper {
  double lr = 0;
  double momentum = 0;
  double weight_decay = 0;
  int32_t nesterov = 0;
  int32_t pad = 0;
};

struct AdamHyper {
  double lr = 0;
  double beta1 = 0;
  double beta2 = 0;
  double eps = 0;
  double weight_decay = 0;
  int32_t decoupled = 0;  // AdamW: p *= 1 - lr * weight_decay instead of the L2 term
  int32_t pad = 0;
};

/// Blocks a multi-tensor launch uses for `total_chunks` chunks.
int optim_blocks(int64_t total_chunks);

/// SGD (dampening 0) over every tensor of the table.
cudaError_t sgd_multi(const OptimTensor* table, int count, int64_t total_chunks, SgdHyper h, cudaStream_t s);
/// Adam / AdamW over every tensor of the table (per-tensor step_size and bc2_sqrt).
cudaError_t adam_multi(const OptimTensor* table, int count, int64_t total_chunks, AdamHyper h, cudaStream_t s);
/// Sum of squares (in double) of every `param` tensor of the table: writes optim_blocks(total)
/// per-block partial sums to partials[0..blocks) and their total to partials[blocks].
/// `partials` must hold optim_blocks(total_chunks) + 1 doubles.
cudaError_t sumsq_multi(const OptimTensor* table, int count, int64_t total_chunks, double* partials, cudaStream_t s);
/// Multiplies every `param` tensor of the table by coef (float tensors by float(coef)).
cudaError_t scale_multi(const OptimTensor* table, int count, int64_t total_chunks, double coef, cudaStream_t s);
/// Moving averages: param += weight * (grad - param) for every row, `param` being the average and
/// `grad` the live parameter (float tensors in float arithmetic, as on the CPU).
cudaError_t ema_multi(const OptimTensor* table, int count, int64_t total_chunks, double weight, cudaStream_t s);

}  // namespace recur::kern
