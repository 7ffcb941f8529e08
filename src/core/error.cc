#include "recur/core/error.h"

#include <cstring>

namespace recur::detail {

void fail(const char* file, int line, const std::string& message) {
  const char* base = std::strrchr(file, '/');
  throw Error(fmt::format("{} ({}:{})", message, base ? base + 1 : file, line));
}

}  // namespace recur::detail
