#include "packed_gemm.h"

#include <algorithm>
#include <cstring>

namespace recur::cpu {

namespace {

typedef float v16 __attribute__((vector_size(64)));

inline v16 load16(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void store16(float* p, v16 v) { std::memcpy(p, &v, sizeof(v)); }

// Rows of A per micro-tile; 8 rows x 32 columns = 16 vector accumulators.
constexpr int kMR = 8;
// k-block: an 8 x 256 block of A (8 KB) and a 256 x 32 panel block of B (32 KB) fit in L1 together.
constexpr int64_t kKC = 256;

// C tile (MR x 32, or fewer columns `nc`) (+)= A (MR x kc) * Bpanel (kc x 32).
template <int MR>
void micro_tile(const float* __restrict a, int64_t lda, const float* __restrict bp, int64_t kc, float* __restrict c,
                int64_t ldc, int64_t nc, bool load_c) {
  v16 acc[MR][2];
  for (int i = 0; i < MR; ++i) {
    if (load_c && nc == 32) {
      acc[i][0] = load16(c + i * ldc);
      acc[i][1] = load16(c + i * ldc + 16);
    } else if (load_c) {
      float tmp[32] = {};
      std::memcpy(tmp, c + i * ldc, static_cast<size_t>(nc) * sizeof(float));
      acc[i][0] = load16(tmp);
      acc[i][1] = load16(tmp + 16);
    } else {
      acc[i][0] = v16{};
      acc[i][1] = v16{};
    }
  }
  if constexpr (MR == 1) {
    // One row has only two accumulator chains: split k four ways to hide the FMA latency.
    v16 part[3][2] = {};
    int64_t kk = 0;
    for (; kk + 4 <= kc; kk += 4) {
      acc[0][0] += a[kk] * load16(bp + kk * 32);
      acc[0][1] += a[kk] * load16(bp + kk * 32 + 16);
      for (int q = 1; q < 4; ++q) {
        part[q - 1][0] += a[kk + q] * load16(bp + (kk + q) * 32);
        part[q - 1][1] += a[kk + q] * load16(bp + (kk + q) * 32 + 16);
      }
    }
    for (; kk < kc; ++kk) {
      acc[0][0] += a[kk] * load16(bp + kk * 32);
      acc[0][1] += a[kk] * load16(bp + kk * 32 + 16);
    }
    acc[0][0] += (part[0][0] + part[1][0]) + part[2][0];
    acc[0][1] += (part[0][1] + part[1][1]) + part[2][1];
  } else {
    for (int64_t kk = 0; kk < kc; ++kk) {
      const v16 b0 = load16(bp + kk * 32);
      const v16 b1 = load16(bp + kk * 32 + 16);
      for (int i = 0; i < MR; ++i) {
        const float av = a[i * lda + kk];
        acc[i][0] += av * b0;
        acc[i][1] += av * b1;
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    if (nc == 32) {
      store16(c + i * ldc, acc[i][0]);
      store16(c + i * ldc + 16, acc[i][1]);
    } else {
      float tmp[32];
      store16(tmp, acc[i][0]);
      store16(tmp + 16, acc[i][1]);
      std::memcpy(c + i * ldc, tmp, static_cast<size_t>(nc) * sizeof(float));
    }
  }
}

using TileFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, bool);
constexpr TileFn kTiles[kMR + 1] = {nullptr,         micro_tile<1>, micro_tile<2>, micro_tile<3>, micro_tile<4>,
                                    micro_tile<5>, micro_tile<6>, micro_tile<7>, micro_tile<8>};

}  // namespace

float* PackedB::reshape(int64_t rows, int64_t cols) {
  k = rows;
  n = cols;
  const size_t need = static_cast<size_t>(panels() * k * 32);
  if (need > capacity) {
    data.reset(new float[need]);
    capacity = need;
  }
  return data.get();
}

// pack_b_transposed fills a panel in blocks of kPackRows rows of 32 floats (2 KB, which stays in
// L1 while the 32 source rows are read across it); both packers write the zero padding of a last,
// narrower panel themselves.
constexpr int64_t kPackRows = 16;

void pack_b_transposed(PackedB* out, const float* src, int64_t ld, int64_t k, int64_t n) {
  float* base = out->reshape(k, n);
  for (int64_t p = 0; p < out->panels(); ++p) {
    const int64_t c0 = p * 32, nc = std::min<int64_t>(32, n - c0);
    float* panel = base + p * k * 32;
    for (int64_t k0 = 0; k0 < k; k0 += kPackRows) {
      const int64_t kb = std::min(kPackRows, k - k0);
      float* dst = panel + k0 * 32;
      for (int64_t j = 0; j < nc; ++j) {
        const float* s = src + (c0 + j) * ld + k0;  // row c0 + j of src holds column c0 + j of B
        for (int64_t t = 0; t < kb; ++t) dst[t * 32 + j] = s[t];
      }
      if (nc < 32)
        for (int64_t t = 0; t < kb; ++t) std::memset(dst + t * 32 + nc, 0, static_cast<size_t>(32 - nc) * sizeof(float));
    }
  }
}

void pack_b(PackedB* out, const float* src, int64_t ld, int64_t k, int64_t n) {
  float* base = out->reshape(k, n);
  for (int64_t p = 0; p < out->panels(); ++p) {
    const int64_t c0 = p * 32, nc = std::min<int64_t>(32, n - c0);
    float* panel = base + p * k * 32;
    for (int64_t kk = 0; kk < k; ++kk) {
      std::memcpy(panel + kk * 32, src + kk * ld + c0, static_cast<size_t>(nc) * sizeof(float));
      if (nc < 32) std::memset(panel + kk * 32 + nc, 0, static_cast<size_t>(32 - nc) * sizeof(float));
    }
  }
}

void gemm_packed(int64_t m, const float* a, int64_t lda, const PackedB& b, float* c, int64_t ldc, bool accumulate) {
  const int64_t k = b.k, n = b.n;
  if (m <= 0 || n <= 0) return;
  if (k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::memset(c + i * ldc, 0, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  for (int64_t k0 = 0; k0 < k; k0 += kKC) {
    const int64_t kc = std::min(kKC, k - k0);
    const bool load_c = accumulate || k0 > 0;
    for (int64_t p = 0; p < b.panels(); ++p) {
      const float* bp = b.panel(p) + k0 * 32;
      const int64_t nc = std::min<int64_t>(32, n - p * 32);
      for (int64_t i = 0; i < m; i += kMR) {
        const int mr = static_cast<int>(std::min<int64_t>(kMR, m - i));
        kTiles[mr](a + i * lda + k0, lda, bp, kc, c + i * ldc + p * 32, ldc, nc, load_c);
      }
    }
  }
}

namespace {

// The sum of a vector's 16 lanes as a tree of halvings (8 + 8, 4 + 4, 2 + 2, 1 + 1): a handful of
// shuffles and adds, where lane by lane it was 15 dependent adds and as many extracts per row, about
// a fifth of a batch-1 step's time on a Zen 4 core. The order is fixed, so results stay deterministic.
inline float hsum(v16 v) {
  typedef float v8 __attribute__((vector_size(32)));
  typedef float v4 __attribute__((vector_size(16)));
  const v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// R rows at once (4, or 1 for the remainder): each 16-wide slice of x is loaded once for all of them.
template <int R>
void gemv_block(int64_t k, const float* __restrict w, int64_t ldw, const float* __restrict x, float* __restrict y,
                bool accumulate) {
  v16 acc[R] = {};
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16) {
    const v16 xv = load16(x + kk);
    for (int r = 0; r < R; ++r) acc[r] += load16(w + r * ldw + kk) * xv;
  }
  for (int r = 0; r < R; ++r) {
    float s = hsum(acc[r]);
    for (int64_t j = kk; j < k; ++j) s += w[r * ldw + j] * x[j];
    y[r] = accumulate ? y[r] + s : s;
  }
}

}  // namespace

void gemv_rows(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y, bool accumulate,
               bool reverse) {
  const int64_t full = n / 4 * 4;
  if (!reverse) {
    for (int64_t i = 0; i < full; i += 4) gemv_block<4>(k, w + i * ldw, ldw, x, y + i, accumulate);
    for (int64_t i = full; i < n; ++i) gemv_block<1>(k, w + i * ldw, ldw, x, y + i, accumulate);
  } else {
    for (int64_t i = n - 1; i >= full; --i) gemv_block<1>(k, w + i * ldw, ldw, x, y + i, accumulate);
    for (int64_t i = full - 4; i >= 0; i -= 4) gemv_block<4>(k, w + i * ldw, ldw, x, y + i, accumulate);
  }
}

}  // namespace recur::cpu
