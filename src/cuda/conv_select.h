#pragma once
// Which implementation the CUDA convolutions use (internal; for tests and debugging). With cuDNN
// in the build (RECUR_HAS_CUDNN) conv2d runs through cuDNN unless RECUR_CONV_CUDNN=0 is set in the
// environment or set_conv_use_cudnn(false) was called; otherwise, and for convolutions too large
// for cuDNN's 32-bit descriptors, it runs im2col + cuBLAS. Only in a CUDA build.

namespace recur::cuda {

/// True when this build contains the cuDNN path.
bool conv_cudnn_compiled();
/// Prefer cuDNN (the default, when compiled) or force the im2col + cuBLAS path.
void set_conv_use_cudnn(bool on);
/// Whether the next convolution that fits cuDNN's limits goes through cuDNN.
bool conv_uses_cudnn();
/// "cudnn" or "im2col": the path the last conv2d forward or backward on a GPU took ("" before any).
const char* last_conv_path();

}  // namespace recur::cuda
