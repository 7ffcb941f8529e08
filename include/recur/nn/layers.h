#pragma once
/// \file Linear and Embedding modules (PyTorch names: weight, bias).
#include <cstdint>

#include "recur/core/rng.h"
#include "recur/nn/module.h"

namespace recur::nn {

/// y = x W^T + b. Initialised as PyTorch's nn.Linear: U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Rng& init, bool bias = true);
  /// x: (N, in) -> (N, out).
  Var forward(Tape& tape, const Var& x) const;
  const Var& weight() const { return weight_; }

 private:
  Var weight_, bias_;
};

/// Rows of a (num, dim) table. Initialised N(0, 1) as PyTorch; the padding row starts at zero and
/// never receives gradient.
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Rng& init, int64_t padding_idx = -1);
  /// ids: (N) int64 -> (N, dim).
  Var forward(Tape& tape, const Tensor& ids) const;
  const Var& weight() const { return weight_; }

 private:
  Var weight_;
  int64_t padding_idx_;
};

}  // namespace recur::nn
