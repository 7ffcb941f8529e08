#pragma once
/// \file Small helpers shared by the functional ops: gradient accumulation, output preparation and
/// the dtype/device checks every kernel starts with.
#include <cstdint>
#include <initializer_list>

#include "recur/core/tape.h"
#include "recur/core/tensor.h"

namespace recur::ops {

/// Makes *out an output of `shape` and `dtype` on `device`: allocates it there when undefined,
/// otherwise checks that it already has that shape, dtype and device (its values are then
/// overwritten by the caller).
void prepare_output(Tensor* out, const Shape& shape, DType dtype, const char* op, const char* what,
                    Device device = Device::cpu());

/// Prepares a gradient slot that a backward kernel adds into: returns false when `grad` is null
/// (gradient not wanted), allocates zeros on `device` when it is undefined, otherwise checks shape,
/// dtype and device.
bool prepare_grad(Tensor* grad, const Shape& shape, DType dtype, const char* op, const char* what,
                  Device device = Device::cpu());

/// A named input for check_float_inputs; a null `t` is skipped (optional input).
struct NamedInput {
  const char* name;
  const Tensor* t;
};

/// Checks that every given input is defined, all on one device and of one float dtype (F32 or F64;
/// F64, the references' dtype, on the CPU only), and returns that dtype. Messages name the op, the
/// input, its shape and device.
DType check_float_inputs(const char* op, std::initializer_list<NamedInput> inputs);

/// Checks that every given (non-null, defined) input is on the same device and returns it; the
/// message names both inputs and both devices otherwise.
Device check_same_device(const char* op, std::initializer_list<NamedInput> inputs);

/// Checks that `ids` is a defined I64 tensor (on any device; callers check it against the other
/// inputs with check_same_device).
void check_index_tensor(const Tensor& ids, const char* op, const char* what);

/// Maps axis in [-ndim, ndim) to [0, ndim); throws naming the op and shape otherwise.
int64_t normalize_axis(int64_t axis, const Shape& shape, const char* op);

/// Rows of a tensor seen as (rows, D) with D its last dimension (1 row for a scalar).
int64_t rows_of(const Tensor& t);

}  // namespace recur::ops

namespace recur {

/// &v.grad() when v is defined and requires grad, else null: the slot a backward closure hands to a
/// kernel so that only inputs with requires_grad() receive gradient.
Tensor* grad_slot(const Var& v);

/// v.value(), or a recur::Error naming the op and input when v is undefined.
const Tensor& value_of(const Var& v, const char* op, const char* what);

/// A one-input op whose backward needs only its output (tanh, sigmoid, relu, softmax,
/// log-softmax): runs `forward`, and records `backward(dx, dy, y)` when x needs a gradient.
Var unary_through_output(Tape& tape, const Var& x, const char* op, void (*forward)(Tensor*, const Tensor&),
                         void (*backward)(Tensor*, const Tensor&, const Tensor&));

}  // namespace recur
