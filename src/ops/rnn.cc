// Shape checks, dispatch and the autograd wrapper of one recurrent layer.
#include "recur/ops/rnn.h"

#include <memory>
#include "recur/ops/util.h"

#include "../cpu/rnn_cpu.h"
#include "../cuda/rnn_cuda.h"

namespace recur::ops {

int64_t gate_count(CellType cell) {
  switch (cell) {
    case CellType::LSTM: return 4;
    case CellType::GRU: return 3;
    case CellType::RNN_TANH:
    case CellType::RNN_RELU: return 1;
  }
  RECUR_FAIL("unknown cell type {}", static_cast<int>(cell));
}

const char* cell_name(CellType cell) {
  switch (cell) {
    case CellType::LSTM: return "lstm";
    case CellType::GRU: return "gru";
    case CellType::RNN_TANH: return "rnn_tanh";
    case CellType::RNN_RELU: return "rnn_relu";
  }
  return "?";
}

namespace {

void check_layer(const Tensor& x, const PackedBatch& pb, const RnnWeights& w, const Tensor* h0, const Tensor* c0,
                 const RnnLayerOptions& opt, DType dt) {
  const char* name = cell_name(opt.cell);
  RECUR_CHECK(w.w_ih && w.w_hh, "{} layer: weights missing", name);
  RECUR_CHECK(w.w_hh->ndim() == 2, "{} layer: weight_hh must be (G*H, H), got {}", name, w.w_hh->shape_str());
  const int64_t H = w.w_hh->dim(1), GH = gate_count(opt.cell) * H;
  RECUR_CHECK(x.ndim() == 2, "{} layer: input must be packed (N, I), got {}", name, x.shape_str());
  RECUR_CHECK(x.dim(0) == pb.tokens(), "{} layer: input has {} rows but the batch layout has {} tokens", name,
              x.dim(0), pb.tokens());
  RECUR_CHECK(x.dtype() == dt, "{} layer: input dtype {} (expected {})", name, dtype_name(x.dtype()), dtype_name(dt));
  w.w_hh->check_shape({GH, H}, "weight_hh");
  w.w_ih->check_shape({GH, x.dim(1)}, "weight_ih");
  if (w.b_ih) w.b_ih->check_shape({GH}, "bias_ih");
  if (w.b_hh) w.b_hh->check_shape({GH}, "bias_hh");
  if (h0) h0->check_shape({pb.batch(), H}, "h0");
  if (c0) {
    RECUR_CHECK(opt.cell == CellType::LSTM, "{} layer: c0 is only for LSTM", name);
    c0->check_shape({pb.batch(), H}, "c0");
  }
  if (!opt.mask_lengths.empty()) {
    RECUR_CHECK(static_cast<int64_t>(opt.mask_lengths.size()) == pb.batch(),
                "{} layer: {} mask lengths for a batch of {}", name, opt.mask_lengths.size(), pb.batch());
    for (int64_t b = 0; b < pb.batch(); ++b)
      RECUR_CHECK(pb.lengths[static_cast<size_t>(b)] == pb.steps() && pb.sorted_indices[static_cast<size_t>(b)] == b,
                  "{} layer: static (masked) mode needs a fixed layout", name);
  }
}

// The CPU path reads every operand with host pointers: all of them must be host tensors.
void check_on_cpu(const Tensor& x, const RnnWeights& w, const Tensor* a, const Tensor* b) {
  for (const Tensor* t : {&x, w.w_ih, w.w_hh, w.b_ih, w.b_hh, a, b})
    RECUR_CHECK(!t || !t->defined() || t->device().is_cpu(), "rnn layer: input {} is on the CPU but a tensor {} is on {}",
                x.shape_str(), t->shape_str(), t->device().str());
}

}  // namespace

void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, RnnCache* cache, const Tensor& x, const PackedBatch& pb,
                       const RnnWeights& w, const Tensor* h0, const Tensor* c0, const RnnLayerOptions& opt) {
  check_layer(x, pb, w, h0, c0, opt, DType::F32);
  if (x.device().is_cuda()) {
    cuda::rnn_layer_forward(y, hn, cn, cache, x, pb, w, h0, c0, opt);
    return;
  }
  check_on_cpu(x, w, h0, c0);
  cpu::rnn_layer_forward(y, hn, cn, cache, x, pb, w, h0, c0, opt);
}

void rnn_layer_backward(Tensor* dx, Tensor* dh0, Tensor* dc0, const RnnWeightGrads& dw, const Tensor* dy,
                        const Tensor* dhn, const Tensor* dcn, const RnnCache& cache, const Tensor& x, const Tensor& y,
                        const PackedBatch& pb, const RnnWeights& w, const RnnLayerOptions& opt) {
  check_layer(x, pb, w, nullptr, nullptr, opt, DType::F32);
  const int64_t H = w.w_hh->dim(1);
  RECUR_CHECK(cache.gates.defined(), "rnn layer backward: forward ran without a cache");
  if (dy) dy->check_shape({pb.tokens(), H}, "rnn backward: dy");
  if (dhn) dhn->check_shape({pb.batch(), H}, "rnn backward: dhn");
  if (dcn) dcn->check_shape({pb.batch(), H}, "rnn backward: dcn");
  if (dx) dx->check_shape(x.shape(), "rnn backward: dx");
  if (x.device().is_cuda()) {
    cuda::rnn_layer_backward(dx, dh0, dc0, dw, dy, dhn, dcn, cache, x, y, pb, w, opt);
    return;
  }
  check_on_cpu(x, w, dy, dhn);
  cpu::rnn_layer_backward(dx, dh0, dc0, dw, dy, dhn, dcn, cache, x, y, pb, w, opt);
}

}  // namespace recur::ops

namespace recur {

namespace {

// Double precision (a whole model run in double for gradient checks): the naive reference, which
// recomputes the forward pass in backward instead of caching it.
RnnLayerOutput rnn_layer_f64(Tape& tape, const Var& x, const PackedBatch& pb, const Var& w_ih, const Var& w_hh,
                             const Var& b_ih, const Var& b_hh, const Var& h0, const Var& c0,
                             const ops::RnnLayerOptions& opt, bool tracked) {
  auto weights = [](const Var& wi, const Var& wh, const Var& bi, const Var& bh) {
    return ops::RnnWeights{&wi.value(), &wh.value(), bi.defined() ? &bi.value() : nullptr,
                           bh.defined() ? &bh.value() : nullptr};
  };
  const bool lstm = opt.cell == ops::CellType::LSTM;
  Tensor y, hn, cn;
  ref::rnn_layer_forward(&y, &hn, lstm ? &cn : nullptr, x.value(), pb, weights(w_ih, w_hh, b_ih, b_hh),
                         h0.defined() ? &h0.value() : nullptr, c0.defined() ? &c0.value() : nullptr, opt);
  RnnLayerOutput out{make_output(y, tracked), make_output(hn, tracked), lstm ? make_output(cn, tracked) : Var()};
  if (!tracked) return out;
  tape.record([x, pb, w_ih, w_hh, b_ih, b_hh, h0, c0, opt, out, weights]() {
    // The reference adds into defined slots: allocate the wanted ones as zeros first.
    auto slot = [](const Var& v) -> Tensor* {
      if (!v.defined() || !v.requires_grad()) return nullptr;
      ops::prepare_grad(&v.grad(), v.value().shape(), DType::F64, "rnn_layer", "gradient");
      return &v.grad();
    };
    ops::RnnWeightGrads dw{slot(w_ih), slot(w_hh), slot(b_ih), slot(b_hh)};
    ref::rnn_layer_backward(slot(x), slot(h0), slot(c0), dw, out.y.has_grad() ? &out.y.grad() : nullptr,
                            out.hn.has_grad() ? &out.hn.grad() : nullptr,
                            out.cn.defined() && out.cn.has_grad() ? &out.cn.grad() : nullptr, x.value(), pb,
                            weights(w_ih, w_hh, b_ih, b_hh), h0.defined() ? &h0.value() : nullptr,
                            c0.defined() ? &c0.value() : nullptr, opt);
  });
  return out;
}

}  // namespace

RnnLayerOutput rnn_layer(Tape& tape, const Var& x, const PackedBatch& pb, const Var& w_ih, const Var& w_hh,
                         const Var& b_ih, const Var& b_hh, const Var& h0, const Var& c0,
                         const ops::RnnLayerOptions& opt) {
  ops::RnnWeights w{&w_ih.value(), &w_hh.value(), b_ih.defined() ? &b_ih.value() : nullptr,
                    b_hh.defined() ? &b_hh.value() : nullptr};
  const bool lstm = opt.cell == ops::CellType::LSTM;
  const bool tracked = tape.needs_grad({&x, &w_ih, &w_hh, &b_ih, &b_hh, &h0, &c0});
  if (x.value().dtype() == DType::F64) return rnn_layer_f64(tape, x, pb, w_ih, w_hh, b_ih, b_hh, h0, c0, opt, tracked);
  auto cache = tracked ? std::make_shared<ops::RnnCache>() : nullptr;
  Tensor y, hn, cn;
  ops::rnn_layer_forward(&y, &hn, lstm ? &cn : nullptr, cache.get(), x.value(), pb, w,
                         h0.defined() ? &h0.value() : nullptr, c0.defined() ? &c0.value() : nullptr, opt);
  RnnLayerOutput out{make_output(y, tracked), make_output(hn, tracked), lstm ? make_output(cn, tracked) : Var()};
  if (tracked) {
    tape.record([x, pb, w_ih, w_hh, b_ih, b_hh, h0, c0, opt, cache, out]() {
      ops::RnnWeights wt{&w_ih.value(), &w_hh.value(), b_ih.defined() ? &b_ih.value() : nullptr,
                         b_hh.defined() ? &b_hh.value() : nullptr};
      ops::RnnWeightGrads dw{w_ih.requires_grad() ? &w_ih.grad() : nullptr,
                             w_hh.requires_grad() ? &w_hh.grad() : nullptr,
                             b_ih.requires_grad() ? &b_ih.grad() : nullptr,
                             b_hh.requires_grad() ? &b_hh.grad() : nullptr};
      ops::rnn_layer_backward(x.requires_grad() ? &x.grad() : nullptr, h0.requires_grad() ? &h0.grad() : nullptr,
                              c0.requires_grad() ? &c0.grad() : nullptr, dw,
                              out.y.has_grad() ? &out.y.grad() : nullptr, out.hn.has_grad() ? &out.hn.grad() : nullptr,
                              out.cn.defined() && out.cn.has_grad() ? &out.cn.grad() : nullptr, *cache, x.value(),
                              out.y.value(), pb, wt, opt);
    });
  }
  return out;
}

}  // namespace recur
