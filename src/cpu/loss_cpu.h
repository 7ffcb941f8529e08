#pragma once
// Fast float32 CPU kernels of the losses (internal): raw pointers, shapes and targets already
// checked by src/ops/loss.cc. Scalar sums run in double, in row order: deterministic and accurate.
#include <cstdint>

namespace recur::cpu {

// Fills logp (n, classes) with the log-softmax of the logits and returns the mean loss.
float cross_entropy_forward(float* logp, const float* logits, const int64_t* targets, int64_t n, int64_t classes,
                            int64_t ignore_index, float label_smoothing);
// Adds dloss * d(loss)/d(logits) into dlogits (n, classes).
void cross_entropy_backward(float* dlogits, float dloss, const float* logp, const int64_t* targets, int64_t n,
                            int64_t classes, int64_t ignore_index, float label_smoothing);

float mse_forward(const float* pred, const float* target, int64_t n);
void mse_backward(float* dpred, float dloss, const float* pred, const float* target, int64_t n);

}  // namespace recur::cpu
