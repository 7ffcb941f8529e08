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

/// Where a tensor lives. Only CPU has kernels today; the tag is part of every tensor so that the
/// CUDA backend slots in without changing signatures.
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  static Device cpu() { return Device{}; }
  bool operator==(const Device&) const = default;
  std::string str() const;
};

}  // namespace recur
