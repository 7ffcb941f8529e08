// libFuzzer target: parse_safetensors must turn any bytes into tensors or a recur::Error, never a
// crash, an over-read (AddressSanitizer) or undefined behaviour (UBSan).
#include <cstddef>
#include <cstdint>

#include "recur/train/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    recur::SafetensorsFile f = recur::parse_safetensors(data, size, "fuzz-input");
    // Touch every byte so that a tensor whose storage is shorter than its shape claims is caught.
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : f.tensors) {
      const auto* p = static_cast<const uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sink = sink ^ p[i];
    }
  } catch (const recur::Error&) {
  }
  return 0;
}
