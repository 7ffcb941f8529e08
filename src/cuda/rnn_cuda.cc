// Packed LSTM/GRU/RNN layer on a GPU.
//
// Same structure as the CPU path: one GEMM for the input projections of all tokens; the time loop
// over the active (leading, sorted) rows of each step; weight gradients as single GEMMs over all
// tokens. The forward time loop runs either as one persistent cooperative kernel (W_hh slices in
// shared memory, one grid barrier per step; no per-step host work) or, when the shapes do not fit
// it, as a cuBLAS GEMM + fused pointwise kernel per step. The backward loop is a cuBLAS GEMM +
// fused pointwise kernel per step. Per-step bookkeeping (batch sizes, offsets, masks) lives on the
// device; layouts are uploaded once and cached.
#include "rnn_cuda.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "rnn_kernels.h"
#include "runtime.h"

namespace recur::cuda {

namespace {

using ops::CellType;

std::atomic<bool> g_persistent{[] {
  const char* e = std::getenv("RECUR_RNN_PERSISTENT");
  return !(e && std::strcmp(e, "0") == 0);
}()};
std::atomic<const char*> g_last_path{""};
std::atomic<const char*> g_last_backward{""};

int cell_code(CellType c) {
  switch (c) {
    case CellType::LSTM: return 0;
    case CellType::GRU: return 1;
    case CellType::RNN_TANH: return 2;
    case CellType::RNN_RELU: return 3;
  }
  return 0;
}

// The layout of one PackedBatch on the device, as one int32 array:
// bs[T] | off[T+1] | mask[B] (static mode only) | sorted[B] | unsorted[B].
struct DeviceLayout {
  std::vector<int64_t> key;
  Tensor table;
  int T = 0, B = 0;
  bool has_mask = false;
  const int32_t* bs() const { return table.data<int32_t>(); }
  const int32_t* off() const { return bs() + T; }
  const int32_t* mask() const { return has_mask ? off() + T + 1 : nullptr; }
  const int32_t* sorted() const { return off() + T + 1 + (has_mask ? B : 0); }
  const int32_t* unsorted() const { return sorted() + B; }
};

// A small cache of uploaded layouts: a training step reuses its batch's layout in every layer, in
// forward and backward, and benchmarks reuse one layout throughout, so uploads (which wait for the
// stream) happen once per new batch.
// Shared, so that a layout in use on one thread survives its eviction by another (data-parallel
// replicas on several GPUs run as threads of one process).
std::shared_ptr<const DeviceLayout> device_layout(const PackedBatch& pb, const std::vector<int64_t>& mask, int device) {
  std::vector<int64_t> key;
  key.reserve(pb.batch_sizes.size() + pb.offsets.size() + mask.size() + 2 * pb.sorted_indices.size() + 3);
  key.push_back(device);
  key.push_back(pb.steps());
  key.push_back(static_cast<int64_t>(mask.size()));
  key.insert(key.end(), pb.batch_sizes.begin(), pb.batch_sizes.end());
  key.insert(key.end(), pb.offsets.begin(), pb.offsets.end());
  key.insert(key.end(), mask.begin(), mask.end());
  key.insert(key.end(), pb.sorted_indices.begin(), pb.sorted_indices.end());
  key.insert(key.end(), pb.unsorted_indices.begin(), pb.unsorted_indices.end());
  static std::mutex mu;
  static auto* cache = new std::list<std::shared_ptr<const DeviceLayout>>();  // never destroyed
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = cache->begin(); it != cache->end(); ++it) {
    if ((*it)->key == key) {
      cache->splice(cache->begin(), *cache, it);
      return cache->front();
    }
  }
  auto d = std::make_shared<DeviceLayout>();
  d->T = static_cast<int>(pb.steps());
  d->B = static_cast<int>(pb.batch());
  d->has_mask = !mask.empty();
  d->table = upload_i32(std::vector<int64_t>(key.begin() + 3, key.end()), device);
  d->key = std::move(key);
  cache->push_front(std::move(d));
  if (cache->size() > 16) cache->pop_back();
  return cache->front();
}

kern::StepInfo step_info(const DeviceLayout& L, bool reverse) {
  return kern::StepInfo{L.bs(), L.off(), L.mask(), L.T, L.B, reverse};
}

void check_on(const Tensor* t, int device, const char* what) {
  if (!t || !t->defined()) return;
  RECUR_CHECK(t->device() == Device::cuda(device), "rnn layer: {} {} is on {}, the input is on cuda:{}", what,
              t->shape_str(), t->device().str(), device);
}

// Rows of `src` (B, H) gathered by a device index table into a new (rows, H) tensor.
Tensor gather(const Tensor& src, const int32_t* idx, int64_t rows, int device) {
  Tensor out({rows, src.dim(1)}, DType::F32, src.device());
  RECUR_CUDA_CHECK(kern::gather_rows(out.raw(), src.raw(), idx, static_cast<int>(rows), static_cast<int>(src.dim(1)), 0,
                                     stream(device)));
  return out;
}

struct Dims {
  int64_t N, B, T, H, I, G, GH;
};

Dims layer_dims(const Tensor& x, const PackedBatch& pb, const ops::RnnWeights& w, CellType cell) {
  Dims d{pb.tokens(), pb.batch(), pb.steps(), w.w_hh->dim(1), x.dim(1), ops::gate_count(cell), 0};
  d.GH = d.G * d.H;
  return d;
}

}  // namespace

void set_rnn_persistent(bool on) { g_persistent.store(on); }
bool rnn_persistent() { return g_persistent.load(); }
const char* last_rnn_forward_path() { return g_last_path.load(); }
const char* last_rnn_backward_path() { return g_last_backward.load(); }

void sgemm(int device, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  RECUR_CHECK(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX && lda <= INT32_MAX && ldb <= INT32_MAX &&
                  ldc <= INT32_MAX,
              "sgemm: {}x{}x{} too large for cuBLAS", M, N, K);
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  RECUR_CUBLAS_CHECK(cublasSgemm(cublas(device), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                                 static_cast<int>(K), &alpha, B, static_cast<int>(ldb), A, static_cast<int>(lda), &beta,
                                 C, static_cast<int>(ldc)));
}

void rnn_layer_forward(Tensor* y, Tensor* hn, Tensor* cn, ops::RnnCache* cache, const Tensor& x,
                       const PackedBatch& pb, const ops::RnnWeights& w, const Tensor* h0, const Tensor* c0,
                       const ops::RnnLayerOptions& opt) {
  const int dev = device_of(x, "rnn layer input");
  for (const Tensor* t : {w.w_ih, w.w_hh, w.b_ih, w.b_hh}) check_on(t, dev, "weight");
  check_on(h0, dev, "h0");
  check_on(c0, dev, "c0");
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  const Device D = x.device();
  const CellType cell = opt.cell;
  const int code = cell_code(cell);
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU;
  const Dims d = layer_dims(x, pb, w, cell);
  RECUR_CHECK(d.N * d.GH <= INT32_MAX * 64LL, "rnn layer: {} tokens x {} gate rows too large", d.N, d.GH);

  const std::shared_ptr<const DeviceLayout> layout = device_layout(pb, opt.mask_lengths, dev);
  const DeviceLayout& L = *layout;
  const kern::StepInfo si = step_info(L, opt.reverse);

  Tensor gates({d.N, d.GH}, DType::F32, D);
  sgemm(dev, false, true, d.N, d.GH, d.I, 1.0f, x.f32(), d.I, w.w_ih->f32(), d.I, 0.0f, gates.f32(), d.GH);
  Tensor bias({d.GH}, DType::F32, D);
  RECUR_CUDA_CHECK(kern::rnn_bias(bias.f32(), w.b_ih ? w.b_ih->f32() : nullptr, w.b_hh ? w.b_hh->f32() : nullptr, !gru,
                                  static_cast<int>(d.GH), st));
  Tensor bias_h;
  if (gru) {
    bias_h = Tensor({d.GH}, DType::F32, D);
    RECUR_CUDA_CHECK(kern::rnn_bias(bias_h.f32(), w.b_hh ? w.b_hh->f32() : nullptr, nullptr, false,
                                    static_cast<int>(d.GH), st));
  }

  Tensor h_state = h0 ? gather(*h0, L.sorted(), d.B, dev) : Tensor::zeros({d.B, d.H}, DType::F32, D);
  Tensor c_state;
  if (lstm) c_state = c0 ? gather(*c0, L.sorted(), d.B, dev) : Tensor::zeros({d.B, d.H}, DType::F32, D);
  if (cache) {
    cache->h0 = h_state.clone();
    if (lstm) cache->c0 = c_state.clone();
  }
  *y = Tensor({d.N, d.H}, DType::F32, D);
  Tensor cells = lstm ? Tensor({d.N, d.H}, DType::F32, D) : Tensor();
  Tensor ghn = gru ? Tensor({d.N, d.H}, DType::F32, D) : Tensor();
  float* cells_p = lstm ? cells.f32() : nullptr;
  float* ghn_p = gru ? ghn.f32() : nullptr;
  float* c_p = lstm ? c_state.f32() : nullptr;
  const float* bias_h_p = gru ? bias_h.f32() : nullptr;

  kern::PersistentPlan plan;
  const bool persistent = g_persistent.load() && d.T > 0 &&
                          kern::rnn_persistent_plan(code, static_cast<int>(d.H), static_cast<int>(d.B), dev, &plan);
  if (persistent) {
    Tensor hT0({d.H, plan.bp}, DType::F32, D), hT1 = Tensor::zeros({d.H, plan.bp}, DType::F32, D);
    RECUR_CUDA_CHECK(kern::transpose_state_in(hT0.f32(), h_state.f32(), static_cast<int>(d.B), static_cast<int>(d.H),
                                              plan.bp, st));
    RECUR_CUDA_CHECK(kern::rnn_forward_persistent(code, plan, si, static_cast<int>(d.H), w.w_hh->f32(), gates.f32(),
                                                  bias.f32(), bias_h_p, hT0.f32(), hT1.f32(), c_p, y->f32(), cells_p,
                                                  ghn_p, st));
    const Tensor& final_state = d.T % 2 == 0 ? hT0 : hT1;
    RECUR_CUDA_CHECK(kern::transpose_state_out(h_state.f32(), final_state.f32(), static_cast<int>(d.B),
                                               static_cast<int>(d.H), plan.bp, st));
    g_last_path.store("persistent");
  } else {
    Tensor gh_step = gru ? Tensor({d.B, d.GH}, DType::F32, D) : Tensor();
    for (int64_t s = 0; s < d.T; ++s) {
      const int64_t t = opt.reverse ? d.T - 1 - s : s;
      const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
      const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
      float* out = gru ? gh_step.f32() : gates.f32() + r0 * d.GH;
      sgemm(dev, false, true, bs, d.GH, d.H, 1.0f, h_state.f32(), d.H, w.w_hh->f32(), d.H, gru ? 0.0f : 1.0f, out,
            d.GH);
      RECUR_CUDA_CHECK(kern::rnn_forward_step(code, static_cast<int>(s), si, static_cast<int>(d.H), gates.f32(),
                                              gru ? gh_step.f32() : nullptr, bias.f32(), bias_h_p, h_state.f32(), c_p,
                                              y->f32(), cells_p, ghn_p, static_cast<int>(bs), st));
    }
    g_last_path.store("steps");
  }

  if (hn) *hn = gather(h_state, L.unsorted(), d.B, dev);
  if (cn && lstm) *cn = gather(c_state, L.unsorted(), d.B, dev);
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
  const int dev = device_of(x, "rnn layer input");
  for (const Tensor* t : {w.w_ih, w.w_hh, w.b_ih, w.b_hh, dy, dhn, dcn, &y, &cache.gates}) check_on(t, dev, "tensor");
  for (const Tensor* t : {dx, dh0, dc0, dw.w_ih, dw.w_hh, dw.b_ih, dw.b_hh}) check_on(t, dev, "gradient");
  DeviceGuard guard(dev);
  cudaStream_t st = stream(dev);
  const Device D = x.device();
  const CellType cell = opt.cell;
  const int code = cell_code(cell);
  const bool lstm = cell == CellType::LSTM, gru = cell == CellType::GRU;
  const Dims d = layer_dims(x, pb, w, cell);
  const std::shared_ptr<const DeviceLayout> layout = device_layout(pb, opt.mask_lengths, dev);
  const DeviceLayout& L = *layout;
  const kern::StepInfo si = step_info(L, opt.reverse);

  Tensor h_prev({d.N, d.H}, DType::F32, D);
  Tensor c_prev = lstm ? Tensor({d.N, d.H}, DType::F32, D) : Tensor();
  RECUR_CUDA_CHECK(kern::rnn_previous_states(si, static_cast<int>(d.H), y.f32(), lstm ? cache.cells.f32() : nullptr,
                                             cache.h0.f32(), lstm ? cache.c0.f32() : nullptr, h_prev.f32(),
                                             lstm ? c_prev.f32() : nullptr, static_cast<int>(d.B), st));

  Tensor dgates({d.N, d.GH}, DType::F32, D);
  Tensor dgh = gru ? Tensor({d.N, d.GH}, DType::F32, D) : Tensor();
  Tensor dh_state = dhn ? gather(*dhn, L.sorted(), d.B, dev) : Tensor::zeros({d.B, d.H}, DType::F32, D);
  Tensor dc_state;
  if (lstm) dc_state = dcn ? gather(*dcn, L.sorted(), d.B, dev) : Tensor::zeros({d.B, d.H}, DType::F32, D);
  const float* dGh = gru ? dgh.f32() : dgates.f32();
  // The time loop: per-step launches whose recurrent product dh_prev += dG_t W_hh is split-K
  // partial sums folded in order by the next pointwise kernel (deterministic; the default at batch
  // >= 32) or a cuBLAS GEMM (the default below). RECUR_RNN_BACKWARD=persistent runs the whole loop
  // in one cooperative kernel instead (W_hh tiles in shared memory, two grid barriers per step): on
  // an H200 it measured no faster than the per-step launches (docs/BENCHMARKS.md), so it is opt-in.
  // RECUR_RNN_BACKWARD=splitk|cublas forces those.
  const char* env = std::getenv("RECUR_RNN_BACKWARD");
  const std::string mode = env ? env : "";
  kern::BackwardPlan bplan;
  const bool persistent = mode == "persistent" && d.T > 0 &&
                          kern::rnn_backward_plan(code, static_cast<int>(d.H), static_cast<int>(d.B), dev, &bplan);
  const float* act = cache.gates.f32();
  const float* cells_p = lstm ? cache.cells.f32() : nullptr;
  const float* c_prev_p = lstm ? c_prev.f32() : nullptr;
  const float* ghn_p = gru ? cache.ghn.f32() : nullptr;
  const float* dy_p = dy ? dy->f32() : nullptr;
  float* dgh_p = gru ? dgh.f32() : nullptr;
  float* dc_p = lstm ? dc_state.f32() : nullptr;
  if (persistent) {
    Tensor partials({bplan.splits, d.B, d.H}, DType::F32, D);
    RECUR_CUDA_CHECK(kern::rnn_backward_persistent(code, bplan, si, static_cast<int>(d.H), w.w_hh->f32(), act, cells_p,
                                                   c_prev_p, h_prev.f32(), ghn_p, dy_p, dgates.f32(), dgh_p,
                                                   dh_state.f32(), dc_p, partials.f32(), st));
    g_last_backward.store("persistent");
  } else {
    const bool use_cublas = mode == "cublas" || (mode != "splitk" && d.B < 32);
    const int S = use_cublas ? 0
                             : kern::rnn_dh_splits(static_cast<int>(d.H), static_cast<int>(d.GH),
                                                   static_cast<int>(d.B), dev);
    Tensor partials = use_cublas ? Tensor() : Tensor({S, d.B, d.H}, DType::F32, D);
    const float* P = use_cublas ? nullptr : partials.f32();
    int prev_bs = 0;
    for (int64_t s = d.T - 1; s >= 0; --s) {
      const int64_t t = opt.reverse ? d.T - 1 - s : s;
      const int64_t bs = pb.batch_sizes[static_cast<size_t>(t)];
      const int64_t r0 = pb.offsets[static_cast<size_t>(t)];
      RECUR_CUDA_CHECK(kern::rnn_backward_step(code, static_cast<int>(s), si, static_cast<int>(d.H),
                                               static_cast<int>(bs), prev_bs, P, S, act, cells_p, c_prev_p,
                                               h_prev.f32(), ghn_p, dy_p, dgates.f32(), dgh_p, dh_state.f32(), dc_p,
                                               st));
      if (use_cublas) {
        sgemm(dev, false, false, bs, d.H, d.GH, 1.0f, dGh + r0 * d.GH, d.GH, w.w_hh->f32(), d.H, 1.0f,
              dh_state.f32(), d.H);
      } else {
        RECUR_CUDA_CHECK(kern::rnn_dh_partials(dGh + r0 * d.GH, w.w_hh->f32(), static_cast<int>(d.H),
                                               static_cast<int>(d.GH), static_cast<int>(bs), S, partials.f32(),
                                               static_cast<int>(d.B), st));
        prev_bs = static_cast<int>(bs);
      }
    }
    if (!use_cublas && prev_bs > 0)  // fold the last step's partials
      RECUR_CUDA_CHECK(kern::rnn_backward_step(code, 0, si, static_cast<int>(d.H), 0, prev_bs, P, S, nullptr, nullptr,
                                               nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, dh_state.f32(),
                                               nullptr, st));
    g_last_backward.store(use_cublas ? "cublas" : "splitk");
  }
  if (dh0) dh0->add_(gather(dh_state, L.unsorted(), d.B, dev));
  if (dc0 && lstm) dc0->add_(gather(dc_state, L.unsorted(), d.B, dev));

  const float* dG = dgates.f32();
  if (dx) sgemm(dev, false, false, d.N, d.I, d.GH, 1.0f, dG, d.GH, w.w_ih->f32(), d.I, 1.0f, dx->f32(), d.I);
  if (dw.w_ih) sgemm(dev, true, false, d.GH, d.I, d.N, 1.0f, dG, d.GH, x.f32(), d.I, 1.0f, dw.w_ih->f32(), d.I);
  if (dw.w_hh) sgemm(dev, true, false, d.GH, d.H, d.N, 1.0f, dGh, d.GH, h_prev.f32(), d.H, 1.0f, dw.w_hh->f32(), d.H);
  if ((dw.b_ih || dw.b_hh) && d.N > 0) {
    Tensor ones = Tensor::full({d.N}, 1.0, DType::F32, D);
    const float one = 1.0f;
    RECUR_CHECK(d.N <= INT32_MAX, "rnn backward: {} tokens too many for cuBLAS", d.N);
    if (dw.b_ih)
      RECUR_CUBLAS_CHECK(cublasSgemv(cublas(dev), CUBLAS_OP_N, static_cast<int>(d.GH), static_cast<int>(d.N), &one, dG,
                                     static_cast<int>(d.GH), ones.f32(), 1, &one, dw.b_ih->f32(), 1));
    if (dw.b_hh)
      RECUR_CUBLAS_CHECK(cublasSgemv(cublas(dev), CUBLAS_OP_N, static_cast<int>(d.GH), static_cast<int>(d.N), &one, dGh,
                                     static_cast<int>(d.GH), ones.f32(), 1, &one, dw.b_hh->f32(), 1));
  }
}

}  // namespace recur::cuda
