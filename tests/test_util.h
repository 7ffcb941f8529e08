#pragma once
// Helpers shared by the unit tests: random tensors, closeness checks, central differences.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "recur/core/cuda.h"
#include "recur/core/rng.h"
#include "recur/core/tensor.h"

namespace recur::test {

/// Normal(0, scale) values of the given dtype (F32 or F64).
Tensor randn(const Shape& shape, Rng& rng, double scale = 1.0, DType dtype = DType::F32);
/// Uniform [lo, hi) values.
Tensor uniform(const Shape& shape, Rng& rng, double lo, double hi, DType dtype = DType::F32);

/// Elementwise |a-b| <= atol + rtol*|b| (any float dtypes; shapes must match). Reports the worst
/// element and its index on failure.
::testing::AssertionResult all_close(const Tensor& a, const Tensor& b, double rtol, double atol);
/// Max |a-b| / (|b| + floor) over elements.
double max_rel_error(const Tensor& a, const Tensor& b, double floor = 1e-3);

/// Central-difference gradient of the scalar `loss()` with respect to x (F64), perturbing x in
/// place by +-eps and restoring it.
Tensor numeric_grad(const std::function<double()>& loss, Tensor& x, double eps = 1e-6);

/// sum(y * w): the usual way to turn an output into a scalar loss for gradient checks.
double weighted_sum(const Tensor& y, const Tensor& w);

/// Runs the recur binary with `args` (a shell command line tail); stdout and stderr together.
struct CommandOutput {
  int status;  ///< exit status, -1 when it did not exit normally
  std::string text;
};
CommandOutput run_recur(const std::string& args);
/// The last line of `text` that starts with '{', parsed as JSON (what `--json` commands print
/// after their log lines); a null json when there is none.
nlohmann::json last_json_line(const std::string& text);
/// The whole file as a string ("" when it cannot be read).
std::string read_file(const std::string& path);

/// A temporary folder (temp/recur_<name>_<pid>), emptied at the start and removed at the end.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("recur_" + name + "_" + std::to_string(getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// Writes `text` to `file` below the folder (creating sub-folders); returns its path.
  std::string write(const std::string& file, const std::string& text) const {
    const std::filesystem::path p = path_ / file;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  const std::filesystem::path& path() const { return path_; }
  /// The path of `file` below the folder (not created).
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace recur::test

/// GPU tests call this first: without a visible CUDA GPU (or without the backend) they skip.
#define RECUR_REQUIRE_GPU()                                                     \
  do {                                                                          \
    if (!::recur::cuda::available()) GTEST_SKIP() << "no CUDA GPU visible";      \
  } while (0)

#define EXPECT_ALL_CLOSE(a, b, rtol, atol) EXPECT_TRUE(::recur::test::all_close((a), (b), (rtol), (atol)))
