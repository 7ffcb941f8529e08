#pragma once
// Shape checks shared by the ops:: kernels and their ref:: references (internal header), so that
// both reject exactly the same inputs with the same messages.
#include <cstdint>
#include <vector>

#include "recur/core/tensor.h"
#include "recur/ops/loss.h"
#include "recur/ops/util.h"
#include "recur/seq/packed.h"

#ifdef RECUR_HAS_CUDA
#include "../cuda/ops_cuda.h"
/// In an op kernel: when tensor `t` lives on a GPU, runs the CUDA path (the statements after `t`)
/// and returns. Without the CUDA backend no GPU tensor can exist, and this expands to nothing.
#define RECUR_IF_CUDA(t, ...)          \
  do {                                 \
    if ((t).device().is_cuda()) {      \
      __VA_ARGS__;                     \
      return;                          \
    }                                  \
  } while (0)
#else
#define RECUR_IF_CUDA(t, ...) \
  do {                        \
  } while (0)
#endif

namespace recur::ops::detail {

/// Throws unless dtype is F64: the references run in double only.
void require_f64(DType dtype, const char* op);

struct LinearDims {
  int64_t rows, in, out;
  DType dtype;
  Shape y_shape;
};
LinearDims check_linear(const Tensor& x, const Tensor& w, const Tensor* b);
/// Also checks dy against the shape forward would produce.
LinearDims check_linear_backward(const Tensor& dy, const Tensor& x, const Tensor& w);

struct EmbeddingDims {
  int64_t n, vocab, dim;
  DType dtype;
  Shape y_shape;
};
/// Validates every id (in [0, V)) and padding_idx (-1 or in [0, V)).
EmbeddingDims check_embedding(const Tensor& ids, const Tensor& w, int64_t padding_idx);

/// All given tensors must share shape and float dtype; returns the dtype.
DType check_same_shapes(const char* op, std::initializer_list<NamedInput> inputs);

/// A tensor seen as (outer, total, inner) around `axis`, cut into parts of `sizes` along it.
struct AxisParts {
  int64_t axis, outer, inner, total;
  std::vector<int64_t> sizes;
  DType dtype;
  Shape whole;  ///< shape of the concatenated tensor
  Shape part_shape(size_t i) const;
};
AxisParts check_concat(const std::vector<Tensor>& xs, int64_t axis);
AxisParts check_split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis);

void check_dropout_p(float p);

/// rows x D view of x over its last dim; gamma and beta (D).
struct RowDims {
  int64_t rows, dim;
  DType dtype;
};
RowDims check_rows(const char* op, const Tensor& x);
RowDims check_layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
RowDims check_layer_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                                  const Tensor& rstd);

struct CrossEntropyDims {
  int64_t n, classes;
  DType dtype;
};
/// Validates every target (ignore_index or in [0, C)) and the options.
CrossEntropyDims check_cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& opt);
/// pred and target: same shape, float, at least one element.
DType check_mse(const Tensor& pred, const Tensor& target);
/// Checks dloss is a float scalar of `dtype`, on the device of `input` (the loss's input) when given.
void check_scalar_grad(const char* op, const Tensor& dloss, DType dtype, const Tensor* input = nullptr);

struct PoolDims {
  int64_t tokens, batch, hidden;
  DType dtype;
};
/// x: (layout.tokens(), H) against a well-formed layout.
PoolDims check_pool(const char* op, const Tensor& x, const PackedBatch& layout);
/// dy: (B, H) float, the gradient of a pooled output, against a well-formed layout.
PoolDims check_pool_grad(const char* op, const Tensor& dy, const PackedBatch& layout);
/// argmax: (B, H) I64 packed rows within [0, tokens).
void check_argmax(const Tensor& argmax, const PoolDims& d);

}  // namespace recur::ops::detail
