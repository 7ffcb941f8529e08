#include "recur/core/tensor.h"

#include <cstring>

#include "device_ops.h"
#include "recur/core/allocator.h"
#include "recur/core/thread_pool.h"

namespace recur {

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  if (s.size() == 1) out += ",";
  return out + ")";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Storage::Storage(size_t nbytes, Device dev) : device(dev) {
  if (dev.is_cpu())
    ptr = cpu_allocator().allocate(nbytes, &bytes);
  else
    ptr = devmem::allocate(dev, nbytes, &bytes);
}

Storage::~Storage() {
  if (device.is_cpu())
    cpu_allocator().release(ptr, bytes);
  else
    devmem::release(device, ptr, bytes);
}

Tensor::Tensor(Shape shape, DType dtype, Device device)
    : shape_(std::move(shape)), dtype_(dtype), device_(device) {
  for (int64_t d : shape_) RECUR_CHECK(d >= 0, "negative dimension in shape {}", recur::shape_str(shape_));
  numel_ = shape_numel(shape_);
  storage_ = std::make_shared<Storage>(nbytes(), device);
}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t(std::move(shape), dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(Shape shape, double value, DType dtype, Device device) {
  Tensor t(std::move(shape), dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from(Shape shape, const std::vector<float>& values) {
  Tensor t(std::move(shape), DType::F32);
  RECUR_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "Tensor::from: {} values for shape {}",
              values.size(), t.shape_str());
  if (!values.empty()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_f64(Shape shape, const std::vector<double>& values) {
  Tensor t(std::move(shape), DType::F64);
  RECUR_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "Tensor::from_f64: {} values for shape {}",
              values.size(), t.shape_str());
  if (!values.empty()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

Tensor Tensor::from_i64(Shape shape, const std::vector<int64_t>& values) {
  Tensor t(std::move(shape), DType::I64);
  RECUR_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "Tensor::from_i64: {} values for shape {}",
              values.size(), t.shape_str());
  if (!values.empty()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

int64_t Tensor::dim(int64_t i) const {
  int64_t n = ndim();
  if (i < 0) i += n;
  RECUR_CHECK(i >= 0 && i < n, "dim {} out of range for shape {}", i, shape_str());
  return shape_[static_cast<size_t>(i)];
}

void Tensor::check_dtype(DType want) const {
  RECUR_CHECK(defined(), "access to an undefined tensor");
  RECUR_CHECK(dtype_ == want, "tensor of shape {} has dtype {}, not {}", shape_str(), dtype_name(dtype_),
              dtype_name(want));
}

Tensor Tensor::view(Shape shape) const {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      RECUR_CHECK(infer < 0, "view: more than one -1 in {}", recur::shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    RECUR_CHECK(known > 0 && numel_ % known == 0, "view: cannot view {} as {}", shape_str(), recur::shape_str(shape));
    shape[static_cast<size_t>(infer)] = numel_ / known;
  }
  RECUR_CHECK(shape_numel(shape) == numel_, "view: cannot view {} as {}", shape_str(), recur::shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  RECUR_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "rows [{}, {}) of shape {}", begin,
              end, shape_str());
  Tensor t = *this;
  int64_t row = numel_ / (shape_[0] ? shape_[0] : 1);
  t.offset_ += static_cast<size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  t.numel_ = shape_numel(t.shape_);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_, dtype_, device_);
  if (numel_) devmem::copy(t.raw(), device_, raw(), device_, nbytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  RECUR_CHECK(src.numel() == numel_ && src.dtype() == dtype_, "copy_from: {} {} into {} {}", src.shape_str(),
              dtype_name(src.dtype()), shape_str(), dtype_name(dtype_));
  if (numel_ && (raw() != src.raw() || !(device_ == src.device_))) devmem::copy(raw(), device_, src.raw(), src.device_, nbytes());
}

Tensor Tensor::to(Device device) const {
  if (!defined() || device == device_) return *this;
  Tensor t(shape_, dtype_, device);
  if (numel_) devmem::copy(t.raw(), device, raw(), device_, nbytes());
  return t;
}

void Tensor::zero_() {
  if (!numel_) return;
  if (device_.is_cpu())
    std::memset(raw(), 0, nbytes());
  else
    devmem::zero(device_, raw(), nbytes());
}

namespace {
template <class T>
void add_elements(T* d, const T* s, int64_t n) {
  // Below this size a loop is not worth waking the pool for.
  constexpr int64_t kGrain = 1 << 15;
  thread_pool().parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) d[i] += s[i];
  });
}
}  // namespace

void Tensor::add_(const Tensor& src) {
  RECUR_CHECK(defined() && src.defined(), "add_: undefined tensor");
  RECUR_CHECK(src.numel() == numel_ && src.dtype() == dtype_, "add_: {} {} += {} {}", shape_str(), dtype_name(dtype_),
              src.shape_str(), dtype_name(src.dtype()));
  RECUR_CHECK(src.device_ == device_, "add_: {} on {} += {} on {}", shape_str(), device_.str(), src.shape_str(),
              src.device_.str());
  if (device_.is_cuda()) {
    devmem::add(device_, raw(), src.raw(), dtype_, numel_);
    return;
  }
  switch (dtype_) {
    case DType::F32: add_elements(data<float>(), src.data<float>(), numel_); return;
    case DType::F64: add_elements(data<double>(), src.data<double>(), numel_); return;
    default: RECUR_FAIL("add_: dtype {} is not a float type", dtype_name(dtype_));
  }
}

void Tensor::fill_(double value) {
  if (device_.is_cuda()) {
    devmem::fill(device_, raw(), dtype_, numel_, value);
    return;
  }
  switch (dtype_) {
    case DType::F32: { float* p = data<float>(); for (int64_t i = 0; i < numel_; ++i) p[i] = static_cast<float>(value); break; }
    case DType::F64: { double* p = data<double>(); for (int64_t i = 0; i < numel_; ++i) p[i] = value; break; }
    case DType::I32: { int32_t* p = data<int32_t>(); for (int64_t i = 0; i < numel_; ++i) p[i] = static_cast<int32_t>(value); break; }
    case DType::I64: { int64_t* p = data<int64_t>(); for (int64_t i = 0; i < numel_; ++i) p[i] = static_cast<int64_t>(value); break; }
  }
}

double Tensor::item(int64_t i) const {
  RECUR_CHECK(i >= 0 && i < numel_, "item {} out of range for shape {}", i, shape_str());
  if (device_.is_cuda()) return view({-1}).rows(i, i + 1).cpu().item(0);
  switch (dtype_) {
    case DType::F32: return data<float>()[i];
    case DType::F64: return data<double>()[i];
    case DType::I32: return data<int32_t>()[i];
    case DType::I64: return static_cast<double>(data<int64_t>()[i]);
  }
  return 0;
}

Tensor Tensor::to(DType dtype) const {
  if (device_.is_cuda()) return cpu().to(dtype).to(device_);
  Tensor t(shape_, dtype, device_);
  if (dtype == dtype_) {
    t.copy_from(*this);
    return t;
  }
  for (int64_t i = 0; i < numel_; ++i) {
    double v = item(i);
    switch (dtype) {
      case DType::F32: t.data<float>()[i] = static_cast<float>(v); break;
      case DType::F64: t.data<double>()[i] = v; break;
      case DType::I32: t.data<int32_t>()[i] = static_cast<int32_t>(v); break;
      case DType::I64: t.data<int64_t>()[i] = static_cast<int64_t>(v); break;
    }
  }
  return t;
}

std::vector<float> Tensor::to_vector() const {
  if (device_.is_cuda()) return cpu().to_vector();
  std::vector<float> v(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) v[static_cast<size_t>(i)] = static_cast<float>(item(i));
  return v;
}

void Tensor::check_shape(const Shape& expected, const char* what) const {
  RECUR_CHECK(defined(), "{}: tensor is undefined, expected shape {}", what, recur::shape_str(expected));
  RECUR_CHECK(shape_ == expected, "{}: expected shape {}, got {}", what, recur::shape_str(expected), shape_str());
}

}  // namespace recur
