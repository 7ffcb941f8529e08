#pragma once
/// \file Errors: recur::Error and the RECUR_CHECK macro.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace recur {

/// The one exception type recur throws for bad input, bad shapes and failed invariants.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
[[noreturn]] void fail(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace recur

/// Throws recur::Error with file:line and a formatted message when `cond` is false.
/// Usage: RECUR_CHECK(x.dim(1) == w.dim(1), "linear: x {} vs weight {}", x.shape_str(), w.shape_str());
#define RECUR_CHECK(cond, ...)                                               \
  do {                                                                       \
    if (!(cond)) ::recur::detail::fail(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

/// Throws recur::Error unconditionally.
#define RECUR_FAIL(...) ::recur::detail::fail(__FILE__, __LINE__, fmt::format(__VA_ARGS__))
