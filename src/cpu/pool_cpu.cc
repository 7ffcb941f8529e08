#include "pool_cpu.h"

#include <algorithm>
#include <cstring>

#include "recur/core/thread_pool.h"

namespace recur::cpu {

namespace {

constexpr int64_t kGrain = 1 << 14;

// Runs body(b, j, length) for each original sequence b at sorted position j.
template <class F>
void for_sequences(const PackedBatch& layout, int64_t hidden, F&& body) {
  int64_t per_seq = std::max<int64_t>(1, hidden * std::max<int64_t>(layout.steps(), 1));
  thread_pool().parallel_for(layout.batch(), std::max<int64_t>(1, kGrain / per_seq), [&](int64_t bb, int64_t be) {
    for (int64_t b = bb; b < be; ++b)
      body(b, layout.unsorted_indices[static_cast<size_t>(b)], layout.lengths[static_cast<size_t>(b)]);
  });
}

}  // namespace

void mean_pool_forward(float* y, const float* x, const PackedBatch& layout, int64_t hidden) {
  for_sequences(layout, hidden, [&](int64_t b, int64_t j, int64_t len) {
    float* yb = y + b * hidden;
    std::fill(yb, yb + hidden, 0.0f);
    for (int64_t t = 0; t < len; ++t) {
      const float* xr = x + layout.row(t, j) * hidden;
      for (int64_t h = 0; h < hidden; ++h) yb[h] += xr[h];
    }
    float inv = 1.0f / static_cast<float>(len);
    for (int64_t h = 0; h < hidden; ++h) yb[h] *= inv;
  });
}

void mean_pool_backward(float* dx, const float* dy, const PackedBatch& layout, int64_t hidden) {
  for_sequences(layout, hidden, [&](int64_t b, int64_t j, int64_t len) {
    const float* g = dy + b * hidden;
    float inv = 1.0f / static_cast<float>(len);
    for (int64_t t = 0; t < len; ++t) {
      float* dr = dx + layout.row(t, j) * hidden;
      for (int64_t h = 0; h < hidden; ++h) dr[h] += g[h] * inv;
    }
  });
}

void max_pool_forward(float* y, int64_t* argmax, const float* x, const PackedBatch& layout, int64_t hidden) {
  for_sequences(layout, hidden, [&](int64_t b, int64_t j, int64_t len) {
    float* yb = y + b * hidden;
    int64_t first = layout.row(0, j);
    std::memcpy(yb, x + first * hidden, static_cast<size_t>(hidden) * sizeof(float));
    if (argmax) std::fill(argmax + b * hidden, argmax + (b + 1) * hidden, first);
    // Strictly greater: the earliest step wins ties.
    for (int64_t t = 1; t < len; ++t) {
      int64_t r = layout.row(t, j);
      const float* xr = x + r * hidden;
      for (int64_t h = 0; h < hidden; ++h)
        if (xr[h] > yb[h]) {
          yb[h] = xr[h];
          if (argmax) argmax[b * hidden + h] = r;
        }
    }
  });
}

void max_pool_backward(float* dx, const float* dy, const int64_t* argmax, const PackedBatch& layout, int64_t hidden) {
  for_sequences(layout, hidden, [&](int64_t b, int64_t, int64_t) {
    for (int64_t h = 0; h < hidden; ++h) dx[argmax[b * hidden + h] * hidden + h] += dy[b * hidden + h];
  });
}

void gather_last_step_forward(float* y, const float* x, const PackedBatch& layout, int64_t hidden) {
  for (int64_t b = 0; b < layout.batch(); ++b)
    std::memcpy(y + b * hidden, x + layout.last_row(b) * hidden, static_cast<size_t>(hidden) * sizeof(float));
}

void gather_last_step_backward(float* dx, const float* dy, const PackedBatch& layout, int64_t hidden) {
  for (int64_t b = 0; b < layout.batch(); ++b) {
    float* dr = dx + layout.last_row(b) * hidden;
    const float* g = dy + b * hidden;
    for (int64_t h = 0; h < hidden; ++h) dr[h] += g[h];
  }
}

}  // namespace recur::cpu
