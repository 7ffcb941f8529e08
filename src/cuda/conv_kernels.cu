// CUDA kernels of the image ops (NCHW): im2col / col2im for the convolution fallback, channel bias
// and its gradient, 2-D max/average pooling, group norm. Every backward kernel is a gather (each
// output element owned by one thread or block, summed in a fixed order), so results do not depend
// on scheduling. Reductions accumulate in double.
#include <cmath>

#include "conv_kernels.h"
#include "ops_kernels.h"

namespace recur::kern::conv {

using ops::dev::block_reduce;
using ops::dev::blocks_for;
using ops::dev::global_index;
using ops::dev::grid_stride;
using ops::dev::kThreads;
using ops::dev::row_blocks;
using ops::dev::SumOp;

namespace {

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a < b ? b : a; }

// ---- convolution helpers ----

// One thread per column entry; the position index is fastest, so the writes are coalesced.
__global__ void im2col_kernel(float* col, const float* x, ConvShape g, int64_t first, int64_t images) {
  const int64_t positions = g.oh * g.ow, taps = g.kh * g.kw, rows = g.c * taps;
  const int64_t total = images * rows * positions;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t p = e % positions;
    const int64_t rest = e / positions;
    const int64_t k = rest % rows, i = rest / rows;
    const int64_t c = k / taps, tap = k - c * taps;
    const int64_t kh = tap / g.kw, kw = tap - kh * g.kw;
    const int64_t oh = p / g.ow, ow = p - oh * g.ow;
    const int64_t h = oh * g.stride_h - g.pad_h + kh * g.dil_h;
    const int64_t w = ow * g.stride_w - g.pad_w + kw * g.dil_w;
    float v = 0.0f;
    if (h >= 0 && h < g.h && w >= 0 && w < g.w) v = x[(((first + i) * g.c + c) * g.h + h) * g.w + w];
    col[e] = v;
  }
}

// One thread per input pixel: the column entries (kh, kw, oh, ow) that read it, taps in order.
__global__ void col2im_add_kernel(float* dx, const float* col, ConvShape g, int64_t first, int64_t images) {
  const int64_t positions = g.oh * g.ow, taps = g.kh * g.kw;
  const int64_t total = images * g.c * g.h * g.w;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t w = e % g.w;
    int64_t rest = e / g.w;
    const int64_t h = rest % g.h;
    rest /= g.h;
    const int64_t c = rest % g.c, i = rest / g.c;
    const float* ci = col + (i * g.c + c) * taps * positions;
    float acc = 0.0f;
    for (int64_t kh = 0; kh < g.kh; ++kh) {
      const int64_t hp = h + g.pad_h - kh * g.dil_h;
      if (hp < 0) break;  // decreases with kh
      if (hp % g.stride_h != 0) continue;
      const int64_t oh = hp / g.stride_h;
      if (oh >= g.oh) continue;
      for (int64_t kw = 0; kw < g.kw; ++kw) {
        const int64_t wp = w + g.pad_w - kw * g.dil_w;
        if (wp < 0) break;
        if (wp % g.stride_w != 0) continue;
        const int64_t ow = wp / g.stride_w;
        if (ow >= g.ow) continue;
        acc += ci[(kh * g.kw + kw) * positions + oh * g.ow + ow];
      }
    }
    dx[(first * g.c) * g.h * g.w + e] += acc;
  }
}

__global__ void channel_bias_kernel(float* y, const float* bias, int64_t n, int64_t o, int64_t spatial, bool add) {
  const int64_t total = n * o * spatial;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const float b = bias ? bias[(e / spatial) % o] : 0.0f;
    y[e] = add ? y[e] + b : b;
  }
}

// One block per channel.
__global__ void channel_sums_add_kernel(float* dbias, const float* dy, int64_t n, int64_t o, int64_t spatial) {
  __shared__ double buf[kThreads];
  for (int64_t ch = blockIdx.x; ch < o; ch += gridDim.x) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = dy + (i * o + ch) * spatial;
      for (int64_t k = threadIdx.x; k < spatial; k += blockDim.x) acc += p[k];
    }
    const double total = block_reduce(acc, buf, SumOp<double>());
    if (threadIdx.x == 0) dbias[ch] += static_cast<float>(total);
  }
}

// ---- pooling ----

// The windows (output rows or columns) that cover input coordinate x: [lo, hi], possibly empty.
__device__ __forceinline__ void covering(int64_t x, int64_t pad, int64_t kernel, int64_t stride, int64_t out,
                                         int64_t* lo, int64_t* hi) {
  const int64_t first = x + pad - kernel + 1;  // window start must be >= this (in padded coordinates)
  *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  *hi = imin((x + pad) / stride, out - 1);
}

__global__ void max_pool2d_forward_kernel(float* y, int64_t* argmax, const float* x, PoolShape g) {
  const int64_t total = g.n * g.c * g.oh * g.ow;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t ow = e % g.ow;
    const int64_t rest = e / g.ow;
    const int64_t oh = rest % g.oh, plane = rest / g.oh;
    const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    const int64_t hs = imax(h0, 0), he = imin(h0 + g.kernel_h, g.h);
    const int64_t ws = imax(w0, 0), we = imin(w0 + g.kernel_w, g.w);
    const float* xp = x + plane * g.h * g.w;
    float best = -INFINITY;
    int64_t best_i = hs * g.w + ws;
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w) {
        const float v = xp[h * g.w + w];
        if (v > best || isnan(v)) {
          best = v;
          best_i = h * g.w + w;
        }
      }
    y[e] = best;
    if (argmax) argmax[e] = best_i;
  }
}

__global__ void max_pool2d_backward_kernel(float* dx, const float* dy, const int64_t* argmax, PoolShape g) {
  const int64_t total = g.n * g.c * g.h * g.w;
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t w = e % g.w;
    const int64_t rest = e / g.w;
    const int64_t h = rest % g.h, plane = rest / g.h;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.pad_h, g.kernel_h, g.stride_h, g.oh, &oh0, &oh1);
    covering(w, g.pad_w, g.kernel_w, g.stride_w, g.ow, &ow0, &ow1);
    const int64_t me = h * g.w + w;
    const int64_t base = plane * g.oh * g.ow;
    float acc = dx[e];
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = base + oh * g.ow + ow;
        if (argmax[o] == me) acc += dy[o];
      }
    dx[e] = acc;
  }
}

__global__ void avg_pool2d_forward_kernel(float* y, const float* x, PoolShape g) {
  const int64_t total = g.n * g.c * g.oh * g.ow;
  const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t ow = e % g.ow;
    const int64_t rest = e / g.ow;
    const int64_t oh = rest % g.oh, plane = rest / g.oh;
    const int64_t h0 = oh * g.stride_h - g.pad_h, w0 = ow * g.stride_w - g.pad_w;
    const int64_t hs = imax(h0, 0), he = imin(h0 + g.kernel_h, g.h);
    const int64_t ws = imax(w0, 0), we = imin(w0 + g.kernel_w, g.w);
    const float* xp = x + plane * g.h * g.w;
    float acc = 0.0f;
    for (int64_t h = hs; h < he; ++h)
      for (int64_t w = ws; w < we; ++w) acc += xp[h * g.w + w];
    y[e] = acc * inv;
  }
}

__global__ void avg_pool2d_backward_kernel(float* dx, const float* dy, PoolShape g) {
  const int64_t total = g.n * g.c * g.h * g.w;
  const float inv = 1.0f / static_cast<float>(g.kernel_h * g.kernel_w);
  for (int64_t e = global_index(); e < total; e += grid_stride()) {
    const int64_t w = e % g.w;
    const int64_t rest = e / g.w;
    const int64_t h = rest % g.h, plane = rest / g.h;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.pad_h, g.kernel_h, g.stride_h, g.oh, &oh0, &oh1);
    covering(w, g.pad_w, g.kernel_w, g.stride_w, g.ow, &ow0, &ow1);
    const float* dp = dy + plane * g.oh * g.ow;
    float acc = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) acc += dp[oh * g.ow + ow];
    dx[e] += acc * inv;
  }
}

// ---- group norm: block b handles (n, group) = (b / groups, b % groups), contiguous elements ----

__global__ void group_norm_forward_kernel(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                                          const float* beta, int64_t n, int64_t c, int64_t spatial, int64_t groups,
                                          float eps) {
  __shared__ double buf[kThreads];
  const int64_t cg = c / groups, len = cg * spatial;
  for (int64_t b = blockIdx.x; b < n * groups; b += gridDim.x) {
    const int64_t grp = b % groups;
    const float* xb = x + b * len;  // (n * C + grp * cg) * S == b * len
    float* yb = y + b * len;
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) acc += xb[i];
    const double m = block_reduce(acc, buf, SumOp<double>()) / static_cast<double>(len);
    // Two passes: the variance of (x - mean) avoids the cancellation of E[x^2] - mean^2.
    acc = 0.0;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const double d = xb[i] - m;
      acc += d * d;
    }
    const double var = block_reduce(acc, buf, SumOp<double>()) / static_cast<double>(len);
    const float mf = static_cast<float>(m);
    const float r = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const int64_t ch = grp * cg + i / spatial;
      const float xhat = (xb[i] - mf) * r;
      yb[i] = xhat * (gamma ? gamma[ch] : 1.0f) + (beta ? beta[ch] : 0.0f);
    }
    if (threadIdx.x == 0) {
      if (mean) mean[b] = mf;
      if (rstd) rstd[b] = r;
    }
  }
}

__global__ void group_norm_backward_dx_kernel(float* dx, const float* dy, const float* x, const float* gamma,
                                              const float* mean, const float* rstd, int64_t n, int64_t c,
                                              int64_t spatial, int64_t groups) {
  __shared__ double buf[kThreads];
  const int64_t cg = c / groups, len = cg * spatial;
  for (int64_t b = blockIdx.x; b < n * groups; b += gridDim.x) {
    const int64_t grp = b % groups;
    const float* xb = x + b * len;
    const float* gb = dy + b * len;
    const float m = mean[b], r = rstd[b];
    // dn = dy * gamma; dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)).
    double a = 0.0, d = 0.0;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const float gam = gamma ? gamma[grp * cg + i / spatial] : 1.0f;
      const float dn = gb[i] * gam;
      a += dn;
      d += static_cast<double>(dn) * ((xb[i] - m) * r);
    }
    const float mean_dn = static_cast<float>(block_reduce(a, buf, SumOp<double>()) / static_cast<double>(len));
    const float mean_dn_xhat = static_cast<float>(block_reduce(d, buf, SumOp<double>()) / static_cast<double>(len));
    float* dxb = dx + b * len;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const float gam = gamma ? gamma[grp * cg + i / spatial] : 1.0f;
      const float xhat = (xb[i] - m) * r;
      dxb[i] += r * (gb[i] * gam - mean_dn - xhat * mean_dn_xhat);
    }
  }
}

// Block per (n, c): partials[n*C + c] = sum over s of dy * xhat, partials[N*C + n*C + c] = sum of dy.
__global__ void group_norm_params_partial_kernel(float* partials, const float* dy, const float* x, const float* mean,
                                                 const float* rstd, int64_t n, int64_t c, int64_t spatial,
                                                 int64_t groups) {
  __shared__ double buf[kThreads];
  const int64_t cg = c / groups;
  for (int64_t b = blockIdx.x; b < n * c; b += gridDim.x) {
    const int64_t i = b / c, ch = b - i * c;
    const int64_t stat = i * groups + ch / cg;
    const float m = mean[stat], r = rstd[stat];
    const float* xb = x + b * spatial;
    const float* gb = dy + b * spatial;
    double dg = 0.0, db = 0.0;
    for (int64_t k = threadIdx.x; k < spatial; k += blockDim.x) {
      dg += static_cast<double>(gb[k]) * ((xb[k] - m) * r);
      db += gb[k];
    }
    const double sdg = block_reduce(dg, buf, SumOp<double>());
    const double sdb = block_reduce(db, buf, SumOp<double>());
    if (threadIdx.x == 0) {
      partials[b] = static_cast<float>(sdg);
      partials[n * c + b] = static_cast<float>(sdb);
    }
  }
}

// One thread per channel, images in order.
__global__ void group_norm_params_finish_kernel(float* dgamma, float* dbeta, const float* partials, int64_t n,
                                                int64_t c) {
  for (int64_t ch = global_index(); ch < c; ch += grid_stride()) {
    double dg = 0.0, db = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      dg += partials[i * c + ch];
      db += partials[n * c + i * c + ch];
    }
    if (dgamma) dgamma[ch] += static_cast<float>(dg);
    if (dbeta) dbeta[ch] += static_cast<float>(db);
  }
}

}  // namespace

cudaError_t im2col(float* col, const float* x, const ConvShape& g, int64_t first, int64_t images, cudaStream_t s) {
  const int64_t total = images * g.c * g.kh * g.kw * g.oh * g.ow;
  if (total <= 0) return cudaSuccess;
  im2col_kernel<<<blocks_for(total), kThreads, 0, s>>>(col, x, g, first, images);
  return cudaGetLastError();
}

cudaError_t col2im_add(float* dx, const float* col, const ConvShape& g, int64_t first, int64_t images,
                       cudaStream_t s) {
  const int64_t total = images * g.c * g.h * g.w;
  if (total <= 0) return cudaSuccess;
  col2im_add_kernel<<<blocks_for(total), kThreads, 0, s>>>(dx, col, g, first, images);
  return cudaGetLastError();
}

cudaError_t add_channel_bias(float* y, const float* bias, int64_t n, int64_t o, int64_t spatial, cudaStream_t s) {
  const int64_t total = n * o * spatial;
  if (total <= 0 || !bias) return cudaSuccess;
  channel_bias_kernel<<<blocks_for(total), kThreads, 0, s>>>(y, bias, n, o, spatial, true);
  return cudaGetLastError();
}

cudaError_t set_channel_bias(float* y, const float* bias, int64_t n, int64_t o, int64_t spatial, cudaStream_t s) {
  const int64_t total = n * o * spatial;
  if (total <= 0) return cudaSuccess;
  channel_bias_kernel<<<blocks_for(total), kThreads, 0, s>>>(y, bias, n, o, spatial, false);
  return cudaGetLastError();
}

cudaError_t channel_sums_add(float* dbias, const float* dy, int64_t n, int64_t o, int64_t spatial, cudaStream_t s) {
  if (o <= 0) return cudaSuccess;
  channel_sums_add_kernel<<<row_blocks(o), kThreads, 0, s>>>(dbias, dy, n, o, spatial);
  return cudaGetLastError();
}

cudaError_t max_pool2d_forward(float* y, int64_t* argmax, const float* x, const PoolShape& g, cudaStream_t s) {
  const int64_t total = g.n * g.c * g.oh * g.ow;
  if (total <= 0) return cudaSuccess;
  max_pool2d_forward_kernel<<<blocks_for(total), kThreads, 0, s>>>(y, argmax, x, g);
  return cudaGetLastError();
}

cudaError_t max_pool2d_backward(float* dx, const float* dy, const int64_t* argmax, const PoolShape& g,
                                cudaStream_t s) {
  const int64_t total = g.n * g.c * g.h * g.w;
  if (total <= 0 || g.oh * g.ow <= 0) return cudaSuccess;
  max_pool2d_backward_kernel<<<blocks_for(total), kThreads, 0, s>>>(dx, dy, argmax, g);
  return cudaGetLastError();
}

cudaError_t avg_pool2d_forward(float* y, const float* x, const PoolShape& g, cudaStream_t s) {
  const int64_t total = g.n * g.c * g.oh * g.ow;
  if (total <= 0) return cudaSuccess;
  avg_pool2d_forward_kernel<<<blocks_for(total), kThreads, 0, s>>>(y, x, g);
  return cudaGetLastError();
}

cudaError_t avg_pool2d_backward(float* dx, const float* dy, const PoolShape& g, cudaStream_t s) {
  const int64_t total = g.n * g.c * g.h * g.w;
  if (total <= 0 || g.oh * g.ow <= 0) return cudaSuccess;
  avg_pool2d_backward_kernel<<<blocks_for(total), kThreads, 0, s>>>(dx, dy, g);
  return cudaGetLastError();
}

cudaError_t group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                               const float* beta, int64_t n, int64_t c, int64_t spatial, int64_t groups, float eps,
                               cudaStream_t s) {
  if (n <= 0 || groups <= 0) return cudaSuccess;
  group_norm_forward_kernel<<<row_blocks(n * groups), kThreads, 0, s>>>(y, mean, rstd, x, gamma, beta, n, c, spatial,
                                                                        groups, eps);
  return cudaGetLastError();
}

cudaError_t group_norm_backward_dx(float* dx, const float* dy, const float* x, const float* gamma, const float* mean,
                                   const float* rstd, int64_t n, int64_t c, int64_t spatial, int64_t groups,
                                   cudaStream_t s) {
  if (n <= 0 || groups <= 0 || c * spatial <= 0) return cudaSuccess;
  group_norm_backward_dx_kernel<<<row_blocks(n * groups), kThreads, 0, s>>>(dx, dy, x, gamma, mean, rstd, n, c,
                                                                            spatial, groups);
  return cudaGetLastError();
}

cudaError_t group_norm_backward_params(float* dgamma, float* dbeta, float* partials, const float* dy, const float* x,
                                       const float* mean, const float* rstd, int64_t n, int64_t c, int64_t spatial,
                                       int64_t groups, cudaStream_t s) {
  if (c <= 0 || (!dgamma && !dbeta)) return cudaSuccess;
  if (n > 0) {
    group_norm_params_partial_kernel<<<row_blocks(n * c), kThreads, 0, s>>>(partials, dy, x, mean, rstd, n, c,
                                                                            spatial, groups);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  group_norm_params_finish_kernel<<<blocks_for(c), kThreads, 0, s>>>(dgamma, dbeta, partials, n, c);
  return cudaGetLastError();
}

}  // namespace recur::kern::conv
