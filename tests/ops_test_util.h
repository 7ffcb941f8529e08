#pragma once
// Helpers shared by the functional-op tests (ops_*_test.cc).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "recur/core/error.h"
#include "test_util.h"

namespace recur::test {

/// Normal(0, scale) F64 values.
/// A double-precision copy, the input the references take.
inline Tensor f64(const Tensor& t) { return t.to(DType::F64); }

inline Tensor rand64(const Shape& shape, Rng& rng, double scale = 1.0) { return randn(shape, rng, scale, DType::F64); }

/// Compares an analytic gradient with central differences of loss() with respect to x (F64,
/// perturbed in place and restored).
inline ::testing::AssertionResult grad_matches(const std::function<double()>& loss, Tensor& x, const Tensor& analytic,
                                               double rtol = 1e-6, double atol = 1e-7) {
  Tensor numeric = numeric_grad(loss, x);
  return all_close(analytic, numeric, rtol, atol);
}

/// Runs fn; succeeds when it throws recur::Error whose message contains every one of `parts`.
inline ::testing::AssertionResult throws_with(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    std::string m = e.what();
    for (const std::string& p : parts)
      if (m.find(p) == std::string::npos) return ::testing::AssertionFailure() << "message \"" << m << "\" lacks \"" << p << "\"";
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no recur::Error thrown";
}

}  // namespace recur::test

#define EXPECT_THROWS_WITH(stmt, ...) EXPECT_TRUE(::recur::test::throws_with([&] { stmt; }, {__VA_ARGS__}))
