#include "norm_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "recur/core/thread_pool.h"

namespace recur::cpu {

namespace {

constexpr int64_t kGrain = 1 << 14;

// Runs body(r) for each row; rows are split across threads, never a single row.
template <class F>
void for_rows(int64_t rows, int64_t dim, F&& body) {
  thread_pool().parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(dim, 1)),
                             [&](int64_t b, int64_t e) {
                               for (int64_t r = b; r < e; ++r) body(r);
                             });
}

// max and log sum exp(x - max) of one row.
void row_logsumexp(const float* x, int64_t dim, float* max_out, float* lse_out) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < dim; ++i) m = std::max(m, x[i]);
  float s = 0;
  for (int64_t i = 0; i < dim; ++i) s += std::exp(x[i] - m);
  *max_out = m;
  *lse_out = std::log(s);
}

}  // namespace

void layer_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        int64_t rows, int64_t dim, float eps) {
  for_rows(rows, dim, [&](int64_t r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float m = 0;
    for (int64_t i = 0; i < dim; ++i) m += xr[i];
    m /= static_cast<float>(dim);
    // Two passes: the variance of (x - mean) avoids the cancellation of E[x^2] - mean^2.
    float v = 0;
    for (int64_t i = 0; i < dim; ++i) v += (xr[i] - m) * (xr[i] - m);
    v /= static_cast<float>(dim);
    float s = 1.0f / std::sqrt(v + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - m) * s * gamma[i] + beta[i];
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = s;
  });
}

void layer_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                         const float* mean, const float* rstd, int64_t rows, int64_t dim) {
  if (dx) {
    for_rows(rows, dim, [&](int64_t r) {
      const float* xr = x + r * dim;
      const float* g = dy + r * dim;
      float m = mean[r], s = rstd[r];
      // dnorm = dy * gamma; dx = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)).
      float mean_dn = 0, mean_dn_xhat = 0;
      for (int64_t i = 0; i < dim; ++i) {
        float dn = g[i] * gamma[i];
        mean_dn += dn;
        mean_dn_xhat += dn * (xr[i] - m) * s;
      }
      mean_dn /= static_cast<float>(dim);
      mean_dn_xhat /= static_cast<float>(dim);
      float* dxr = dx + r * dim;
      for (int64_t i = 0; i < dim; ++i) {
        float xhat = (xr[i] - m) * s;
        dxr[i] += s * (g[i] * gamma[i] - mean_dn - xhat * mean_dn_xhat);
      }
    });
  }
  if (dgamma || dbeta) {
    // Reductions over rows: threads split the columns so that each sum has one owner and order.
    thread_pool().parallel_for(dim, std::max<int64_t>(1, kGrain / std::max<int64_t>(rows, 1)),
                               [&](int64_t cb, int64_t ce) {
                                 for (int64_t r = 0; r < rows; ++r) {
                                   const float* xr = x + r * dim;
                                   const float* g = dy + r * dim;
                                   for (int64_t i = cb; i < ce; ++i) {
                                     if (dgamma) dgamma[i] += g[i] * (xr[i] - mean[r]) * rstd[r];
                                     if (dbeta) dbeta[i] += g[i];
                                   }
                                 }
                               });
  }
}

void softmax_forward(float* y, const float* x, int64_t rows, int64_t dim) {
  for_rows(rows, dim, [&](int64_t r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < dim; ++i) m = std::max(m, xr[i]);
    float s = 0;
    for (int64_t i = 0; i < dim; ++i) {
      yr[i] = std::exp(xr[i] - m);
      s += yr[i];
    }
    float inv = 1.0f / s;
    for (int64_t i = 0; i < dim; ++i) yr[i] *= inv;
  });
}

void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim) {
  for_rows(rows, dim, [&](int64_t r) {
    const float* g = dy + r * dim;
    const float* yr = y + r * dim;
    float dot = 0;
    for (int64_t i = 0; i < dim; ++i) dot += g[i] * yr[i];
    float* dxr = dx + r * dim;
    for (int64_t i = 0; i < dim; ++i) dxr[i] += yr[i] * (g[i] - dot);
  });
}

void log_softmax_forward(float* y, const float* x, int64_t rows, int64_t dim) {
  for_rows(rows, dim, [&](int64_t r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    float m, lse;
    row_logsumexp(xr, dim, &m, &lse);
    for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] - m - lse;
  });
}

void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t dim) {
  for_rows(rows, dim, [&](int64_t r) {
    const float* g = dy + r * dim;
    const float* yr = y + r * dim;
    float s = 0;
    for (int64_t i = 0; i < dim; ++i) s += g[i];
    float* dxr = dx + r * dim;
    for (int64_t i = 0; i < dim; ++i) dxr[i] += g[i] - std::exp(yr[i]) * s;
  });
}

}  // namespace recur::cpu
