#include "loss_cpu.h"

#include <algorithm>
#include <cmath>

#include "norm_cpu.h"
#include "recur/core/thread_pool.h"

namespace recur::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;

int64_t count_kept(const int64_t* targets, int64_t n, int64_t ignore_index) {
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) kept += targets[i] != ignore_index;
  return kept;
}
}  // namespace

float cross_entropy_forward(float* logp, const float* logits, const int64_t* targets, int64_t n, int64_t classes,
                            int64_t ignore_index, float label_smoothing) {
  log_softmax_forward(logp, logits, n, classes);
  double total = 0, eps = label_smoothing;
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] == ignore_index) continue;
    const float* lp = logp + i * classes;
    double row = -(1.0 - eps) * lp[targets[i]];
    if (eps > 0) {
      double s = 0;
      for (int64_t c = 0; c < classes; ++c) s += lp[c];
      row -= eps * s / static_cast<double>(classes);
    }
    total += row;
  }
  int64_t kept = count_kept(targets, n, ignore_index);
  return kept ? static_cast<float>(total / static_cast<double>(kept)) : 0.0f;
}

void cross_entropy_backward(float* dlogits, float dloss, const float* logp, const int64_t* targets, int64_t n,
                            int64_t classes, int64_t ignore_index, float label_smoothing) {
  int64_t kept = count_kept(targets, n, ignore_index);
  if (kept == 0) return;
  float g = dloss / static_cast<float>(kept);
  float on_target = 1.0f - label_smoothing, uniform = label_smoothing / static_cast<float>(classes);
  thread_pool().parallel_for(n, std::max<int64_t>(1, kGrain / std::max<int64_t>(classes, 1)),
                             [&](int64_t b, int64_t e) {
                               for (int64_t i = b; i < e; ++i) {
                                 if (targets[i] == ignore_index) continue;
                                 const float* lp = logp + i * classes;
                                 float* d = dlogits + i * classes;
                                 for (int64_t c = 0; c < classes; ++c)
                                   d[c] += g * (std::exp(lp[c]) - uniform - (c == targets[i] ? on_target : 0.0f));
                               }
                             });
}

float mse_forward(const float* pred, const float* target, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    double e = static_cast<double>(pred[i]) - target[i];
    s += e * e;
  }
  return static_cast<float>(s / static_cast<double>(n));
}

void mse_backward(float* dpred, float dloss, const float* pred, const float* target, int64_t n) {
  float g = 2.0f * dloss / static_cast<float>(n);
  thread_pool().parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dpred[i] += g * (pred[i] - target[i]);
  });
}

}  // namespace recur::cpu
