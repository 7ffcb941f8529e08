#include "recur/nn/attention.h"

#include "recur/ops/attention_pool.h"
#include "recur/ops/basic.h"

namespace recur::nn {

std::vector<int64_t> row_sequences(const PackedBatch& layout) {
  std::vector<int64_t> seq(static_cast<size_t>(layout.tokens()));
  for (int64_t t = 0; t < layout.steps(); ++t)
    for (int64_t j = 0; j < layout.batch_sizes[static_cast<size_t>(t)]; ++j)
      seq[static_cast<size_t>(layout.row(t, j))] = layout.sorted_indices[static_cast<size_t>(j)];
  return seq;
}

Attention::Attention(const AttentionOptions& options, Rng& init) : opt_(options) {
  RECUR_CHECK(opt_.query_size > 0 && opt_.key_size > 0, "Attention: query_size {} and key_size {} must be positive",
              opt_.query_size, opt_.key_size);
  switch (opt_.kind) {
    case AttentionKind::Dot:
      RECUR_CHECK(opt_.query_size == opt_.key_size, "Attention: dot scores need query_size {} == key_size {}",
                  opt_.query_size, opt_.key_size);
      break;
    case AttentionKind::General:
      w_q_ = register_module("w_q", std::make_shared<Linear>(opt_.query_size, opt_.key_size, init, false));
      break;
    case AttentionKind::Additive: {
      const int64_t A = opt_.hidden > 0 ? opt_.hidden : opt_.key_size;
      w_q_ = register_module("w_q", std::make_shared<Linear>(opt_.query_size, A, init, true));
      w_k_ = register_module("w_k", std::make_shared<Linear>(opt_.key_size, A, init, false));
      v_ = register_module("v", std::make_shared<Linear>(A, 1, init, false));
      break;
    }
  }
}

Var Attention::project_query(Tape& tape, const Var& query) const {
  return opt_.kind == AttentionKind::Dot ? query : w_q_->forward(tape, query);
}

Var Attention::pair_scores(Tape& tape, const Var& query, const Var& key, const Var& projected_key) const {
  if (opt_.kind == AttentionKind::Additive) return v_->forward(tape, tanh(tape, add(tape, query, projected_key)));
  // Row sums of the products, as a product with a constant ones vector.
  Var ones(Tensor::full({1, opt_.key_size}, 1.0, key.value().dtype(), key.value().device()));
  return linear(tape, mul(tape, query, key), ones, Var());
}

namespace {

void check_keys(const Tensor& k, const PackedBatch& layout, int64_t key_size) {
  RECUR_CHECK(k.ndim() == 2 && k.dim(0) == layout.tokens() && k.dim(1) == key_size,
              "Attention: keys {} for {} packed tokens with key_size {}", k.shape_str(), layout.tokens(), key_size);
}

}  // namespace

Var Attention::forward(Tape& tape, const Var& query, const Var& keys, const PackedBatch& layout,
                       Tensor* weights) const {
  const Tensor& q = query.value();
  const Tensor& k = keys.value();
  RECUR_CHECK(q.ndim() == 2 && q.dim(0) == layout.batch() && q.dim(1) == opt_.query_size,
              "Attention: query {} for a batch of {} with query_size {}", q.shape_str(), layout.batch(),
              opt_.query_size);
  check_keys(k, layout, opt_.key_size);
  RECUR_CHECK(q.device() == k.device(), "Attention: query on {}, keys on {}", q.device().str(), k.device().str());
  // Each packed row gets its sequence's (projected) query: a gather, whose backward sums into it.
  const Tensor seq = Tensor::from_i64({layout.tokens()}, row_sequences(layout)).to(k.device());
  Var scores = pair_scores(tape, embedding(tape, seq, project_query(tape, query)), keys,
                           opt_.kind == AttentionKind::Additive ? w_k_->forward(tape, keys) : Var());
  scores = reshape(tape, scores, {layout.tokens()});
  if (weights) {
    Tensor context;
    ops::attention_pool_forward(&context, weights, k, scores.value(), layout);
    *weights = weights->to(DType::F32);
  }
  return attention_pool(tape, keys, scores, layout);
}

Var Attention::project_keys(Tape& tape, const Var& keys) const {
  return opt_.kind == AttentionKind::Additive ? w_k_->forward(tape, keys) : Var();
}

Var Attention::forward_rows(Tape& tape, const Var& query, const std::vector<int64_t>& query_seq, const Var& keys,
                            const PackedBatch& layout, Tensor* weights, const Var& projected_keys) const {
  const Tensor& q = query.value();
  const Tensor& k = keys.value();
  const int64_t M = static_cast<int64_t>(query_seq.size()), B = layout.batch();
  RECUR_CHECK(q.ndim() == 2 && q.dim(0) == M && q.dim(1) == opt_.query_size,
              "Attention: query {} for {} query rows with query_size {}", q.shape_str(), M, opt_.query_size);
  RECUR_CHECK(M > 0, "Attention: no query rows");
  check_keys(k, layout, opt_.key_size);
  RECUR_CHECK(q.device() == k.device(), "Attention: query on {}, keys on {}", q.device().str(), k.device().str());
  bool identity = M == B;
  std::vector<int64_t> lengths(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    const int64_t s = query_seq[static_cast<size_t>(m)];
    RECUR_CHECK(s >= 0 && s < B, "Attention: query row {} attends sequence {}, outside a batch of {}", m, s, B);
    identity = identity && s == m;
    lengths[static_cast<size_t>(m)] = layout.lengths[static_cast<size_t>(s)];
  }
  if (identity && !weights) return forward(tape, query, keys, layout);
  // One packed "sequence" per query row: its sequence's keys, step by step. Gathering the keys and
  // queries per pair lets every score and the softmax run as ops over the whole pair batch.
  const PackedBatch pairs = PackedBatch::from_lengths(lengths);
  std::vector<int64_t> pair_query(static_cast<size_t>(pairs.tokens())), pair_key(pair_query.size());
  for (int64_t t = 0; t < pairs.steps(); ++t)
    for (int64_t j = 0; j < pairs.batch_sizes[static_cast<size_t>(t)]; ++j) {
      const int64_t m = pairs.sorted_indices[static_cast<size_t>(j)];
      const int64_t s = query_seq[static_cast<size_t>(m)];
      pair_query[static_cast<size_t>(pairs.row(t, j))] = m;
      pair_key[static_cast<size_t>(pairs.row(t, j))] = layout.row(t, layout.unsorted_indices[static_cast<size_t>(s)]);
    }
  const Tensor qi = Tensor::from_i64({pairs.tokens()}, pair_query).to(k.device());
  const Tensor ki = Tensor::from_i64({pairs.tokens()}, pair_key).to(k.device());
  Var pair_keys = embedding(tape, ki, keys);
  Var kw;
  if (opt_.kind == AttentionKind::Additive)
    kw = embedding(tape, ki, projected_keys.defined() ? projected_keys : project_keys(tape, keys));
  Var scores = pair_scores(tape, embedding(tape, qi, project_query(tape, query)), pair_keys, kw);
  scores = reshape(tape, scores, {pairs.tokens()});
  if (weights) {
    Tensor context, alpha;
    ops::attention_pool_forward(&context, &alpha, pair_keys.value(), scores.value(), pairs);
    const Tensor a = alpha.to(Device::cpu()).to(DType::F32);
    *weights = Tensor::zeros({M, layout.steps()});
    float* w = weights->data<float>();
    for (int64_t t = 0; t < pairs.steps(); ++t)
      for (int64_t j = 0; j < pairs.batch_sizes[static_cast<size_t>(t)]; ++j)
        w[pairs.sorted_indices[static_cast<size_t>(j)] * layout.steps() + t] = a.data<float>()[pairs.row(t, j)];
  }
  return attention_pool(tape, pair_keys, scores, pairs);
}

}  // namespace recur::nn
