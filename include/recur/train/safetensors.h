#pragma once
/// \file Reading and writing safetensors files: an 8-byte little-endian header length N, N bytes
/// of JSON header (padded with spaces to a multiple of 8), then the raw little-endian tensor bytes.
/// The same files PyTorch's `safetensors.torch.save_file` writes and reads.
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "recur/core/tensor.h"

namespace recur {

/// The contents of a safetensors file.
struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  /// The "__metadata__" entry: safetensors allows only string values.
  std::map<std::string, std::string> metadata;
};

/// Headers larger than this are rejected as corrupt rather than allocated.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull * 1000 * 1000;

/// Writes `tensors` (any recur dtype, on any device: GPU tensors are copied to the host first) to
/// `path` atomically: the bytes go to `path + ".tmp.<pid>"`, are fsynced, renamed over `path`, and
/// the directory is fsynced, so a crash leaves either the old file or the new one. `metadata` must be a JSON object (or null);
/// string values are stored as they are, other values (e.g. a config object) as their JSON dump.
/// Throws recur::Error naming the path and the system error on failure; the temp file is removed.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const nlohmann::json& metadata = {});

/// Reads a safetensors file. Throws recur::Error naming `path` and the problem for unreadable,
/// truncated or corrupt files and for dtypes recur does not support (BF16, F16, ...).
SafetensorsFile load_safetensors(const std::string& path);

/// Parses safetensors bytes held in memory. Safe on arbitrary input: anything malformed throws
/// recur::Error whose message starts with `name_for_errors`; nothing is read outside [data, data+size).
SafetensorsFile parse_safetensors(const uint8_t* data, size_t size, const std::string& name_for_errors);

}  // namespace recur
