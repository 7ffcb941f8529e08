#pragma once
/// \file Conv2d and GroupNorm modules (PyTorch names: weight, bias).
#include <cstdint>

#include "recur/core/rng.h"
#include "recur/nn/module.h"
#include "recur/ops/conv.h"

namespace recur::nn {

/// 2-D convolution with a square kernel: x (N, in, H, W) -> (N, out, OH, OW). Initialised as
/// PyTorch's nn.Conv2d (kaiming-uniform with a = sqrt(5)): weight and bias U(-1/sqrt(fan_in),
/// 1/sqrt(fan_in)) with fan_in = in_channels * kernel * kernel.
// The options go by reference: GCC 12.2 with AVX-512 (-march=native) miscompiles constant
// Conv2dOptions built on the stack as a by-value argument (square(2) arrived with padding 2).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, const ops::Conv2dOptions& opt, Rng& init,
         bool bias = true);
  Var forward(Tape& tape, const Var& x) const;
  const Var& weight() const { return weight_; }
  const ops::Conv2dOptions& options() const { return opt_; }

 private:
  Var weight_, bias_;
  ops::Conv2dOptions opt_;
};

/// Group norm over x (N, channels, ...) in `groups` groups, with a per-channel affine transform:
/// weight (channels) starts at 1, bias (channels) at 0.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, float eps = 1e-5f);
  Var forward(Tape& tape, const Var& x) const;
  int64_t groups() const { return groups_; }

 private:
  Var weight_, bias_;
  int64_t groups_;
  float eps_;
};

}  // namespace recur::nn
