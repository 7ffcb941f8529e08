#pragma once
/// \file Basic functional ops: linear, embedding, elementwise, concat/split, dropout, sum/scale.
///
/// Three layers per op, as for every op in recur:
///  - recur::ops kernels on Tensors: outputs first; F32 runs the fast CPU path, F64 the naive
///    reference. Forward outputs are assigned (allocated when undefined, otherwise shape-checked).
///    Backward kernels ADD (+=) into gradients; a null gradient pointer skips that gradient and an
///    undefined one is allocated as zeros first.
///  - recur::ref: the naive double-precision reference (F64 tensors only), the spec of each op.
///  - recur: differentiable wrappers that record a backward closure on a Tape.
#include <cstdint>
#include <vector>

#include "recur/core/tape.h"
#include "recur/core/tensor.h"

namespace recur::ops {

/// y = x W^T + b. Leading dims of x are rows: x (..., I) -> y (..., O).
void linear_forward(Tensor* y,          // (..., O) assigned
                    const Tensor& x,    // (..., I)
                    const Tensor& w,    // (O, I)
                    const Tensor* b);   // (O) or null
/// dx += dy W, dw += dy^T x, db += sum of the rows of dy.
void linear_backward(Tensor* dx,        // (..., I) or null
                     Tensor* dw,        // (O, I) or null
                     Tensor* db,        // (O) or null
                     const Tensor& dy,  // (..., O)
                     const Tensor& x,   // (..., I)
                     const Tensor& w);  // (O, I)

/// y[n] = W[ids[n]]; rows whose id equals padding_idx (>= 0) are zeros. Throws naming the id, its
/// position and V when an id is outside [0, V).
void embedding_forward(Tensor* y,            // (ids..., D) assigned
                       const Tensor& ids,    // (ids...) I64
                       const Tensor& w,      // (V, D)
                       int64_t padding_idx);  // -1 for none
/// dw[ids[n]] += dy[n], skipping padding rows. dw must be defined (its shape gives V), unlike the
/// other gradient slots.
void embedding_backward(Tensor* dw,          // (V, D) defined
                        const Tensor& dy,    // (ids..., D)
                        const Tensor& ids,   // (ids...) I64
                        int64_t padding_idx);

/// y = a + b (same shapes).
void add_forward(Tensor* y, const Tensor& a, const Tensor& b);  // all (...)
/// da += dy, db += dy.
void add_backward(Tensor* da, Tensor* db, const Tensor& dy);  // all (...)
/// y = a * b elementwise (same shapes).
void mul_forward(Tensor* y, const Tensor& a, const Tensor& b);  // all (...)
/// da += dy * b, db += dy * a.
void mul_backward(Tensor* da, Tensor* db, const Tensor& dy, const Tensor& a, const Tensor& b);  // all (...)

/// y = tanh(x).
void tanh_forward(Tensor* y, const Tensor& x);  // both (...)
/// dx += dy * (1 - y^2), from the forward output y.
void tanh_backward(Tensor* dx, const Tensor& dy, const Tensor& y);  // all (...)
/// y = 1 / (1 + exp(-x)).
void sigmoid_forward(Tensor* y, const Tensor& x);  // both (...)
/// dx += dy * y * (1 - y), from the forward output y.
void sigmoid_backward(Tensor* dx, const Tensor& dy, const Tensor& y);  // all (...)
/// y = max(x, 0).
void relu_forward(Tensor* y, const Tensor& x);  // both (...)
/// dx += dy where y > 0, from the forward output y.
void relu_backward(Tensor* dx, const Tensor& dy, const Tensor& y);  // all (...)

/// Concatenates along `axis` (negative counts from the end); all other dims must agree.
void concat_forward(Tensor* y,                      // (..., sum of sizes, ...) assigned
                    const std::vector<Tensor>& xs,  // each (..., size_i, ...)
                    int64_t axis);
/// dxs[i] += the slice of dy that xs[i] filled; sizes[i] = xs[i].dim(axis). Null entries skip.
void concat_backward(const std::vector<Tensor*>& dxs,   // each (..., size_i, ...) or null
                     const Tensor& dy,                  // (..., sum of sizes, ...)
                     const std::vector<int64_t>& sizes,
                     int64_t axis);
/// Splits x along `axis` into pieces of the given sizes (summing to x.dim(axis)). Assigns *ys
/// (resized to sizes.size(); entries allocated when undefined).
void split_forward(std::vector<Tensor>* ys,  // each (..., size_i, ...)
                   const Tensor& x,          // (..., sum of sizes, ...)
                   const std::vector<int64_t>& sizes,
                   int64_t axis);
/// dx += concat(dys) along axis.
void split_backward(Tensor* dx,                      // (..., sum of sizes, ...)
                    const std::vector<Tensor>& dys,  // each (..., size_i, ...)
                    int64_t axis);

/// Inverted dropout: element i (flat index) is dropped when uniform_at(seed, i) < p, else scaled by
/// 1/(1-p). The mask is counter-based, so it depends on neither the thread count nor the device.
/// Identity when !training or p == 0; p must lie in [0, 1].
void dropout_forward(Tensor* y, const Tensor& x, float p, uint64_t seed, bool training);  // both (...)
/// dx += dy masked and scaled exactly as forward did (the mask is regenerated from the seed).
void dropout_backward(Tensor* dx, const Tensor& dy, float p, uint64_t seed, bool training);  // both (...)

}  // namespace recur::ops

namespace recur::ref {

/// Naive double-precision references: same shapes and semantics as recur::ops, F64 tensors only.
void linear_forward(Tensor* y, const Tensor& x, const Tensor& w, const Tensor* b);
void linear_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w);
void embedding_forward(Tensor* y, const Tensor& ids, const Tensor& w, int64_t padding_idx);
void embedding_backward(Tensor* dw, const Tensor& dy, const Tensor& ids, int64_t padding_idx);
void add_forward(Tensor* y, const Tensor& a, const Tensor& b);
void add_backward(Tensor* da, Tensor* db, const Tensor& dy);
void mul_forward(Tensor* y, const Tensor& a, const Tensor& b);
void mul_backward(Tensor* da, Tensor* db, const Tensor& dy, const Tensor& a, const Tensor& b);
void tanh_forward(Tensor* y, const Tensor& x);
void tanh_backward(Tensor* dx, const Tensor& dy, const Tensor& y);
void sigmoid_forward(Tensor* y, const Tensor& x);
void sigmoid_backward(Tensor* dx, const Tensor& dy, const Tensor& y);
void relu_forward(Tensor* y, const Tensor& x);
void relu_backward(Tensor* dx, const Tensor& dy, const Tensor& y);
void concat_forward(Tensor* y, const std::vector<Tensor>& xs, int64_t axis);
void concat_backward(const std::vector<Tensor*>& dxs, const Tensor& dy, const std::vector<int64_t>& sizes,
                     int64_t axis);
void split_forward(std::vector<Tensor>* ys, const Tensor& x, const std::vector<int64_t>& sizes, int64_t axis);
void split_backward(Tensor* dx, const std::vector<Tensor>& dys, int64_t axis);
void dropout_forward(Tensor* y, const Tensor& x, float p, uint64_t seed, bool training);
void dropout_backward(Tensor* dx, const Tensor& dy, float p, uint64_t seed, bool training);

}  // namespace recur::ref

namespace recur {

/// Differentiable linear layer; `b` may be an undefined Var (no bias).
Var linear(Tape& tape, const Var& x, const Var& w, const Var& b);
/// Differentiable embedding lookup; ids (...) I64 -> (..., D).
Var embedding(Tape& tape, const Tensor& ids, const Var& w, int64_t padding_idx = -1);
Var add(Tape& tape, const Var& a, const Var& b);
Var mul(Tape& tape, const Var& a, const Var& b);
Var tanh(Tape& tape, const Var& x);
Var sigmoid(Tape& tape, const Var& x);
Var relu(Tape& tape, const Var& x);
Var concat(Tape& tape, const std::vector<Var>& xs, int64_t axis);
std::vector<Var> split(Tape& tape, const Var& x, const std::vector<int64_t>& sizes, int64_t axis);
Var dropout(Tape& tape, const Var& x, float p, uint64_t seed, bool training);
/// Sum of all elements: a scalar of shape ().
Var sum(Tape& tape, const Var& x);
/// s * x.
Var scale(Tape& tape, const Var& x, float s);
/// Same values, new shape (same element count; storage shared, so no copy).
Var reshape(Tape& tape, const Var& x, Shape shape);

}  // namespace recur
