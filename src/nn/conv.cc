#include "recur/nn/conv.h"

#include <cmath>

namespace recur::nn {

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, const ops::Conv2dOptions& opt,
               Rng& init, bool bias)
    : opt_(opt) {
  RECUR_CHECK(in_channels > 0 && out_channels > 0 && kernel > 0, "Conv2d({}, {}, kernel {}): sizes must be positive",
              in_channels, out_channels, kernel);
  // kaiming_uniform(a = sqrt(5)) gives gain sqrt(2 / 6) and bound gain * sqrt(3 / fan_in) =
  // 1 / sqrt(fan_in); PyTorch draws the bias from the same range.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_channels * kernel * kernel));
  auto uniform = [&](Shape s) {
    Tensor t(std::move(s));
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = static_cast<float>((2 * init.uniform() - 1) * bound);
    return t;
  };
  weight_ = register_parameter("weight", uniform({out_channels, in_channels, kernel, kernel}));
  if (bias) bias_ = register_parameter("bias", uniform({out_channels}));
}

Var Conv2d::forward(Tape& tape, const Var& x) const { return conv2d(tape, x, weight_, bias_, opt_); }

GroupNorm::GroupNorm(int64_t groups, int64_t channels, float eps) : groups_(groups), eps_(eps) {
  RECUR_CHECK(groups > 0 && channels > 0 && channels % groups == 0,
              "GroupNorm({}, {}): the groups must divide the channels", groups, channels);
  weight_ = register_parameter("weight", Tensor::full({channels}, 1.0));
  bias_ = register_parameter("bias", Tensor::zeros({channels}));
}

Var GroupNorm::forward(Tape& tape, const Var& x) const { return group_norm(tape, x, weight_, bias_, groups_, eps_); }

}  // namespace recur::nn
