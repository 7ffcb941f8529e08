#pragma once
/// \file Element types and devices.
#include <cstddef>
#include <cstdint>
#include <string>

namespace recur {

enum class DType : uint8_t { F32, F64, I32, I64 };

/// Bytes per element.
size_t dtype_size(DType dt);
/// "F32", "F64", "I32", "I64": the safetensors spelling.
const char* dtype_name(DType dt);
/// Parses a safetensors dtype name; returns false for unknown names.
bool dtype_from_name(const std::string& name, DType* out);

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::F64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::I64; };

enum class DeviceType : uint8_t { CPU, CUDA };

/// Where a tensor lives: the CPU or one CUDA GPU.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return Device{}; }
  static Device cuda(int i = 0) { return Device{DeviceType::CUDA, i}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  /// "cpu", "cuda:0".
  std::string str() const;
  /// Parses "cpu", "cuda" (= cuda:0) or "cuda:N"; throws recur::Error naming `s` otherwise.
  static Device parse(const std::string& s);
};

}  // namespace recur
