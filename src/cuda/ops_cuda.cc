// Host side of the CUDA paths of the non-recurrent ops: picks the device from the tensors, makes it
// current, queues the kernels of ops_*.cu (and cuBLAS for linear) on the device's stream and checks
// every launch. Nothing here waits for the GPU.
#include "ops_cuda.h"

#include <vector>

#include "ops_kernels.h"
#include "runtime.h"

namespace recur::cuda {

namespace kops = ::recur::kern::ops;

namespace {

float* f32_or_null(Tensor* t) { return t ? t->f32() : nullptr; }

// The layout arrays the pool kernels read, as int32 on the device.
struct DeviceLayout {
  Tensor offsets, pos, lengths;
  DeviceLayout(const PackedBatch& layout, int device)
      : offsets(upload_i32(layout.offsets, device)),
        pos(upload_i32(layout.unsorted_indices, device)),
        lengths(upload_i32(layout.lengths, device)) {}
  const int32_t* off() const { return offsets.data<int32_t>(); }
  const int32_t* p() const { return pos.data<int32_t>(); }
  const int32_t* len() const { return lengths.data<int32_t>(); }
};

std::vector<int64_t> last_rows(const PackedBatch& layout) {
  std::vector<int64_t> rows(static_cast<size_t>(layout.batch()));
  for (int64_t b = 0; b < layout.batch(); ++b) rows[static_cast<size_t>(b)] = layout.last_row(b);
  return rows;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// basic

void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b, int64_t rows, int64_t in,
                    int64_t out) {
  OnDevice d(x, "linear: x");
  // y starts as the broadcast bias so that the GEMM can accumulate into it (beta = 1).
  RECUR_CUDA_CHECK(kops::bias_rows(y.f32(), b ? b->f32() : nullptr, rows, out, d.s));
  if (rows == 0 || out == 0 || in == 0) return;
  // Row-major y (rows, out) is column-major y^T (out, rows) = W (out, in) X^T (in, rows); the
  // row-major w buffer read column-major is W^T (in, out), hence op T; x's buffer is X^T already.
  const float one = 1.0f;
  RECUR_CUBLAS_CHECK(cublasSgemm(cublas(d.device), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out),
                                 static_cast<int>(rows), static_cast<int>(in), &one, w.f32(), static_cast<int>(in),
                                 x.f32(), static_cast<int>(in), &one, y.f32(), static_cast<int>(out)));
}

void linear_backward(Tensor* dx, Tensor* dw, Tensor* db, const Tensor& dy, const Tensor& x, const Tensor& w,
                     int64_t rows, int64_t in, int64_t out) {
  OnDevice d(dy, "linear_backward: dy");
  const bool gemm = rows > 0 && out > 0 && in > 0;
  const float one = 1.0f;
  const int R = static_cast<int>(rows), I = static_cast<int>(in), O = static_cast<int>(out);
  if (dx && gemm)
    // dx (rows, in) += dy (rows, out) W (out, in); column-major: dx^T (in, rows) = W^T (in, out) dy^T (out, rows).
    RECUR_CUBLAS_CHECK(cublasSgemm(cublas(d.device), CUBLAS_OP_N, CUBLAS_OP_N, I, R, O, &one, w.f32(), I, dy.f32(), O,
                                   &one, dx->f32(), I));
  if (dw && gemm)
    // dw (out, in) += dy^T (out, rows) x (rows, in); column-major: dw^T (in, out) = X^T (in, rows) dy (rows, out).
    RECUR_CUBLAS_CHECK(cublasSgemm(cublas(d.device), CUBLAS_OP_N, CUBLAS_OP_T, I, O, R, &one, x.f32(), I, dy.f32(), O,
                                   &one, dw->f32(), I));
  if (db) RECUR_CUDA_CHECK(kops::column_sums_add(db->f32(), dy.f32(), rows, out, d.s));
}

void embedding_forward(Tensor& y, const Tensor& ids, const Tensor& w, int64_t dim, int64_t padding_idx) {
  OnDevice d(w, "embedding: weight");
  RECUR_CUDA_CHECK(
      kops::embedding_forward(y.f32(), ids.data<int64_t>(), w.f32(), ids.numel(), dim, padding_idx, d.s));
}

void embedding_backward(Tensor& dw, const Tensor& dy, const Tensor& ids, int64_t dim, int64_t padding_idx) {
  OnDevice d(dw, "embedding_backward: dw");
  RECUR_CUDA_CHECK(
      kops::embedding_backward(dw.f32(), dy.f32(), ids.data<int64_t>(), ids.numel(), dim, padding_idx, d.s));
}

void add_forward(Tensor& y, const Tensor& a, const Tensor& b) {
  OnDevice d(a, "add: a");
  RECUR_CUDA_CHECK(kops::add_forward(y.f32(), a.f32(), b.f32(), a.numel(), d.s));
}

void add_backward(Tensor* da, Tensor* db, const Tensor& dy) {
  OnDevice d(dy, "add_backward: dy");
  if (da) RECUR_CUDA_CHECK(kops::accumulate(da->f32(), dy.f32(), dy.numel(), d.s));
  if (db) RECUR_CUDA_CHECK(kops::accumulate(db->f32(), dy.f32(), dy.numel(), d.s));
}

void mul_forward(Tensor& y, const Tensor& a, const Tensor& b) {
  OnDevice d(a, "mul: a");
  RECUR_CUDA_CHECK(kops::mul_forward(y.f32(), a.f32(), b.f32(), a.numel(), d.s));
}

void mul_backward(Tensor* da, Tensor* db, const Tensor& dy, const Tensor& a, const Tensor& b) {
  OnDevice d(dy, "mul_backward: dy");
  if (da) RECUR_CUDA_CHECK(kops::mul_accumulate(da->f32(), dy.f32(), b.f32(), dy.numel(), d.s));
  if (db) RECUR_CUDA_CHECK(kops::mul_accumulate(db->f32(), dy.f32(), a.f32(), dy.numel(), d.s));
}

void unary_forward(Unary f, Tensor& y, const Tensor& x) {
  OnDevice d(x, "unary op: x");
  switch (f) {
    case Unary::Tanh: RECUR_CUDA_CHECK(kops::tanh_forward(y.f32(), x.f32(), x.numel(), d.s)); return;
    case Unary::Sigmoid: RECUR_CUDA_CHECK(kops::sigmoid_forward(y.f32(), x.f32(), x.numel(), d.s)); return;
    case Unary::Relu: RECUR_CUDA_CHECK(kops::relu_forward(y.f32(), x.f32(), x.numel(), d.s)); return;
  }
}

void unary_backward(Unary f, Tensor& dx, const Tensor& dy, const Tensor& y) {
  OnDevice d(y, "unary op backward: y");
  switch (f) {
    case Unary::Tanh: RECUR_CUDA_CHECK(kops::tanh_backward(dx.f32(), dy.f32(), y.f32(), y.numel(), d.s)); return;
    case Unary::Sigmoid:
      RECUR_CUDA_CHECK(kops::sigmoid_backward(dx.f32(), dy.f32(), y.f32(), y.numel(), d.s));
      return;
    case Unary::Relu: RECUR_CUDA_CHECK(kops::relu_backward(dx.f32(), dy.f32(), y.f32(), y.numel(), d.s)); return;
  }
}

void copy_blocks(Tensor& dst, int64_t dst_offset, int64_t dst_stride, const Tensor& src, int64_t src_offset,
                 int64_t src_stride, int64_t outer, int64_t block, bool accumulate) {
  OnDevice d(dst, "copy_blocks: dst");
  RECUR_CUDA_CHECK(kops::copy_blocks(dst.f32() + dst_offset, dst_stride, src.f32() + src_offset, src_stride, outer,
                                     block, accumulate, d.s));
}

void dropout_forward(Tensor& y, const Tensor& x, float p, uint64_t seed) {
  OnDevice d(x, "dropout: x");
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  RECUR_CUDA_CHECK(kops::dropout_forward(y.f32(), x.f32(), x.numel(), p, keep_scale, seed, d.s));
}

void dropout_backward(Tensor& dx, const Tensor& dy, float p, uint64_t seed) {
  OnDevice d(dy, "dropout_backward: dy");
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  RECUR_CUDA_CHECK(kops::dropout_backward(dx.f32(), dy.f32(), dy.numel(), p, keep_scale, seed, d.s));
}

void sum(Tensor& y, const Tensor& x) {
  OnDevice d(x, "sum: x");
  Tensor partials({kops::reduce_partials(x.numel())}, DType::F64, Device::cuda(d.device));
  RECUR_CUDA_CHECK(kops::sum(y.f32(), x.f32(), x.numel(), partials.data<double>(), d.s));
}

void axpy(Tensor& dst, const Tensor& src, float alpha) {
  OnDevice d(dst, "axpy: dst");
  RECUR_CUDA_CHECK(kops::axpy(dst.f32(), src.f32(), alpha, src.numel(), d.s));
}

void add_scalar(Tensor& dst, const Tensor& scalar, float alpha) {
  OnDevice d(dst, "add_scalar: dst");
  RECUR_CUDA_CHECK(kops::add_device_scalar(dst.f32(), scalar.f32(), alpha, dst.numel(), d.s));
}

// ---------------------------------------------------------------------------------------------
// norm

void layer_norm_forward(Tensor& y, Tensor* mean, Tensor* rstd, const Tensor& x, const Tensor& gamma,
                        const Tensor& beta, int64_t rows, int64_t dim, float eps) {
  OnDevice d(x, "layer_norm: x");
  RECUR_CUDA_CHECK(kops::layer_norm_forward(y.f32(), f32_or_null(mean), f32_or_null(rstd), x.f32(), gamma.f32(),
                                            beta.f32(), rows, dim, eps, d.s));
}

void layer_norm_backward(Tensor* dx, Tensor* dgamma, Tensor* dbeta, const Tensor& dy, const Tensor& x,
                         const Tensor& gamma, const Tensor& mean, const Tensor& rstd, int64_t rows, int64_t dim) {
  OnDevice d(x, "layer_norm_backward: x");
  if (dx)
    RECUR_CUDA_CHECK(kops::layer_norm_backward_dx(dx->f32(), dy.f32(), x.f32(), gamma.f32(), mean.f32(), rstd.f32(),
                                                  rows, dim, d.s));
  if (dgamma || dbeta)
    RECUR_CUDA_CHECK(kops::layer_norm_backward_params(f32_or_null(dgamma), f32_or_null(dbeta), dy.f32(), x.f32(),
                                                      mean.f32(), rstd.f32(), rows, dim, d.s));
}

void softmax_forward(Tensor& y, const Tensor& x, int64_t rows, int64_t dim) {
  OnDevice d(x, "softmax: x");
  RECUR_CUDA_CHECK(kops::softmax_forward(y.f32(), x.f32(), rows, dim, d.s));
}

void softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, int64_t rows, int64_t dim) {
  OnDevice d(y, "softmax_backward: y");
  RECUR_CUDA_CHECK(kops::softmax_backward(dx.f32(), dy.f32(), y.f32(), rows, dim, d.s));
}

void log_softmax_forward(Tensor& y, const Tensor& x, int64_t rows, int64_t dim) {
  OnDevice d(x, "log_softmax: x");
  RECUR_CUDA_CHECK(kops::log_softmax_forward(y.f32(), x.f32(), rows, dim, d.s));
}

void log_softmax_backward(Tensor& dx, const Tensor& dy, const Tensor& y, int64_t rows, int64_t dim) {
  OnDevice d(y, "log_softmax_backward: y");
  RECUR_CUDA_CHECK(kops::log_softmax_backward(dx.f32(), dy.f32(), y.f32(), rows, dim, d.s));
}

// ---------------------------------------------------------------------------------------------
// losses

void cross_entropy_forward(Tensor& loss, Tensor& logp, const Tensor& logits, const Tensor& targets, int64_t n,
                           int64_t classes, int64_t ignore_index, float label_smoothing) {
  OnDevice d(logits, "cross_entropy: logits");
  RECUR_CUDA_CHECK(kops::log_softmax_forward(logp.f32(), logits.f32(), n, classes, d.s));
  Tensor row_loss({n}, DType::F64, Device::cuda(d.device));
  RECUR_CUDA_CHECK(kops::cross_entropy_rows(row_loss.data<double>(), logp.f32(), targets.data<int64_t>(), n, classes,
                                            ignore_index, label_smoothing, d.s));
  RECUR_CUDA_CHECK(
      kops::cross_entropy_mean(loss.f32(), row_loss.data<double>(), targets.data<int64_t>(), n, ignore_index, d.s));
}

void cross_entropy_backward(Tensor& dlogits, const Tensor& dloss, const Tensor& logp, const Tensor& targets,
                            int64_t n, int64_t classes, int64_t ignore_index, float label_smoothing) {
  OnDevice d(logp, "cross_entropy_backward: logp");
  const float on_target = 1.0f - label_smoothing, uniform = label_smoothing / static_cast<float>(classes);
  Tensor kept({1}, DType::I64, Device::cuda(d.device));
  RECUR_CUDA_CHECK(kops::cross_entropy_backward(dlogits.f32(), dloss.f32(), logp.f32(), targets.data<int64_t>(), n,
                                                classes, ignore_index, on_target, uniform, kept.data<int64_t>(), d.s));
}

void mse_forward(Tensor& loss, const Tensor& pred, const Tensor& target) {
  OnDevice d(pred, "mse: pred");
  Tensor partials({kops::reduce_partials(pred.numel())}, DType::F64, Device::cuda(d.device));
  RECUR_CUDA_CHECK(kops::mse_forward(loss.f32(), pred.f32(), target.f32(), pred.numel(), partials.data<double>(), d.s));
}

void mse_backward(Tensor& dpred, const Tensor& dloss, const Tensor& pred, const Tensor& target) {
  OnDevice d(pred, "mse_backward: pred");
  RECUR_CUDA_CHECK(kops::mse_backward(dpred.f32(), dloss.f32(), pred.f32(), target.f32(), pred.numel(), d.s));
}

// ---------------------------------------------------------------------------------------------
// pools

void mean_pool_forward(Tensor& y, const Tensor& x, const PackedBatch& layout, int64_t hidden) {
  OnDevice d(x, "mean_pool: x");
  DeviceLayout l(layout, d.device);
  RECUR_CUDA_CHECK(
      kops::mean_pool_forward(y.f32(), x.f32(), l.off(), l.p(), l.len(), layout.batch(), hidden, d.s));
}

void mean_pool_backward(Tensor& dx, const Tensor& dy, const PackedBatch& layout, int64_t hidden) {
  OnDevice d(dy, "mean_pool_backward: dy");
  DeviceLayout l(layout, d.device);
  RECUR_CUDA_CHECK(
      kops::mean_pool_backward(dx.f32(), dy.f32(), l.off(), l.p(), l.len(), layout.batch(), hidden, d.s));
}

void max_pool_forward(Tensor& y, Tensor* argmax, const Tensor& x, const PackedBatch& layout, int64_t hidden) {
  OnDevice d(x, "max_pool: x");
  DeviceLayout l(layout, d.device);
  RECUR_CUDA_CHECK(kops::max_pool_forward(y.f32(), argmax ? argmax->data<int64_t>() : nullptr, x.f32(), l.off(),
                                          l.p(), l.len(), layout.batch(), hidden, d.s));
}

void max_pool_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, int64_t hidden) {
  OnDevice d(dy, "max_pool_backward: dy");
  RECUR_CUDA_CHECK(kops::max_pool_backward(dx.f32(), dy.f32(), argmax.data<int64_t>(), dy.dim(0), hidden, d.s));
}

void gather_last_step_forward(Tensor& y, const Tensor& x, const PackedBatch& layout, int64_t hidden) {
  OnDevice d(x, "gather_last_step: x");
  Tensor rows = upload_i32(last_rows(layout), d.device);
  RECUR_CUDA_CHECK(kops::gather_rows(y.f32(), x.f32(), rows.data<int32_t>(), layout.batch(), hidden, d.s));
}

void gather_last_step_backward(Tensor& dx, const Tensor& dy, const PackedBatch& layout, int64_t hidden) {
  OnDevice d(dy, "gather_last_step_backward: dy");
  Tensor rows = upload_i32(last_rows(layout), d.device);
  RECUR_CUDA_CHECK(kops::scatter_add_rows(dx.f32(), dy.f32(), rows.data<int32_t>(), layout.batch(), hidden, d.s));
}

void attention_pool_forward(Tensor& y, Tensor& alpha, const Tensor& x, const Tensor& scores, const PackedBatch& pb) {
  OnDevice d(x, "attention_pool: x");
  DeviceLayout l(pb, d.device);
  RECUR_CUDA_CHECK(kops::attention_pool_forward(y.f32(), alpha.f32(), x.f32(), scores.f32(), l.off(), l.p(), l.len(),
                                                pb.batch(), x.dim(1), d.s));
}

void attention_pool_backward(Tensor* dx, Tensor* dscores, const Tensor& dy, const Tensor& x, const Tensor& alpha,
                             const PackedBatch& pb) {
  OnDevice d(x, "attention_pool backward: x");
  if (!dx && !dscores) return;
  DeviceLayout l(pb, d.device);
  Tensor dalpha({pb.tokens()}, DType::F32, Device::cuda(d.device));
  RECUR_CUDA_CHECK(kops::attention_pool_backward(f32_or_null(dx), f32_or_null(dscores), dalpha.f32(), dy.f32(),
                                                 x.f32(), alpha.f32(), l.off(), l.p(), l.len(), pb.batch(), x.dim(1),
                                                 d.s));
}

}  // namespace recur::cuda
