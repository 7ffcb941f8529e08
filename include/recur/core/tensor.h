#pragma once
/// \file Tensor: contiguous row-major storage with shape, dtype and device.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "recur/core/dtype.h"
#include "recur/core/error.h"

namespace recur {

using Shape = std::vector<int64_t>;

/// "(2, 3, 4)".
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

/// A block from the allocator, shared by every tensor that views it.
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device;
  Storage(size_t nbytes, Device dev);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

/// A contiguous, row-major n-d array. Copying a Tensor shares its storage (like PyTorch);
/// clone() copies the data. Views (view(), rows()) share storage too.
class Tensor {
 public:
  Tensor() = default;
  /// Uninitialised tensor of the given shape.
  explicit Tensor(Shape shape, DType dtype = DType::F32, Device device = Device::cpu());

  static Tensor empty(Shape shape, DType dtype = DType::F32) { return Tensor(std::move(shape), dtype); }
  static Tensor zeros(Shape shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(Shape shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor from(Shape shape, const std::vector<float>& values);
  static Tensor from_f64(Shape shape, const std::vector<double>& values);
  static Tensor from_i64(Shape shape, const std::vector<int64_t>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
  /// Size of dimension i; negative i counts from the end.
  int64_t dim(int64_t i) const;
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  std::string shape_str() const { return recur::shape_str(shape_); }

  void* raw() { return static_cast<char*>(storage_->ptr) + offset_; }
  const void* raw() const { return static_cast<const char*>(storage_->ptr) + offset_; }
  template <class T> T* data() {
    check_dtype(DTypeOf<T>::value);
    return static_cast<T*>(raw());
  }
  template <class T> const T* data() const {
    check_dtype(DTypeOf<T>::value);
    return static_cast<const T*>(raw());
  }
  float* f32() { return data<float>(); }
  const float* f32() const { return data<float>(); }

  /// Same storage, new shape with the same number of elements (one dim may be -1).
  Tensor view(Shape shape) const;
  /// Rows [begin, end) of dimension 0, sharing storage.
  Tensor rows(int64_t begin, int64_t end) const;
  /// A copy with its own storage.
  Tensor clone() const;
  /// Copies the values of `src` (same numel and dtype) into this tensor.
  void copy_from(const Tensor& src);
  void zero_();
  /// this += src, elementwise (same numel and float dtype); large tensors split over the pool.
  void add_(const Tensor& src);
  void fill_(double value);
  /// Converts to another dtype (a copy).
  Tensor to(DType dtype) const;
  /// A copy on another device (this tensor itself, shared, when it is already there).
  Tensor to(Device device) const;
  /// to(Device::cpu()).
  Tensor cpu() const { return to(Device::cpu()); }
  /// Element i (flat index) as double, for tests and tools (copies from a GPU).
  double item(int64_t i = 0) const;
  std::vector<float> to_vector() const;

  /// Throws recur::Error naming `what` unless the shape equals `expected`.
  void check_shape(const Shape& expected, const char* what) const;

 private:
  void check_dtype(DType want) const;
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
  Device device_;
};

}  // namespace recur
