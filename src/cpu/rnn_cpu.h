#pragma once
// CPU kernels of one recurrent layer; called by src/ops/rnn.cc after its shape checks.
#include "recur/ops/rnn.h"

namespace recur::cpu {

void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, ops::RnnCache* cache, const Tensor& x,
                       const PackedBatch& pb, const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0,
                       const ops::RnnLayerOptions& opt);

void rnn_layer_backward(Tensor* dx, Tensor* dh0, Tensor* dc0, const ops::RnnWeightGrads& dw, const Tensor* dy,
                        const Tensor* dhn, const Tensor* dcn, const ops::RnnCache& cache, const Tensor& x,
                        const Tensor& y, const PackedBatch& pb, const ops::RnnWeights& w,
                        const ops::RnnLayerOptions& opt);

}  // namespace recur::cpu
