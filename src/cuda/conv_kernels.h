#pragma once
// Launchers of the CUDA kernels behind the image ops (src/cuda/conv_kernels.cu; internal): im2col /
// col2im for the convolution fallback, bias broadcast and bias-gradient reduction, 2-D max/average
// pooling, group norm. Plain declarations with raw device pointers (as ops_kernels.h), so that the
// .cu file needs no recur headers; each launcher queues its kernels on `s` and returns the launch's
// cudaError_t. Shapes are checked by the callers; empty work launches nothing.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace recur::kern::conv {

/// The sizes of one convolution (as ops::Conv2dGeom, without recur headers).
struct ConvShape {
  int64_t n, c, h, w;  ///< input
  int64_t o, kh, kw;   ///< weight (O, C, KH, KW)
  int64_t oh, ow;      ///< output
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

/// col (images, C*KH*KW, OH*OW) = the receptive fields of x's images [first, first + images);
/// positions in the zero padding read 0.
cudaError_t im2col(float* col, const float* x, const ConvShape& g, int64_t first, int64_t images, cudaStream_t s);
/// dx[first + i] += col2im(col[i]) for i < images: every input pixel sums the column entries that
/// read it (a gather, no atomics: deterministic).
cudaError_t col2im_add(float* dx, const float* col, const ConvShape& g, int64_t first, int64_t images,
                       cudaStream_t s);
/// y (N, O, S) += bias[o].
cudaError_t add_channel_bias(float* y, const float* bias, int64_t n, int64_t o, int64_t spatial, cudaStream_t s);
/// y (N, O, S) = bias[o] (bias may be null: zeros).
cudaError_t set_channel_bias(float* y, const float* bias, int64_t n, int64_t o, int64_t spatial, cudaStream_t s);
/// dbias[o] += sum over n and positions of dy (N, O, S); one block per channel, fixed order.
cudaError_t channel_sums_add(float* dbias, const float* dy, int64_t n, int64_t o, int64_t spatial, cudaStream_t s);

/// The sizes of one pooling (as ops::Pool2dGeom).
struct PoolShape {
  int64_t n, c, h, w, oh, ow;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

/// y = max over each window (padding never wins), argmax = flat h*W + w in the plane (first
/// maximum in row-major window order; NaN wins, as in PyTorch); argmax may be null.
cudaError_t max_pool2d_forward(float* y, int64_t* argmax, const float* x, const PoolShape& g, cudaStream_t s);
/// dx += dy routed to argmax: each input pixel gathers, in output order, the dy of the windows that
/// cover it and chose it (argmax must lie inside its window, as forward produces).
cudaError_t max_pool2d_backward(float* dx, const float* dy, const int64_t* argmax, const PoolShape& g,
                                cudaStream_t s);
/// y = window sum / (KH * KW) (padding counts).
cudaError_t avg_pool2d_forward(float* y, const float* x, const PoolShape& g, cudaStream_t s);
/// dx += sum over covering windows of dy / (KH * KW).
cudaError_t avg_pool2d_backward(float* dx, const float* dy, const PoolShape& g, cudaStream_t s);

/// x, y (N, C, S); one block per (n, group); mean/rstd (N * groups) may be null; gamma/beta (C)
/// may be null (1 and 0).
cudaError_t group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                               const float* beta, int64_t n, int64_t c, int64_t spatial, int64_t groups, float eps,
                               cudaStream_t s);
/// dx += the input gradient (one block per (n, group)); gamma may be null (1).
cudaError_t group_norm_backward_dx(float* dx, const float* dy, const float* x, const float* gamma, const float* mean,
                                   const float* rstd, int64_t n, int64_t c, int64_t spatial, int64_t groups,
                                   cudaStream_t s);
/// dgamma[c] += sum over n, s of dy * xhat; dbeta[c] += sum of dy; either may be null. partials:
/// scratch of 2 * N * C floats (one block per (n, c) writes its sums there, then one thread per
/// channel adds them over n in order: deterministic).
cudaError_t group_norm_backward_params(float* dgamma, float* dbeta, float* partials, const float* dy, const float* x,
                                       const float* mean, const float* rstd, int64_t n, int64_t c, int64_t spatial,
                                       int64_t groups, cudaStream_t s);

}  // namespace recur::kern::conv
