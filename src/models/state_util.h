#pragma once
// Helpers the decoder models share (internal to src/models).
#include <cstdint>
#include <vector>

#include "recur/core/tape.h"
#include "recur/core/tensor.h"
#include "recur/ops/basic.h"

namespace recur::models::detail {

/// (n) int64 ids on `device`.
inline Tensor i64_on(const std::vector<int64_t>& v, Device device) {
  return Tensor::from_i64({static_cast<int64_t>(v.size())}, v).to(device);
}

/// (B, L*H) with the layers side by side -> (L, B, H), the RNN's state layout.
inline Var layers_first(Tape& tape, const Var& x, int64_t L, int64_t B, int64_t H) {
  if (L == 1) return reshape(tape, x, {1, B, H});
  std::vector<Var> parts = split(tape, x, std::vector<int64_t>(static_cast<size_t>(L), H), 1);
  return reshape(tape, concat(tape, parts, 0), {L, B, H});
}

}  // namespace recur::models::detail
