// Host side of the CUDA image ops: conv2d through cuDNN (when the build has it) or im2col + cuBLAS,
// and the pooling / group-norm kernels of conv_kernels.cu. Picks the device from the tensors, makes
// it current, queues everything on cuda::stream(device) and checks every call; nothing here waits
// for the GPU. Temporary device memory (cuDNN workspaces, column buffers, partial sums) are Tensors
// from the project's caching allocator, whose blocks are stream-ordered.
#include "conv_cuda.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "conv_kernels.h"
#include "conv_select.h"
#include "runtime.h"

#ifdef RECUR_HAS_CUDNN
#include <cudnn.h>
#endif

namespace recur::cuda {

namespace kconv = ::recur::kern::conv;

namespace {

float* f32_or_null(Tensor* t) { return t && t->defined() ? t->f32() : nullptr; }
const float* f32_or_null(const Tensor& t) { return t.defined() ? t.f32() : nullptr; }

// A device scratch buffer of at least `floats` floats (no storage for 0).
Tensor scratch(int64_t floats, int device) {
  return Tensor({std::max<int64_t>(floats, 1)}, DType::F32, Device::cuda(device));
}

kconv::ConvShape conv_shape(const ops::Conv2dGeom& g) {
  return {g.n,         g.c,         g.h,         g.w,         g.o,         g.kh,        g.kw,       g.oh,
          g.ow,        g.opt.stride_h, g.opt.stride_w, g.opt.pad_h, g.opt.pad_w, g.opt.dil_h, g.opt.dil_w};
}

kconv::PoolShape pool_shape(const ops::Pool2dGeom& g) {
  return {g.n,          g.c,          g.h,          g.w,          g.oh,      g.ow,
          g.opt.kernel_h, g.opt.kernel_w, g.opt.stride_h, g.opt.stride_w, g.opt.pad_h, g.opt.pad_w};
}

int to_int(int64_t v, const char* what) {
  RECUR_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "conv2d on a GPU: {} = {} does not fit in int", what, v);
  return static_cast<int>(v);
}

// ---- path selection ----

std::atomic<bool> g_prefer_cudnn{[] {
  const char* v = std::getenv("RECUR_CONV_CUDNN");
  return !(v && std::strcmp(v, "0") == 0);
}()};
std::atomic<const char*> g_last_path{""};

constexpr int64_t kIntMax = std::numeric_limits<int>::max();

// cuDNN's legacy 4-D descriptors take int sizes and strides: every tensor must stay below 2^31
// elements.
[[maybe_unused]] bool fits_cudnn(const ops::Conv2dGeom& g) {
  return g.n * g.c * g.h * g.w <= kIntMax && g.n * g.o * g.oh * g.ow <= kIntMax && g.o * g.c * g.kh * g.kw <= kIntMax;
}

// ---- im2col + cuBLAS ----

// Column buffers hold at most this many floats (128 MiB), and at least one image.
constexpr int64_t kColBudget = int64_t{1} << 25;

struct Im2col {
  kconv::ConvShape s;
  int64_t rows, positions;  // of one image's column matrix: (C*KH*KW, OH*OW)
  int64_t chunk;            // images per column buffer
  bool direct;              // 1x1, stride 1, no padding: the input is its own column matrix
  explicit Im2col(const ops::Conv2dGeom& g)
      : s(conv_shape(g)),
        rows(g.c * g.kh * g.kw),
        positions(g.oh * g.ow),
        chunk(std::clamp<int64_t>(kColBudget / std::max<int64_t>(rows * positions, 1), 1, std::max<int64_t>(g.n, 1))),
        direct(g.kh == 1 && g.kw == 1 && g.opt.stride_h == 1 && g.opt.stride_w == 1 && g.opt.pad_h == 0 &&
               g.opt.pad_w == 0) {}
};

void im2col_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dGeom& g,
                    const OnDevice& d) {
  const Im2col c(g);
  // y starts as the broadcast bias (zeros without one) so that the GEMMs accumulate into it.
  RECUR_CUDA_CHECK(kconv::set_channel_bias(y.f32(), bias ? bias->f32() : nullptr, g.n, g.o, c.positions, d.s));
  if (g.n == 0 || g.o == 0 || c.positions == 0 || c.rows == 0) return;
  const int P = to_int(c.positions, "OH*OW"), O = to_int(g.o, "O"), K = to_int(c.rows, "C*KH*KW");
  Tensor col;
  if (!c.direct) col = scratch(c.chunk * c.rows * c.positions, d.device);
  const float one = 1.0f;
  for (int64_t first = 0; first < g.n; first += c.chunk) {
    const int64_t imgs = std::min(c.chunk, g.n - first);
    const float* a = x.f32() + first * g.c * g.h * g.w;
    if (!c.direct) {
      RECUR_CUDA_CHECK(kconv::im2col(col.f32(), x.f32(), c.s, first, imgs, d.s));
      a = col.f32();
    }
    // Per image, row-major y (O, P) = W (O, K) col (K, P); column-major: y^T (P, O) = col^T (P, K) W^T (K, O).
    RECUR_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas(d.device), CUBLAS_OP_N, CUBLAS_OP_N, P, O, K, &one, a, P,
                                                 c.rows * c.positions, w.f32(), K, 0, &one,
                                                 y.f32() + first * g.o * c.positions, P, g.o * c.positions,
                                                 to_int(imgs, "images")));
  }
}

void im2col_backward(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ops::Conv2dGeom& g, const OnDevice& d) {
  const Im2col c(g);
  if (g.n == 0 || g.o == 0 || c.positions == 0 || c.rows == 0) return;
  const int P = to_int(c.positions, "OH*OW"), O = to_int(g.o, "O"), K = to_int(c.rows, "C*KH*KW");
  const float one = 1.0f, zero = 0.0f;
  cublasHandle_t h = cublas(d.device);
  if (dx) {
    Tensor colg;
    if (!c.direct) colg = scratch(c.chunk * c.rows * c.positions, d.device);
    for (int64_t first = 0; first < g.n; first += c.chunk) {
      const int64_t imgs = std::min(c.chunk, g.n - first);
      // Per image, dcol (K, P) = W^T (K, O) dy (O, P); column-major: dcol^T (P, K) = dy^T (P, O) W (O, K).
      // The direct case accumulates into dx itself (beta = 1); otherwise col2im adds dcol.
      float* out = c.direct ? dx->f32() + first * g.c * g.h * g.w : colg.f32();
      RECUR_CUBLAS_CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_T, P, K, O, &one,
                                                   dy.f32() + first * g.o * c.positions, P, g.o * c.positions,
                                                   w.f32(), K, 0, c.direct ? &one : &zero, out, P,
                                                   c.rows * c.positions, to_int(imgs, "images")));
      if (!c.direct) RECUR_CUDA_CHECK(kconv::col2im_add(dx->f32(), colg.f32(), c.s, first, imgs, d.s));
    }
  }
  if (dw) {
    Tensor col;
    if (!c.direct) col = scratch(c.chunk * c.rows * c.positions, d.device);
    for (int64_t first = 0; first < g.n; first += c.chunk) {
      const int64_t imgs = std::min(c.chunk, g.n - first);
      const float* cols = x.f32() + first * g.c * g.h * g.w;
      if (!c.direct) {
        RECUR_CUDA_CHECK(kconv::im2col(col.f32(), x.f32(), c.s, first, imgs, d.s));
        cols = col.f32();
      }
      // dw (O, K) += dy_i (O, P) col_i^T (P, K); column-major: dw^T (K, O) += col_i (K, P) dy_i^T (P, O).
      for (int64_t i = 0; i < imgs; ++i)
        RECUR_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, K, O, P, &one, cols + i * c.rows * c.positions, P,
                                       dy.f32() + (first + i) * g.o * c.positions, P, &one, dw->f32(), K));
    }
  }
}

// ---- cuDNN ----

#ifdef RECUR_HAS_CUDNN

[[noreturn]] void fail_cudnn(cudnnStatus_t s, const char* file, int line, const char* expr) {
  const char* f = std::strrchr(file, '/');
  RECUR_FAIL("cuDNN error {} ({}) — in {} ({}:{})", static_cast<int>(s), cudnnGetErrorString(s), expr,
             f ? f + 1 : file, line);
}

#define RECUR_CUDNN_CHECK(expr)                                                             \
  do {                                                                                      \
    cudnnStatus_t recur_s_ = (expr);                                                        \
    if (recur_s_ != CUDNN_STATUS_SUCCESS) fail_cudnn(recur_s_, __FILE__, __LINE__, #expr); \
  } while (0)

constexpr int kMaxDevices = 16;

// One handle per device and host thread, bound to the device's stream; never destroyed (like the
// allocators). Per thread because a cuDNN handle must not be used by two threads at once, and
// data-parallel replicas run as threads (two may share a GPU: recur train --devices cuda:0,cuda:0).
cudnnHandle_t cudnn(int device) {
  RECUR_CHECK(device >= 0 && device < kMaxDevices, "cuDNN: device cuda:{} out of range", device);
  thread_local std::array<cudnnHandle_t, kMaxDevices> handles{};
  cudnnHandle_t& h = handles[static_cast<size_t>(device)];
  if (h) return h;
  DeviceGuard g(device);
  cudnnHandle_t created = nullptr;
  RECUR_CUDNN_CHECK(cudnnCreate(&created));
  const cudnnStatus_t s = cudnnSetStream(created, stream(device));
  if (s != CUDNN_STATUS_SUCCESS) {
    (void)cudnnDestroy(created);
    fail_cudnn(s, __FILE__, __LINE__, "cudnnSetStream(h, stream(device))");
  }
  h = created;
  return h;
}

// The descriptors of one convolution (x, w, y, conv), destroyed with the object.
class ConvDescs {
 public:
  ConvDescs(const ops::Conv2dGeom& g, bool tf32) {
    RECUR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_));
    RECUR_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_));
    RECUR_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_));
    RECUR_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_));
    RECUR_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(g.n, "N"),
                                                 to_int(g.c, "C"), to_int(g.h, "H"), to_int(g.w, "W")));
    RECUR_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(g.n, "N"),
                                                 to_int(g.o, "O"), to_int(g.oh, "OH"), to_int(g.ow, "OW")));
    RECUR_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(g.o, "O"),
                                                 to_int(g.c, "C"), to_int(g.kh, "KH"), to_int(g.kw, "KW")));
    RECUR_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv_, to_int(g.opt.pad_h, "pad_h"), to_int(g.opt.pad_w, "pad_w"), to_int(g.opt.stride_h, "stride_h"),
        to_int(g.opt.stride_w, "stride_w"), to_int(g.opt.dil_h, "dil_h"), to_int(g.opt.dil_w, "dil_w"),
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // Without TF32, FMA kernels only: results then match float32 arithmetic.
    RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  ~ConvDescs() {
    if (conv_) (void)cudnnDestroyConvolutionDescriptor(conv_);
    if (w_) (void)cudnnDestroyFilterDescriptor(w_);
    if (y_) (void)cudnnDestroyTensorDescriptor(y_);
    if (x_) (void)cudnnDestroyTensorDescriptor(x_);
  }
  ConvDescs(const ConvDescs&) = delete;
  ConvDescs& operator=(const ConvDescs&) = delete;

  cudnnTensorDescriptor_t x() const { return x_; }
  cudnnTensorDescriptor_t y() const { return y_; }
  cudnnFilterDescriptor_t w() const { return w_; }
  cudnnConvolutionDescriptor_t conv() const { return conv_; }

 private:
  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr;
  cudnnFilterDescriptor_t w_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
};

// The chosen algorithm of one direction, its math type and workspace bytes.
struct Choice {
  bool ok = false;  // false: cuDNN offers no working algorithm
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

enum class Dir { Fwd, BwdData, BwdFilter };

// Algorithm choices by geometry, math mode and device: the heuristics run once per shape.
using Key = std::tuple<int, int, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;
std::mutex g_choice_mu;
std::map<Key, Choice>& choices() {
  static auto* m = new std::map<Key, Choice>();
  return *m;
}

Key choice_key(Dir dir, int device, bool tf32, const ops::Conv2dGeom& g) {
  return {static_cast<int>(dir), device, tf32, g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.opt.stride_h, g.opt.stride_w,
          g.opt.pad_h, g.opt.pad_w, g.opt.dil_h, g.opt.dil_w, g.oh};
}

// Workspaces above this are passed over while a cheaper working algorithm exists.
constexpr size_t kWorkspaceSoftLimit = size_t{1} << 30;

// The first heuristic result that works, respects the math mode (no tensor-op kernels without
// TF32) and fits the soft workspace limit; else the first that works at all; else none (ok false:
// the caller takes the im2col path for this direction).
template <class Perf>
Choice pick(const std::vector<Perf>& perfs, int returned, bool tf32) {
  const Perf* fallback = nullptr;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perfs[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    // Float data converted down to FP16: more than allow_tf32 permits, never taken.
    if (p.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (!tf32 && p.mathType != CUDNN_FMA_MATH && p.mathType != CUDNN_DEFAULT_MATH) continue;
    if (p.memory <= kWorkspaceSoftLimit)
      return {true, static_cast<int>(p.algo), tf32 ? p.mathType : CUDNN_FMA_MATH, p.memory};
    if (!fallback) fallback = &p;
  }
  if (!fallback) return {};
  return {true, static_cast<int>(fallback->algo), tf32 ? fallback->mathType : CUDNN_FMA_MATH, fallback->memory};
}

Choice choose(Dir dir, int device, bool tf32, cudnnHandle_t h, const ConvDescs& ds, const ops::Conv2dGeom& g) {
  const Key key = choice_key(dir, device, tf32, g);
  {
    std::lock_guard<std::mutex> lock(g_choice_mu);
    auto it = choices().find(key);
    if (it != choices().end()) return it->second;
  }
  Choice c;
  int count = 0, returned = 0;
  // The heuristics see the math mode of the descriptor: reset it to the one the constructor set,
  // since an earlier choice on the same descriptors (dx before dw) may have changed it.
  RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(ds.conv(), tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  switch (dir) {
    case Dir::Fwd: {
      RECUR_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<size_t>(std::max(count, 1)));
      RECUR_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, ds.x(), ds.w(), ds.conv(), ds.y(), count, &returned,
                                                               perfs.data()));
      c = pick(perfs, returned, tf32);
      if (!c.ok) break;
      RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(ds.conv(), c.math));
      RECUR_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, ds.x(), ds.w(), ds.conv(), ds.y(),
                                                                static_cast<cudnnConvolutionFwdAlgo_t>(c.algo),
                                                                &c.workspace));
      break;
    }
    case Dir::BwdData: {
      RECUR_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<size_t>(std::max(count, 1)));
      RECUR_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, ds.w(), ds.y(), ds.conv(), ds.x(), count,
                                                                    &returned, perfs.data()));
      c = pick(perfs, returned, tf32);
      if (!c.ok) break;
      RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(ds.conv(), c.math));
      RECUR_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
          h, ds.w(), ds.y(), ds.conv(), ds.x(), static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), &c.workspace));
      break;
    }
    case Dir::BwdFilter: {
      RECUR_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<size_t>(std::max(count, 1)));
      RECUR_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, ds.x(), ds.y(), ds.conv(), ds.w(), count,
                                                                      &returned, perfs.data()));
      c = pick(perfs, returned, tf32);
      if (!c.ok) break;
      RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(ds.conv(), c.math));
      RECUR_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
          h, ds.x(), ds.y(), ds.conv(), ds.w(), static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), &c.workspace));
      break;
    }
  }
  std::lock_guard<std::mutex> lock(g_choice_mu);
  choices().emplace(key, c);
  return c;
}

// A workspace of `bytes` from the caching allocator (an empty Tensor for none).
Tensor workspace(size_t bytes, int device) {
  if (bytes == 0) return Tensor();
  return scratch(static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float)), device);
}
void* ws_ptr(Tensor& t) { return t.defined() ? t.raw() : nullptr; }

// False when cuDNN has no algorithm for this convolution (nothing queued then).
bool cudnn_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dGeom& g,
                   const OnDevice& d) {
  const bool tf32 = allow_tf32();
  cudnnHandle_t h = cudnn(d.device);
  ConvDescs ds(g, tf32);
  const Choice c = choose(Dir::Fwd, d.device, tf32, h, ds, g);
  if (!c.ok) return false;
  RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(ds.conv(), c.math));
  Tensor ws = workspace(c.workspace, d.device);
  const float one = 1.0f, zero = 0.0f;
  RECUR_CUDNN_CHECK(cudnnConvolutionForward(h, &one, ds.x(), x.f32(), ds.w(), w.f32(), ds.conv(),
                                            static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws_ptr(ws), c.workspace,
                                            &zero, ds.y(), y.f32()));
  if (bias) RECUR_CUDA_CHECK(kconv::add_channel_bias(y.f32(), bias->f32(), g.n, g.o, g.oh * g.ow, d.s));
  return true;
}

// dx and dw through cuDNN; a slot cuDNN has no algorithm for comes back in *rest_dx / *rest_dw
// (null otherwise) for the im2col path.
void cudnn_backward(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                    const ops::Conv2dGeom& g, const OnDevice& d, Tensor** rest_dx, Tensor** rest_dw) {
  const bool tf32 = allow_tf32();
  cudnnHandle_t h = cudnn(d.device);
  ConvDescs ds(g, tf32);
  const float one = 1.0f;  // alpha = beta = 1: the gradients are added into
  *rest_dx = nullptr;
  *rest_dw = nullptr;
  if (dx) {
    const Choice c = choose(Dir::BwdData, d.device, tf32, h, ds, g);
    if (c.ok) {
      RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(ds.conv(), c.math));
      Tensor ws = workspace(c.workspace, d.device);
      RECUR_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, ds.w(), w.f32(), ds.y(), dy.f32(), ds.conv(),
                                                     static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws_ptr(ws),
                                                     c.workspace, &one, ds.x(), dx->f32()));
    } else {
      *rest_dx = dx;
    }
  }
  if (dw) {
    const Choice c = choose(Dir::BwdFilter, d.device, tf32, h, ds, g);
    if (c.ok) {
      RECUR_CUDNN_CHECK(cudnnSetConvolutionMathType(ds.conv(), c.math));
      Tensor ws = workspace(c.workspace, d.device);
      RECUR_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, ds.x(), x.f32(), ds.y(), dy.f32(), ds.conv(),
                                                       static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo),
                                                       ws_ptr(ws), c.workspace, &one, ds.w(), dw->f32()));
    } else {
      *rest_dw = dw;
    }
  }
}

#endif  // RECUR_HAS_CUDNN

// cuDNN for this convolution? (Empty convolutions take the im2col path, which launches nothing.)
bool take_cudnn([[maybe_unused]] const ops::Conv2dGeom& g) {
#ifdef RECUR_HAS_CUDNN
  return g_prefer_cudnn.load() && fits_cudnn(g) && g.n > 0 && g.c > 0 && g.o > 0 && g.oh > 0 && g.ow > 0;
#else
  return false;
#endif
}

}  // namespace

bool conv_cudnn_compiled() {
#ifdef RECUR_HAS_CUDNN
  return true;
#else
  return false;
#endif
}
void set_conv_use_cudnn(bool on) { g_prefer_cudnn.store(on); }
bool conv_uses_cudnn() { return conv_cudnn_compiled() && g_prefer_cudnn.load(); }
const char* last_conv_path() { return g_last_path.load(); }

// ---------------------------------------------------------------------------------------------
// conv2d

void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, const ops::Conv2dGeom& g) {
  OnDevice d(x, "conv2d: x");
#ifdef RECUR_HAS_CUDNN
  if (take_cudnn(g) && cudnn_forward(y, x, w, bias, g, d)) {
    g_last_path.store("cudnn");
    return;
  }
#endif
  g_last_path.store("im2col");
  im2col_forward(y, x, w, bias, g, d);
}

void conv2d_backward(Tensor* dx, Tensor* dw, Tensor* dbias, const Tensor& dy, const Tensor& x, const Tensor& w,
                     const ops::Conv2dGeom& g) {
  OnDevice d(dy, "conv2d_backward: dy");
  if (dbias) RECUR_CUDA_CHECK(kconv::channel_sums_add(dbias->f32(), dy.f32(), g.n, g.o, g.oh * g.ow, d.s));
  if (!dx && !dw) return;
#ifdef RECUR_HAS_CUDNN
  if (take_cudnn(g)) {
    Tensor *rest_dx = nullptr, *rest_dw = nullptr;
    cudnn_backward(dx, dw, dy, x, w, g, d, &rest_dx, &rest_dw);
    g_last_path.store(rest_dx || rest_dw ? "im2col" : "cudnn");
    if (rest_dx || rest_dw) im2col_backward(rest_dx, rest_dw, dy, x, w, g, d);
    return;
  }
#endif
  g_last_path.store("im2col");
  im2col_backward(dx, dw, dy, x, w, g, d);
}

// ---------------------------------------------------------------------------------------------
// pooling

void max_pool2d_forward(Tensor& y, Tensor* argmax, const Tensor& x, const ops::Pool2dGeom& g) {
  OnDevice d(x, "max_pool2d: x");
  RECUR_CUDA_CHECK(kconv::max_pool2d_forward(y.f32(), argmax && argmax->defined() ? argmax->data<int64_t>() : nullptr,
                                             x.f32(), pool_shape(g), d.s));
}

void max_pool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const ops::Pool2dGeom& g) {
  OnDevice d(dy, "max_pool2d_backward: dy");
  RECUR_CUDA_CHECK(kconv::max_pool2d_backward(dx.f32(), dy.f32(), argmax.data<int64_t>(), pool_shape(g), d.s));
}

void avg_pool2d_forward(Tensor& y, const Tensor& x, const ops::Pool2dGeom& g) {
  OnDevice d(x, "avg_pool2d: x");
  RECUR_CUDA_CHECK(kconv::avg_pool2d_forward(y.f32(), x.f32(), pool_shape(g), d.s));
}

void avg_pool2d_backward(Tensor& dx, const Tensor& dy, const ops::Pool2dGeom& g) {
  OnDevice d(dy, "avg_pool2d_backward: dy");
  RECUR_CUDA_CHECK(kconv::avg_pool2d_backward(dx.f32(), dy.f32(), pool_shape(g), d.s));
}

// ---------------------------------------------------------------------------------------------
// group norm

void group_norm_forward(Tensor& y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t n, int64_t c, int64_t s, int64_t groups, float eps) {
  OnDevice d(x, "group_norm: x");
  RECUR_CUDA_CHECK(kconv::group_norm_forward(y.f32(), f32_or_null(mean), f32_or_null(rstd), x.f32(),
                                             f32_or_null(gamma), f32_or_null(beta), n, c, s, groups, eps, d.s));
}

void group_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t n, int64_t c,
                         int64_t s, int64_t groups) {
  OnDevice d(dy, "group_norm_backward: dy");
  if (dx)
    RECUR_CUDA_CHECK(kconv::group_norm_backward_dx(dx->f32(), dy.f32(), x.f32(), f32_or_null(gamma), mean.f32(),
                                                   rstd.f32(), n, c, s, groups, d.s));
  if (dgamma || dbeta) {
    Tensor partials = scratch(2 * n * c, d.device);
    RECUR_CUDA_CHECK(kconv::group_norm_backward_params(f32_or_null(dgamma), f32_or_null(dbeta), partials.f32(),
                                                       dy.f32(), x.f32(), mean.f32(), rstd.f32(), n, c, s, groups,
                                                       d.s));
  }
}

}  // namespace recur::cuda
