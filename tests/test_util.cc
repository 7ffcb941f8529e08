#include "test_util.h"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace recur::test {

Tensor randn(const Shape& shape, Rng& rng, double scale, DType dtype) {
  Tensor t(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = rng.normal() * scale;
    if (dtype == DType::F64) t.data<double>()[i] = v;
    else t.f32()[i] = static_cast<float>(v);
  }
  return t;
}

Tensor uniform(const Shape& shape, Rng& rng, double lo, double hi, DType dtype) {
  Tensor t(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = lo + (hi - lo) * rng.uniform();
    if (dtype == DType::F64) t.data<double>()[i] = v;
    else t.f32()[i] = static_cast<float>(v);
  }
  return t;
}

::testing::AssertionResult all_close(const Tensor& a_in, const Tensor& b_in, double rtol, double atol) {
  const Tensor a = a_in.cpu(), b = b_in.cpu();  // GPU tensors are compared on the host
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shape " << a.shape_str() << " vs " << b.shape_str();
  double worst = 0;
  int64_t wi = -1;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.item(i), y = b.item(i);
    double err = std::fabs(x - y) - (atol + rtol * std::fabs(y));
    if (std::isnan(x) != std::isnan(y)) err = INFINITY;
    if (err > worst || (wi < 0 && err > 0)) {
      worst = err;
      wi = i;
    }
  }
  if (wi >= 0)
    return ::testing::AssertionFailure() << "element " << wi << " of " << a.shape_str() << ": " << a.item(wi)
                                         << " vs " << b.item(wi) << " (rtol " << rtol << ", atol " << atol << ")";
  return ::testing::AssertionSuccess();
}

double max_rel_error(const Tensor& a_in, const Tensor& b_in, double floor) {
  const Tensor a = a_in.cpu(), b = b_in.cpu();
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::fabs(a.item(i) - b.item(i)) / (std::fabs(b.item(i)) + floor));
  return worst;
}

Tensor numeric_grad(const std::function<double()>& loss, Tensor& x, double eps) {
  Tensor g(x.shape(), DType::F64);
  double* p = x.data<double>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    double keep = p[i];
    p[i] = keep + eps;
    double lp = loss();
    p[i] = keep - eps;
    double lm = loss();
    p[i] = keep;
    g.data<double>()[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

double weighted_sum(const Tensor& y, const Tensor& w) {
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += y.item(i) * w.item(i);
  return s;
}

CommandOutput run_recur(const std::string& args) {
  const std::string cmd = std::string(RECUR_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string text;
  std::array<char, 4096> buf;
  size_t n;
  while (p && (n = fread(buf.data(), 1, buf.size(), p)) > 0) text.append(buf.data(), n);
  const int st = p ? pclose(p) : -1;
  return {st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, text};
}

nlohmann::json last_json_line(const std::string& text) {
  nlohmann::json j;
  std::istringstream lines(text);
  for (std::string l; std::getline(lines, l);)
    if (!l.empty() && l[0] == '{') j = nlohmann::json::parse(l);
  return j;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace recur::test
