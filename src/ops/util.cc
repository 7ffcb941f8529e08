#include "recur/ops/util.h"


namespace recur::ops {

void prepare_output(Tensor* out, const Shape& shape, DType dtype, const char* op, const char* what, Device device) {
  RECUR_CHECK(out != nullptr, "{}: output {} is null", op, what);
  if (!out->defined()) {
    *out = Tensor(shape, dtype, device);
    return;
  }
  RECUR_CHECK(out->shape() == shape && out->dtype() == dtype, "{}: output {} is {} {}, expected {} {}", op, what,
              out->shape_str(), dtype_name(out->dtype()), shape_str(shape), dtype_name(dtype));
  RECUR_CHECK(out->device() == device, "{}: output {} {} is on {} but the inputs are on {}", op, what,
              out->shape_str(), out->device().str(), device.str());
}

bool prepare_grad(Tensor* grad, const Shape& shape, DType dtype, const char* op, const char* what, Device device) {
  if (grad == nullptr) return false;
  if (!grad->defined()) {
    *grad = Tensor::zeros(shape, dtype, device);
    return true;
  }
  RECUR_CHECK(grad->shape() == shape && grad->dtype() == dtype, "{}: gradient {} is {} {}, expected {} {}", op, what,
              grad->shape_str(), dtype_name(grad->dtype()), shape_str(shape), dtype_name(dtype));
  RECUR_CHECK(grad->device() == device, "{}: gradient {} {} is on {} but the inputs are on {}", op, what,
              grad->shape_str(), grad->device().str(), device.str());
  return true;
}

Device check_same_device(const char* op, std::initializer_list<NamedInput> inputs) {
  const NamedInput* first = nullptr;
  for (const NamedInput& in : inputs) {
    if (in.t == nullptr || !in.t->defined()) continue;
    if (first == nullptr) {
      first = &in;
      continue;
    }
    RECUR_CHECK(in.t->device() == first->t->device(),
                "{}: {} {} is on {} but {} {} is on {}; all inputs of one op must be on the same device", op, in.name,
                in.t->shape_str(), in.t->device().str(), first->name, first->t->shape_str(),
                first->t->device().str());
  }
  return first ? first->t->device() : Device::cpu();
}

DType check_float_inputs(const char* op, std::initializer_list<NamedInput> inputs) {
  const NamedInput* first = nullptr;
  for (const NamedInput& in : inputs) {
    if (in.t == nullptr) continue;
    RECUR_CHECK(in.t->defined(), "{}: {} is undefined", op, in.name);
    RECUR_CHECK(in.t->dtype() == DType::F32 || in.t->dtype() == DType::F64, "{}: {} {} has dtype {}, expected F32 or F64",
                op, in.name, in.t->shape_str(), dtype_name(in.t->dtype()));
    RECUR_CHECK(!(in.t->dtype() == DType::F64 && in.t->device().is_cuda()),
                "{}: {} {} is F64 on {}; F64 (the double-precision references) runs on the CPU only, use F32 on a GPU",
                op, in.name, in.t->shape_str(), in.t->device().str());
    if (first == nullptr) {
      first = &in;
      continue;
    }
    RECUR_CHECK(in.t->dtype() == first->t->dtype(), "{}: {} {} has dtype {} but {} {} has {}", op, in.name,
                in.t->shape_str(), dtype_name(in.t->dtype()), first->name, first->t->shape_str(),
                dtype_name(first->t->dtype()));
  }
  RECUR_CHECK(first != nullptr, "{}: no inputs", op);
  check_same_device(op, inputs);
  return first->t->dtype();
}

void check_index_tensor(const Tensor& ids, const char* op, const char* what) {
  RECUR_CHECK(ids.defined(), "{}: {} is undefined", op, what);
  RECUR_CHECK(ids.dtype() == DType::I64, "{}: {} {} has dtype {}, expected I64", op, what, ids.shape_str(),
              dtype_name(ids.dtype()));
}

int64_t normalize_axis(int64_t axis, const Shape& shape, const char* op) {
  int64_t n = static_cast<int64_t>(shape.size());
  RECUR_CHECK(axis >= -n && axis < n, "{}: axis {} out of range for shape {}", op, axis, shape_str(shape));
  return axis < 0 ? axis + n : axis;
}

int64_t rows_of(const Tensor& t) {
  int64_t r = 1;
  for (int64_t i = 0; i + 1 < t.ndim(); ++i) r *= t.shape()[static_cast<size_t>(i)];
  return r;
}

}  // namespace recur::ops

namespace recur {

Tensor* grad_slot(const Var& v) { return v.defined() && v.requires_grad() ? &v.grad() : nullptr; }

const Tensor& value_of(const Var& v, const char* op, const char* what) {
  RECUR_CHECK(v.defined(), "{}: {} is undefined", op, what);
  return v.value();
}

Var unary_through_output(Tape& tape, const Var& x, const char* op, void (*forward)(Tensor*, const Tensor&),
                         void (*backward)(Tensor*, const Tensor&, const Tensor&)) {
  Tensor y;
  forward(&y, value_of(x, op, "x"));
  bool tracked = tape.needs_grad({&x});
  Var out = make_output(y, tracked);
  if (tracked) tape.record([x, out, backward]() { backward(&x.grad(), out.grad(), out.value()); });
  return out;
}

}  // namespace recur
