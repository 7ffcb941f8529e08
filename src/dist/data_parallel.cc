// Data parallelism over a Communicator: parameter broadcast, fused token-weighted gradient
// averaging, token-balanced sharding, metrics.
#include "recur/dist/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

#include "recur/core/error.h"

namespace recur::dist {
namespace {

// FNV-1a over names, shapes and dtypes: equal on two ranks exactly when their parameter lists
// (in order) agree.
int64_t fingerprint(const NamedParams& params) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  for (const auto& [name, var] : params) {
    mix(name.data(), name.size() + 1);
    for (int64_t d : var.shape()) mix(&d, sizeof d);
    const DType dt = var.value().dtype();
    mix(&dt, sizeof dt);
    mix("|", 1);
  }
  return static_cast<int64_t>(h);
}

// Collective: throws on every rank (naming the odd ones out) unless all ranks agree with `root`.
void check_same_parameters(const NamedParams& params, Communicator& comm, int root, const char* what) {
  const std::vector<int64_t> all = comm.all_gather(std::vector<int64_t>{fingerprint(params),
                                                                        static_cast<int64_t>(params.size())});
  std::vector<std::string> differ;
  for (int r = 0; r < comm.size(); ++r)
    if (all[static_cast<size_t>(2 * r)] != all[static_cast<size_t>(2 * root)])
      differ.push_back(fmt::format("rank {} ({} tensors)", r, all[static_cast<size_t>(2 * r + 1)]));
  RECUR_CHECK(differ.empty(),
              "{}: the parameter names, shapes or dtypes of {} differ from rank {}'s ({} tensors); every rank must build "
              "the same model",
              what, fmt::join(differ, ", "), root, all[static_cast<size_t>(2 * root + 1)]);
}

struct Layout {
  DType dtype = DType::F32;
  Device device;
};

Layout common_layout(const NamedParams& params, const char* what) {
  Layout l;
  if (params.empty()) return l;
  l.dtype = params.front().second.value().dtype();
  l.device = params.front().second.value().device();
  for (const auto& [name, v] : params) {
    RECUR_CHECK(v.value().dtype() == l.dtype && v.value().device() == l.device,
                "{}: parameter {} is {} on {}, but {} is {} on {}; all parameters must share dtype and device", what, name,
                dtype_name(v.value().dtype()), v.value().device().str(), params.front().first, dtype_name(l.dtype),
                l.device.str());
    RECUR_CHECK(l.dtype == DType::F32 || l.dtype == DType::F64, "{}: parameter {} is {}, expected F32 or F64", what, name,
                dtype_name(l.dtype));
  }
  return l;
}

std::vector<int64_t> numels_of(const NamedParams& params) {
  std::vector<int64_t> n;
  for (const auto& p : params) n.push_back(p.second.value().numel());
  return n;
}

}  // namespace

// ---- buckets --------------------------------------------------------------------------------

std::vector<Bucket> plan_buckets(const std::vector<int64_t>& numels, int64_t bucket_bytes, int64_t element_bytes,
                                 const std::vector<bool>& alone) {
  RECUR_CHECK(bucket_bytes > 0 && element_bytes > 0, "plan_buckets: bucket_bytes {} and element_bytes {} must be > 0",
              bucket_bytes, element_bytes);
  RECUR_CHECK(alone.empty() || alone.size() == numels.size(), "plan_buckets: {} 'alone' flags for {} tensors",
              alone.size(), numels.size());
  std::vector<Bucket> out;
  Bucket cur;
  for (int64_t i = static_cast<int64_t>(numels.size()) - 1; i >= 0; --i) {
    const int64_t n = numels[static_cast<size_t>(i)];
    RECUR_CHECK(n >= 0, "plan_buckets: tensor {} has {} elements", i, n);
    const bool own = !alone.empty() && alone[static_cast<size_t>(i)];
    if (!cur.slots.empty() && (own || (cur.numel + n) * element_bytes > bucket_bytes)) {
      out.push_back(std::move(cur));
      cur = Bucket{};
    }
    cur.slots.push_back(BucketSlot{i, cur.numel, n});
    cur.numel += n;
    if (own) {
      out.push_back(std::move(cur));
      cur = Bucket{};
    }
  }
  if (!cur.slots.empty()) out.push_back(std::move(cur));
  return out;
}

namespace {

// Rows of `cols` values, as unsigned words of the same width: a row is nonzero when some word has
// a bit set other than the sign bit. Written so that the inner loop vectorises.
template <typename Word>
void mark_nonzero_rows(const Word* w, int64_t rows, int64_t cols, std::vector<int64_t>& out) {
  constexpr Word kMagnitude = static_cast<Word>(~Word{0}) >> 1;
  for (int64_t r = 0; r < rows; ++r) {
    const Word* row = w + r * cols;
    Word any = 0;
    for (int64_t c = 0; c < cols; ++c) any |= row[c] & kMagnitude;
    if (any) out.push_back(r);
  }
}

int64_t row_width(const Tensor& t) { return t.ndim() == 0 || t.dim(0) == 0 ? 0 : t.numel() / t.dim(0); }

// Copies rows `idx` of `table` (rows x cols) into consecutive rows of `packed`, or back (to_table).
template <typename T>
void move_rows(T* table, T* packed, const std::vector<int64_t>& idx, int64_t cols, bool to_table) {
  for (size_t k = 0; k < idx.size(); ++k) {
    T* t = table + idx[k] * cols;
    T* p = packed + static_cast<int64_t>(k) * cols;
    if (to_table) std::copy(p, p + cols, t);
    else std::copy(t, t + cols, p);
  }
}

void move_rows(Tensor& table, Tensor& packed, const std::vector<int64_t>& idx, bool to_table) {
  const int64_t cols = row_width(table);
  if (table.dtype() == DType::F64) move_rows(table.data<double>(), packed.data<double>(), idx, cols, to_table);
  else move_rows(table.f32(), packed.f32(), idx, cols, to_table);
}

}  // namespace

std::vector<int64_t> nonzero_rows(const Tensor& t) {
  RECUR_CHECK(t.device().is_cpu() && (t.dtype() == DType::F32 || t.dtype() == DType::F64) && t.ndim() >= 1,
              "nonzero_rows: expected a CPU F32 or F64 tensor of at least one dimension, got {} {} on {}",
              dtype_name(t.dtype()), t.shape_str(), t.device().str());
  std::vector<int64_t> out;  // tensors are contiguous (tensor.h)
  if (t.dtype() == DType::F64) mark_nonzero_rows(static_cast<const uint64_t*>(t.raw()), t.dim(0), row_width(t), out);
  else mark_nonzero_rows(static_cast<const uint32_t*>(t.raw()), t.dim(0), row_width(t), out);
  return out;
}

void pack_bucket(Tensor& flat, const Bucket& bucket, const std::vector<Tensor>& tensors) {
  RECUR_CHECK(flat.ndim() == 1 && flat.numel() >= bucket.numel, "pack_bucket: flat buffer {} for a bucket of {}",
              flat.shape_str(), bucket.numel);
  for (const BucketSlot& s : bucket.slots) {
    RECUR_CHECK(s.param >= 0 && s.param < static_cast<int64_t>(tensors.size()), "pack_bucket: slot for tensor {} of {}",
                s.param, tensors.size());
    Tensor dst = flat.rows(s.offset, s.offset + s.numel);
    const Tensor& src = tensors[static_cast<size_t>(s.param)];
    if (!src.defined()) {
      dst.zero_();
      continue;
    }
    RECUR_CHECK(src.numel() == s.numel, "pack_bucket: tensor {} has {} elements, its slot {}", s.param, src.numel(),
                s.numel);
    dst.copy_from(src);
  }
}

void unpack_bucket(const std::vector<Tensor>& tensors, const Bucket& bucket, const Tensor& flat) {
  RECUR_CHECK(flat.ndim() == 1 && flat.numel() >= bucket.numel, "unpack_bucket: flat buffer {} for a bucket of {}",
              flat.shape_str(), bucket.numel);
  for (const BucketSlot& s : bucket.slots) {
    RECUR_CHECK(s.param >= 0 && s.param < static_cast<int64_t>(tensors.size()),
                "unpack_bucket: slot for tensor {} of {}", s.param, tensors.size());
    Tensor dst = tensors[static_cast<size_t>(s.param)];  // shares storage: writes land in the caller's tensor
    RECUR_CHECK(dst.defined() && dst.numel() == s.numel, "unpack_bucket: tensor {} ({} elements) for a slot of {}",
                s.param, dst.defined() ? dst.numel() : 0, s.numel);
    dst.copy_from(flat.rows(s.offset, s.offset + s.numel));
  }
}

// ---- parameters -----------------------------------------------------------------------------

void broadcast_parameters(const NamedParams& params, Communicator& comm, int root) {
  RECUR_CHECK(root >= 0 && root < comm.size(), "broadcast_parameters: root {} is not a rank of {}", root, comm.size());
  check_same_parameters(params, comm, root, "broadcast_parameters");
  if (comm.size() == 1 || params.empty()) return;
  const Layout l = common_layout(params, "broadcast_parameters");
  std::vector<Tensor> values;
  for (const auto& p : params) values.push_back(p.second.value());
  for (const Bucket& b : plan_buckets(numels_of(params), ReducerOptions{}.bucket_bytes,
                                      static_cast<int64_t>(dtype_size(l.dtype)))) {
    Tensor flat({b.numel}, l.dtype, l.device);
    if (comm.rank() == root) pack_bucket(flat, b, values);
    comm.broadcast(flat, root);
    if (comm.rank() != root) unpack_bucket(values, b, flat);
  }
}

// ---- gradients ------------------------------------------------------------------------------

GradientReducer::GradientReducer(NamedParams params, Communicator& comm, const ReducerOptions& options)
    : params_(std::move(params)), comm_(comm), options_(options) {
  RECUR_CHECK(options_.bucket_bytes > 0, "GradientReducer: bucket_bytes {} must be > 0", options_.bucket_bytes);
  RECUR_CHECK(options_.sparse_max_fraction >= 0 && options_.sparse_max_fraction <= 1 && options_.sparse_min_rows >= 1,
              "GradientReducer: sparse_max_fraction {} must be in [0, 1] and sparse_min_rows {} at least 1",
              options_.sparse_max_fraction, options_.sparse_min_rows);
  for (const auto& p : params_)
    sparse_param_.push_back(options_.sparse_max_fraction > 0 && p.second.value().ndim() >= 1 &&
                            p.second.value().dim(0) >= options_.sparse_min_rows);
  dense_streak_.assign(params_.size(), 0);
  plan();
  check_same_parameters(params_, comm_, 0, "GradientReducer");
}

void GradientReducer::plan() {
  const Layout l = common_layout(params_, "GradientReducer");
  buckets_ = plan_buckets(numels_of(params_), options_.bucket_bytes, static_cast<int64_t>(dtype_size(l.dtype)),
                          sparse_param_);
  candidate_.clear();
  for (const Bucket& b : buckets_)
    candidate_.push_back(b.slots.size() == 1 && sparse_param_[static_cast<size_t>(b.slots.front().param)]);
  flats_.clear();  // the next ensure_buffers() lays the gradients out in the new buckets
}

void GradientReducer::ensure_buffers() {
  // Allocated on first use, and again if the model moved (e.g. to a GPU) after construction.
  const Layout l = common_layout(params_, "GradientReducer");
  if (flats_.size() != buckets_.size() ||
      (!flats_.empty() && (flats_.front().device() != l.device || flats_.front().dtype() != l.dtype))) {
    flats_.clear();
    for (const Bucket& b : buckets_) flats_.emplace_back(Shape{b.numel}, l.dtype, l.device);
  }
  // Every gradient lives in its bucket's buffer (a view), so that backward accumulates straight
  // into what the all-reduce sends and receives: no packing or unpacking per step. A gradient that
  // is not such a view (the first step, or one replaced since) has its values copied in first.
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (const BucketSlot& s : buckets_[b].slots) {
      const Var& p = params_[static_cast<size_t>(s.param)].second;
      Tensor slot = flats_[b].rows(s.offset, s.offset + s.numel);
      if (p.has_grad() && p.grad().raw() == slot.raw() && p.grad().dtype() == slot.dtype() &&
          p.grad().device() == slot.device())
        continue;
      if (p.has_grad() && p.grad().numel() == s.numel) slot.copy_from(p.grad());
      else slot.zero_();
      p.grad() = slot.view(p.shape());
    }
}

int64_t GradientReducer::reduce(int64_t local_tokens) {
  RECUR_CHECK(local_tokens >= 0, "GradientReducer::reduce: local token count {} < 0", local_tokens);
  last_tokens_ = comm_.all_gather(local_tokens);
  const int64_t total = std::accumulate(last_tokens_.begin(), last_tokens_.end(), int64_t{0});
  if (total == 0) {  // nobody had data: the average of nothing is no step
    for (auto& p : params_) p.second.grad().zero_();
    return 0;
  }
  if (comm_.size() == 1) return total;  // weight n/N = 1: the gradient already is the mean
  ensure_buffers();
  const double weight = static_cast<double>(local_tokens) / static_cast<double>(total);
  // A rank without tokens sends exact zeros: its gradients are never read (they may be stale).
  if (local_tokens == 0)
    for (Tensor& f : flats_) f.zero_();
  // Row-sparse candidates (CPU only): which rows hold gradient on some rank? One all-reduce of a
  // 0/1 flag per row for all candidates together; the counts are exact in float, so every rank
  // takes the same decisions from them.
  // A candidate bucket holds one parameter: that parameter's variable.
  auto table_var = [&](size_t b) -> const Var& {
    return params_[static_cast<size_t>(buckets_[b].slots.front().param)].second;
  };
  std::vector<std::vector<int64_t>> union_rows(buckets_.size());
  std::vector<bool> sparse(buckets_.size(), false);
  const bool decide = flats_.empty() || flats_.front().device().is_cpu();  // GPU buffers stay dense
  if (decide) {
    int64_t flag_count = 0;
    for (size_t b = 0; b < buckets_.size(); ++b)
      if (candidate_[b]) flag_count += table_var(b).value().dim(0);
    if (flag_count > 0) {
      Tensor flags = Tensor::zeros({flag_count});
      int64_t at = 0;
      for (size_t b = 0; b < buckets_.size(); ++b) {
        if (!candidate_[b]) continue;
        const Var& p = table_var(b);
        for (int64_t r : nonzero_rows(flats_[b].view(p.shape()))) flags.f32()[at + r] = 1.0f;
        at += p.shape()[0];
      }
      comm_.all_reduce(flags);
      at = 0;
      for (size_t b = 0; b < buckets_.size(); ++b) {
        if (!candidate_[b]) continue;
        const int64_t rows = table_var(b).value().dim(0);
        for (int64_t r = 0; r < rows; ++r)
          if (flags.f32()[at + r] > 0) union_rows[b].push_back(r);
        at += rows;
        sparse[b] = static_cast<double>(union_rows[b].size()) <= options_.sparse_max_fraction * static_cast<double>(rows);
      }
    }
  }
  // A candidate that went dense kDenseSteps reduces in a row is a dense tensor (an LSTM weight with
  // many gate rows, an output projection): it rejoins the ordinary buckets after this reduce, so it
  // no longer costs a scan, a flag per row and a collective of its own. Every rank sees the same
  // flag counts, so all re-plan together.
  constexpr int kDenseSteps = 3;
  bool replan = false;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (!decide || !candidate_[b]) continue;
    const size_t param = static_cast<size_t>(buckets_[b].slots.front().param);
    dense_streak_[param] = sparse[b] ? 0 : dense_streak_[param] + 1;
    if (dense_streak_[param] >= kDenseSteps) sparse_param_[param] = false, replan = true;
  }
  last_elements_ = last_sparse_tensors_ = 0;
  std::vector<std::unique_ptr<Work>> works;
  std::vector<Tensor> packed(buckets_.size());  // the rows sent for a sparse bucket
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Tensor* send = &flats_[b];
    if (sparse[b]) {
      Tensor table = flats_[b].view(table_var(b).shape());
      const int64_t cols = row_width(table);
      packed[b] = Tensor({static_cast<int64_t>(union_rows[b].size()) * cols}, flats_[b].dtype());
      move_rows(table, packed[b], union_rows[b], false);
      send = &packed[b];
      ++last_sparse_tensors_;
    }
    last_elements_ += send->numel();
    if (send->numel() == 0) {  // nothing touched anywhere: the zeros are already the sum
      works.push_back(nullptr);
      continue;
    }
    works.push_back(comm_.all_reduce_async(*send, ReduceOp::Sum, weight));
    for (auto& w : works)
      if (w) w->test();  // let earlier buckets progress while the next one starts
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (works[b]) works[b]->wait();  // dense gradients are views of the buffers: nothing to unpack
    if (!sparse[b]) continue;
    // Rows outside the union are zero here already (zero on every rank, this one included).
    Tensor table = flats_[b].view(table_var(b).shape());
    move_rows(table, packed[b], union_rows[b], true);
  }
  if (replan) plan();  // the gradients stay views of the old buffers until the next reduce() moves them
  return total;
}

// ---- sharding -------------------------------------------------------------------------------

std::vector<Shard> shard(const std::vector<ShardItem>& items, int size, const std::vector<double>& speeds) {
  RECUR_CHECK(size >= 1, "shard: {} ranks", size);
  RECUR_CHECK(speeds.empty() || speeds.size() == static_cast<size_t>(size), "shard: {} speeds for {} ranks",
              speeds.size(), size);
  for (size_t r = 0; r < speeds.size(); ++r)
    RECUR_CHECK(std::isfinite(speeds[r]) && speeds[r] > 0, "shard: rank {} has speed {}", r, speeds[r]);
  std::vector<size_t> order(items.size());
  std::iota(order.begin(), order.end(), size_t{0});
  for (const ShardItem& it : items)
    RECUR_CHECK(it.tokens >= 0, "shard: item {} has {} tokens", it.index, it.tokens);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return items[a].tokens > items[b].tokens; });
  // Each item goes to the rank that would finish it first: the fewest tokens so far, or with
  // speeds, the least (tokens + the item's) / speed. Ties go to the lowest rank.
  std::vector<int64_t> load(static_cast<size_t>(size), 0);
  std::vector<std::vector<size_t>> members(static_cast<size_t>(size));
  for (size_t i : order) {
    size_t best = 0;
    double best_finish = 0;
    for (size_t r = 0; r < load.size(); ++r) {
      const double finish = speeds.empty() ? static_cast<double>(load[r])
                                           : static_cast<double>(load[r] + items[i].tokens) / speeds[r];
      if (r == 0 || finish < best_finish) best = r, best_finish = finish;
    }
    members[best].push_back(i);
    load[best] += items[i].tokens;
  }
  std::vector<Shard> out(static_cast<size_t>(size));
  for (size_t r = 0; r < out.size(); ++r) {
    std::sort(members[r].begin(), members[r].end());  // batch order within a shard
    for (size_t i : members[r]) {
      out[r].indices.push_back(items[i].index);
      out[r].tokens += items[i].tokens;
    }
  }
  return out;
}

Shard shard(const std::vector<ShardItem>& items, int rank, int size, const std::vector<double>& speeds) {
  RECUR_CHECK(rank >= 0 && rank < size, "shard: rank {} of {}", rank, size);
  return shard(items, size, speeds)[static_cast<size_t>(rank)];
}

// ---- metrics --------------------------------------------------------------------------------

TokenMean reduce_mean(Communicator& comm, double local_mean, int64_t local_tokens) {
  RECUR_CHECK(local_tokens >= 0, "reduce_mean: local token count {} < 0", local_tokens);
  // A rank without tokens may hold a meaningless mean (NaN from 0/0): it must not poison the sum.
  const double local_sum = local_tokens > 0 ? local_mean * static_cast<double>(local_tokens) : 0.0;
  // One all_gather for both (token counts are exact in a double up to 2^53).
  const std::vector<double> all = comm.all_gather(std::vector<double>{local_sum, static_cast<double>(local_tokens)});
  TokenMean m;
  for (size_t r = 0; r < all.size(); r += 2) {
    m.sum += all[r];
    m.tokens += static_cast<int64_t>(all[r + 1]);
  }
  return m;
}

std::vector<double> sum_over_ranks(Communicator& comm, const std::vector<double>& values) {
  const std::vector<double> all = comm.all_gather(values);
  std::vector<double> out(values.size(), 0.0);
  for (int r = 0; r < comm.size(); ++r)
    for (size_t i = 0; i < values.size(); ++i) out[i] += all[static_cast<size_t>(r) * values.size() + i];
  return out;
}

bool all_ranks(Communicator& comm, bool value) {
  for (int64_t v : comm.all_gather(int64_t{value ? 1 : 0}))
    if (!v) return false;
  return true;
}

}  // namespace recur::dist
