// CUDA kernels of the packed LSTM/GRU/RNN layer: per-step pointwise kernels (forward and
// backward, used around cuBLAS step GEMMs), the previous-state builder, and a persistent forward
// kernel that runs the whole time loop in one cooperative launch with W_hh in shared memory.
#include <cooperative_groups.h>

#include <type_traits>

#include "rnn_kernels.h"

namespace cg = cooperative_groups;

namespace recur::kern {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ int step_of(const StepInfo& si, int s) { return si.reverse ? si.T - 1 - s : s; }

__device__ __forceinline__ bool step_valid(const StepInfo& si, int t, int j) { return !si.mask || t < si.mask[j]; }

unsigned grid_for(long long n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

__global__ void bias_kernel(float* out, const float* b_ih, const float* b_hh, bool add_hh, int n) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;
  if (g >= n) return;
  out[g] = (b_ih ? b_ih[g] : 0.0f) + (add_hh && b_hh ? b_hh[g] : 0.0f);
}

__global__ void gather_rows_kernel(uint32_t* out, const uint32_t* in, const int32_t* idx, int rows, int width,
                                   uint32_t pad) {
  const long long total = static_cast<long long>(rows) * width;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(e / width), c = static_cast<int>(e % width);
    const int src = idx[i];
    out[e] = src >= 0 ? in[static_cast<long long>(src) * width + c] : pad;
  }
}

// ---- forward pointwise, one thread per (sorted position j, unit u) of the step -------------------

template <int CELL>
__global__ void forward_step_kernel(int s, StepInfo si, int H, float* G, const float* gh, const float* bias,
                                    const float* bias_h, float* h_state, float* c_state, float* y, float* cells,
                                    float* ghn) {
  constexpr int NG = CELL == 0 ? 4 : CELL == 1 ? 3 : 1;
  const int t = step_of(si, s);
  const int bs = si.bs[t];
  const long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  const int j = static_cast<int>(e / H), u = static_cast<int>(e % H);
  if (j >= bs) return;
  const long long row = si.off[t] + j;
  const long long GH = static_cast<long long>(NG) * H;
  float* g = G + row * GH;
  const long long st = static_cast<long long>(j) * H + u;
  const long long yo = row * H + u;
  if (!step_valid(si, t, j)) {  // static mode past the end: keep the state, emit zeros
    y[yo] = 0.0f;
    for (int k = 0; k < NG; ++k) g[k * H + u] = 0.0f;
    if (CELL == 0) cells[yo] = c_state[st];
    if (CELL == 1) ghn[yo] = 0.0f;
    return;
  }
  float h;
  if (CELL == 0) {
    const float i = sigmoidf_(g[u] + bias[u]);
    const float f = sigmoidf_(g[H + u] + bias[H + u]);
    const float c_in = tanhf(g[2 * H + u] + bias[2 * H + u]);
    const float o = sigmoidf_(g[3 * H + u] + bias[3 * H + u]);
    const float c = f * c_state[st] + i * c_in;
    h = o * tanhf(c);
    g[u] = i, g[H + u] = f, g[2 * H + u] = c_in, g[3 * H + u] = o;
    c_state[st] = c;
    cells[yo] = c;
  } else if (CELL == 1) {
    const float* ghr = gh + static_cast<long long>(j) * GH;
    const float r = sigmoidf_(g[u] + bias[u] + ghr[u] + bias_h[u]);
    const float z = sigmoidf_(g[H + u] + bias[H + u] + ghr[H + u] + bias_h[H + u]);
    const float hn = ghr[2 * H + u] + bias_h[2 * H + u];
    const float c_in = tanhf(g[2 * H + u] + bias[2 * H + u] + r * hn);
    h = (1.0f - z) * c_in + z * h_state[st];
    g[u] = r, g[H + u] = z, g[2 * H + u] = c_in;
    ghn[yo] = hn;
  } else {
    const float a = g[u] + bias[u];
    h = CELL == 3 ? (a > 0.0f ? a : 0.0f) : tanhf(a);
    g[u] = h;
  }
  h_state[st] = h;
  y[yo] = h;
}

// ---- backward pointwise ------------------------------------------------------------------------

// Rows j < prev_bs first fold in the split-K partial sums P (S x B x H) of the previous processed
// step's dh_prev = dG W_hh (in a fixed order: deterministic); rows past this step's batch only fold.
template <int CELL>
__global__ void backward_step_kernel(int s, StepInfo si, int H, int bs, int prev_bs, const float* P, int S,
                                     const float* act, const float* cells, const float* c_prev, const float* h_prev,
                                     const float* ghn, const float* dy, float* dG, float* dGh, float* dh_state,
                                     float* dc_state) {
  constexpr int NG = CELL == 0 ? 4 : CELL == 1 ? 3 : 1;
  const int t = step_of(si, s);
  const long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  const int j = static_cast<int>(e / H), u = static_cast<int>(e % H);
  if (j >= bs && j >= prev_bs) return;
  const long long st = static_cast<long long>(j) * H + u;
  float dhs = dh_state[st];
  if (j < prev_bs)
    for (int q = 0; q < S; ++q) dhs += P[(static_cast<long long>(q) * si.B + j) * H + u];
  if (j >= bs) {
    dh_state[st] = dhs;
    return;
  }
  const long long row = si.off[t] + j;
  const long long GH = static_cast<long long>(NG) * H;
  float* dg = dG + row * GH;
  const long long ro = row * H + u;
  if (!step_valid(si, t, j)) {  // the state passed through unchanged: so does its gradient
    for (int k = 0; k < NG; ++k) dg[k * H + u] = 0.0f;
    if (CELL == 1)
      for (int k = 0; k < NG; ++k) dGh[row * GH + k * H + u] = 0.0f;
    dh_state[st] = dhs;
    return;
  }
  const float dh = dhs + (dy ? dy[ro] : 0.0f);
  const float* a = act + row * GH;
  if (CELL == 0) {
    const float i = a[u], f = a[H + u], c_in = a[2 * H + u], o = a[3 * H + u];
    const float tc = tanhf(cells[ro]);
    const float dcu = dc_state[st] + dh * o * (1.0f - tc * tc);
    dg[u] = dcu * c_in * i * (1.0f - i);
    dg[H + u] = dcu * c_prev[ro] * f * (1.0f - f);
    dg[2 * H + u] = dcu * i * (1.0f - c_in * c_in);
    dg[3 * H + u] = dh * tc * o * (1.0f - o);
    dc_state[st] = dcu * f;
    dh_state[st] = 0.0f;
  } else if (CELL == 1) {
    const float r = a[u], z = a[H + u], c_in = a[2 * H + u];
    const float dan = dh * (1.0f - z) * (1.0f - c_in * c_in);
    const float dz = dh * (h_prev[ro] - c_in) * z * (1.0f - z);
    const float dar = dan * ghn[ro] * r * (1.0f - r);
    float* dgh = dGh + row * GH;
    dg[u] = dar, dgh[u] = dar;
    dg[H + u] = dz, dgh[H + u] = dz;
    dg[2 * H + u] = dan;
    dgh[2 * H + u] = dan * r;
    dh_state[st] = dh * z;
  } else {
    dg[u] = CELL == 3 ? (a[u] > 0.0f ? dh : 0.0f) : dh * (1.0f - a[u] * a[u]);
    dh_state[st] = 0.0f;
  }
}

// ---- previous states --------------------------------------------------------------------------

__global__ void previous_states_kernel(StepInfo si, int H, const float* y, const float* cells, const float* h0,
                                       const float* c0, float* h_prev, float* c_prev) {
  const int s = blockIdx.y;
  const int t = step_of(si, s);
  const long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  const int j = static_cast<int>(e / H), u = static_cast<int>(e % H);
  if (j >= si.bs[t]) return;
  const long long row = si.off[t] + j;
  long long prow = -1;
  if (s > 0) {
    const int tp = step_of(si, s - 1);
    if (j < si.bs[tp] && step_valid(si, tp, j)) prow = si.off[tp] + j;
  }
  const long long st = static_cast<long long>(j) * H + u;
  h_prev[row * H + u] = prow >= 0 ? y[prow * H + u] : h0[st];
  if (c_prev) c_prev[row * H + u] = prow >= 0 ? cells[prow * H + u] : c0[st];
}

// ---- transposed state --------------------------------------------------------------------------

__global__ void state_in_kernel(float* hT, const float* h, int B, int H, int Bp) {
  const long long total = static_cast<long long>(H) * Bp;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int k = static_cast<int>(e / Bp), n = static_cast<int>(e % Bp);
    hT[e] = n < B ? h[static_cast<long long>(n) * H + k] : 0.0f;
  }
}

__global__ void state_out_kernel(float* h, const float* hT, int B, int H, int Bp) {
  const long long total = static_cast<long long>(B) * H;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int n = static_cast<int>(e / H), k = static_cast<int>(e % H);
    h[e] = hT[static_cast<long long>(k) * Bp + n];
  }
}

// ---- persistent forward -------------------------------------------------------------------------
//
// Block b owns hidden units [b*U, b*U+U) and their G gate rows of W_hh (R = G*U rows), held in
// shared memory transposed (Ws[k][r]) for the whole call. Each step:
//  1. every thread prefetches what its fixed (unit, batch position) items need from global memory
//     (input projections of the step's row, the previous state) into registers, so those loads
//     overlap the product;
//  2. the transposed state hT (H x Bp, written by all blocks at the previous step) streams from L2
//     into shared memory in chunks of KC rows with cp.async.cg (bypassing L1, double-buffered so
//     the next chunk loads while the current one is multiplied); threads tile 4 gate rows x 4
//     batch columns over a slice of each chunk's k, accumulating in registers;
//  3. the KS slices are reduced through shared memory and each thread applies the cell to its
//     items (the LSTM cell state stays in registers across steps), writes the outputs and its
//     part of the new state into the other buffer;
//  4. all blocks meet at one grid barrier.

constexpr int kItems = 4;  // (unit, batch position) items per thread: U * B <= kItems * kThreads

struct PersistArgs {
  StepInfo si;
  int H, U, Bp, R, KS, RG, NB, KC, kcs;
  const float* W;
  float* G;
  const float* bias;
  const float* bias_h;
  float* hT0;
  float* hT1;
  float* c_state;
  float* y;
  float* cells;
  float* ghn;
};

__device__ __forceinline__ void cp_async16(float* smem_dst, const float* gmem_src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Rows [c*KC, c*KC + rows) of the state (H x Bp floats) into a shared buffer, 16 bytes per copy.
__device__ __forceinline__ void load_chunk(float* buf, const float* cur, int c, int KC, int H, int Bp) {
  const int row0 = c * KC;
  const int rows = min(KC, H - row0);
  const int nvec = rows * Bp / 4;
  const float* src = cur + static_cast<long long>(row0) * Bp;
  for (int i = threadIdx.x; i < nvec; i += blockDim.x) cp_async16(buf + 4 * i, src + 4 * i);
  cp_async_commit();
}

template <int CELL>
__global__ void __launch_bounds__(kThreads, 1) persistent_forward_kernel(PersistArgs a) {
  constexpr int NGATE = CELL == 0 ? 4 : CELL == 1 ? 3 : 1;
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  const int H = a.H, U = a.U, R = a.R, Bp = a.Bp, KC = a.KC;
  const int B = a.si.B;
  const long long GH = static_cast<long long>(NGATE) * H;
  float* Ws = smem;                  // H * R
  float* hbuf0 = Ws + H * R;         // KC * Bp
  float* hbuf1 = hbuf0 + KC * Bp;    // KC * Bp
  float* part = hbuf1 + KC * Bp;     // KS * R * Bp
  const int j0 = blockIdx.x * U;
  const int Ub = min(U, H - j0);
  const int tid = threadIdx.x;

  for (int idx = tid; idx < H * R; idx += blockDim.x) {
    const int k = idx / R, r = idx % R;
    const int g = r / U, u = r % U;
    Ws[idx] = u < Ub ? a.W[(static_cast<long long>(g) * H + j0 + u) * H + k] : 0.0f;
  }

  // This thread's items: (unit u, batch position n) = (idx / B, idx % B), idx = tid + i * kThreads.
  const int n_items = Ub * B;
  float bias_r[kItems][NGATE], bias_hr[kItems][NGATE], c_r[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int idx = tid + i * kThreads;
    const int u = idx < n_items ? idx / B : 0, n = idx < n_items ? idx % B : 0;
    const int j = j0 + u;
#pragma unroll
    for (int g = 0; g < NGATE; ++g) {
      bias_r[i][g] = idx < n_items ? a.bias[g * H + j] : 0.0f;
      bias_hr[i][g] = idx < n_items && CELL == 1 ? a.bias_h[g * H + j] : 0.0f;
    }
    c_r[i] = idx < n_items && CELL == 0 ? a.c_state[static_cast<long long>(n) * H + j] : 0.0f;
  }
  __syncthreads();

  cg::grid_group grid = cg::this_grid();
  const int per_slice = a.RG * a.NB;
  const int ks = tid / per_slice, rem = tid % per_slice;
  const int rg = rem / a.NB, nb = rem % a.NB;
  const int nchunks = (H + KC - 1) / KC;

  for (int s = 0; s < a.si.T; ++s) {
    const int t = step_of(a.si, s);
    const int bs = a.si.bs[t];
    const long long r0 = a.si.off[t];
    const float* cur = (s & 1) ? a.hT1 : a.hT0;
    float* nxt = (s & 1) ? a.hT0 : a.hT1;

    load_chunk(hbuf0, cur, 0, KC, H, Bp);

    // 1. Prefetch the items' operands; they arrive while the product runs.
    float gx[kItems][NGATE], hp[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int idx = tid + i * kThreads;
      const int u = idx < n_items ? idx / B : 0, n = idx < n_items ? idx % B : 0;
      const int j = j0 + u;
      hp[i] = idx < n_items ? __ldcg(cur + static_cast<long long>(j) * Bp + n) : 0.0f;
      const float* gr = a.G + (r0 + n) * GH;
#pragma unroll
      for (int g = 0; g < NGATE; ++g) gx[i][g] = idx < n_items && n < bs ? gr[g * H + j] : 0.0f;
    }

    // 2. The block's slice of the recurrent product, chunk by chunk.
    const bool active = ks < a.KS && nb * 4 < bs;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][q] = 0.0f;
    for (int c = 0; c < nchunks; ++c) {
      float* buf = (c & 1) ? hbuf1 : hbuf0;
      if (c + 1 < nchunks) {
        load_chunk((c & 1) ? hbuf0 : hbuf1, cur, c + 1, KC, H, Bp);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      if (active) {
        const int rows = min(KC, H - c * KC);
        const int k0 = ks * a.kcs;
        const int k1 = min(rows, k0 + a.kcs);
        const float* wbase = Ws + (c * KC) * R + rg * 4;
        for (int k = k0; k < k1; ++k) {
          const float4 w = *reinterpret_cast<const float4*>(wbase + k * R);
          const float4 h = *reinterpret_cast<const float4*>(buf + k * Bp + nb * 4);
          const float wv[4] = {w.x, w.y, w.z, w.w};
          const float hv[4] = {h.x, h.y, h.z, h.w};
#pragma unroll
          for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[i][q] = fmaf(wv[i], hv[q], acc[i][q]);
        }
      }
      __syncthreads();  // the buffer is refilled two chunks later
    }
    if (active) {
#pragma unroll
      for (int i = 0; i < 4; ++i)
        *reinterpret_cast<float4*>(part + (ks * R + rg * 4 + i) * Bp + nb * 4) =
            make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    }
    __syncthreads();

    // 3. The cell, for this thread's items.
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int idx = tid + i * kThreads;
      if (idx >= n_items) continue;
      const int u = idx / B, n = idx % B;
      const int j = j0 + u;
      float* nx = nxt + static_cast<long long>(j) * Bp + n;
      if (n >= bs) {  // not active at this step: the state carries over
        *nx = hp[i];
        continue;
      }
      const long long row = r0 + n;
      float* gr = a.G + row * GH;
      const long long yo = row * H + j;
      float h;
      if (!step_valid(a.si, t, n)) {
        h = hp[i];
        a.y[yo] = 0.0f;
#pragma unroll
        for (int g = 0; g < NGATE; ++g) gr[g * H + j] = 0.0f;
        if constexpr (CELL == 0) a.cells[yo] = c_r[i];
        if constexpr (CELL == 1) a.ghn[yo] = 0.0f;
      } else {
        float pre[NGATE];
#pragma unroll
        for (int g = 0; g < NGATE; ++g) {
          float sum = 0.0f;
          for (int q = 0; q < a.KS; ++q) sum += part[(q * R + g * U + u) * Bp + n];
          pre[g] = sum;
        }
        if constexpr (CELL == 0) {
          const float ig = sigmoidf_(gx[i][0] + pre[0] + bias_r[i][0]);
          const float fg = sigmoidf_(gx[i][1] + pre[1] + bias_r[i][1]);
          const float c_in = tanhf(gx[i][2] + pre[2] + bias_r[i][2]);
          const float og = sigmoidf_(gx[i][3] + pre[3] + bias_r[i][3]);
          const float c = fg * c_r[i] + ig * c_in;
          h = og * tanhf(c);
          gr[j] = ig, gr[H + j] = fg, gr[2 * H + j] = c_in, gr[3 * H + j] = og;
          c_r[i] = c;
          a.cells[yo] = c;
        } else if constexpr (CELL == 1) {
          const float r = sigmoidf_(gx[i][0] + bias_r[i][0] + pre[0] + bias_hr[i][0]);
          const float z = sigmoidf_(gx[i][1] + bias_r[i][1] + pre[1] + bias_hr[i][1]);
          const float hn = pre[2] + bias_hr[i][2];
          const float c_in = tanhf(gx[i][2] + bias_r[i][2] + r * hn);
          h = (1.0f - z) * c_in + z * hp[i];
          gr[j] = r, gr[H + j] = z, gr[2 * H + j] = c_in;
          a.ghn[yo] = hn;
        } else {
          const float v = gx[i][0] + pre[0] + bias_r[i][0];
          h = CELL == 3 ? (v > 0.0f ? v : 0.0f) : tanhf(v);
          gr[j] = h;
        }
        a.y[yo] = h;
      }
      *nx = h;
    }
    // 4. Everyone's part of the new state is written before anyone reads it.
    grid.sync();
  }
  if constexpr (CELL == 0) {
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int idx = tid + i * kThreads;
      if (idx < n_items) a.c_state[static_cast<long long>(idx % B) * H + j0 + idx / B] = c_r[i];
    }
  }
}

// Calls f(std::integral_constant<int, CELL>) for the run-time cell code (0 LSTM, 1 GRU, 2 tanh, 3 relu):
// the one place that maps cell codes to kernel instantiations.
template <class F>
auto with_cell(int cell, F&& f) {
  switch (cell) {
    case 0: return f(std::integral_constant<int, 0>{});
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return f(std::integral_constant<int, 3>{});
  }
}

void* persistent_for(int cell) {
  return with_cell(cell, [](auto c) { return reinterpret_cast<void*>(&persistent_forward_kernel<decltype(c)::value>); });
}


// ---- the split-K tile of dh_prev = dG W_hh, shared by the per-step and persistent backward -----
//
// A CTA's tile: 64 batch rows x 32 hidden columns; thread (tn, tc) = (tid / 16, tid % 16) holds
// rows tn*4 .. tn*4+3 and columns tc*2, tc*2+1. As: 32 gate rows x 64 batch rows (row stride 68),
// W rows of the same 32 gate rows at w (row stride w_stride).
__device__ __forceinline__ void tile_fma32(const float* As, const float* w, int w_stride, int tn, int tc,
                                           float (&acc)[4][2]) {
#pragma unroll 8
  for (int r = 0; r < 32; ++r) {
    const float4 av4 = *reinterpret_cast<const float4*>(As + r * 68 + tn * 4);
    const float2 b = *reinterpret_cast<const float2*>(w + r * w_stride + tc * 2);
    const float av[4] = {av4.x, av4.y, av4.z, av4.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      acc[i][0] = fmaf(av[i], b.x, acc[i][0]);
      acc[i][1] = fmaf(av[i], b.y, acc[i][1]);
    }
  }
}

// Stores the tile's sums as split sp's partials: P[sp][n][c] for n < bs, c < H.
__device__ __forceinline__ void store_tile(float* P, const float (&acc)[4][2], int sp, int n0, int c0, int tn, int tc,
                                           int bs, int B, int H) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int n = n0 + tn * 4 + i;
    if (n >= bs) continue;
#pragma unroll
    for (int q = 0; q < 2; ++q) {
      const int c = c0 + tc * 2 + q;
      if (c < H) P[(static_cast<long long>(sp) * B + n) * H + c] = acc[i][q];
    }
  }
}

// ---- persistent backward ------------------------------------------------------------------------
//
// The backward time loop in one cooperative launch, two grid barriers per step:
//  A. each block turns dh of its hidden units (kept in registers across steps, like dc) into the
//     step's pre-activation gate grads dG (global: the weight gradients need them anyway), after
//     adding the previous step's partial products for its units;
//  B. each block owning a (32-column tile, reduction split) pair of W_hh — held in shared memory
//     for the whole call — forms its partial of dh_prev = dG_t W_hh for the step's rows: P[split].
// The split partials are summed in a fixed order in the next step's phase A: deterministic.

struct BackArgs {
  StepInfo si;
  int H, U, S, KR, CT;
  const float* W;
  const float* act;
  const float* cells;
  const float* c_prev;
  const float* h_prev;
  const float* ghn;
  const float* dy;
  float* dG;
  float* dGh;
  float* dh_state;
  float* dc_state;
  float* P;
};

template <int CELL>
__global__ void __launch_bounds__(kThreads, 1) persistent_backward_kernel(BackArgs a) {
  constexpr int NGATE = CELL == 0 ? 4 : CELL == 1 ? 3 : 1;
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  const int H = a.H, U = a.U, B = a.si.B, T = a.si.T;
  const long long GH = static_cast<long long>(NGATE) * H;
  const int tid = threadIdx.x;
  const int j0 = blockIdx.x * U;
  const int Ub = H - j0 < U ? (H - j0 > 0 ? H - j0 : 0) : U;
  const int n_items = Ub * B;

  // Phase B's pair and its stationary W_hh tile Wst[rl][c], rl < KR, c < 32.
  const bool has_pair = static_cast<int>(blockIdx.x) < a.CT * a.S;
  const int ct = blockIdx.x % a.CT, sp = blockIdx.x / a.CT;
  const int c0 = ct * 32, r_begin = sp * a.KR;
  const int r_end = min(static_cast<int>(GH), r_begin + a.KR);
  float* Wst = smem;                 // KR * 32
  float* As = Wst + a.KR * 32;       // 32 * 68, 16-byte aligned (KR*32 is a multiple of 4)
  if (has_pair) {
    for (int e = tid; e < a.KR * 32; e += kThreads) {
      const int rl = e / 32, c = e % 32;
      Wst[e] = r_begin + rl < r_end && c0 + c < H ? a.W[static_cast<long long>(r_begin + rl) * H + c0 + c] : 0.0f;
    }
  }

  float dh_r[kItems], dc_r[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int idx = tid + i * kThreads;
    const long long st = idx < n_items ? static_cast<long long>(idx % B) * H + j0 + idx / B : 0;
    dh_r[i] = idx < n_items ? a.dh_state[st] : 0.0f;
    dc_r[i] = idx < n_items && CELL == 0 ? a.dc_state[st] : 0.0f;
  }
  __syncthreads();

  cg::grid_group grid = cg::this_grid();
  const int tn = tid / 16, tc = tid % 16;
  int prev_bs = 0;
  for (int s = T - 1; s >= -1; --s) {
    // ---- phase A
    const int t = s >= 0 ? step_of(a.si, s) : 0;
    const int bs = s >= 0 ? a.si.bs[t] : 0;
    const long long r0 = s >= 0 ? a.si.off[t] : 0;
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int idx = tid + i * kThreads;
      if (idx >= n_items) continue;
      const int u = idx / B, n = idx % B;
      const int j = j0 + u;
      if (n < prev_bs) {
        float sum = 0.0f;
        for (int q = 0; q < a.S; ++q) sum += __ldcg(a.P + (static_cast<long long>(q) * B + n) * H + j);
        dh_r[i] += sum;
      }
      if (n >= bs) continue;
      const long long row = r0 + n;
      float* dg = a.dG + row * GH;
      if (!step_valid(a.si, t, n)) {
#pragma unroll
        for (int g = 0; g < NGATE; ++g) dg[g * H + j] = 0.0f;
        if constexpr (CELL == 1) {
#pragma unroll
          for (int g = 0; g < NGATE; ++g) a.dGh[row * GH + g * H + j] = 0.0f;
        }
        continue;
      }
      const long long ro = row * H + j;
      const float dh = dh_r[i] + (a.dy ? a.dy[ro] : 0.0f);
      const float* ac = a.act + row * GH;
      if constexpr (CELL == 0) {
        const float ig = ac[j], fg = ac[H + j], c_in = ac[2 * H + j], og = ac[3 * H + j];
        const float tc_ = tanhf(a.cells[ro]);
        const float dcu = dc_r[i] + dh * og * (1.0f - tc_ * tc_);
        dg[j] = dcu * c_in * ig * (1.0f - ig);
        dg[H + j] = dcu * a.c_prev[ro] * fg * (1.0f - fg);
        dg[2 * H + j] = dcu * ig * (1.0f - c_in * c_in);
        dg[3 * H + j] = dh * tc_ * og * (1.0f - og);
        dc_r[i] = dcu * fg;
        dh_r[i] = 0.0f;
      } else if constexpr (CELL == 1) {
        const float r = ac[j], z = ac[H + j], c_in = ac[2 * H + j];
        const float dan = dh * (1.0f - z) * (1.0f - c_in * c_in);
        const float dz = dh * (a.h_prev[ro] - c_in) * z * (1.0f - z);
        const float dar = dan * a.ghn[ro] * r * (1.0f - r);
        float* dgh = a.dGh + row * GH;
        dg[j] = dar, dgh[j] = dar;
        dg[H + j] = dz, dgh[H + j] = dz;
        dg[2 * H + j] = dan;
        dgh[2 * H + j] = dan * r;
        dh_r[i] = dh * z;
      } else {
        dg[j] = CELL == 3 ? (ac[j] > 0.0f ? dh : 0.0f) : dh * (1.0f - ac[j] * ac[j]);
        dh_r[i] = 0.0f;
      }
    }
    if (s < 0) break;
    grid.sync();  // the step's dG rows are complete

    // ---- phase B: P[sp][n][c0..c0+31] for n < bs
    if (has_pair) {
      const float* dGt = (CELL == 1 ? a.dGh : a.dG) + r0 * GH;
      for (int n0 = 0; n0 < bs; n0 += 64) {
        float acc[4][2];
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = 0.0f;
        float ra[8];
        auto load = [&](int rr) {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const int e = tid + i * kThreads;
            const int n = e / 32, r = e % 32;
            ra[i] = n0 + n < bs && rr + r < r_end ? __ldcg(dGt + static_cast<long long>(n0 + n) * GH + rr + r) : 0.0f;
          }
        };
        load(r_begin);
        for (int rr = r_begin; rr < r_end; rr += 32) {
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const int e = tid + i * kThreads;
            As[(e % 32) * 68 + e / 32] = ra[i];
          }
          __syncthreads();
          if (rr + 32 < r_end) load(rr + 32);
          tile_fma32(As, Wst + (rr - r_begin) * 32, 32, tn, tc, acc);
          __syncthreads();
        }
        store_tile(a.P, acc, sp, n0, c0, tn, tc, bs, B, H);
      }
    }
    prev_bs = bs;
    grid.sync();  // the partials are complete
  }

#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int idx = tid + i * kThreads;
    if (idx >= n_items) continue;
    const long long st = static_cast<long long>(idx % B) * H + j0 + idx / B;
    a.dh_state[st] = dh_r[i];
    if constexpr (CELL == 0) a.dc_state[st] = dc_r[i];
  }
}

void* backward_for(int cell) {
  return with_cell(cell, [](auto c) { return reinterpret_cast<void*>(&persistent_backward_kernel<decltype(c)::value>); });
}

int gates_of(int cell) { return cell == 0 ? 4 : cell == 1 ? 3 : 1; }

// The device's multiprocessors and opt-in shared memory per block; false without cooperative launch.
bool cooperative_limits(int device, int* sms, int* optin) {
  int coop = 0;
  if (cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaDeviceGetAttribute(optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return coop != 0;
}

// Blocks of `fn` (kThreads threads, `smem` dynamic bytes) that fit on one multiprocessor; 0 if none.
int blocks_per_sm(void* fn, size_t smem) {
  int per_sm = 0;
  if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, kThreads, smem) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return per_sm;
}


struct Tiling {
  int R, RG, NB, KS;
};

Tiling tiling(int cell, int U, int Bp) {
  Tiling t;
  t.R = gates_of(cell) * U;
  t.RG = t.R / 4;
  t.NB = Bp / 4;
  t.KS = kThreads / (t.RG * t.NB);
  if (t.KS < 1) t.KS = 1;
  return t;
}

template <int CELL>
cudaError_t launch_forward_step(int s, const StepInfo& si, int H, float* G, const float* gh, const float* bias,
                                const float* bias_h, float* h_state, float* c_state, float* y, float* cells,
                                float* ghn, int max_bs, cudaStream_t st) {
  forward_step_kernel<CELL><<<grid_for(static_cast<long long>(max_bs) * H), kThreads, 0, st>>>(
      s, si, H, G, gh, bias, bias_h, h_state, c_state, y, cells, ghn);
  return cudaGetLastError();
}

template <int CELL>
cudaError_t launch_backward_step(int s, const StepInfo& si, int H, int bs, int prev_bs, const float* P, int S,
                                 const float* act, const float* cells, const float* c_prev, const float* h_prev,
                                 const float* ghn, const float* dy, float* dG, float* dGh, float* dh_state,
                                 float* dc_state, cudaStream_t st) {
  const int rows = bs > prev_bs ? bs : prev_bs;
  if (rows == 0) return cudaSuccess;
  backward_step_kernel<CELL><<<grid_for(static_cast<long long>(rows) * H), kThreads, 0, st>>>(
      s, si, H, bs, prev_bs, P, S, act, cells, c_prev, h_prev, ghn, dy, dG, dGh, dh_state, dc_state);
  return cudaGetLastError();
}

// dh_prev partials: P[sp][n][c] = sum over r in split sp of dG[n][r] W[r][c], for n < bs, c < H.
// CTA tile: 64 batch rows x 32 hidden columns over a reduction range of KR gate rows, staged through
// shared memory 32 gate rows at a time (the next stage's loads issued before the current one's
// products); thread tile 4 rows x 2 columns.
__global__ void __launch_bounds__(kThreads) dh_partials_kernel(const float* dG, const float* W, int H, int GH, int bs,
                                                              int KR, float* P, int B) {
  const int c0 = blockIdx.x * 32, sp = blockIdx.y, n0 = blockIdx.z * 64;
  const int r_begin = sp * KR;
  const int r_end = min(GH, r_begin + KR);
  __shared__ __align__(16) float As[32][68];  // As[r][n]: the dG tile, transposed
  __shared__ __align__(16) float Bs[32][32];  // Bs[r][c]
  const int tid = threadIdx.x;
  const int tn = tid / 16, tc = tid % 16;
  float acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i) acc[i][0] = acc[i][1] = 0.0f;
  float ra[8], rb[4];
  auto load = [&](int rr) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int e = tid + i * kThreads;
      const int n = e / 32, r = e % 32;
      ra[i] = n0 + n < bs && rr + r < r_end ? dG[static_cast<long long>(n0 + n) * GH + rr + r] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = tid + i * kThreads;
      const int r = e / 32, c = e % 32;
      rb[i] = rr + r < r_end && c0 + c < H ? W[static_cast<long long>(rr + r) * H + c0 + c] : 0.0f;
    }
  };
  load(r_begin);
  for (int rr = r_begin; rr < r_end; rr += 32) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int e = tid + i * kThreads;
      As[e % 32][e / 32] = ra[i];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = tid + i * kThreads;
      Bs[e / 32][e % 32] = rb[i];
    }
    __syncthreads();
    if (rr + 32 < r_end) load(rr + 32);
    tile_fma32(&As[0][0], &Bs[0][0], 32, tn, tc, acc);
    __syncthreads();
  }
  store_tile(P, acc, sp, n0, c0, tn, tc, bs, B, H);
}

}  // namespace

cudaError_t rnn_bias(float* out, const float* b_ih, const float* b_hh, bool add_hh, int n, cudaStream_t s) {
  bias_kernel<<<grid_for(n), kThreads, 0, s>>>(out, b_ih, b_hh, add_hh, n);
  return cudaGetLastError();
}

cudaError_t gather_rows(void* out, const void* in, const int32_t* idx, int rows, int width_words, uint32_t pad,
                        cudaStream_t s) {
  if (rows == 0 || width_words == 0) return cudaSuccess;
  const long long total = static_cast<long long>(rows) * width_words;
  const unsigned blocks = grid_for(total) < 4096u ? grid_for(total) : 4096u;
  gather_rows_kernel<<<blocks, kThreads, 0, s>>>(static_cast<uint32_t*>(out), static_cast<const uint32_t*>(in), idx,
                                                  rows, width_words, pad);
  return cudaGetLastError();
}

cudaError_t rnn_forward_step(int cell, int s, const StepInfo& si, int H, float* G, const float* gh, const float* bias,
                             const float* bias_h, float* h_state, float* c_state, float* y, float* cells, float* ghn,
                             int max_bs, cudaStream_t st) {
  return with_cell(cell, [&](auto c) {
    return launch_forward_step<decltype(c)::value>(s, si, H, G, gh, bias, bias_h, h_state, c_state, y, cells, ghn,
                                                   max_bs, st);
  });
}

cudaError_t rnn_backward_step(int cell, int s, const StepInfo& si, int H, int bs, int prev_bs, const float* P, int S,
                              const float* act, const float* cells, const float* c_prev, const float* h_prev,
                              const float* ghn, const float* dy, float* dG, float* dGh, float* dh_state,
                              float* dc_state, cudaStream_t st) {
  return with_cell(cell, [&](auto c) {
    return launch_backward_step<decltype(c)::value>(s, si, H, bs, prev_bs, P, S, act, cells, c_prev, h_prev, ghn, dy,
                                                    dG, dGh, dh_state, dc_state, st);
  });
}

int rnn_dh_splits(int H, int GH, int B, int device) {
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    (void)cudaGetLastError();
    sms = 132;
  }
  const int tiles = ((H + 31) / 32) * ((B + 63) / 64);
  int S = (2 * sms + tiles - 1) / tiles;  // about two CTAs per multiprocessor
  const int max_s = (GH + 31) / 32;
  if (S > max_s) S = max_s;
  if (S < 1) S = 1;
  const int KR = ((GH + S - 1) / S + 31) / 32 * 32;
  return (GH + KR - 1) / KR;
}

cudaError_t rnn_dh_partials(const float* dG, const float* W, int H, int GH, int bs, int S, float* P, int B,
                            cudaStream_t st) {
  if (bs == 0) return cudaSuccess;
  const int KR = ((GH + S - 1) / S + 31) / 32 * 32;
  dim3 grid(static_cast<unsigned>((H + 31) / 32), static_cast<unsigned>(S), static_cast<unsigned>((bs + 63) / 64));
  dh_partials_kernel<<<grid, kThreads, 0, st>>>(dG, W, H, GH, bs, KR, P, B);
  return cudaGetLastError();
}

cudaError_t rnn_previous_states(const StepInfo& si, int H, const float* y, const float* cells, const float* h0,
                                const float* c0, float* h_prev, float* c_prev, int max_bs, cudaStream_t st) {
  if (si.T == 0) return cudaSuccess;
  dim3 grid(grid_for(static_cast<long long>(max_bs) * H), static_cast<unsigned>(si.T));
  previous_states_kernel<<<grid, kThreads, 0, st>>>(si, H, y, cells, h0, c0, h_prev, c_prev);
  return cudaGetLastError();
}

cudaError_t transpose_state_in(float* hT, const float* h, int B, int H, int Bp, cudaStream_t s) {
  const long long total = static_cast<long long>(H) * Bp;
  const unsigned blocks = grid_for(total) < 4096u ? grid_for(total) : 4096u;
  state_in_kernel<<<blocks, kThreads, 0, s>>>(hT, h, B, H, Bp);
  return cudaGetLastError();
}

cudaError_t transpose_state_out(float* h, const float* hT, int B, int H, int Bp, cudaStream_t s) {
  const long long total = static_cast<long long>(B) * H;
  if (total == 0) return cudaSuccess;
  const unsigned blocks = grid_for(total) < 4096u ? grid_for(total) : 4096u;
  state_out_kernel<<<blocks, kThreads, 0, s>>>(h, hT, B, H, Bp);
  return cudaGetLastError();
}

bool rnn_persistent_plan(int cell, int H, int B, int device, PersistentPlan* plan) {
  int sms = 0, optin = 0;
  if (!cooperative_limits(device, &sms, &optin) || H <= 0 || B <= 0) return false;
  const int G = gates_of(cell);
  const int Bp = (B + 3) / 4 * 4;
  int U = 1;
  while ((G * U) % 4 != 0 || (H + U - 1) / U > sms) ++U;
  if (static_cast<long long>(U) * B > static_cast<long long>(kItems) * kThreads) return false;
  const Tiling tl = tiling(cell, U, Bp);
  if (tl.RG * tl.NB > kThreads) return false;
  // State chunks (rows of hT) of at most 32 KB, so that several stream in while earlier ones are
  // multiplied, and small enough to fit beside the weights and the partial sums.
  size_t smem = 0;
  int KC = 0;
  for (int kc : {1024, 512, 256, 128, 64, 32, 16, 8}) {
    if (kc > 8 && static_cast<size_t>(kc) * Bp * sizeof(float) > (size_t(32) << 10)) continue;
    const int rows = kc < H ? kc : H;
    const size_t bytes = (static_cast<size_t>(H) * tl.R + 2 * static_cast<size_t>(rows) * Bp +
                          static_cast<size_t>(tl.KS) * tl.R * Bp) *
                         sizeof(float);
    if (bytes <= static_cast<size_t>(optin)) {
      KC = rows;
      smem = bytes;
      break;
    }
  }
  if (KC == 0) return false;
  const int per_sm = blocks_per_sm(persistent_for(cell), smem);
  const int blocks = (H + U - 1) / U;
  if (per_sm * sms < blocks) return false;
  plan->units = U;
  plan->blocks = blocks;
  plan->bp = Bp;
  plan->chunk = KC;
  plan->smem = smem;
  return true;
}

cudaError_t rnn_forward_persistent(int cell, const PersistentPlan& plan, const StepInfo& si, int H,
                                   const float* W_hh, float* G, const float* bias, const float* bias_h, float* hT0,
                                   float* hT1, float* c_state, float* y, float* cells, float* ghn, cudaStream_t st) {
  const Tiling tl = tiling(cell, plan.units, plan.bp);
  PersistArgs a;
  a.si = si;
  a.H = H;
  a.U = plan.units;
  a.Bp = plan.bp;
  a.R = tl.R;
  a.KS = tl.KS;
  a.RG = tl.RG;
  a.NB = tl.NB;
  a.KC = plan.chunk;
  a.kcs = (plan.chunk + tl.KS - 1) / tl.KS;
  a.W = W_hh;
  a.G = G;
  a.bias = bias;
  a.bias_h = bias_h;
  a.hT0 = hT0;
  a.hT1 = hT1;
  a.c_state = c_state;
  a.y = y;
  a.cells = cells;
  a.ghn = ghn;
  void* args[] = {&a};
  return cudaLaunchCooperativeKernel(persistent_for(cell), dim3(plan.blocks), dim3(kThreads), args, plan.smem, st);
}

bool rnn_backward_plan(int cell, int H, int B, int device, BackwardPlan* plan) {
  int sms = 0, optin = 0;
  if (!cooperative_limits(device, &sms, &optin) || H <= 0 || B <= 0) return false;
  const int GH = gates_of(cell) * H;
  const int blocks = sms;
  const int U = (H + blocks - 1) / blocks;
  if (static_cast<long long>(U) * B > static_cast<long long>(kItems) * kThreads) return false;
  const int CT = (H + 31) / 32;
  if (CT > blocks) return false;
  int S = blocks / CT;
  const int KR = ((GH + S - 1) / S + 31) / 32 * 32;
  S = (GH + KR - 1) / KR;
  const size_t smem = (static_cast<size_t>(KR) * 32 + 32 * 68) * sizeof(float);
  if (smem > static_cast<size_t>(optin)) return false;
  const int per_sm = blocks_per_sm(backward_for(cell), smem);
  if (per_sm < 1) return false;
  plan->blocks = blocks;
  plan->units = U;
  plan->splits = S;
  plan->kr = KR;
  plan->col_tiles = CT;
  plan->smem = smem;
  return true;
}

cudaError_t rnn_backward_persistent(int cell, const BackwardPlan& plan, const StepInfo& si, int H, const float* W_hh,
                                    const float* act, const float* cells, const float* c_prev, const float* h_prev,
                                    const float* ghn, const float* dy, float* dG, float* dGh, float* dh_state,
                                    float* dc_state, float* P, cudaStream_t st) {
  BackArgs a;
  a.si = si;
  a.H = H;
  a.U = plan.units;
  a.S = plan.splits;
  a.KR = plan.kr;
  a.CT = plan.col_tiles;
  a.W = W_hh;
  a.act = act;
  a.cells = cells;
  a.c_prev = c_prev;
  a.h_prev = h_prev;
  a.ghn = ghn;
  a.dy = dy;
  a.dG = dG;
  a.dGh = dGh;
  a.dh_state = dh_state;
  a.dc_state = dc_state;
  a.P = P;
  void* args[] = {&a};
  return cudaLaunchCooperativeKernel(backward_for(cell), dim3(plan.blocks), dim3(kThreads), args, plan.smem, st);
}

}  // namespace recur::kern
