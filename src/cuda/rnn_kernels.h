#pragma once
// Launchers of the recurrent-layer CUDA kernels (internal; raw pointers, see kernels.h).
//
// Cell codes: 0 LSTM (gates i,f,g,o), 1 GRU (r,z,n), 2 RNN tanh, 3 RNN relu. Packed layout as in
// PackedBatch: step t owns rows off[t] .. off[t]+bs[t]-1, sorted position j = row - off[t]; the
// active sequences of a step are the leading sorted positions. `mask` (nullable, per sorted
// position) marks static padded mode: step t of position j is valid when t < mask[j]; invalid
// steps carry the state and emit zeros.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace recur::kern {

/// Per-step bookkeeping on the device: bs[T], off[T+1], mask[B] or null.
struct StepInfo {
  const int32_t* bs;
  const int32_t* off;
  const int32_t* mask;
  int T;
  int B;
  bool reverse;
};

/// out[g] = (b_ih ? b_ih[g] : 0) + (add_hh && b_hh ? b_hh[g] : 0), g < n.
cudaError_t rnn_bias(float* out, const float* b_ih, const float* b_hh, bool add_hh, int n, cudaStream_t s);

/// out row i = in row idx[i] (rows of `width_words` 32-bit words), or `pad` words where idx[i] < 0.
cudaError_t gather_rows(void* out, const void* in, const int32_t* idx, int rows, int width_words, uint32_t pad,
                        cudaStream_t s);

/// Pointwise forward of processing step `s` (after the recurrent GEMM): G rows of the step hold
/// x W_ih^T + h W_hh^T (GRU: x W_ih^T only, with h W_hh^T in gh (B, 3H)). Updates h_state/c_state
/// (B, H) in place and writes y, activated gates, cells (LSTM) and ghn (GRU) rows.
cudaError_t rnn_forward_step(int cell, int s, const StepInfo& si, int H, float* G, const float* gh,
                             const float* bias, const float* bias_h, float* h_state, float* c_state, float* y,
                             float* cells, float* ghn, int max_bs, cudaStream_t st);

/// The whole time loop in one cooperative launch (weights stay in shared memory; one grid barrier
/// per step). Returns cudaErrorNotSupported when the shapes do not fit (caller falls back).
/// hT0/hT1: (H, Bp) transposed state buffers, hT0 holding h0 and padding columns zero; after the
/// call the final state is in hT[T % 2]. c_state (B, H) sorted, updated in place.
struct PersistentPlan {
  int units = 0;    // hidden units per block
  int blocks = 0;   // grid size
  int bp = 0;       // batch padded to a multiple of 4
  int chunk = 0;    // rows of the state streamed into shared memory at a time
  size_t smem = 0;  // dynamic shared memory bytes
};
/// Chooses a plan for this device, or returns false when the persistent kernel cannot run.
bool rnn_persistent_plan(int cell, int H, int B, int device, PersistentPlan* plan);
cudaError_t rnn_forward_persistent(int cell, const PersistentPlan& plan, const StepInfo& si, int H,
                                   const float* W_hh, float* G, const float* bias, const float* bias_h, float* hT0,
                                   float* hT1, float* c_state, float* y, float* cells, float* ghn, cudaStream_t st);
/// hT (H, Bp) <-> h (B, H).
cudaError_t transpose_state_in(float* hT, const float* h, int B, int H, int Bp, cudaStream_t s);
cudaError_t transpose_state_out(float* h, const float* hT, int B, int H, int Bp, cudaStream_t s);

/// Pointwise backward of processing step `s` (`bs` active rows): first adds the split-K partials
/// P (S x B x H; null/S=0 for none) of the previous processed step's recurrent product into
/// dh_state rows j < prev_bs, then turns dh_state (+ dy rows) into pre-activation gate grads dG
/// (GRU: also the hidden-side dGh) and updates dh_state/dc_state in place as the CPU path does.
/// bs = 0 only folds the partials (after the last step).
cudaError_t rnn_backward_step(int cell, int s, const StepInfo& si, int H, int bs, int prev_bs, const float* P, int S,
                              const float* act, const float* cells, const float* c_prev, const float* h_prev,
                              const float* ghn, const float* dy, float* dG, float* dGh, float* dh_state,
                              float* dc_state, cudaStream_t st);

/// The reduction splits rnn_dh_partials uses for these sizes (about two CTAs per multiprocessor).
int rnn_dh_splits(int H, int GH, int B, int device);
/// P[sp][n][c] (S x B x H) = split sp's share of (dG W)[n][c] for the step's bs rows: dG (bs x GH)
/// rows of the step, W = W_hh (GH x H). Summed by the next rnn_backward_step, in order.
cudaError_t rnn_dh_partials(const float* dG, const float* W, int H, int GH, int bs, int S, float* P, int B,
                            cudaStream_t st);

/// h_prev (N, H) and c_prev (LSTM; may be null) of every row: the previous processed step's row when
/// it is active and valid, else h0/c0 (sorted, (B, H)).
cudaError_t rnn_previous_states(const StepInfo& si, int H, const float* y, const float* cells, const float* h0,
                                const float* c0, float* h_prev, float* c_prev, int max_bs, cudaStream_t st);

/// The backward time loop in one cooperative launch (W_hh tiles in shared memory, two grid barriers
/// per step; dh/dc of each block's units in registers). dh_state/dc_state (B, H) sorted: in the
/// gradients arriving at the final states, out the gradients of the initial states. P: workspace
/// of splits x B x H floats.
struct BackwardPlan {
  int blocks = 0, units = 0, splits = 0, kr = 0, col_tiles = 0;
  size_t smem = 0;
};
bool rnn_backward_plan(int cell, int H, int B, int device, BackwardPlan* plan);
cudaError_t rnn_backward_persistent(int cell, const BackwardPlan& plan, const StepInfo& si, int H, const float* W_hh,
                                    const float* act, const float* cells, const float* c_prev, const float* h_prev,
                                    const float* ghn, const float* dy, float* dG, float* dGh, float* dh_state,
                                    float* dc_state, float* P, cudaStream_t st);

}  // namespace recur::kern
