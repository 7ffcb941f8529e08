#pragma once
/// \file Data parallelism on top of a Communicator: identical starting parameters on every rank
/// (broadcast_parameters), a global batch cut into token-balanced shards (shard), gradients
/// averaged over the global batch in a few fused all-reduces (GradientReducer), and metrics summed
/// over ranks.
///
/// One training step on every rank (docs/DISTRIBUTED.md has the full loop):
///
///     dist::GradientReducer reducer(model.named_parameters(), *comm);    // once, collective
///     dist::broadcast_parameters(model.named_parameters(), *comm);       // once, collective
///     ...
///     dist::Shard mine = dist::shard(items, comm->rank(), comm->size()); // same items everywhere
///     opt.zero_grad();
///     double loss = 0;                   // forward on mine (when non-empty): mean over its tokens
///     if (!dist::all_ranks(*comm, std::isfinite(loss))) continue;  // skip a batch together
///     ...backward (when non-empty)...
///     reducer.reduce(mine.tokens);       // also with 0 tokens: every rank joins every collective
///     clip_grad_norm(...); opt.step();  // identical gradients, so identical steps everywhere
///     dist::TokenMean m = dist::reduce_mean(*comm, loss, mine.tokens);
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "recur/core/tape.h"
#include "recur/dist/communicator.h"

namespace recur::dist {

using NamedParams = std::vector<std::pair<std::string, Var>>;

/// Copies rank `root`'s parameter values to every rank, in fused buckets. Collective. First checks
/// that every rank has the same parameter names, shapes and dtypes (in the same order) and throws
/// naming the ranks that differ from `root` otherwise.
void broadcast_parameters(const NamedParams& params, Communicator& comm, int root = 0);

// ---- buckets --------------------------------------------------------------------------------

/// Where one tensor sits inside a bucket's flat buffer.
struct BucketSlot {
  int64_t param = 0;   ///< index into the parameter list
  int64_t offset = 0;  ///< first element in the flat buffer
  int64_t numel = 0;
};

/// A fusion bucket: tensors packed back to back into one flat buffer, reduced by one collective.
struct Bucket {
  std::vector<BucketSlot> slots;
  int64_t numel = 0;
};

/// Packs tensors of `numels` elements into buckets in reverse order (the last registered
/// parameter, whose gradient backward produces first, goes first). A bucket is closed when the
/// next tensor would take it past `bucket_bytes`; a tensor larger than that gets a bucket of its
/// own (tensors are never split). Every tensor appears in exactly one slot. A tensor with
/// alone[i] set gets a bucket of its own, whatever its size (the reducer reduces such a bucket
/// row-sparsely when few of its rows hold gradient); `alone` is empty or has one flag per tensor.
std::vector<Bucket> plan_buckets(const std::vector<int64_t>& numels, int64_t bucket_bytes, int64_t element_bytes = 4,
                                 const std::vector<bool>& alone = {});

/// Indices of the rows of `t` (a CPU F32 or F64 tensor seen as shape[0] rows of numel/shape[0]
/// values) that hold any value other than +0 or -0 (NaN and Inf count as values), ascending.
std::vector<int64_t> nonzero_rows(const Tensor& t);

/// Copies tensors[slot.param] into flat[slot.offset, +numel) for each slot; an undefined tensor
/// packs as zeros. flat: (>= bucket.numel) 1-d, same dtype and device as the tensors.
void pack_bucket(Tensor& flat, const Bucket& bucket, const std::vector<Tensor>& tensors);
/// The inverse: copies each slot of `flat` into tensors[slot.param] (written in place, through
/// the shared storage; each must be defined with slot.numel elements).
void unpack_bucket(const std::vector<Tensor>& tensors, const Bucket& bucket, const Tensor& flat);

// ---- gradients ------------------------------------------------------------------------------

struct ReducerOptions {
  /// Target size of one fusion bucket (PyTorch DDP's default). Fewer, larger buckets cost less
  /// latency; more, smaller ones start communicating earlier.
  int64_t bucket_bytes = 25LL << 20;
  /// Row-sparse reduction of large tables (word embeddings: a batch touches a few thousand of
  /// their rows, and every other row's gradient is exactly zero on every rank). A CPU parameter
  /// with at least `sparse_min_rows` rows is a candidate: it gets a bucket of its own, and each
  /// reduce() first sums a 0/1 flag per row over the ranks (one small all-reduce for all
  /// candidates). When the rows that are nonzero on some rank are at most `sparse_max_fraction` of
  /// the table, only those rows are packed and all-reduced; the others stay zero, which is what the
  /// dense sum would give. Otherwise the table is reduced densely; a table that goes dense three
  /// reduces in a row (an LSTM weight of 4H rows, an output projection) rejoins the ordinary
  /// buckets for good. 0 turns the sparse path off.
  int64_t sparse_min_rows = 1024;
  double sparse_max_fraction = 0.5;
};

/// Averages parameter gradients over all ranks, weighted by each rank's token count.
///
/// The exact weighting. Rank r computes its loss as a mean over its own n_r tokens (the terms the
/// loss averages: target tokens for seq2seq, sequences for seq2vec), L_r = (1/n_r) sum_{i in r}
/// l_i, and backward gives g_r = dL_r/dtheta. reduce(n_r) replaces the gradient on every rank by
///
///     g = sum_r (n_r / N) g_r,    N = sum_r n_r,
///
/// which equals d/dtheta of (1/N) sum over all N tokens of l_i: the gradient of the mean loss over
/// the global batch, i.e. what one process computing the whole batch would get (up to float
/// rounding). A rank with n_r = 0 contributes exact zeros (its gradients are not read, so stale
/// or undefined ones do no harm); when N = 0 every gradient is set to zero. A plain mean of the
/// g_r (weights 1/size) would be wrong whenever shards hold different token counts.
///
/// Mechanics: the gradients live in fusion buckets (plan_buckets, reverse registration order):
/// from the first reduce() on, every parameter's gradient is a view into its bucket's flat buffer
/// (as PyTorch DDP's gradient_as_bucket_view), so backward accumulates straight into what is sent
/// and nothing is packed or unpacked per step; a gradient replaced since (e.g. after a device
/// move) is copied back in and re-pointed. One all_gather of the n_r, then one all-reduce per
/// bucket (sum, pre-scaled by n_r/N), all in flight together, then wait. No per-parameter
/// collective. Large tables (ReducerOptions::sparse_min_rows) may go row-sparse: one more small
/// all-reduce of per-row flags, then only the rows some rank touched (same result). Every rank
/// must construct the reducer (a collective: it checks that all ranks hold the same parameter
/// list) and call reduce() the same number of times. The reducer keeps a
/// reference to `comm`, which must outlive it; moving the model to another device after
/// construction is fine (the buffers follow on the next reduce()).
class GradientReducer {
 public:
  GradientReducer(NamedParams params, Communicator& comm, const ReducerOptions& options = {});

  /// Replaces every parameter's gradient by the token-weighted global average described above;
  /// allocates gradients that do not exist yet. Returns N, the global token count. Collective.
  int64_t reduce(int64_t local_tokens);

  const std::vector<Bucket>& buckets() const { return buckets_; }
  /// Gradient elements the last reduce() all-reduced (row flags not counted), and how many
  /// tensors went row-sparse in it.
  int64_t last_elements() const { return last_elements_; }
  int64_t last_sparse_tensors() const { return last_sparse_tensors_; }
  /// Token counts of every rank in the last reduce() (for logging load balance).
  const std::vector<int64_t>& last_tokens() const { return last_tokens_; }

 private:
  void ensure_buffers();
  void plan();  // buckets_ and candidate_ from sparse_param_; drops the buffers
  NamedParams params_;
  Communicator& comm_;
  ReducerOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<Tensor> flats_;  // one buffer per bucket, on the parameters' device
  std::vector<int64_t> last_tokens_;
  std::vector<bool> candidate_;     // per bucket: a row-sparse candidate (one tensor, many rows)
  std::vector<bool> sparse_param_;  // per parameter: still a row-sparse candidate
  std::vector<int> dense_streak_;   // per parameter: reduces in a row that went dense
  int64_t last_elements_ = 0, last_sparse_tensors_ = 0;
};

// ---- sharding -------------------------------------------------------------------------------

/// One example of a global batch: its index (into the dataset, or the batch) and its token count.
struct ShardItem {
  int64_t index = 0;
  int64_t tokens = 0;
};

struct Shard {
  std::vector<int64_t> indices;  ///< item indices, in the order the items had in the batch
  int64_t tokens = 0;            ///< their total token count
};

/// Splits a global batch into `size` shards balanced by tokens: items are taken longest first
/// (ties: earlier in the batch first) and each goes to the shard with the fewest tokens so far
/// (ties: the lowest rank). Deterministic: every rank computes the same split from the same items.
/// Returns exactly `size` shards, which partition the items; with fewer items than ranks some are
/// empty (those ranks still call reduce(0)). The largest shard exceeds the smallest by at most the
/// largest item's tokens.
///
/// `speeds` (empty, or one positive number per rank: tokens per second, or any multiple) balances
/// finishing times instead of tokens: each item goes to the rank r with the least
/// (tokens so far + its tokens) / speeds[r], so a rank twice as fast takes about twice the tokens.
/// Every rank must pass the same speeds.
std::vector<Shard> shard(const std::vector<ShardItem>& items, int size, const std::vector<double>& speeds = {});
/// Shard `rank` of shard(items, size, speeds).
Shard shard(const std::vector<ShardItem>& items, int rank, int size, const std::vector<double>& speeds = {});

// ---- metrics --------------------------------------------------------------------------------

/// A token-weighted mean over all ranks.
struct TokenMean {
  double sum = 0;      ///< sum over ranks of local_mean * local_tokens
  int64_t tokens = 0;  ///< sum over ranks of local_tokens
  double mean() const { return tokens > 0 ? sum / static_cast<double>(tokens) : 0.0; }
};
/// Combines each rank's mean (over its local_tokens) into the global mean; ranks with 0 tokens
/// count for nothing. Collective; the same result, bit for bit, on every rank.
TokenMean reduce_mean(Communicator& comm, double local_mean, int64_t local_tokens);
/// Elementwise sum over ranks of equally long vectors, added in rank order (bitwise identical on
/// every rank). Collective.
std::vector<double> sum_over_ranks(Communicator& comm, const std::vector<double>& values);
/// True when every rank passes true (e.g. "my loss is finite"), so that all ranks take the same
/// branch (skip the batch together, or stop together). Collective.
bool all_ranks(Communicator& comm, bool value);

}  // namespace recur::dist
