#pragma once
// UTF-8 helpers shared by the data readers (internal to src/data).
#include <cstddef>
#include <cstdint>
#include <string>

namespace recur::data::utf8 {

// Decodes the well-formed UTF-8 sequence at p[i] (Unicode's Table 3-7: no overlong forms, no
// surrogates, nothing above U+10FFFF); `len` is its length. Anything else is one byte that decodes
// to -1.
inline int32_t decode_at(const unsigned char* p, size_t n, size_t i, size_t& len) {
  const unsigned char c = p[i];
  len = 1;
  if (c < 0x80) return c;
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  int32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3, cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4, cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  if (i + need > n || p[i + 1] < lo || p[i + 1] > hi) return -1;
  for (size_t k = 1; k < need; ++k) {
    if (k > 1 && (p[i + k] & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (p[i + k] & 0x3F);
  }
  len = need;
  return cp;
}

/// Appends code point `cp` (<= U+10FFFF) as UTF-8.
inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace recur::data::utf8
