#pragma once
// CUDA paths of the non-recurrent ops (internal), mirroring src/cpu/{basic,norm,loss,pool}_cpu.h
// but on Tensors: the device comes from the tensors, every kernel runs on cuda::stream(device) and
// every launch is checked. Callers (src/ops/*.cc) have already checked shapes, dtypes (F32), that
// all tensors share one GPU, and the ids/targets ranges; outputs and gradient slots are allocated.
// Backward functions add into their gradients; null gradient pointers are skipped.
// Only compiled in a CUDA build: include it under #ifdef RECUR_HAS_CUDA.
#include <cstdint>

#include "recur/core/tensor.h"
#include "recur/seq/packed.h"

namespace recur::cuda {

// ---- basic ----
/// y (rows, out) = x (rows, in) w^T + b (b may be null); cuBLAS sgemm.
void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b, int64_t rows, int64_t in,
                    int64_t out);
void linear_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                     int64_t rows, int64_t in, int64_t out);
/// ids: I64 on the same GPU, already validated.
void embedding_forward(Tensor& y, const Tensor& ids, const Tensor& w, int64_t dim, int64_t padding_idx);
void embedding_backward(Tensor& dw, const Tensor& dy, const Tensor& ids, int64_t dim, int64_t padding_idx);

void add_forward(Tensor& y, const Tensor& a, const Tensor& b);
void add_backward(Tensor* da, Tensor* db, const Tensor& dy);
void mul_forward(Tensor& y, const Tensor& a, const Tensor& b);
void mul_backward(Tensor* da, Tensor* db, const Tensor& dy, const Tensor& a, const Tensor& b);

enum class Unary { Tanh, Sigmoid, Relu };
void unary_forward(Unary f, Tensor& y, const Tensor& x);
/// dx += dy * f'(from the forward output y).
void unary_backward(Unary f, Tensor& dx, const Tensor& dy, const Tensor& y);

/// For o in [0, outer): dst[dst_offset + o*dst_stride + k] (+)= src[src_offset + o*src_stride + k],
/// k in [0, block); offsets and strides in elements.
void copy_blocks(Tensor& dst, int64_t dst_offset, int64_t dst_stride, const Tensor& src, int64_t src_offset,
                 int64_t src_stride, int64_t outer, int64_t block, bool accumulate);

/// Training-mode dropout with p in (0, 1]: the CPU's mask for the same seed.
void dropout_forward(Tensor& y, const Tensor& x, float p, uint64_t seed);
void dropout_backward(Tensor& dx, const Tensor& dy, float p, uint64_t seed);

/// y () = sum of x (double accumulation).
void sum(Tensor& y, const Tensor& x);
/// dst += alpha * src (same numel).
void axpy(Tensor& dst, const Tensor& src, float alpha);
/// dst += alpha * scalar, scalar a one-element tensor on the same GPU (read on the device).
void add_scalar(Tensor& dst, const Tensor& scalar, float alpha);

// ---- norm ----
void layer_norm_forward(Tensor& y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t rows, int64_t dim, float eps);
void layer_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t rows, int64_t dim);
void softmax_forward(Tensor& y, const Tensor& x, int64_t rows, int64_t dim);
void softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, int64_t rows, int64_t dim);
void log_softmax_forward(Tensor& y, const Tensor& x, int64_t rows, int64_t dim);
void log_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, int64_t rows, int64_t dim);

// ---- losses (the loss stays on the GPU) ----
void cross_entropy_forward(Tensor& loss, Tensor& logp, const Tensor& logits, const Tensor& targets, int64_t n,
                           int64_t classes, int64_t ignore_index, float label_smoothing);
/// dloss: a one-element tensor on the same GPU.
void cross_entropy_backward(Tensor& dlogits, const Tensor& dloss, const Tensor& logp, const Tensor& targets,
                            int64_t n, int64_t classes, int64_t ignore_index, float label_smoothing);
void mse_forward(Tensor& loss, const Tensor& pred, const Tensor& target);
void mse_backward(Tensor& dpred, const Tensor& dloss, const Tensor& pred, const Tensor& target);

// ---- pools over time (layout index arrays are uploaded per call) ----
void mean_pool_forward(Tensor& y, const Tensor& x, const PackedBatch& layout, int64_t hidden);
void mean_pool_backward(Tensor& dx, const Tensor& dy, const PackedBatch& layout, int64_t hidden);
/// argmax (I64, same GPU) may be null.
void max_pool_forward(Tensor& y, Tensor* argmax, const Tensor& x, const PackedBatch& layout, int64_t hidden);
void max_pool_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, int64_t hidden);
void gather_last_step_forward(Tensor& y, const Tensor& x, const PackedBatch& layout, int64_t hidden);
void gather_last_step_backward(Tensor& dx, const Tensor& dy, const PackedBatch& layout, int64_t hidden);
/// y (B, H) and alpha (N) allocated; x (N, H), scores (N).
void attention_pool_forward(Tensor& y, Tensor& alpha, const Tensor& x, const Tensor& scores, const PackedBatch& pb);
/// dx (N, H) and dscores (N) may be null.
void attention_pool_backward(Tensor* dx, Tensor* dscores, const Tensor& dy, const Tensor& x, const Tensor& alpha,
                             const PackedBatch& pb);

}  // namespace recur::cuda
