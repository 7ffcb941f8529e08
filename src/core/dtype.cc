#include "recur/core/dtype.h"

#include "recur/core/error.h"

namespace recur {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  RECUR_FAIL("unknown dtype {}", static_cast<int>(dt));
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

bool dtype_from_name(const std::string& name, DType* out) {
  for (DType d : {DType::F32, DType::F64, DType::I32, DType::I64}) {
    if (name == dtype_name(d)) {
      *out = d;
      return true;
    }
  }
  return false;
}

std::string Device::str() const {
  return type == DeviceType::CPU ? std::string("cpu") : fmt::format("cuda:{}", index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9) {
    int idx = 0;
    for (size_t i = 5; i < s.size(); ++i) {
      RECUR_CHECK(s[i] >= '0' && s[i] <= '9', "device '{}': expected cpu, cuda or cuda:N", s);
      idx = idx * 10 + (s[i] - '0');
    }
    return cuda(idx);
  }
  RECUR_FAIL("device '{}': expected cpu, cuda or cuda:N", s);
}

}  // namespace recur
