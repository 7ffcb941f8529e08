// Packed LSTM/GRU/RNN layer on the CPU.
//
// Layout: rows of step t are the sorted positions 0..batch_sizes[t]-1, so the recurrent state of
// the active sequences is always the leading rows of a (B, H) state buffer — the GEMM operand is
// contiguous in both directions, and finished (or not yet started) sequences keep their rows,
// which hold hn at the end.
//
// Threads: the input projection and the weight gradients are single GEMMs over all tokens, split
// over the pool. The time loop runs on persistent threads: each owns a slice of hidden units with
// all G gate rows of them, computes its part of the recurrent product (its slice of W_hh stays in
// its core's cache) and the pointwise work of its units, and the threads meet at one spin barrier
// per step. Results do not depend on timing, and a unit's arithmetic does not depend on which
// thread does it.
#include "rnn_cpu.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <utility>

#include "fast_math.h"
#include "gemm.h"
#include "packed_gemm.h"
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

int64_t step_of(const Dims& d, const ops::RnnLayerOptions& opt, int64_t s) { return opt.reverse ? d.T - 1 - s : s; }

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

void gru_row_forward(float* __restrict g, const float* __restrict bias, const float* __restrict gh,
                     const float* __restrict bias_h, const float* __restrict h_prev, float* __restrict h_state,
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
        if (spins < 4096) cpu_relax();
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

// dh: total dL/dh_t for the row's n units. Writes pre-activation gate grads into dg (gate k at
// offset k * S) and updates dc_state.
void lstm_row_backward(float* __restrict dg, float* __restrict dc_state, const float* __restrict dh,
                       const float* __restrict act, const float* __restrict c, const float* __restrict c_prev,
                       int64_t n, int64_t S) {
  for (int64_t u = 0; u < n; ++u) {
    const float i = act[u], f = act[S + u], c_in = act[2 * S + u], o = act[3 * S + u];
    const float tc = fast_tanh(c[u]);
    const float dcu = dc_state[u] + dh[u] * o * (1.0f - tc * tc);
    dg[u] = dcu * c_in * i * (1.0f - i);
    dg[S + u] = dcu * c_prev[u] * f * (1.0f - f);
    dg[2 * S + u] = dcu * i * (1.0f - c_in * c_in);
    dg[3 * S + u] = dh[u] * tc * o * (1.0f - o);
    dc_state[u] = dcu * f;
  }
}

// Writes input-side grads into dg, hidden-side into dgh, and dh*z (the direct path) into carry.
void gru_row_backward(float* __restrict dg, float* __restrict dgh, float* __restrict carry,
                      const float* __restrict dh, const float* __restrict act, const float* __restrict ghn,
                      const float* __restrict h_prev, int64_t n, int64_t S) {
  for (int64_t u = 0; u < n; ++u) {
    const float r = act[u], z = act[S + u], c_in = act[2 * S + u];
    const float dan = dh[u] * (1.0f - z) * (1.0f - c_in * c_in);
    const float dz = dh[u] * (h_prev[u] - c_in) * z * (1.0f - z);
    const float dar = dan * ghn[u] * r * (1.0f - r);
    dg[u] = dar, dgh[u] = dar;
    dg[S + u] = dz, dgh[S + u] = dz;
    dg[2 * S + u] = dan;
    dgh[2 * S + u] = dan * r;
    carry[u] = dh[u] * z;
  }
}

void rnn_row_backward(float* __restrict dg, const float* __restrict dh, const float* __restrict act, int64_t n,
                      bool relu) {
  if (relu) {
    for (int64_t u = 0; u < n; ++u) dg[u] = act[u] > 0.0f ? dh[u] : 0.0f;
  } else {
    for (int64_t u = 0; u < n; ++u) dg[u] = dh[u] * (1.0f - act[u] * act[u]);
  }
}

Tensor sorted_state(const Tensor* s, const PackedBatch& pb, int64_t H) {
  return s ? permute_batch(*s, pb, true) : Tensor::zeros({pb.batch(), H});
}

void add_unsorted(Tensor* dst, const Tensor& sorted, const PackedBatch& pb) {
  if (!dst) return;
  dst->add_(permute_batch(sorted, pb, false));
}

// ---- the persistent step loops -----------------------------------------------------------------

// The hidden units [u0, u1) a thread owns; boundaries on multiples of 16 (whole vectors).
struct UnitSlice {
  int64_t u0, u1;
  int64_t n() const { return u1 - u0; }
};

int slice_threads(int64_t H) {
  return static_cast<int>(std::min<int64_t>(thread_pool().size(), std::max<int64_t>(1, H / 16)));
}

UnitSlice unit_slice(int64_t H, int k, int nt) {
  const int64_t u0 = k == 0 ? 0 : H * k / nt / 16 * 16;
  const int64_t u1 = k + 1 == nt ? H : H * (k + 1) / nt / 16 * 16;
  return {u0, u1};
}

// A thread's slice of W_hh, packed once per layer call: for each gate g, the transposed rows
// g*H + u0 .. g*H + u1 - 1, so that out[:, g*H + u0 ..] (+)= h * packed[g] is one small GEMM.
std::vector<PackedB> pack_gate_slices(const float* W_hh, const Dims& d, UnitSlice sl) {
  std::vector<PackedB> packed(static_cast<size_t>(d.G));
  for (int64_t g = 0; g < d.G; ++g)
    pack_b_transposed(&packed[static_cast<size_t>(g)], W_hh + (g * d.H + sl.u0) * d.H, d.H, d.H, sl.n());
  return packed;
}

// Buffers of one forward pass.
struct ForwardBuffers {
  float* G;             // (N, GH) input projections, turned into activated gates in place
  const float* bias;    // (GH)
  const float* bias_h;  // (GH) GRU: b_hh, kept apart for the new gate
  float* Y;             // (N, H)
  float* h_state;       // (B, H) sorted; holds hn at the end
  float* h_other;       // (B, H) the second buffer of the double-buffered state
  float* c_state;       // (B, H) LSTM
  float* cells;         // (N, H) LSTM
  float* ghn;           // (N, H) GRU
  float* gh_step;       // (B, GH) GRU
};

// Every thread reads all of h_{t-1} while the others write their slices of h_t, so the hidden
// state is double-buffered; rows past the step's batch are carried over by their owners.
void forward_steps(const ForwardBuffers& fb, const Dims& d, const PackedBatch& pb, const float* W_hh,
                   const ops::RnnLayerOptions& opt) {
  const CellType cell = opt.cell;
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU, relu = cell == CellType::RNN_RELU;
  const int nt = slice_threads(d.H);
  SpinBarrier barrier(nt);
  const size_t fbytes = sizeof(float);
  std::atomic<float*> final_state{nullptr};
  thread_pool().run_on_all([&](int k) {
    if (k >= nt) return;
    const UnitSlice sl = unit_slice(d.H, k, nt);
    const int64_t n = sl.n(), u0 = sl.u0;
    // A batch of one sentence never uses the packed slices: its steps read W_hh in place.
    const bool single = pb.batch_sizes.empty() || pb.batch_sizes[0] == 1;
    const std::vector<PackedB> w = single ? std::vector<PackedB>() : pack_gate_slices(W_hh, d, sl);
    float* cur = fb.h_state;
    float* next = fb.h_other;
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = step_of(d, opt, s);
      const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
      const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
      float* Gt = fb.G + r0 * d.GH;
      // This slice's share of the step's recurrent product (GRU keeps it apart for the new gate).
      // One row: a matrix-vector product bound by reading the slice of W_hh, which at H = 512 is
      // about the core's L2; alternate steps walk it backwards so that most of it is still cached.
      const bool back = (s & 1) != 0;
      for (int64_t gi = 0; gi < d.G; ++gi) {
        const int64_t g = bs == 1 && back ? d.G - 1 - gi : gi;
        float* out = (gru ? fb.gh_step : Gt) + g * d.H + u0;
        if (bs == 1)
          gemv_rows(n, d.H, W_hh + (g * d.H + u0) * d.H, d.H, cur, out, !gru, back);
        else
          gemm_packed(bs, cur, d.H, w[static_cast<size_t>(g)], out, d.GH, !gru);
      }
      for (int64_t j = 0; j < d.B; ++j) {
        const int64_t row = r0 + j;
        float* hn = next + j * d.H + u0;
        const float* hp = cur + j * d.H + u0;
        if (j >= bs || !row_valid(opt, t, j)) {
          std::memcpy(hn, hp, static_cast<size_t>(n) * fbytes);
          if (j >= bs) continue;
          // Static mode past the end of this sequence: keep the state, emit zeros.
          std::memset(fb.Y + row * d.H + u0, 0, static_cast<size_t>(n) * fbytes);
          for (int64_t g = 0; g < d.G; ++g) std::memset(Gt + j * d.GH + g * d.H + u0, 0, static_cast<size_t>(n) * fbytes);
          if (lstm) std::memcpy(fb.cells + row * d.H + u0, fb.c_state + j * d.H + u0, static_cast<size_t>(n) * fbytes);
          if (gru) std::memset(fb.ghn + row * d.H + u0, 0, static_cast<size_t>(n) * fbytes);
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
    if (k == 0) final_state.store(cur);
  });
  if (final_state.load() != fb.h_state)
    std::memcpy(fb.h_state, final_state.load(), static_cast<size_t>(d.B * d.H) * fbytes);
}

// Buffers of one backward pass.
struct BackwardBuffers {
  const float* act;     // (N, GH) activated gates from forward
  const float* cells;   // (N, H) LSTM
  const float* c_prev;  // (N, H) LSTM
  const float* h_prev;  // (N, H)
  const float* ghn;     // (N, H) GRU
  const float* dy;      // (N, H) or null
  float* dG;            // (N, GH) pre-activation gate grads (input side)
  float* dGh;           // (N, GH) GRU: hidden side
  float* dh_state;      // (B, H) sorted
  float* dc_state;      // (B, H) LSTM
};

// One barrier per step: each thread turns its units' dh into gate grads, then — once every
// thread's gate grads of the step exist — forms its units' slice of dh_prev = dG_t W_hh.
void backward_steps(const BackwardBuffers& bb, const Dims& d, const PackedBatch& pb, const float* W_hh,
                    const ops::RnnLayerOptions& opt) {
  const CellType cell = opt.cell;
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU, relu = cell == CellType::RNN_RELU;
  const int nt = slice_threads(d.H);
  SpinBarrier barrier(nt);
  thread_pool().run_on_all([&](int k) {
    if (k >= nt) return;
    const UnitSlice sl = unit_slice(d.H, k, nt);
    const int64_t n = sl.n(), u0 = sl.u0;
    const size_t slice_bytes = static_cast<size_t>(n) * sizeof(float);
    Tensor dh_row({n});
    float* dhr = dh_row.f32();
    PackedB w;  // W_hh[:, u0:u1], packed once: the operand of this slice of dh_prev = dG_t W_hh
    pack_b(&w, W_hh + u0, d.H, d.GH, n);
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = step_of(d, opt, s);
      const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
      const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t row = r0 + j;
        float* dhs = bb.dh_state + j * d.H + u0;
        float* dg = bb.dG + row * d.GH + u0;
        if (!row_valid(opt, t, j)) {
          // The state passed through unchanged: so does its gradient (dh_state keeps it).
          for (int64_t g = 0; g < d.G; ++g) std::memset(dg + g * d.H, 0, slice_bytes);
          if (gru)
            for (int64_t g = 0; g < d.G; ++g) std::memset(bb.dGh + row * d.GH + u0 + g * d.H, 0, slice_bytes);
          continue;
        }
        const float* dyr = bb.dy ? bb.dy + row * d.H + u0 : nullptr;
        for (int64_t u = 0; u < n; ++u) dhr[u] = dhs[u] + (dyr ? dyr[u] : 0.0f);
        const float* act = bb.act + row * d.GH + u0;
        if (lstm) {
          lstm_row_backward(dg, bb.dc_state + j * d.H + u0, dhr, act, bb.cells + row * d.H + u0,
                            bb.c_prev + row * d.H + u0, n, d.H);
          std::memset(dhs, 0, slice_bytes);
        } else if (gru) {
          gru_row_backward(dg, bb.dGh + row * d.GH + u0, dhs, dhr, act, bb.ghn + row * d.H + u0,
                           bb.h_prev + row * d.H + u0, n, d.H);
        } else {
          rnn_row_backward(dg, dhr, act, n, relu);
          std::memset(dhs, 0, slice_bytes);
        }
      }
      barrier.wait();
      const float* dgt = (gru ? bb.dGh : bb.dG) + r0 * d.GH;
      gemm_packed(bs, dgt, d.GH, w, bb.dh_state + u0, d.H, true);
      // The next step's pointwise work reads only this thread's own slice of dh_state, and the
      // gate grads it writes are other rows: no second barrier needed.
    }
  });
}

// Rebuilds each row's h_prev (and c_prev) by replaying the state sequence, in parallel over
// unit slices: the operands of dW_hh and of the LSTM/GRU pointwise backward.
void replay_previous_states(float* h_prev, float* c_prev, const ops::RnnCache& cache, const float* Y, const Dims& d,
                            const PackedBatch& pb, const ops::RnnLayerOptions& opt) {
  const bool lstm = opt.cell == CellType::LSTM;
  const int nt = slice_threads(d.H);
  thread_pool().run_on_all([&](int k) {
    if (k >= nt) return;
    const UnitSlice sl = unit_slice(d.H, k, nt);
    const size_t bytes = static_cast<size_t>(sl.n()) * sizeof(float);
    // Row j's current state for this slice lives at (state pointer j), pointing either into the
    // initial state or at the row of the step that last updated it.
    std::vector<const float*> hs(static_cast<size_t>(d.B)), cs(static_cast<size_t>(d.B));
    for (int64_t j = 0; j < d.B; ++j) {
      hs[static_cast<size_t>(j)] = cache.h0.f32() + j * d.H;
      if (lstm) cs[static_cast<size_t>(j)] = cache.c0.f32() + j * d.H;
    }
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = step_of(d, opt, s);
      const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
      const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t row = r0 + j;
        std::memcpy(h_prev + row * d.H + sl.u0, hs[static_cast<size_t>(j)] + sl.u0, bytes);
        if (lstm) {
          std::memcpy(c_prev + row * d.H + sl.u0, cs[static_cast<size_t>(j)] + sl.u0, bytes);
          cs[static_cast<size_t>(j)] = cache.cells.f32() + row * d.H;
        }
        if (row_valid(opt, t, j)) hs[static_cast<size_t>(j)] = Y + row * d.H;
      }
    }
  });
}

}  // namespace

void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, ops::RnnCache* cache, const Tensor& x,
                       const PackedBatch& pb, const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0,
                       const ops::RnnLayerOptions& opt) {
  const CellType cell = opt.cell;
  const Dims d = dims_of(x, pb, w, cell);
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU;

  Tensor gates({d.N, d.GH});
  sgemm(Trans::No, Trans::Yes, d.N, d.GH, d.I, 1.0f, x.f32(), d.I, w.w_ih->f32(), d.I, 0.0f, gates.f32(), d.GH);
  Tensor bias = input_bias(w, d, cell);
  Tensor bias_h = Tensor::zeros({d.GH});
  if (gru && w.b_hh) bias_h.copy_from(*w.b_hh);

  *y = Tensor({d.N, d.H});
  Tensor h_state = sorted_state(h0, pb, d.H);
  Tensor h_other({d.B, d.H});
  Tensor c_state = lstm ? sorted_state(c0, pb, d.H) : Tensor();
  if (cache) {
    cache->h0 = h_state.clone();
    if (lstm) cache->c0 = c_state.clone();
  }
  Tensor cells = lstm ? Tensor({d.N, d.H}) : Tensor();
  Tensor ghn = gru ? Tensor({d.N, d.H}) : Tensor();
  Tensor gh_step = gru ? Tensor({d.B, d.GH}) : Tensor();
  ForwardBuffers fb{gates.f32(),
                    bias.f32(),
                    bias_h.f32(),
                    y->f32(),
                    h_state.f32(),
                    h_other.f32(),
                    lstm ? c_state.f32() : nullptr,
                    lstm ? cells.f32() : nullptr,
                    gru ? ghn.f32() : nullptr,
                    gru ? gh_step.f32() : nullptr};
  forward_steps(fb, d, pb, w.w_hh->f32(), opt);

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

  Tensor h_prev({d.N, d.H});
  Tensor c_prev = lstm ? Tensor({d.N, d.H}) : Tensor();
  replay_previous_states(h_prev.f32(), lstm ? c_prev.f32() : nullptr, cache, y.f32(), d, pb, opt);

  Tensor dgates({d.N, d.GH});
  Tensor dgh = gru ? Tensor({d.N, d.GH}) : Tensor();
  Tensor dh_state = dhn ? permute_batch(*dhn, pb, true) : Tensor::zeros({d.B, d.H});
  Tensor dc_state = lstm ? (dcn ? permute_batch(*dcn, pb, true) : Tensor::zeros({d.B, d.H})) : Tensor();
  BackwardBuffers bb{cache.gates.f32(),
                     lstm ? cache.cells.f32() : nullptr,
                     lstm ? c_prev.f32() : nullptr,
                     h_prev.f32(),
                     gru ? cache.ghn.f32() : nullptr,
                     dy ? dy->f32() : nullptr,
                     dgates.f32(),
                     gru ? dgh.f32() : nullptr,
                     dh_state.f32(),
                     lstm ? dc_state.f32() : nullptr};
  backward_steps(bb, d, pb, w.w_hh->f32(), opt);
  add_unsorted(dh0, dh_state, pb);
  if (lstm) add_unsorted(dc0, dc_state, pb);

  // The weight gradients: one GEMM each over all tokens.
  const float* dG = dgates.f32();
  const float* dGh = gru ? dgh.f32() : dG;
  if (dx) sgemm(Trans::No, Trans::No, d.N, d.I, d.GH, 1.0f, dG, d.GH, w.w_ih->f32(), d.I, 1.0f, dx->f32(), d.I);
  if (dw.w_ih) sgemm(Trans::Yes, Trans::No, d.GH, d.I, d.N, 1.0f, dG, d.GH, x.f32(), d.I, 1.0f, dw.w_ih->f32(), d.I);
  if (dw.w_hh)
    sgemm(Trans::Yes, Trans::No, d.GH, d.H, d.N, 1.0f, dGh, d.GH, h_prev.f32(), d.H, 1.0f, dw.w_hh->f32(), d.H);
  if (dw.b_ih) add_column_sums(dw.b_ih->f32(), dG, d.N, d.GH, d.GH);
  if (dw.b_hh) add_column_sums(dw.b_hh->f32(), dGh, d.N, d.GH, d.GH);
}

}  // namespace recur::cpu
