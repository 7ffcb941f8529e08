// Naive double-precision reference for one recurrent layer: each sequence on its own, step by
// step, with plain loops. This is the spec the fast packed path is tested against.
#include <cmath>
#include <vector>

#include "recur/ops/rnn.h"

namespace recur::ref {

namespace {

using Vec = std::vector<double>;

double sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }

struct Dims {
  int64_t G, H, I;
};

// out[g] = b[g] + sum_k W[g, k] v[k] (b may be null).
void matvec(Vec& out, const Tensor& W, const Tensor* b, const double* v, int64_t cols) {
  const double* w = W.data<double>();
  for (size_t g = 0; g < out.size(); ++g) {
    double s = b ? b->data<double>()[g] : 0.0;
    for (int64_t k = 0; k < cols; ++k) s += w[static_cast<int64_t>(g) * cols + k] * v[k];
    out[g] = s;
  }
}

// Everything one step needs for backward.
struct StepRecord {
  int64_t row;
  Vec h_prev, c_prev, act, c, gh;
};

int64_t seq_length(const PackedBatch& pb, const ops::RnnLayerOptions& opt, int64_t b) {
  return opt.mask_lengths.empty() ? pb.lengths[static_cast<size_t>(b)] : opt.mask_lengths[static_cast<size_t>(b)];
}

// Runs sequence b forward, recording each step; returns final (h, c).
std::vector<StepRecord> run_sequence(Vec& h, Vec& c, const Tensor& x, const PackedBatch& pb, const ops::RnnWeights& w,
                                     const ops::RnnLayerOptions& opt, int64_t b, const Dims& d) {
  int64_t L = seq_length(pb, opt, b);
  int64_t j = pb.unsorted_indices[static_cast<size_t>(b)];
  std::vector<StepRecord> recs;
  Vec gx(static_cast<size_t>(d.G * d.H)), gh(static_cast<size_t>(d.G * d.H));
  for (int64_t k = 0; k < L; ++k) {
    int64_t t = opt.reverse ? L - 1 - k : k;
    StepRecord r;
    r.row = pb.row(t, j);
    r.h_prev = h;
    r.c_prev = c;
    matvec(gx, *w.w_ih, w.b_ih, x.data<double>() + r.row * d.I, d.I);
    matvec(gh, *w.w_hh, w.b_hh, h.data(), d.H);
    r.act.assign(static_cast<size_t>(d.G * d.H), 0.0);
    size_t H = static_cast<size_t>(d.H);
    switch (opt.cell) {
      case ops::CellType::LSTM:
        for (size_t u = 0; u < H; ++u) {
          double i = sigm(gx[u] + gh[u]), f = sigm(gx[H + u] + gh[H + u]);
          double g = std::tanh(gx[2 * H + u] + gh[2 * H + u]), o = sigm(gx[3 * H + u] + gh[3 * H + u]);
          r.act[u] = i, r.act[H + u] = f, r.act[2 * H + u] = g, r.act[3 * H + u] = o;
          c[u] = f * c[u] + i * g;
          h[u] = o * std::tanh(c[u]);
        }
        break;
      case ops::CellType::GRU:
        for (size_t u = 0; u < H; ++u) {
          double rr = sigm(gx[u] + gh[u]), z = sigm(gx[H + u] + gh[H + u]);
          double n = std::tanh(gx[2 * H + u] + rr * gh[2 * H + u]);
          r.act[u] = rr, r.act[H + u] = z, r.act[2 * H + u] = n;
          h[u] = (1 - z) * n + z * h[u];
        }
        break;
      case ops::CellType::RNN_TANH:
      case ops::CellType::RNN_RELU:
        for (size_t u = 0; u < H; ++u) {
          double a = gx[u] + gh[u];
          h[u] = opt.cell == ops::CellType::RNN_TANH ? std::tanh(a) : (a > 0 ? a : 0.0);
          r.act[u] = h[u];
        }
        break;
    }
    r.c = c;
    r.gh = gh;
    recs.push_back(std::move(r));
  }
  return recs;
}

Vec initial(const Tensor* t, int64_t b, int64_t H) {
  Vec v(static_cast<size_t>(H), 0.0);
  if (t)
    for (int64_t u = 0; u < H; ++u) v[static_cast<size_t>(u)] = t->data<double>()[b * H + u];
  return v;
}

Dims dims_of(const ops::RnnWeights& w, const ops::RnnLayerOptions& opt) {
  int64_t G = ops::gate_count(opt.cell);
  return Dims{G, w.w_hh->dim(1), w.w_ih->dim(1)};
}

}  // namespace

void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, const Tensor& x, const PackedBatch& pb,
                       const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0, const ops::RnnLayerOptions& opt) {
  Dims d = dims_of(w, opt);
  *y = Tensor::zeros({pb.tokens(), d.H}, DType::F64);
  *hn = Tensor::zeros({pb.batch(), d.H}, DType::F64);
  if (cn) *cn = Tensor::zeros({pb.batch(), d.H}, DType::F64);
  for (int64_t b = 0; b < pb.batch(); ++b) {
    Vec h = initial(h0, b, d.H), c = initial(c0, b, d.H);
    auto recs = run_sequence(h, c, x, pb, w, opt, b, d);
    // A step's output is the next step's h_prev; the last step's is the final h.
    for (size_t k = 0; k < recs.size(); ++k) {
      const Vec& hk = k + 1 < recs.size() ? recs[k + 1].h_prev : h;
      for (int64_t u = 0; u < d.H; ++u) y->data<double>()[recs[k].row * d.H + u] = hk[static_cast<size_t>(u)];
    }
    for (int64_t u = 0; u < d.H; ++u) {
      hn->data<double>()[b * d.H + u] = h[static_cast<size_t>(u)];
      if (cn) cn->data<double>()[b * d.H + u] = c[static_cast<size_t>(u)];
    }
  }
}

void rnn_layer_backward(Tensor* dx, Tensor* dh0, Tensor* dc0, const ops::RnnWeightGrads& dw, const Tensor* dy,
                        const Tensor* dhn, const Tensor* dcn, const Tensor& x, const PackedBatch& pb,
                        const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0,
                        const ops::RnnLayerOptions& opt) {
  Dims d = dims_of(w, opt);
  size_t H = static_cast<size_t>(d.H), GH = static_cast<size_t>(d.G * d.H);
  const double* Wih = w.w_ih->data<double>();
  const double* Whh = w.w_hh->data<double>();
  for (int64_t b = 0; b < pb.batch(); ++b) {
    Vec h = initial(h0, b, d.H), c = initial(c0, b, d.H);
    auto recs = run_sequence(h, c, x, pb, w, opt, b, d);
    Vec dh = initial(dhn, b, d.H), dc = initial(dcn, b, d.H);
    Vec dgx(GH), dgh(GH);
    for (size_t k = recs.size(); k-- > 0;) {
      const StepRecord& r = recs[k];
      if (dy)
        for (size_t u = 0; u < H; ++u) dh[u] += dy->data<double>()[r.row * d.H + static_cast<int64_t>(u)];
      Vec dh_direct(H, 0.0);
      switch (opt.cell) {
        case ops::CellType::LSTM:
          for (size_t u = 0; u < H; ++u) {
            double i = r.act[u], f = r.act[H + u], g = r.act[2 * H + u], o = r.act[3 * H + u];
            double tc = std::tanh(r.c[u]);
            double dcu = dc[u] + dh[u] * o * (1 - tc * tc);
            dgx[u] = dcu * g * i * (1 - i);
            dgx[H + u] = dcu * r.c_prev[u] * f * (1 - f);
            dgx[2 * H + u] = dcu * i * (1 - g * g);
            dgx[3 * H + u] = dh[u] * tc * o * (1 - o);
            dc[u] = dcu * f;
          }
          dgh = dgx;
          break;
        case ops::CellType::GRU:
          for (size_t u = 0; u < H; ++u) {
            double rr = r.act[u], z = r.act[H + u], n = r.act[2 * H + u];
            double dan = dh[u] * (1 - z) * (1 - n * n);
            double dz = dh[u] * (r.h_prev[u] - n);
            double dar = dan * r.gh[2 * H + u] * rr * (1 - rr);
            dgx[u] = dgh[u] = dar;
            dgx[H + u] = dgh[H + u] = dz * z * (1 - z);
            dgx[2 * H + u] = dan;
            dgh[2 * H + u] = dan * rr;
            dh_direct[u] = dh[u] * z;
          }
          break;
        case ops::CellType::RNN_TANH:
        case ops::CellType::RNN_RELU:
          for (size_t u = 0; u < H; ++u) {
            double hv = r.act[u];
            dgx[u] = dh[u] * (opt.cell == ops::CellType::RNN_TANH ? 1 - hv * hv : (hv > 0 ? 1.0 : 0.0));
          }
          dgh = dgx;
          break;
      }
      const double* xr = x.data<double>() + r.row * d.I;
      for (size_t g = 0; g < GH; ++g) {
        if (dw.w_ih)
          for (int64_t i = 0; i < d.I; ++i) dw.w_ih->data<double>()[static_cast<int64_t>(g) * d.I + i] += dgx[g] * xr[i];
        if (dw.w_hh)
          for (size_t u = 0; u < H; ++u) dw.w_hh->data<double>()[g * H + u] += dgh[g] * r.h_prev[u];
        if (dw.b_ih) dw.b_ih->data<double>()[g] += dgx[g];
        if (dw.b_hh) dw.b_hh->data<double>()[g] += dgh[g];
      }
      if (dx)
        for (int64_t i = 0; i < d.I; ++i) {
          double s = 0;
          for (size_t g = 0; g < GH; ++g) s += Wih[static_cast<int64_t>(g) * d.I + i] * dgx[g];
          dx->data<double>()[r.row * d.I + i] += s;
        }
      for (size_t u = 0; u < H; ++u) {
        double s = dh_direct[u];
        for (size_t g = 0; g < GH; ++g) s += Whh[g * H + u] * dgh[g];
        dh[u] = s;
      }
    }
    for (size_t u = 0; u < H; ++u) {
      if (dh0) dh0->data<double>()[b * d.H + static_cast<int64_t>(u)] += dh[u];
      if (dc0 && opt.cell == ops::CellType::LSTM) dc0->data<double>()[b * d.H + static_cast<int64_t>(u)] += dc[u];
    }
  }
}

}  // namespace recur::ref
