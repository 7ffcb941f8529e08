// `recur bench rnn` / `recur bench conv`: time one recurrent layer stack or one 2-D convolution
// forward and forward+backward, next to the machine's own sgemm rate measured in the same run.
#include <cblas.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "recur/core/allocator.h"
#include "recur/core/cuda.h"
#include "recur/core/thread_pool.h"
#include "recur/nn/conv.h"
#include "recur/nn/rnn.h"
#include "../../src/cpu/gemm.h"
#include "../../src/cuda/rnn_cuda.h"

namespace recur::cli {

namespace {

struct BenchCase {
  std::string cell = "lstm";
  int64_t input = 256, hidden = 512, steps = 100, batch = 64, layers = 1;
  bool bidirectional = false;
  std::string lengths = "fixed";
  bool padded = false;
};

struct ConvCase {
  int64_t batch = 896, channels = 1, out = 16, height = 32, width = 32, kernel = 3, stride = 1, padding = 1,
          dilation = 1;
};

struct BenchSettings {
  int threads = 2;
  int repeats = 5;
  bool json = false;
  uint64_t seed = 0;
  std::string device = "cpu";
};

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double median_ms(F&& fn, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ts;
  for (int i = 0; i < repeats; ++i) {
    double t0 = now_ms();
    fn();
    ts.push_back(now_ms() - t0);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// On a GPU: the stream's time between two CUDA events around each call (after warm-up), median.
template <class F>
double median_gpu_ms(F&& fn, int device, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) fn();
  cuda::synchronize(device);
  cuda::Timer timer(device);
  std::vector<double> ts;
  for (int i = 0; i < repeats; ++i) {
    timer.start();
    fn();
    ts.push_back(timer.stop());
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// The GPU's float32 GEMM rate through cuBLAS (TF32 off unless allowed), 4096^3.
double cublas_sgemm_gflops(int device, int repeats) {
  const int64_t n = 4096;
  const Device D = Device::cuda(device);
  Rng rng(1);
  Tensor ha({n, n}), hb({n, n});
  for (int64_t i = 0; i < ha.numel(); ++i) ha.f32()[i] = static_cast<float>(rng.normal()), hb.f32()[i] = static_cast<float>(rng.normal());
  Tensor a = ha.to(D), b = hb.to(D), c({n, n}, DType::F32, D);
  double ms = median_gpu_ms(
      [&] { cuda::sgemm(device, false, false, n, n, n, 1.0f, a.f32(), n, b.f32(), n, 0.0f, c.f32(), n); }, device, 2,
      std::max(5, repeats));
  return 2.0 * static_cast<double>(n * n * n) / ms / 1e6;
}

// The machine's sgemm rate on 2048^3, the best of OpenBLAS's own threading and recur's split
// (src/cpu/gemm.h) over the same number of threads.
double sgemm_gflops(int repeats) {
  const int n = 2048;
  Tensor a = Tensor::full({n, n}, 0.5), b = Tensor::full({n, n}, 0.25), c = Tensor::zeros({n, n});
  openblas_set_num_threads(num_threads());
  double own = median_ms(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.f32(), n, b.f32(), n, 0.0f, c.f32(), n);
      },
      1, std::max(3, repeats));
  set_num_threads(num_threads());  // back to single-threaded OpenBLAS inside recur's pool
  double split = median_ms(
      [&] {
        cpu::sgemm(cpu::Trans::No, cpu::Trans::No, n, n, n, 1.0f, a.f32(), n, b.f32(), n, 0.0f, c.f32(), n);
      },
      1, std::max(3, repeats));
  return 2.0 * n * n * n / std::min(own, split) / 1e6;
}

ops::CellType parse_cell(const std::string& s) {
  if (s == "lstm") return ops::CellType::LSTM;
  if (s == "gru") return ops::CellType::GRU;
  if (s == "rnn" || s == "rnn_tanh") return ops::CellType::RNN_TANH;
  if (s == "rnn_relu") return ops::CellType::RNN_RELU;
  RECUR_FAIL("--cell: unknown cell '{}' (lstm, gru, rnn, rnn_relu)", s);
}

std::vector<int64_t> make_lengths(const BenchCase& c, Rng& rng) {
  std::vector<int64_t> lengths(static_cast<size_t>(c.batch), c.steps);
  if (c.lengths == "fixed") return lengths;
  int64_t lo = 0, hi = 0;
  RECUR_CHECK(std::sscanf(c.lengths.c_str(), "uniform:%ld:%ld", &lo, &hi) == 2 && lo >= 1 && lo <= hi &&
                  hi <= c.steps,
              "--lengths: expected fixed or uniform:MIN:MAX with 1 <= MIN <= MAX <= steps ({}), got '{}'", c.steps,
              c.lengths);
  for (auto& L : lengths) L = lo + static_cast<int64_t>(rng.below(static_cast<uint64_t>(hi - lo + 1)));
  return lengths;
}

// Forward (no tape) and forward + backward (ones as the output gradient) of one layer, medians
// after warm-up, and the allocator's peak bytes during forward + backward. `forward` returns the
// layer's output; `zero_grad` clears the gradients before each backward; `after_fwd` runs once
// after the forward timings (to read what the forward path chose).
struct LayerTimes {
  double fwd = 0, fwdbwd = 0;
  int64_t peak = 0;
};

template <class Forward, class ZeroGrad, class AfterFwd>
LayerTimes time_layer(const Device& dev, const BenchSettings& s, Forward&& forward, ZeroGrad&& zero_grad,
                      AfterFwd&& after_fwd) {
  const bool gpu = dev.is_cuda();
  auto timed = [&](auto&& fn) {
    return gpu ? median_gpu_ms(fn, dev.index, 2, s.repeats) : median_ms(fn, 1, s.repeats);
  };
  LayerTimes t;
  t.fwd = timed([&] {
    Tape tape;
    NoGrad ng(tape);
    forward(tape);
  });
  after_fwd();
  auto& alloc = cpu_allocator();
  t.fwdbwd = timed([&] {
    zero_grad();
    if (gpu)
      cuda::reset_peak(dev.index);
    else
      alloc.reset_peak();
    Tape tape;
    Var y = forward(tape);
    tape.backward({{y, Tensor::full(y.value().shape(), 1.0, DType::F32, dev)}});
    t.peak = std::max(t.peak, gpu ? cuda::memory_stats(dev.index).peak : alloc.peak_bytes());
  });
  return t;
}

// The timing keys of a case's JSON: milliseconds, GFLOP/s (forward + backward counts three times
// the forward FLOPs) and both as a fraction of the same run's sgemm rate.
void put_rates(nlohmann::json& j, double flops, const LayerTimes& t, double sgemm, const Device& dev) {
  j["fwd_ms"] = t.fwd;
  j["fwdbwd_ms"] = t.fwdbwd;
  j["fwd_gflops"] = flops / t.fwd / 1e6;
  j["fwdbwd_gflops"] = 3.0 * flops / t.fwdbwd / 1e6;
  j["sgemm_gflops"] = sgemm;
  j["fwd_frac_sgemm"] = flops / t.fwd / 1e6 / sgemm;
  j["fwdbwd_frac_sgemm"] = 3.0 * flops / t.fwdbwd / 1e6 / sgemm;
  j["peak_bytes"] = t.peak;
  j["blas_core"] = dev.is_cuda() ? "cublas" : openblas_get_corename();
}

nlohmann::json run_case(const BenchCase& c, const BenchSettings& s, double sgemm) {
  const Device dev = Device::parse(s.device);
  const bool gpu = dev.is_cuda();
  Rng rng(s.seed);
  nn::RnnOptions o{parse_cell(c.cell), c.input, c.hidden, c.layers, true, c.bidirectional, 0.0f};
  nn::RNN rnn(o, rng);
  std::vector<int64_t> lengths = make_lengths(c, rng);
  PackedBatch pb = PackedBatch::from_lengths(lengths);
  const int64_t real_tokens = pb.tokens();
  const int64_t computed_tokens = c.padded ? c.steps * c.batch : real_tokens;
  Tensor xv = c.padded ? Tensor({c.steps, c.batch, c.input}) : Tensor({real_tokens, c.input});
  for (int64_t i = 0; i < xv.numel(); ++i) xv.f32()[i] = static_cast<float>(rng.normal());
  rnn.to(dev);
  Var x(xv.to(dev), true);

  auto forward = [&](Tape& tape) {
    return c.padded ? rnn.forward_padded(tape, x, lengths) : rnn.forward(tape, x, pb);
  };
  std::string path = "cpu";
  const LayerTimes t = time_layer(
      dev, s, [&](Tape& tape) { return forward(tape).y; },
      [&] {
        rnn.zero_grad();
        x.zero_grad();
      },
      [&] {
        if (gpu) path = cuda::last_rnn_forward_path();
      });
  const int64_t G = ops::gate_count(o.cell), D = c.bidirectional ? 2 : 1;
  double flops = 0;
  for (int64_t l = 0; l < c.layers; ++l) {
    int64_t in = l == 0 ? c.input : D * c.hidden;
    flops += static_cast<double>(D) * 2.0 * static_cast<double>(computed_tokens) * static_cast<double>(G * c.hidden) *
             static_cast<double>(in + c.hidden);
  }
  nlohmann::json j;
  j["cell"] = c.cell;
  j["input"] = c.input;
  j["hidden"] = c.hidden;
  j["steps"] = c.steps;
  j["batch"] = c.batch;
  j["layers"] = c.layers;
  j["bidirectional"] = c.bidirectional;
  j["lengths"] = c.lengths;
  j["padded"] = c.padded;
  j["tokens"] = real_tokens;
  j["computed_tokens"] = computed_tokens;
  j["threads"] = num_threads();
  j["device"] = dev.str();
  if (gpu) {
    j["gpu"] = cuda::device_name(dev.index);
    j["rnn_path"] = path;
    j["rnn_backward_path"] = cuda::last_rnn_backward_path();
    j["allow_tf32"] = cuda::allow_tf32();
  }
  if (c.lengths != "fixed") j["length_values"] = lengths;
  put_rates(j, flops, t, sgemm, dev);
  j["train_tokens_per_s"] = static_cast<double>(real_tokens) / t.fwdbwd * 1e3;
  return j;
}

void print_case(const nlohmann::json& j, bool json) {
  if (json) {
    std::cout << j.dump() << std::endl;
    return;
  }
  std::cout << fmt::format(
                   "{:>4} I{:<4} H{:<4} T{:<4} B{:<4} L{} {}{:<16} {:>6} tok | fwd {:8.2f} ms {:6.1f} GF/s ({:4.0f}% "
                   "sgemm) | fwd+bwd {:8.2f} ms {:6.1f} GF/s ({:4.0f}%) | peak {:.1f} MB",
                   j["cell"].get<std::string>(), j["input"].get<int64_t>(), j["hidden"].get<int64_t>(),
                   j["steps"].get<int64_t>(), j["batch"].get<int64_t>(), j["layers"].get<int64_t>(),
                   j["bidirectional"].get<bool>() ? "bi " : "", j["lengths"].get<std::string>() +
                   (j["padded"].get<bool>() ? " padded" : ""), j["tokens"].get<int64_t>(),
                   j["fwd_ms"].get<double>(), j["fwd_gflops"].get<double>(),
                   100 * j["fwd_frac_sgemm"].get<double>(), j["fwdbwd_ms"].get<double>(),
                   j["fwdbwd_gflops"].get<double>(), 100 * j["fwdbwd_frac_sgemm"].get<double>(),
                   j["peak_bytes"].get<int64_t>() / 1e6)
            << std::endl;
}

// The GPU cases of ANCHORS.md (PyTorch + cuDNN on an H200).
std::vector<BenchCase> gpu_suite() {
  std::vector<BenchCase> v;
  v.push_back({"lstm", 256, 512, 100, 64, 1, false, "fixed", false});
  v.push_back({"lstm", 512, 512, 100, 1, 1, false, "fixed", false});
  v.push_back({"lstm", 512, 512, 100, 8, 1, false, "fixed", false});
  v.push_back({"lstm", 1024, 1024, 50, 128, 1, false, "fixed", false});
  v.push_back({"lstm", 512, 512, 100, 64, 2, false, "fixed", false});
  v.push_back({"gru", 256, 512, 100, 64, 1, false, "fixed", false});
  v.push_back({"lstm", 256, 512, 100, 64, 1, false, "uniform:10:100", false});
  v.push_back({"lstm", 256, 512, 100, 64, 1, false, "uniform:10:100", true});
  return v;
}

// The CPU cases of ANCHORS.md.
std::vector<BenchCase> standard_suite() {
  std::vector<BenchCase> v;
  v.push_back({"lstm", 256, 512, 100, 64, 1, false, "fixed", false});
  v.push_back({"lstm", 512, 512, 100, 1, 1, false, "fixed", false});
  v.push_back({"lstm", 512, 512, 100, 8, 1, false, "fixed", false});
  v.push_back({"gru", 256, 512, 100, 64, 1, false, "fixed", false});
  v.push_back({"lstm", 256, 512, 100, 64, 1, false, "uniform:10:100", false});
  v.push_back({"lstm", 256, 512, 100, 64, 1, false, "uniform:10:100", true});
  return v;
}

// One Conv2d layer (with bias) on (batch, channels, height, width) inputs: forward, and forward +
// backward (dx and the weight and bias gradients). FLOPs: 2 N O OH OW C KH KW forward, three times
// that for forward + backward.
nlohmann::json run_conv_case(const ConvCase& c, const BenchSettings& s, double sgemm) {
  const Device dev = Device::parse(s.device);
  const bool gpu = dev.is_cuda();
  Rng rng(s.seed);
  const auto opt = ops::Conv2dOptions::square(c.stride, c.padding, c.dilation);
  nn::Conv2d conv(c.channels, c.out, c.kernel, opt, rng);
  Tensor xv({c.batch, c.channels, c.height, c.width});
  for (int64_t i = 0; i < xv.numel(); ++i) xv.f32()[i] = static_cast<float>(rng.normal());
  conv.to(dev);
  Var x(xv.to(dev), true);
  const ops::Conv2dGeom g = ops::conv2d_geometry("bench conv", xv.shape(), {c.out, c.channels, c.kernel, c.kernel}, opt);
  const LayerTimes t = time_layer(
      dev, s, [&](Tape& tape) { return conv.forward(tape, x); },
      [&] {
        conv.zero_grad();
        x.zero_grad();
      },
      [] {});
  const double flops = 2.0 * static_cast<double>(g.n * g.o * g.oh * g.ow) * static_cast<double>(g.c * g.kh * g.kw);
  nlohmann::json j;
  j["op"] = "conv2d";
  j["batch"] = c.batch;
  j["channels"] = c.channels;
  j["out"] = c.out;
  j["height"] = c.height;
  j["width"] = c.width;
  j["kernel"] = c.kernel;
  j["stride"] = c.stride;
  j["padding"] = c.padding;
  j["dilation"] = c.dilation;
  j["threads"] = num_threads();
  j["device"] = dev.str();
  if (gpu) j["gpu"] = cuda::device_name(dev.index);
  put_rates(j, flops, t, sgemm, dev);
  return j;
}

void print_conv_case(const nlohmann::json& j, bool json) {
  if (json) {
    std::cout << j.dump() << std::endl;
    return;
  }
  std::cout << fmt::format("conv N{:<4} C{:<3} {}x{} O{:<3} k{} s{} p{} | fwd {:8.2f} ms {:6.1f} GF/s ({:4.0f}% sgemm) | "
                           "fwd+bwd {:8.2f} ms {:6.1f} GF/s ({:4.0f}%) | peak {:.1f} MB",
                           j["batch"].get<int64_t>(), j["channels"].get<int64_t>(), j["height"].get<int64_t>(),
                           j["width"].get<int64_t>(), j["out"].get<int64_t>(), j["kernel"].get<int64_t>(),
                           j["stride"].get<int64_t>(), j["padding"].get<int64_t>(), j["fwd_ms"].get<double>(),
                           j["fwd_gflops"].get<double>(), 100 * j["fwd_frac_sgemm"].get<double>(),
                           j["fwdbwd_ms"].get<double>(), j["fwdbwd_gflops"].get<double>(),
                           100 * j["fwdbwd_frac_sgemm"].get<double>(), j["peak_bytes"].get<int64_t>() / 1e6)
            << std::endl;
}

// The two layers of the Moving Fashion frame CNN (configs/moving-fashion.yaml: 32x32 grey frames,
// channels [16, 32], 3x3; ~896 frames in a batch of 64 clips) and a ResNet-18 first-stage layer.
std::vector<ConvCase> conv_suite() {
  return {{896, 1, 16, 32, 32, 3, 1, 1, 1}, {896, 16, 32, 16, 16, 3, 1, 1, 1}, {32, 64, 64, 56, 56, 3, 1, 1, 1}};
}

}  // namespace

void add_bench(CLI::App& app) {
  auto settings = std::make_shared<BenchSettings>();
  auto one = std::make_shared<BenchCase>();
  auto conv_one = std::make_shared<ConvCase>();
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (with no case: the standard CPU suite)");
  bench->add_option("--threads", settings->threads, "Threads for GEMMs and pointwise loops")->check(CLI::PositiveNumber);
  bench->add_option("--repeats", settings->repeats, "Timed repeats per case (median reported)")->check(CLI::PositiveNumber);
  bench->add_flag("--json", settings->json, "One JSON object per case per line");
  bench->add_option("--seed", settings->seed, "Seed for weights, inputs and lengths");
  bench->add_option("--device", settings->device, "cpu | cuda | cuda:N (with no case on a GPU: the GPU suite)");
  bench->add_flag("--allow-tf32", [](int64_t) { cuda::set_allow_tf32(true); }, "TF32 tensor-core math for float32 GEMMs (GPU)");
  CLI::App* rnn = bench->add_subcommand("rnn", "Time a recurrent layer stack forward and forward+backward");
  rnn->add_option("--cell", one->cell, "lstm | gru | rnn | rnn_relu")->check(CLI::IsMember({"lstm", "gru", "rnn", "rnn_tanh", "rnn_relu"}));
  rnn->add_option("--input", one->input, "Input size")->check(CLI::PositiveNumber);
  rnn->add_option("--hidden", one->hidden, "Hidden size")->check(CLI::PositiveNumber);
  rnn->add_option("--steps", one->steps, "Time steps (max length)")->check(CLI::PositiveNumber);
  rnn->add_option("--batch", one->batch, "Batch size")->check(CLI::PositiveNumber);
  rnn->add_option("--layers", one->layers, "Stacked layers")->check(CLI::PositiveNumber);
  rnn->add_flag("--bidirectional", one->bidirectional, "Bidirectional layers");
  rnn->add_option("--lengths", one->lengths, "fixed | uniform:MIN:MAX (seeded)");
  rnn->add_flag("--padded", one->padded, "Static baseline: pad to --steps and mask");
  rnn->add_option("--threads", settings->threads, "Threads")->check(CLI::PositiveNumber);
  rnn->add_option("--repeats", settings->repeats, "Timed repeats (median reported)")->check(CLI::PositiveNumber);
  rnn->add_flag("--json", settings->json, "Print one JSON object");
  rnn->add_option("--device", settings->device, "cpu | cuda | cuda:N");
  CLI::App* conv = bench->add_subcommand(
      "conv", "Time one Conv2d layer forward and forward+backward (with no shape option: the conv suite)");
  conv->add_option("--batch", conv_one->batch, "Images (frames)")->check(CLI::PositiveNumber);
  conv->add_option("--channels", conv_one->channels, "Input channels")->check(CLI::PositiveNumber);
  conv->add_option("--out", conv_one->out, "Output channels")->check(CLI::PositiveNumber);
  conv->add_option("--height", conv_one->height, "Input height")->check(CLI::PositiveNumber);
  conv->add_option("--width", conv_one->width, "Input width")->check(CLI::PositiveNumber);
  conv->add_option("--kernel", conv_one->kernel, "Square kernel side")->check(CLI::PositiveNumber);
  conv->add_option("--stride", conv_one->stride, "Stride")->check(CLI::PositiveNumber);
  conv->add_option("--padding", conv_one->padding, "Zero padding")->check(CLI::NonNegativeNumber);
  conv->add_option("--dilation", conv_one->dilation, "Dilation")->check(CLI::PositiveNumber);
  conv->add_option("--threads", settings->threads, "Threads")->check(CLI::PositiveNumber);
  conv->add_option("--repeats", settings->repeats, "Timed repeats (median reported)")->check(CLI::PositiveNumber);
  conv->add_flag("--json", settings->json, "One JSON object per case per line");
  conv->add_option("--device", settings->device, "cpu | cuda | cuda:N");
  bench->callback([rnn, conv, settings, one, conv_one] {
    set_num_threads(settings->threads);
    const Device dev = Device::parse(settings->device);
    cuda::require(dev);
    double sgemm = 0;
    if (dev.is_cuda()) {
      sgemm = cublas_sgemm_gflops(dev.index, settings->repeats);
      if (!settings->json)
        std::cout << fmt::format("{}: cuBLAS sgemm 4096^3 {:.0f} GFLOP/s (TF32 {})", cuda::device_name(dev.index),
                                 sgemm, cuda::allow_tf32() ? "on" : "off")
                  << std::endl;
    } else {
      sgemm = sgemm_gflops(settings->repeats);
      if (!settings->json)
        std::cout << fmt::format("sgemm 2048^3: {:.1f} GFLOP/s, {} threads, OpenBLAS kernels: {}", sgemm,
                                 num_threads(), openblas_get_corename())
                  << std::endl;
    }
    if (conv->parsed()) {
      bool shaped = false;
      for (const char* name : {"--batch", "--channels", "--out", "--height", "--width", "--kernel", "--stride",
                               "--padding", "--dilation"})
        shaped = shaped || conv->count(name) > 0;
      for (const auto& c : shaped ? std::vector<ConvCase>{*conv_one} : conv_suite())
        print_conv_case(run_conv_case(c, *settings, sgemm), settings->json);
      return;
    }
    std::vector<BenchCase> cases =
        rnn->parsed() ? std::vector<BenchCase>{*one} : (dev.is_cuda() ? gpu_suite() : standard_suite());
    for (const auto& c : cases) print_case(run_case(c, *settings, sgemm), settings->json);
  });
}

}  // namespace recur::cli
