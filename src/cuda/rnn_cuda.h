#pragma once
// CUDA path of one recurrent layer; called by src/ops/rnn.cc after its shape checks. Same
// contract as src/cpu/rnn_cpu.h (the cache holds the same quantities, on the GPU).
#include "recur/ops/rnn.h"

namespace recur::cuda {

void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, ops::RnnCache* cache, const Tensor& x,
                       const PackedBatch& pb, const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0,
                       const ops::RnnLayerOptions& opt);

void rnn_layer_backward(Tensor* dx, Tensor* dh0, Tensor* dc0, const ops::RnnWeightGrads& dw, const Tensor* dy,
                        const Tensor* dhn, const Tensor* dcn, const ops::RnnCache& cache, const Tensor& x,
                        const Tensor& y, const PackedBatch& pb, const ops::RnnWeights& w,
                        const ops::RnnLayerOptions& opt);

/// Row-major C (M x N) = alpha op(A) op(B) + beta C on the device's stream (cuBLAS sgemm).
void sgemm(int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace recur::cuda
