// Packed LSTM/GRU/RNN layer on the CPU: OpenBLAS GEMMs plus one fused, vectorised pointwise loop
// per step. Rows of a step are the sorted positions 0..batch_sizes[t]-1, so the recurrent state
// of the active sequences is always the leading rows of a (B, H) state buffer: the GEMM operand
// is contiguous in both directions, and finished (or not yet started) sequences simply keep their
// rows, which are hn at the end.
#include "rnn_cpu.h"

#include <cblas.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <utility>

#include "fast_math.h"
#include "recur/core/thread_pool.h"

namespace recur::cpu {

namespace {

using ops::CellType;

struct Dims {
  int64_t N, B, T, H, I, G, GH;
};

Dims dims_of(const Tensor& x, const PackedBatch& pb, const ops::RnnWeights& w, CellType cell) {
  Dims d;
  d.N = pb.tokens();
  d.B = pb.batch();
  d.T = pb.steps();
  d.H = w.w_hh->dim(1);
  d.I = x.dim(1);
  d.G = ops::gate_count(cell);
  d.GH = d.G * d.H;
  return d;
}

// C (m x n) = alpha * A (m x k) * op(B) + beta * C, row-major.
void gemm_nt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
             float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
             float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}
void gemm_tn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
             float* c, int64_t ldc) {
  if (m == 0 || n == 0 || k == 0) return;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
              1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// out[c] += sum over rows of a (rows x cols).
void add_column_sums(float* out, const float* a, int64_t rows, int64_t cols) {
  if (rows == 0) return;
  Tensor ones = Tensor::full({rows}, 1.0);
  cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(rows), static_cast<int>(cols), 1.0f, a,
              static_cast<int>(cols), ones.f32(), 1, 1.0f, out, 1);
}

// Combined bias per gate row: b_ih (+ b_hh when it is not kept apart, i.e. not GRU).
Tensor input_bias(const ops::RnnWeights& w, const Dims& d, CellType cell) {
  Tensor b = Tensor::zeros({d.GH});
  float* p = b.f32();
  if (w.b_ih)
    for (int64_t g = 0; g < d.GH; ++g) p[g] += w.b_ih->f32()[g];
  if (w.b_hh && cell != CellType::GRU)
    for (int64_t g = 0; g < d.GH; ++g) p[g] += w.b_hh->f32()[g];
  return b;
}

bool row_valid(const ops::RnnLayerOptions& opt, int64_t t, int64_t j) {
  return opt.mask_lengths.empty() || t < opt.mask_lengths[static_cast<size_t>(j)];
}

// ---- forward pointwise, one row each ------------------------------------------------------

// Row functions take n units starting at the given pointers, with gate k at offset k * S (S = H
// for a whole row; a thread of the small-batch path passes its own slice of units).
void lstm_row_forward(float* __restrict g, const float* __restrict bias, float* __restrict c_state,
                      float* __restrict h_state, float* __restrict y, float* __restrict c_out, int64_t n, int64_t S) {
  float* __restrict gi = g;
  float* __restrict gf = g + S;
  float* __restrict gg = g + 2 * S;
  float* __restrict go = g + 3 * S;
  for (int64_t u = 0; u < n; ++u) {
    const float i = fast_sigmoid(gi[u] + bias[u]);
    const float f = fast_sigmoid(gf[u] + bias[S + u]);
    const float c_in = fast_tanh(gg[u] + bias[2 * S + u]);
    const float o = fast_sigmoid(go[u] + bias[3 * S + u]);
    const float c = f * c_state[u] + i * c_in;
    const float h = o * fast_tanh(c);
    gi[u] = i, gf[u] = f, gg[u] = c_in, go[u] = o;
    c_state[u] = c;
    c_out[u] = c;
    h_state[u] = h;
    y[u] = h;
  }
}

// h_prev and h_state may be the same buffer (the GEMM path updates the state in place).
void gru_row_forward(float* __restrict g, const float* __restrict bias, const float* __restrict gh,
                     const float* __restrict bias_h, const float* h_prev, float* h_state,
                     float* __restrict y, float* __restrict ghn_out, int64_t n, int64_t S) {
  for (int64_t u = 0; u < n; ++u) {
    const float r = fast_sigmoid(g[u] + bias[u] + gh[u] + bias_h[u]);
    const float z = fast_sigmoid(g[S + u] + bias[S + u] + gh[S + u] + bias_h[S + u]);
    const float hn = gh[2 * S + u] + bias_h[2 * S + u];
    const float c_in = fast_tanh(g[2 * S + u] + bias[2 * S + u] + r * hn);
    const float h = (1.0f - z) * c_in + z * h_prev[u];
    g[u] = r, g[S + u] = z, g[2 * S + u] = c_in;
    ghn_out[u] = hn;
    h_state[u] = h;
    y[u] = h;
  }
}

void rnn_row_forward(float* __restrict g, const float* __restrict bias, float* __restrict h_state,
                     float* __restrict y, int64_t n, bool relu) {
  if (relu) {
    for (int64_t u = 0; u < n; ++u) {
      const float a = g[u] + bias[u];
      const float h = a > 0.0f ? a : 0.0f;
      g[u] = h, h_state[u] = h, y[u] = h;
    }
  } else {
    for (int64_t u = 0; u < n; ++u) {
      const float h = fast_tanh(g[u] + bias[u]);
      g[u] = h, h_state[u] = h, y[u] = h;
    }
  }
}

// Dot product with 64 independent lanes (four AVX-512 accumulators), so a row of W_hh streams
// from cache at full speed instead of waiting on one FMA chain. The order of additions is fixed:
// results do not depend on the thread that computes them.
inline float dot64(const float* __restrict a, const float* __restrict b, int64_t n) {
  float acc[64] = {};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int k = 0; k < 64; ++k) acc[k] += a[i + k] * b[i + k];
  for (int k = 0; k < 16; ++k) acc[k] += acc[16 + k] + acc[32 + k] + acc[48 + k];
  float s = 0.0f;
  for (int k = 0; k < 16; ++k) s += acc[k];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Barrier for the persistent small-batch path: spins (steps are microseconds apart).
class SpinBarrier {
 public:
  explicit SpinBarrier(int n) : n_(n) {}
  void wait() {
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
    } else {
      // Spin briefly, then yield: on a loaded machine the thread we wait for may not be running.
      for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
        if (spins < 4096) __builtin_ia32_pause();
        else std::this_thread::yield();
      }
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

// ---- backward pointwise ---------------------------------------------------------------------

// dh: total dL/dh_t for the row. Writes pre-activation gate grads into dg, updates dc_state.
void lstm_row_backward(float* __restrict dg, float* __restrict dc_state, const float* __restrict dh,
                       const float* __restrict act, const float* __restrict c, const float* __restrict c_prev,
                       int64_t H) {
  for (int64_t u = 0; u < H; ++u) {
    const float i = act[u], f = act[H + u], n = act[2 * H + u], o = act[3 * H + u];
    const float tc = fast_tanh(c[u]);
    const float dcu = dc_state[u] + dh[u] * o * (1.0f - tc * tc);
    dg[u] = dcu * n * i * (1.0f - i);
    dg[H + u] = dcu * c_prev[u] * f * (1.0f - f);
    dg[2 * H + u] = dcu * i * (1.0f - n * n);
    dg[3 * H + u] = dh[u] * tc * o * (1.0f - o);
    dc_state[u] = dcu * f;
  }
}

// Writes input-side grads into dg, hidden-side into dgh, and dh*z (the direct path) into carry.
void gru_row_backward(float* __restrict dg, float* __restrict dgh, float* __restrict carry,
                      const float* __restrict dh, const float* __restrict act, const float* __restrict ghn,
                      const float* __restrict h_prev, int64_t H) {
  for (int64_t u = 0; u < H; ++u) {
    const float r = act[u], z = act[H + u], n = act[2 * H + u];
    const float dan = dh[u] * (1.0f - z) * (1.0f - n * n);
    const float dz = dh[u] * (h_prev[u] - n) * z * (1.0f - z);
    const float dar = dan * ghn[u] * r * (1.0f - r);
    dg[u] = dar, dgh[u] = dar;
    dg[H + u] = dz, dgh[H + u] = dz;
    dg[2 * H + u] = dan;
    dgh[2 * H + u] = dan * r;
    carry[u] = dh[u] * z;
  }
}

void rnn_row_backward(float* __restrict dg, const float* __restrict dh, const float* __restrict act, int64_t H,
                      bool relu) {
  if (relu) {
    for (int64_t u = 0; u < H; ++u) dg[u] = act[u] > 0.0f ? dh[u] : 0.0f;
  } else {
    for (int64_t u = 0; u < H; ++u) dg[u] = dh[u] * (1.0f - act[u] * act[u]);
  }
}

Tensor sorted_state(const Tensor* s, const PackedBatch& pb, int64_t H) {
  return s ? permute_batch(*s, pb, true) : Tensor::zeros({pb.batch(), H});
}

void add_unsorted(Tensor* dst, const Tensor& sorted, const PackedBatch& pb) {
  if (!dst) return;
  Tensor orig = permute_batch(sorted, pb, false);
  float* d = dst->f32();
  const float* s = orig.f32();
  for (int64_t i = 0; i < orig.numel(); ++i) d[i] += s[i];
}

// Buffers of one forward pass, shared by the two step loops.
struct ForwardBuffers {
  float* G;        // (N, GH) input projections, turned into activated gates in place
  const float* bias;
  const float* bias_h;  // GRU: b_hh, kept apart for the new gate
  float* Y;        // (N, H)
  float* h_state;  // (B, H) sorted
  float* c_state;  // (B, H) LSTM
  float* cells;    // (N, H) LSTM
  float* ghn;      // (N, H) GRU
  float* gh_step;  // (B, GH) GRU
};

// Small batches: a step's recurrent work is a few matrix-vector products bound by reading W_hh.
// Each pool thread owns a slice of hidden units with all G gate rows of them, so its part of
// W_hh stays in its own core's cache for every step; the threads run the whole sequence and meet
// at a spin barrier once per step. Hidden states are double-buffered because every thread reads
// all of h_{t-1} while the others write their slices of h_t.
void forward_steps_small(const ForwardBuffers& fb, const Dims& d, const PackedBatch& pb, const float* W_hh,
                         const ops::RnnLayerOptions& opt) {
  const CellType cell = opt.cell;
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU, relu = cell == CellType::RNN_RELU;
  ThreadPool& pool = thread_pool();
  const int nt = static_cast<int>(std::min<int64_t>(pool.size(), std::max<int64_t>(1, d.H / 16)));
  Tensor other({d.B, d.H});
  std::memcpy(other.f32(), fb.h_state, static_cast<size_t>(d.B * d.H) * sizeof(float));
  SpinBarrier barrier(nt);
  float* final_state = nullptr;
  pool.run_on_all([&](int k) {
    if (k >= nt) return;
    const int64_t u0 = d.H * k / nt / 16 * 16;
    const int64_t u1 = k + 1 == nt ? d.H : d.H * (k + 1) / nt / 16 * 16;
    const int64_t n = u1 - u0;
    float* cur = fb.h_state;
    float* next = other.f32();
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = opt.reverse ? d.T - 1 - s : s;
      const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
      const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
      float* Gt = fb.G + r0 * d.GH;
      for (int64_t g = 0; g < d.G; ++g)
        for (int64_t u = u0; u < u1; ++u) {
          const float* w = W_hh + (g * d.H + u) * d.H;
          for (int64_t j = 0; j < bs; ++j) {
            const float v = dot64(w, cur + j * d.H, d.H);
            if (gru) fb.gh_step[j * d.GH + g * d.H + u] = v;
            else Gt[j * d.GH + g * d.H + u] += v;
          }
        }
      for (int64_t j = 0; j < d.B; ++j) {
        const int64_t row = r0 + j;
        float* hn = next + j * d.H + u0;
        const float* hp = cur + j * d.H + u0;
        if (j >= bs || !row_valid(opt, t, j)) {
          std::memcpy(hn, hp, static_cast<size_t>(n) * sizeof(float));
          if (j >= bs) continue;
          // Static mode past the end: keep the state, emit zeros (as the GEMM path does).
          std::memset(fb.Y + row * d.H + u0, 0, static_cast<size_t>(n) * sizeof(float));
          for (int64_t g = 0; g < d.G; ++g) std::memset(Gt + j * d.GH + g * d.H + u0, 0, static_cast<size_t>(n) * 4);
          if (lstm) std::memcpy(fb.cells + row * d.H + u0, fb.c_state + j * d.H + u0, static_cast<size_t>(n) * 4);
          if (gru) std::memset(fb.ghn + row * d.H + u0, 0, static_cast<size_t>(n) * sizeof(float));
          continue;
        }
        float* g = Gt + j * d.GH + u0;
        float* y = fb.Y + row * d.H + u0;
        if (lstm)
          lstm_row_forward(g, fb.bias + u0, fb.c_state + j * d.H + u0, hn, y, fb.cells + row * d.H + u0, n, d.H);
        else if (gru)
          gru_row_forward(g, fb.bias + u0, fb.gh_step + j * d.GH + u0, fb.bias_h + u0, hp, hn, y,
                          fb.ghn + row * d.H + u0, n, d.H);
        else
          rnn_row_forward(g, fb.bias + u0, hn, y, n, relu);
      }
      barrier.wait();
      std::swap(cur, next);
    }
    if (k == 0) final_state = cur;
  });
  if (final_state != fb.h_state)
    std::memcpy(fb.h_state, final_state, static_cast<size_t>(d.B * d.H) * sizeof(float));
}

}  // namespace

void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, ops::RnnCache* cache, const Tensor& x,
                       const PackedBatch& pb, const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0,
                       const ops::RnnLayerOptions& opt) {
  const CellType cell = opt.cell;
  const Dims d = dims_of(x, pb, w, cell);
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU;
  const bool relu = cell == CellType::RNN_RELU;

  Tensor gates({d.N, d.GH});
  gemm_nt(d.N, d.GH, d.I, x.f32(), d.I, w.w_ih->f32(), d.I, 0.0f, gates.f32(), d.GH);
  Tensor bias = input_bias(w, d, cell);
  Tensor bias_h = Tensor::zeros({d.GH});
  if (gru && w.b_hh) bias_h.copy_from(*w.b_hh);

  *y = Tensor({d.N, d.H});
  Tensor h_state = sorted_state(h0, pb, d.H);
  Tensor c_state = lstm ? sorted_state(c0, pb, d.H) : Tensor();
  if (cache) {
    cache->h0 = h_state.clone();
    if (lstm) cache->c0 = c_state.clone();
  }
  Tensor cells = lstm ? Tensor({d.N, d.H}) : Tensor();
  Tensor ghn = gru ? Tensor({d.N, d.H}) : Tensor();
  Tensor gh_step = gru ? Tensor({d.B, d.GH}) : Tensor();

  float* G = gates.f32();
  float* Y = y->f32();
  float* hs = h_state.f32();
  ForwardBuffers fb{G, bias.f32(), bias_h.f32(), Y, hs, lstm ? c_state.f32() : nullptr, lstm ? cells.f32() : nullptr,
                    gru ? ghn.f32() : nullptr, gru ? gh_step.f32() : nullptr};
  const bool small = d.B <= opt.small_batch_max;
  if (small) forward_steps_small(fb, d, pb, w.w_hh->f32(), opt);
  for (int64_t s = 0; s < (small ? 0 : d.T); ++s) {
    const int64_t t = opt.reverse ? d.T - 1 - s : s;
    const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
    const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
    float* Gt = G + r0 * d.GH;
    if (gru) gemm_nt(bs, d.GH, d.H, hs, d.H, w.w_hh->f32(), d.H, 0.0f, gh_step.f32(), d.GH);
    else gemm_nt(bs, d.GH, d.H, hs, d.H, w.w_hh->f32(), d.H, 1.0f, Gt, d.GH);
    for (int64_t j = 0; j < bs; ++j) {
      float* g = Gt + j * d.GH;
      float* yr = Y + (r0 + j) * d.H;
      float* h = hs + j * d.H;
      if (!row_valid(opt, t, j)) {
        // Static mode past the end of this sequence: keep the state, emit zeros.
        std::memset(yr, 0, static_cast<size_t>(d.H) * sizeof(float));
        std::memset(g, 0, static_cast<size_t>(d.GH) * sizeof(float));
        if (lstm) std::memcpy(cells.f32() + (r0 + j) * d.H, c_state.f32() + j * d.H, static_cast<size_t>(d.H) * 4);
        if (gru) std::memset(ghn.f32() + (r0 + j) * d.H, 0, static_cast<size_t>(d.H) * sizeof(float));
        continue;
      }
      if (lstm)
        lstm_row_forward(g, bias.f32(), c_state.f32() + j * d.H, h, yr, cells.f32() + (r0 + j) * d.H, d.H, d.H);
      else if (gru)
        gru_row_forward(g, bias.f32(), gh_step.f32() + j * d.GH, bias_h.f32(), h, h, yr, ghn.f32() + (r0 + j) * d.H,
                        d.H, d.H);
      else
        rnn_row_forward(g, bias.f32(), h, yr, d.H, relu);
    }
  }
  if (hn) *hn = permute_batch(h_state, pb, false);
  if (cn && lstm) *cn = permute_batch(c_state, pb, false);
  if (cache) {
    cache->gates = gates;
    cache->cells = cells;
    cache->ghn = ghn;
  }
}

void rnn_layer_backward(Tensor* dx, Tensor* dh0, Tensor* dc0, const ops::RnnWeightGrads& dw, const Tensor* dy,
                        const Tensor* dhn, const Tensor* dcn, const ops::RnnCache& cache, const Tensor& x,
                        const Tensor& y, const PackedBatch& pb, const ops::RnnWeights& w,
                        const ops::RnnLayerOptions& opt) {
  const CellType cell = opt.cell;
  const Dims d = dims_of(x, pb, w, cell);
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU;
  const bool relu = cell == CellType::RNN_RELU;
  const size_t hbytes = static_cast<size_t>(d.H) * sizeof(float);

  // Replay the state sequence to get each row's h_prev (and c_prev): the operand of dW_hh.
  Tensor h_prev({d.N, d.H});
  Tensor c_prev = lstm ? Tensor({d.N, d.H}) : Tensor();
  {
    Tensor hs = cache.h0.clone();
    Tensor cs = lstm ? cache.c0.clone() : Tensor();
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = opt.reverse ? d.T - 1 - s : s;
      const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
      const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
      std::memcpy(h_prev.f32() + r0 * d.H, hs.f32(), static_cast<size_t>(bs) * hbytes);
      if (lstm) {
        std::memcpy(c_prev.f32() + r0 * d.H, cs.f32(), static_cast<size_t>(bs) * hbytes);
        std::memcpy(cs.f32(), cache.cells.f32() + r0 * d.H, static_cast<size_t>(bs) * hbytes);
      }
      for (int64_t j = 0; j < bs; ++j)
        if (row_valid(opt, t, j)) std::memcpy(hs.f32() + j * d.H, y.f32() + (r0 + j) * d.H, hbytes);
    }
  }

  Tensor dgates({d.N, d.GH});
  Tensor dgh = gru ? Tensor({d.N, d.GH}) : Tensor();
  Tensor dh_state = dhn ? permute_batch(*dhn, pb, true) : Tensor::zeros({d.B, d.H});
  Tensor dc_state = lstm ? (dcn ? permute_batch(*dcn, pb, true) : Tensor::zeros({d.B, d.H})) : Tensor();
  Tensor dh_row({d.H});
  float* dhr = dh_row.f32();
  for (int64_t s = d.T - 1; s >= 0; --s) {
    const int64_t t = opt.reverse ? d.T - 1 - s : s;
    const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
    const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
    for (int64_t j = 0; j < bs; ++j) {
      const int64_t row = r0 + j;
      float* dhs = dh_state.f32() + j * d.H;
      float* dg = dgates.f32() + row * d.GH;
      if (!row_valid(opt, t, j)) {
        // The state passed through unchanged: its gradient does too.
        std::memset(dg, 0, static_cast<size_t>(d.GH) * sizeof(float));
        if (gru) std::memset(dgh.f32() + row * d.GH, 0, static_cast<size_t>(d.GH) * sizeof(float));
        continue;
      }
      const float* dyr = dy ? dy->f32() + row * d.H : nullptr;
      for (int64_t u = 0; u < d.H; ++u) dhr[u] = dhs[u] + (dyr ? dyr[u] : 0.0f);
      const float* act = cache.gates.f32() + row * d.GH;
      if (lstm) {
        lstm_row_backward(dg, dc_state.f32() + j * d.H, dhr, act, cache.cells.f32() + row * d.H,
                          c_prev.f32() + row * d.H, d.H);
        std::memset(dhs, 0, hbytes);
      } else if (gru) {
        gru_row_backward(dg, dgh.f32() + row * d.GH, dhs, dhr, act, cache.ghn.f32() + row * d.H,
                         h_prev.f32() + row * d.H, d.H);
      } else {
        rnn_row_backward(dg, dhr, act, d.H, relu);
        std::memset(dhs, 0, hbytes);
      }
    }
    // dh_prev (rows 0..bs) += dG_t W_hh: the recurrent half of the step's backward.
    const float* dgt = (gru ? dgh.f32() : dgates.f32()) + r0 * d.GH;
    gemm_nn(bs, d.H, d.GH, dgt, d.GH, w.w_hh->f32(), d.H, 1.0f, dh_state.f32(), d.H);
  }
  add_unsorted(dh0, dh_state, pb);
  if (lstm) add_unsorted(dc0, dc_state, pb);

  const float* dG = dgates.f32();
  const float* dGh = gru ? dgh.f32() : dG;
  if (dx) gemm_nn(d.N, d.I, d.GH, dG, d.GH, w.w_ih->f32(), d.I, 1.0f, dx->f32(), d.I);
  if (dw.w_ih) gemm_tn(d.GH, d.I, d.N, dG, d.GH, x.f32(), d.I, 1.0f, dw.w_ih->f32(), d.I);
  if (dw.w_hh) gemm_tn(d.GH, d.H, d.N, dGh, d.GH, h_prev.f32(), d.H, 1.0f, dw.w_hh->f32(), d.H);
  if (dw.b_ih) add_column_sums(dw.b_ih->f32(), dG, d.N, d.GH);
  if (dw.b_hh) add_column_sums(dw.b_hh->f32(), dGh, d.N, d.GH);
}

}  // namespace recur::cpu
