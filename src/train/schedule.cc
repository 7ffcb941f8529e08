#include "recur/train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "recur/core/error.h"

namespace recur::train {

double lr_at(const LrScheduleOptions& o, int64_t step, double min_progress) {
  RECUR_CHECK(step >= 0, "lr schedule: step must be >= 0, got {}", step);
  RECUR_CHECK(o.base_lr >= 0, "lr schedule: base_lr must be >= 0, got {}", o.base_lr);
  RECUR_CHECK(o.warmup_steps >= 0, "lr schedule: warmup_steps must be >= 0, got {}", o.warmup_steps);
  if (step < o.warmup_steps) return o.base_lr * static_cast<double>(step) / static_cast<double>(o.warmup_steps);
  const int64_t t = step - o.warmup_steps;
  switch (o.kind) {
    case LrScheduleKind::Constant:
      return o.base_lr;
    case LrScheduleKind::Step:
      RECUR_CHECK(o.step_size >= 1, "lr schedule 'step': step_size must be >= 1, got {}", o.step_size);
      RECUR_CHECK(o.gamma >= 0, "lr schedule 'step': gamma must be >= 0, got {}", o.gamma);
      return o.base_lr * std::pow(o.gamma, static_cast<double>(t / o.step_size));
    case LrScheduleKind::Cosine: {
      RECUR_CHECK(o.total_steps > o.warmup_steps,
                  "lr schedule 'cosine': total_steps ({}) must exceed warmup_steps ({})", o.total_steps,
                  o.warmup_steps);
      RECUR_CHECK(o.min_lr >= 0 && o.min_lr <= o.base_lr,
                  "lr schedule 'cosine': min_lr must be in [0, base_lr], got {}", o.min_lr);
      RECUR_CHECK(min_progress >= 0 && min_progress <= 1, "lr schedule 'cosine': min_progress must be in [0, 1], got {}",
                  min_progress);
      if (step >= o.total_steps) return o.min_lr;
      const double progress = std::max(min_progress, static_cast<double>(t) / static_cast<double>(o.total_steps - o.warmup_steps));
      return o.min_lr + (o.base_lr - o.min_lr) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
    }
  }
  RECUR_FAIL("lr schedule: unknown kind {}", static_cast<int>(o.kind));
}

}  // namespace recur::train
