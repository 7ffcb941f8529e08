#include "recur/seq/packed.h"

#include "../core/device_ops.h"

#include <algorithm>
#include <cstring>
#include <numeric>

namespace recur {

PackedBatch PackedBatch::from_lengths(const std::vector<int64_t>& lengths) {
  RECUR_CHECK(!lengths.empty(), "PackedBatch: empty batch");
  PackedBatch pb;
  pb.lengths = lengths;
  int64_t B = pb.batch();
  for (int64_t b = 0; b < B; ++b)
    RECUR_CHECK(lengths[static_cast<size_t>(b)] >= 1, "PackedBatch: sequence {} has length {} (must be >= 1)", b,
                lengths[static_cast<size_t>(b)]);
  pb.sorted_indices.resize(static_cast<size_t>(B));
  std::iota(pb.sorted_indices.begin(), pb.sorted_indices.end(), 0);
  std::stable_sort(pb.sorted_indices.begin(), pb.sorted_indices.end(),
                   [&](int64_t a, int64_t b) { return lengths[static_cast<size_t>(a)] > lengths[static_cast<size_t>(b)]; });
  pb.unsorted_indices.resize(static_cast<size_t>(B));
  for (int64_t j = 0; j < B; ++j) pb.unsorted_indices[static_cast<size_t>(pb.sorted_indices[static_cast<size_t>(j)])] = j;
  int64_t T = lengths[static_cast<size_t>(pb.sorted_indices[0])];
  pb.batch_sizes.assign(static_cast<size_t>(T), 0);
  for (int64_t L : lengths)
    for (int64_t t = 0; t < L; ++t) ++pb.batch_sizes[static_cast<size_t>(t)];
  pb.offsets.assign(static_cast<size_t>(T + 1), 0);
  for (int64_t t = 0; t < T; ++t)
    pb.offsets[static_cast<size_t>(t + 1)] = pb.offsets[static_cast<size_t>(t)] + pb.batch_sizes[static_cast<size_t>(t)];
  return pb;
}

PackedBatch PackedBatch::fixed(int64_t steps, int64_t batch) {
  return from_lengths(std::vector<int64_t>(static_cast<size_t>(batch), steps));
}

int64_t PackedBatch::last_row(int64_t b) const {
  RECUR_CHECK(b >= 0 && b < batch(), "last_row: sequence {} of a batch of {}", b, batch());
  return row(lengths[static_cast<size_t>(b)] - 1, unsorted_indices[static_cast<size_t>(b)]);
}

Tensor pack_sequences(const std::vector<Tensor>& seqs, PackedBatch* layout) {
  RECUR_CHECK(!seqs.empty(), "pack_sequences: no sequences");
  std::vector<int64_t> lengths;
  int64_t D = seqs[0].ndim() == 2 ? seqs[0].dim(1) : 1;
  for (size_t i = 0; i < seqs.size(); ++i) {
    RECUR_CHECK(seqs[i].ndim() == 2 && seqs[i].dim(1) == D && seqs[i].dtype() == seqs[0].dtype(),
                "pack_sequences: sequence {} has shape {}, expected (L, {})", i, seqs[i].shape_str(), D);
    RECUR_CHECK(seqs[i].device().is_cpu(),
                "pack_sequences: sequence {} is on {}; pack on the CPU and move the packed tensor with to(device)", i,
                seqs[i].device().str());
    lengths.push_back(seqs[i].dim(0));
  }
  *layout = PackedBatch::from_lengths(lengths);
  Tensor out({layout->tokens(), D}, seqs[0].dtype());
  size_t row_bytes = static_cast<size_t>(D) * dtype_size(out.dtype());
  for (int64_t t = 0; t < layout->steps(); ++t)
    for (int64_t j = 0; j < layout->batch_sizes[static_cast<size_t>(t)]; ++j) {
      const Tensor& s = seqs[static_cast<size_t>(layout->sorted_indices[static_cast<size_t>(j)])];
      std::memcpy(static_cast<char*>(out.raw()) + layout->row(t, j) * row_bytes,
                  static_cast<const char*>(s.raw()) + t * row_bytes, row_bytes);
    }
  return out;
}

namespace {
// Copies between packed (N, D) and padded (T, B, D); `to_packed` picks the direction.
void copy_packed_padded(Tensor& packed, Tensor& padded, const PackedBatch& pb, bool to_packed) {
  int64_t B = pb.batch(), D = packed.dim(1);
  size_t row_bytes = static_cast<size_t>(D) * dtype_size(packed.dtype());
  char* pk = static_cast<char*>(packed.raw());
  char* pd = static_cast<char*>(padded.raw());
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j) {
      int64_t b = pb.sorted_indices[static_cast<size_t>(j)];
      char* a = pk + pb.row(t, j) * row_bytes;
      char* c = pd + (t * B + b) * static_cast<int64_t>(row_bytes);
      if (to_packed) std::memcpy(a, c, row_bytes);
      else std::memcpy(c, a, row_bytes);
    }
}
}  // namespace

Tensor pack_padded(const Tensor& padded, const std::vector<int64_t>& lengths, PackedBatch* layout) {
  RECUR_CHECK(padded.ndim() == 3, "pack_padded: expected (T, B, D), got {}", padded.shape_str());
  RECUR_CHECK(static_cast<int64_t>(lengths.size()) == padded.dim(1), "pack_padded: {} lengths for a batch of {}",
              lengths.size(), padded.dim(1));
  for (int64_t L : lengths)
    RECUR_CHECK(L <= padded.dim(0), "pack_padded: length {} exceeds the {} padded steps", L, padded.dim(0));
  *layout = PackedBatch::from_lengths(lengths);
  if (padded.device().is_cuda()) {
    // Packed row (t, j) <- padded row t * B + sorted[j].
    std::vector<int64_t> idx;
    idx.reserve(static_cast<size_t>(layout->tokens()));
    for (int64_t t = 0; t < layout->steps(); ++t)
      for (int64_t j = 0; j < layout->batch_sizes[static_cast<size_t>(t)]; ++j)
        idx.push_back(t * layout->batch() + layout->sorted_indices[static_cast<size_t>(j)]);
    Tensor out({layout->tokens(), padded.dim(2)}, padded.dtype(), padded.device());
    devmem::gather_rows(padded.device(), out.raw(), padded.raw(), idx, padded.dim(2), padded.dtype(), 0.0);
    return out;
  }
  Tensor out({layout->tokens(), padded.dim(2)}, padded.dtype());
  copy_packed_padded(out, const_cast<Tensor&>(padded), *layout, true);
  return out;
}

Tensor unpack_to_padded(const Tensor& packed, const PackedBatch& layout, float pad) {
  RECUR_CHECK(packed.ndim() == 2 && packed.dim(0) == layout.tokens(),
              "unpack_to_padded: packed shape {} does not match {} tokens", packed.shape_str(), layout.tokens());
  if (packed.device().is_cuda()) {
    // Padded row t * B + b <- packed row (t, unsorted[b]) while b is active at t, else pad.
    std::vector<int64_t> idx(static_cast<size_t>(layout.steps() * layout.batch()), -1);
    for (int64_t t = 0; t < layout.steps(); ++t)
      for (int64_t j = 0; j < layout.batch_sizes[static_cast<size_t>(t)]; ++j)
        idx[static_cast<size_t>(t * layout.batch() + layout.sorted_indices[static_cast<size_t>(j)])] = layout.row(t, j);
    Tensor out({layout.steps(), layout.batch(), packed.dim(1)}, packed.dtype(), packed.device());
    devmem::gather_rows(packed.device(), out.raw(), packed.raw(), idx, packed.dim(1), packed.dtype(), pad);
    return out;
  }
  Tensor out({layout.steps(), layout.batch(), packed.dim(1)}, packed.dtype());
  out.fill_(pad);
  copy_packed_padded(const_cast<Tensor&>(packed), out, layout, false);
  return out;
}

Tensor permute_batch(const Tensor& x, const PackedBatch& layout, bool to_sorted) {
  RECUR_CHECK(x.ndim() >= 1 && x.dim(0) == layout.batch(), "permute_batch: shape {} for a batch of {}",
              x.shape_str(), layout.batch());
  if (x.device().is_cuda()) {
    const std::vector<int64_t>& idx = to_sorted ? layout.sorted_indices : layout.unsorted_indices;
    Tensor out(x.shape(), x.dtype(), x.device());
    devmem::gather_rows(x.device(), out.raw(), x.raw(), idx, x.numel() / layout.batch(), x.dtype(), 0.0);
    return out;
  }
  Tensor out(x.shape(), x.dtype());
  size_t row_bytes = x.nbytes() / static_cast<size_t>(layout.batch());
  for (int64_t j = 0; j < layout.batch(); ++j) {
    int64_t b = layout.sorted_indices[static_cast<size_t>(j)];
    int64_t dst = to_sorted ? j : b, src = to_sorted ? b : j;
    std::memcpy(static_cast<char*>(out.raw()) + dst * static_cast<int64_t>(row_bytes),
                static_cast<const char*>(x.raw()) + src * static_cast<int64_t>(row_bytes), row_bytes);
  }
  return out;
}

Var pack_padded(Tape& tape, const Var& padded, const PackedBatch& layout) {
  PackedBatch pb;
  Tensor y = pack_padded(padded.value(), layout.lengths, &pb);
  bool tracked = tape.needs_grad({&padded});
  Var out = make_output(y, tracked);
  if (tracked) {
    tape.record([padded, out, layout]() {
      padded.grad().add_(unpack_to_padded(out.grad(), layout, 0.0f));
    });
  }
  return out;
}

Var unpack_to_padded(Tape& tape, const Var& packed, const PackedBatch& layout) {
  Tensor y = unpack_to_padded(packed.value(), layout, 0.0f);
  bool tracked = tape.needs_grad({&packed});
  Var out = make_output(y, tracked);
  if (tracked) {
    tape.record([packed, out, layout]() {
      PackedBatch pb;
      packed.grad().add_(pack_padded(out.grad(), layout.lengths, &pb));
    });
  }
  return out;
}

}  // namespace recur
