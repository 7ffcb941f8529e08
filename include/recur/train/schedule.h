#pragma once
/// \file Learning-rate schedules: a pure function of the step, so resuming needs only the step.
#include <cstdint>

namespace recur::train {

enum class LrScheduleKind { Constant, Step, Cosine };

struct LrScheduleOptions {
  LrScheduleKind kind = LrScheduleKind::Constant;
  double base_lr = 1e-3;
  /// Linear warmup from 0: lr = base_lr * step / warmup_steps for step < warmup_steps.
  int64_t warmup_steps = 0;
  /// Step: lr = base_lr * gamma^floor((step - warmup_steps) / step_size).
  int64_t step_size = 1000;
  double gamma = 0.1;
  /// Cosine: from base_lr at warmup_steps down to min_lr at total_steps (and after).
  int64_t total_steps = 0;
  double min_lr = 0.0;
};

/// The learning rate for the 0-based optimizer step `step`. Throws recur::Error for invalid options
/// (negative values, step_size < 1, cosine with total_steps <= warmup_steps).
/// `min_progress` in [0, 1] (cosine only) raises the cosine's progress to at least that share: a
/// run on a time budget passes the share of the budget spent, so that the rate reaches min_lr when
/// the time runs out even if fewer than total_steps fit in it.
double lr_at(const LrScheduleOptions& options, int64_t step, double min_progress = 0.0);

}  // namespace recur::train
