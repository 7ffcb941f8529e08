#include "conv_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm.h"
#include "recur/core/tensor.h"
#include "recur/core/thread_pool.h"

namespace recur::cpu {

namespace {

using ops::Conv2dGeom;
using ops::Pool2dGeom;

using GemmFn = void (*)(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                        float, float*, int64_t);

// A GEMM of fewer columns than this leaves the kernels' panels half empty: small images are
// stacked side by side in one column matrix until it has about this many columns.
constexpr int64_t kTargetCols = 1024;
// Upper bound on one thread's column buffer (floats): 8 MiB.
constexpr int64_t kMaxColFloats = int64_t{2} << 20;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Reductions in 16 independent lanes: without -ffast-math a single accumulator is one serial
// chain of additions (4 cycles each); separate lanes vectorise.
constexpr int kLanes = 16;

template <class F>
inline float lane_reduce(int64_t n, F&& term) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  float tail = 0;
  for (; i < n; ++i) tail += term(i);
  float s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s + tail;
}

inline float sum(const float* p, int64_t n) {
  return lane_reduce(n, [p](int64_t i) { return p[i]; });
}

// How a convolution's images are cut into GEMM blocks and the blocks across threads.
struct ConvPlan {
  int64_t kdim = 0;       // C * KH * KW: rows of the column matrix
  int64_t plane = 0;      // OH * OW: columns per image
  int64_t per_block = 1;  // images per GEMM
  int64_t blocks = 0;
  int threads = 1;        // > 1: blocks split across threads, each running serial GEMMs
  bool direct = false;    // 1x1 kernel, stride 1, no padding: an image is its own column matrix
};

ConvPlan plan_conv(const Conv2dGeom& g) {
  ConvPlan p;
  p.kdim = g.c * g.kh * g.kw;
  p.plane = g.oh * g.ow;
  const int pool = thread_pool().size();
  int64_t nb = std::max<int64_t>(1, kTargetCols / std::max<int64_t>(p.plane, 1));
  nb = std::min(nb, std::max<int64_t>(1, kMaxColFloats / std::max<int64_t>(p.kdim * p.plane, 1)));
  // Keep at least one block per thread when there are enough images.
  nb = std::max<int64_t>(1, std::min(nb, ceil_div(g.n, pool)));
  p.per_block = nb;
  p.blocks = ceil_div(g.n, nb);
  p.threads = p.blocks >= pool ? pool : 1;
  p.direct = g.kh == 1 && g.kw == 1 && g.opt.stride_h == 1 && g.opt.stride_w == 1 && g.opt.pad_h == 0 &&
             g.opt.pad_w == 0 && nb == 1;
  return p;
}

// Runs body(thread, block_begin, block_end, gemm) on each thread's static share of the blocks:
// serial GEMMs when blocks are spread over threads, else one thread with pool-parallel GEMMs.
template <class F>
void for_blocks(const ConvPlan& p, F&& body) {
  if (p.blocks <= 0) return;
  if (p.threads <= 1) {
    body(0, int64_t{0}, p.blocks, static_cast<GemmFn>(sgemm));
    return;
  }
  thread_pool().run_on_all([&](int t) {
    if (t >= p.threads) return;
    const int64_t b0 = p.blocks * t / p.threads, b1 = p.blocks * (t + 1) / p.threads;
    if (b0 < b1) body(t, b0, b1, static_cast<GemmFn>(sgemm_serial));
  });
}

// Valid output columns [lo, hi) for kernel column offset `off` (iw = ow * stride + off in [0, W)).
void valid_range(int64_t off, int64_t stride, int64_t size, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = off >= 0 ? 0 : std::min(out, ceil_div(-off, stride));
  *hi = size - 1 - off < 0 ? 0 : std::min(out, (size - 1 - off) / stride + 1);
  *hi = std::max(*hi, *lo);
}

// col (C*KH*KW rows, leading dimension ld) gets one image's patches: row (c, i, j), column
// oh * OW + ow holds x[c, oh*sh - ph + i*dh, ow*sw - pw + j*dw] (zero outside the image).
void im2col(float* col, int64_t ld, const float* x, const Conv2dGeom& g) {
  const auto& o = g.opt;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        float* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        const float* xc = x + c * g.h * g.w;
        const int64_t off_w = j * o.dil_w - o.pad_w;
        int64_t lo, hi;
        valid_range(off_w, o.stride_w, g.w, g.ow, &lo, &hi);
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          float* dst = row + oh * g.ow;
          const int64_t ih = oh * o.stride_h - o.pad_h + i * o.dil_h;
          if (ih < 0 || ih >= g.h) {
            std::fill(dst, dst + g.ow, 0.0f);
            continue;
          }
          const float* src = xc + ih * g.w;
          std::fill(dst, dst + lo, 0.0f);
          if (o.stride_w == 1) {
            if (hi > lo) std::memcpy(dst + lo, src + lo + off_w, static_cast<size_t>(hi - lo) * sizeof(float));
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * o.stride_w + off_w];
          }
          std::fill(dst + hi, dst + g.ow, 0.0f);
        }
      }
}

// The adjoint of im2col: dx (one image) += the patches in dcol scattered back.
void col2im_add(float* dx, const float* dcol, int64_t ld, const Conv2dGeom& g) {
  const auto& o = g.opt;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* row = dcol + ((c * g.kh + i) * g.kw + j) * ld;
        float* dxc = dx + c * g.h * g.w;
        const int64_t off_w = j * o.dil_w - o.pad_w;
        int64_t lo, hi;
        valid_range(off_w, o.stride_w, g.w, g.ow, &lo, &hi);
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * o.stride_h - o.pad_h + i * o.dil_h;
          if (ih < 0 || ih >= g.h) continue;
          const float* src = row + oh * g.ow;
          float* dst = dxc + ih * g.w + off_w;
          if (o.stride_w == 1) {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += src[ow];
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow * o.stride_w] += src[ow];
          }
        }
      }
}

// Fills the column matrix of images [n0, n0 + count) (leading dimension count * plane) and
// returns it; a direct (1x1) convolution uses the image itself.
const float* columns(float* col, const float* x, int64_t n0, int64_t count, const ConvPlan& p, const Conv2dGeom& g) {
  const int64_t image = g.c * g.h * g.w;
  if (p.direct) return x + n0 * image;
  for (int64_t b = 0; b < count; ++b) im2col(col + b * p.plane, count * p.plane, x + (n0 + b) * image, g);
  return col;
}

// A float scratch buffer from the caching allocator (no per-call system allocation).
Tensor scratch(int64_t floats) { return Tensor({std::max<int64_t>(floats, 1)}); }

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* bias, const Conv2dGeom& g) {
  const ConvPlan p = plan_conv(g);
  const int64_t out_image = g.o * p.plane;
  for_blocks(p, [&](int, int64_t b0, int64_t b1, GemmFn gemm) {
    const int64_t cols_max = p.per_block * p.plane;
    Tensor col_buf = scratch(p.direct ? 0 : p.kdim * cols_max);
    Tensor out_buf = scratch(p.per_block > 1 ? g.o * cols_max : 0);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * p.per_block, count = std::min(p.per_block, g.n - n0), cols = count * p.plane;
      const float* col = columns(col_buf.f32(), x, n0, count, p, g);
      float* out = count == 1 ? y + n0 * out_image : out_buf.f32();
      gemm(Trans::No, Trans::No, g.o, cols, p.kdim, 1.0f, w, p.kdim, col, cols, 0.0f, out, cols);
      // out is (O, count * plane); y wants (count, O, plane).
      for (int64_t b = 0; b < count; ++b)
        for (int64_t o = 0; o < g.o; ++o) {
          float* dst = y + (n0 + b) * out_image + o * p.plane;
          const float* src = out + o * cols + b * p.plane;
          const float add = bias ? bias[o] : 0.0f;
          if (count == 1) {
            if (bias)
              for (int64_t q = 0; q < p.plane; ++q) dst[q] += add;
          } else {
            for (int64_t q = 0; q < p.plane; ++q) dst[q] = src[q] + add;
          }
        }
    }
  });
}

void conv2d_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x, const float* w,
                     const Conv2dGeom& g) {
  if (!dx && !dw && !dbias) return;
  const ConvPlan p = plan_conv(g);
  const int64_t out_image = g.o * p.plane, in_image = g.c * g.h * g.w, wsize = g.o * p.kdim;
  // Each thread accumulates dw and dbias into its own slice, summed in thread order afterwards, so
  // results depend only on the thread count. A single thread adds straight into dw.
  const bool partial = p.threads > 1;
  Tensor dw_parts = scratch(partial && dw ? p.threads * wsize : 0);
  if (partial && dw) dw_parts.zero_();
  std::vector<double> db_parts(dbias ? static_cast<size_t>(p.threads * g.o) : 0, 0.0);
  for_blocks(p, [&](int t, int64_t b0, int64_t b1, GemmFn gemm) {
    const int64_t cols_max = p.per_block * p.plane;
    const bool need_col = dw || (dx && !p.direct);
    Tensor col_buf = scratch(need_col && !p.direct ? p.kdim * cols_max : 0);
    Tensor dy_buf = scratch(p.per_block > 1 ? g.o * cols_max : 0);
    float* dw_t = dw ? (partial ? dw_parts.f32() + t * wsize : dw) : nullptr;
    double* db_t = dbias ? db_parts.data() + t * g.o : nullptr;
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * p.per_block, count = std::min(p.per_block, g.n - n0), cols = count * p.plane;
      // dy of the block as (O, count * plane).
      const float* gy = dy + n0 * out_image;
      if (count > 1) {
        float* buf = dy_buf.f32();
        for (int64_t b = 0; b < count; ++b)
          for (int64_t o = 0; o < g.o; ++o)
            std::memcpy(buf + o * cols + b * p.plane, dy + (n0 + b) * out_image + o * p.plane,
                        static_cast<size_t>(p.plane) * sizeof(float));
        gy = buf;
      }
      if (db_t)
        for (int64_t o = 0; o < g.o; ++o) db_t[o] += sum(gy + o * cols, cols);
      if (dw_t) {
        const float* col = columns(col_buf.f32(), x, n0, count, p, g);
        gemm(Trans::No, Trans::Yes, g.o, p.kdim, cols, 1.0f, gy, cols, col, cols, 1.0f, dw_t, p.kdim);
      }
      if (dx) {
        if (p.direct) {
          gemm(Trans::Yes, Trans::No, g.c, cols, g.o, 1.0f, w, p.kdim, gy, cols, 1.0f, dx + n0 * in_image, cols);
        } else {
          // The column buffer is free again once dw has used it.
          float* dcol = col_buf.f32();
          gemm(Trans::Yes, Trans::No, p.kdim, cols, g.o, 1.0f, w, p.kdim, gy, cols, 0.0f, dcol, cols);
          for (int64_t b = 0; b < count; ++b) col2im_add(dx + (n0 + b) * in_image, dcol + b * p.plane, cols, g);
        }
      }
    }
  });
  if (partial && dw) {
    thread_pool().parallel_for(wsize, 4096, [&](int64_t i0, int64_t i1) {
      for (int t = 0; t < p.threads; ++t) {
        const float* part = dw_parts.f32() + t * wsize;
        for (int64_t i = i0; i < i1; ++i) dw[i] += part[i];
      }
    });
  }
  if (dbias)
    for (int64_t o = 0; o < g.o; ++o) {
      double s = 0;
      for (int t = 0; t < p.threads; ++t) s += db_parts[static_cast<size_t>(t * g.o + o)];
      dbias[o] += static_cast<float>(s);
    }
}

namespace {

// Pooling sizes as plain locals: through a reference to the geometry, every int64_t store (an
// argmax) could alias its fields, which forces reloads and blocks vectorisation.
struct PoolDims {
  int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw;
  explicit PoolDims(const Pool2dGeom& g)
      : h(g.h), w(g.w), oh(g.oh), ow(g.ow), kh(g.opt.kernel_h), kw(g.opt.kernel_w), sh(g.opt.stride_h),
        sw(g.opt.stride_w), ph(g.opt.pad_h), pw(g.opt.pad_w) {}
  // Non-overlapping 2x2 windows without padding: the CNN's usual pooling.
  bool two_by_two() const { return kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0; }
};

// Runs body(plane) for each of the N*C planes, split across threads.
template <class F>
void for_planes(const Pool2dGeom& g, F&& body) {
  const int64_t work = std::max<int64_t>(1, g.h * g.w);
  thread_pool().parallel_for(g.n * g.c, std::max<int64_t>(1, (int64_t{1} << 14) / work), [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl) body(pl);
  });
}

// Window start and end [*b, *e) of output index o, clipped to the input.
inline void window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size, int64_t* b, int64_t* e) {
  const int64_t s = o * stride - pad;
  *b = std::max<int64_t>(s, 0);
  *e = std::min(s + k, size);
}

// The winner rule of max pooling (PyTorch's): NaN wins, else the first maximum. A select, not a
// branch: on real data the comparison is a coin flip a branch predictor keeps getting wrong.
inline void consider(float v, int64_t where, float* best, int64_t* at) {
  const bool take = (v > *best) | (v != v);
  *best = take ? v : *best;
  *at = take ? where : *at;
}

void max_pool_plane_2x2(float* yp, int64_t* ap, const float* xp, const PoolDims d) {
  for (int64_t oh = 0; oh < d.oh; ++oh) {
    const float* r0 = xp + 2 * oh * d.w;
    const float* r1 = r0 + d.w;
    for (int64_t ow = 0; ow < d.ow; ++ow) {
      const int64_t base = 2 * oh * d.w + 2 * ow;
      float best = r0[2 * ow];
      int64_t at = base;
      consider(r0[2 * ow + 1], base + 1, &best, &at);
      consider(r1[2 * ow], base + d.w, &best, &at);
      consider(r1[2 * ow + 1], base + d.w + 1, &best, &at);
      yp[oh * d.ow + ow] = best;
      if (ap) ap[oh * d.ow + ow] = at;
    }
  }
}

void max_pool_plane(float* yp, int64_t* ap, const float* xp, const PoolDims d) {
  for (int64_t oh = 0; oh < d.oh; ++oh) {
    int64_t h0, h1;
    window(oh, d.sh, d.ph, d.kh, d.h, &h0, &h1);
    for (int64_t ow = 0; ow < d.ow; ++ow) {
      int64_t w0, w1;
      window(ow, d.sw, d.pw, d.kw, d.w, &w0, &w1);
      // Padding is -inf: it never wins, and pad <= kernel / 2 leaves a real value in every window.
      float best = -std::numeric_limits<float>::infinity();
      int64_t at = h0 * d.w + w0;
      for (int64_t ih = h0; ih < h1; ++ih)
        for (int64_t iw = w0; iw < w1; ++iw) consider(xp[ih * d.w + iw], ih * d.w + iw, &best, &at);
      yp[oh * d.ow + ow] = best;
      if (ap) ap[oh * d.ow + ow] = at;
    }
  }
}

}  // namespace

void max_pool2d_forward(float* y, int64_t* argmax, const float* x, const Pool2dGeom& g) {
  const PoolDims d(g);
  const bool fast = d.two_by_two();
  for_planes(g, [=](int64_t pl) {
    const float* xp = x + pl * d.h * d.w;
    float* yp = y + pl * d.oh * d.ow;
    int64_t* ap = argmax ? argmax + pl * d.oh * d.ow : nullptr;
    if (fast)
      max_pool_plane_2x2(yp, ap, xp, d);
    else
      max_pool_plane(yp, ap, xp, d);
  });
}

void max_pool2d_backward(float* dx, const float* dy, const int64_t* argmax, const Pool2dGeom& g) {
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  for_planes(g, [=](int64_t pl) {
    float* dxp = dx + pl * in_plane;
    const float* gp = dy + pl * out_plane;
    const int64_t* ap = argmax + pl * out_plane;
    for (int64_t q = 0; q < out_plane; ++q) dxp[ap[q]] += gp[q];
  });
}

// Average pooling uses count_include_pad: padding counts in the divisor. Windows never reach past
// the padding (floor-mode output size), so every window covers kernel_h * kernel_w positions.
void avg_pool2d_forward(float* y, const float* x, const Pool2dGeom& g) {
  const PoolDims d(g);
  const float inv = 1.0f / static_cast<float>(d.kh * d.kw);
  for_planes(g, [=](int64_t pl) {
    const float* xp = x + pl * d.h * d.w;
    float* yp = y + pl * d.oh * d.ow;
    if (d.two_by_two()) {
      for (int64_t oh = 0; oh < d.oh; ++oh) {
        const float* r0 = xp + 2 * oh * d.w;
        const float* r1 = r0 + d.w;
        for (int64_t ow = 0; ow < d.ow; ++ow)
          yp[oh * d.ow + ow] = ((r0[2 * ow] + r0[2 * ow + 1]) + (r1[2 * ow] + r1[2 * ow + 1])) * inv;
      }
      return;
    }
    for (int64_t oh = 0; oh < d.oh; ++oh) {
      int64_t h0, h1;
      window(oh, d.sh, d.ph, d.kh, d.h, &h0, &h1);
      for (int64_t ow = 0; ow < d.ow; ++ow) {
        int64_t w0, w1;
        window(ow, d.sw, d.pw, d.kw, d.w, &w0, &w1);
        float acc = 0;
        for (int64_t ih = h0; ih < h1; ++ih) acc += sum(xp + ih * d.w + w0, w1 - w0);
        yp[oh * d.ow + ow] = acc * inv;
      }
    }
  });
}

void avg_pool2d_backward(float* dx, const float* dy, const Pool2dGeom& g) {
  const PoolDims d(g);
  const float inv = 1.0f / static_cast<float>(d.kh * d.kw);
  for_planes(g, [=](int64_t pl) {
    float* dxp = dx + pl * d.h * d.w;
    const float* gp = dy + pl * d.oh * d.ow;
    for (int64_t oh = 0; oh < d.oh; ++oh) {
      int64_t h0, h1;
      window(oh, d.sh, d.ph, d.kh, d.h, &h0, &h1);
      for (int64_t ow = 0; ow < d.ow; ++ow) {
        int64_t w0, w1;
        window(ow, d.sw, d.pw, d.kw, d.w, &w0, &w1);
        const float v = gp[oh * d.ow + ow] * inv;
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) dxp[ih * d.w + iw] += v;
      }
    }
  });
}

namespace {

// Runs body(index) for each (n, group) block of cg * s elements, split across threads.
template <class F>
void for_groups(int64_t count, int64_t block, F&& body) {
  thread_pool().parallel_for(count, std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(block, 1)),
                             [&](int64_t b, int64_t e) {
                               for (int64_t i = b; i < e; ++i) body(i);
                             });
}

}  // namespace

void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        int64_t n, int64_t c, int64_t s, int64_t groups, float eps) {
  const int64_t cg = c / groups, block = cg * s;
  for_groups(n * groups, block, [&](int64_t i) {
    const int64_t c0 = (i % groups) * cg;
    const float* xb = x + i * block;
    float* yb = y + i * block;
    // Per-channel float sums gathered in double: a block can hold ~10^5 values.
    double total = 0;
    for (int64_t k = 0; k < cg; ++k) total += sum(xb + k * s, s);
    const float m = static_cast<float>(total / static_cast<double>(block));
    // Two passes: the variance of (x - mean) avoids the cancellation of E[x^2] - mean^2.
    double var = 0;
    for (int64_t k = 0; k < cg; ++k) {
      const float* xc = xb + k * s;
      var += lane_reduce(s, [xc, m](int64_t q) { return (xc[q] - m) * (xc[q] - m); });
    }
    const float r = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(block) + static_cast<double>(eps)));
    for (int64_t k = 0; k < cg; ++k) {
      const float a = r * gamma[c0 + k], b = beta[c0 + k] - m * a;
      for (int64_t q = 0; q < s; ++q) yb[k * s + q] = xb[k * s + q] * a + b;
    }
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = r;
  });
}

void group_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* gamma,
                         const float* mean, const float* rstd, int64_t n, int64_t c, int64_t s, int64_t groups) {
  const int64_t cg = c / groups, block = cg * s;
  // Per (n, channel): sums of dy and of dy * (x - mean) over the positions; dgamma and dbeta
  // reduce them over n afterwards in a fixed order.
  std::vector<double> sum_dy(static_cast<size_t>(n * c)), sum_dyxc(static_cast<size_t>(n * c));
  for_groups(n * groups, block, [&](int64_t i) {
    const int64_t c0 = (i % groups) * cg, nn = i / groups;
    const float* xb = x + i * block;
    const float* gb = dy + i * block;
    const float m = mean[i], r = rstd[i];
    double mean_g = 0, mean_gx = 0;  // means over the block of dxhat and dxhat * xhat
    for (int64_t k = 0; k < cg; ++k) {
      const float *gc = gb + k * s, *xc = xb + k * s;
      const float a = sum(gc, s);
      const float b = lane_reduce(s, [gc, xc, m](int64_t q) { return gc[q] * (xc[q] - m); });
      const size_t at = static_cast<size_t>(nn * c + c0 + k);
      sum_dy[at] = a;
      sum_dyxc[at] = b;
      mean_g += static_cast<double>(gamma[c0 + k]) * a;
      mean_gx += static_cast<double>(gamma[c0 + k]) * r * b;
    }
    if (!dx) return;
    mean_g /= static_cast<double>(block);
    mean_gx /= static_cast<double>(block);
    // dx = r * (dy * gamma - mean_g - xhat * mean_gx) with xhat = (x - m) r.
    const float bx = static_cast<float>(-static_cast<double>(r) * r * mean_gx);
    const float d = static_cast<float>(-r * mean_g);
    float* dxb = dx + i * block;
    for (int64_t k = 0; k < cg; ++k) {
      const float a = r * gamma[c0 + k];
      for (int64_t q = 0; q < s; ++q) dxb[k * s + q] += a * gb[k * s + q] + bx * (xb[k * s + q] - m) + d;
    }
  });
  if (dgamma || dbeta)
    for (int64_t ch = 0; ch < c; ++ch) {
      double dg = 0, db = 0;
      for (int64_t nn = 0; nn < n; ++nn) {
        const size_t at = static_cast<size_t>(nn * c + ch);
        const int64_t i = nn * groups + ch / cg;
        dg += static_cast<double>(rstd[i]) * sum_dyxc[at];
        db += sum_dy[at];
      }
      if (dgamma) dgamma[ch] += static_cast<float>(dg);
      if (dbeta) dbeta[ch] += static_cast<float>(db);
    }
}

}  // namespace recur::cpu
