#include "recur/nn/layers.h"

#include <cmath>

#include "recur/ops/basic.h"

namespace recur::nn {

Linear::Linear(int64_t in_features, int64_t out_features, Rng& init, bool bias) {
  RECUR_CHECK(in_features > 0 && out_features > 0, "Linear({}, {}): sizes must be positive", in_features,
              out_features);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  auto uniform = [&](Shape s) {
    Tensor t(std::move(s));
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = static_cast<float>((2 * init.uniform() - 1) * bound);
    return t;
  };
  weight_ = register_parameter("weight", uniform({out_features, in_features}));
  if (bias) bias_ = register_parameter("bias", uniform({out_features}));
}

Var Linear::forward(Tape& tape, const Var& x) const { return linear(tape, x, weight_, bias_); }

Embedding::Embedding(int64_t num, int64_t dim, Rng& init, int64_t padding_idx) : padding_idx_(padding_idx) {
  RECUR_CHECK(num > 0 && dim > 0, "Embedding({}, {}): sizes must be positive", num, dim);
  RECUR_CHECK(padding_idx < num, "Embedding: padding_idx {} >= num {}", padding_idx, num);
  Tensor w({num, dim});
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = static_cast<float>(init.normal());
  if (padding_idx >= 0)
    for (int64_t j = 0; j < dim; ++j) w.f32()[padding_idx * dim + j] = 0.0f;
  weight_ = register_parameter("weight", w);
}

Var Embedding::forward(Tape& tape, const Tensor& ids) const { return embedding(tape, ids, weight_, padding_idx_); }

}  // namespace recur::nn
