#pragma once
/// \file One recurrent layer (one direction) over a packed batch: LSTM, GRU or Elman RNN.
///
/// Weights follow PyTorch's nn.LSTM/GRU/RNN layouts: w_ih (G*H, I), w_hh (G*H, H), b_ih and
/// b_hh (G*H) with G = 4 (LSTM gates i, f, g, o), 3 (GRU gates r, z, n) or 1 (RNN). The GRU new
/// gate is n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
///
/// Speed structure: the input projection of all tokens is one GEMM; each step runs one recurrent
/// GEMM on the batch_sizes[t] rows still active and one fused pointwise loop; backward forms the
/// weight gradients as single GEMMs over all tokens.
#include <cstdint>
#include <vector>

#include "recur/core/tape.h"
#include "recur/core/tensor.h"
#include "recur/seq/packed.h"

namespace recur::ops {

enum class CellType { LSTM, GRU, RNN_TANH, RNN_RELU };

/// 4, 3, 1, 1.
int64_t gate_count(CellType cell);
const char* cell_name(CellType cell);

struct RnnLayerOptions {
  CellType cell = CellType::LSTM;
  /// Walk the steps from last to first (the backward half of a bidirectional layer).
  bool reverse = false;
  /// Static (padded) mode: the layout is PackedBatch::fixed(T, B), every step computes all B rows,
  /// and these lengths (original order) mask the steps past each sequence's end: the state is
  /// carried unchanged and the output row is zero. Empty for packed mode.
  std::vector<int64_t> mask_lengths;
};

/// The layer's weights. b_ih/b_hh may be null (bias=false).
struct RnnWeights {
  const Tensor* w_ih = nullptr;  // (G*H, I)
  const Tensor* w_hh = nullptr;  // (G*H, H)
  const Tensor* b_ih = nullptr;  // (G*H) or null
  const Tensor* b_hh = nullptr;  // (G*H) or null
};

/// Gradient slots, each added into (+=); any may be null when not wanted.
struct RnnWeightGrads {
  Tensor* w_ih = nullptr;
  Tensor* w_hh = nullptr;
  Tensor* b_ih = nullptr;
  Tensor* b_hh = nullptr;
};

/// What forward keeps for backward.
struct RnnCache {
  Tensor gates;  ///< (N, G*H) activated gates (RNN: the new hidden state)
  Tensor cells;  ///< (N, H) LSTM cell state c_t (masked rows: the carried state)
  Tensor ghn;    ///< (N, H) GRU: W_hn h_prev + b_hn
  Tensor h0;     ///< (B, H) initial hidden state, sorted order
  Tensor c0;     ///< (B, H) initial cell state, sorted order (LSTM)
};

/// Forward. Assigns y (N, H) packed outputs, hn and cn (B, H) final states in original batch order
/// (cn only for LSTM; pass null otherwise). x: (N, I) packed. h0, c0: (B, H) original order or
/// null (zeros). `cache` may be null for inference.
void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, RnnCache* cache, const Tensor& x, const PackedBatch& pb,
                       const RnnWeights& w, const Tensor* h0, const Tensor* c0, const RnnLayerOptions& opt);

/// Backward. dy: (N, H) or null; dhn, dcn: (B, H) original order or null. Adds into dx (N, I),
/// dh0 and dc0 (B, H, original order) and the weight gradients; each may be null.
void rnn_layer_backward(Tensor* dx, Tensor* dh0, Tensor* dc0, const RnnWeightGrads& dw, const Tensor* dy,
                        const Tensor* dhn, const Tensor* dcn, const RnnCache& cache, const Tensor& x, const Tensor& y,
                        const PackedBatch& pb, const RnnWeights& w, const RnnLayerOptions& opt);

}  // namespace recur::ops

namespace recur::ref {

/// Naive double-precision reference of rnn_layer_forward (F64 tensors; same shapes and meaning).
/// Runs each sequence on its own, step by step, with plain loops: the spec for the fast path.
void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, const Tensor& x, const PackedBatch& pb,
                       const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0, const ops::RnnLayerOptions& opt);

/// Naive BPTT in double; adds into the given gradients (F64).
void rnn_layer_backward(Tensor* dx, Tensor* dh0, Tensor* dc0, const ops::RnnWeightGrads& dw, const Tensor* dy,
                        const Tensor* dhn, const Tensor* dcn, const Tensor& x, const PackedBatch& pb,
                        const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0,
                        const ops::RnnLayerOptions& opt);

}  // namespace recur::ref

namespace recur {

struct RnnLayerOutput {
  Var y;   ///< (N, H) packed
  Var hn;  ///< (B, H) original order
  Var cn;  ///< (B, H) LSTM only
};

/// Differentiable layer. b_ih/b_hh/h0/c0 may be undefined Vars.
RnnLayerOutput rnn_layer(Tape& tape, const Var& x, const PackedBatch& pb, const Var& w_ih, const Var& w_hh,
                         const Var& b_ih, const Var& b_hh, const Var& h0, const Var& c0,
                         const ops::RnnLayerOptions& opt);

}  // namespace recur
