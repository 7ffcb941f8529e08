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

Var Attention::forward(Tape& tape, const Var& query, const Var& keys, const PackedBatch& layout,
                       Tensor* weights) const {
  const Tensor& q = query.value();
  const Tensor& k = keys.value();
  RECUR_CHECK(q.ndim() == 2 && q.dim(0) == layout.batch() && q.dim(1) == opt_.query_size,
              "Attention: query {} for a batch of {} with query_size {}", q.shape_str(), layout.batch(),
              opt_.query_size);
  RECUR_CHECK(k.ndim() == 2 && k.dim(0) == layout.tokens() && k.dim(1) == opt_.key_size,
              "Attention: keys {} for {} packed tokens with key_size {}", k.shape_str(), layout.tokens(),
              opt_.key_size);
  RECUR_CHECK(q.device() == k.device(), "Attention: query on {}, keys on {}", q.device().str(), k.device().str());
  // Each packed row gets its sequence's (projected) query: a gather, whose backward sums into it.
  const Tensor seq = Tensor::from_i64({layout.tokens()}, row_sequences(layout)).to(k.device());
  Var scores;
  if (opt_.kind == AttentionKind::Additive) {
    Var per_row = embedding(tape, seq, w_q_->forward(tape, query));
    Var hidden = tanh(tape, add(tape, per_row, w_k_->forward(tape, keys)));
    scores = v_->forward(tape, hidden);
  } else {
    Var qk = opt_.kind == AttentionKind::General ? w_q_->forward(tape, query) : query;
    Var prod = mul(tape, embedding(tape, seq, qk), keys);
    // Row sums as a product with a constant ones vector.
    Var ones(Tensor::full({1, opt_.key_size}, 1.0, DType::F32, k.device()));
    scores = linear(tape, prod, ones, Var());
  }
  scores = reshape(tape, scores, {layout.tokens()});
  if (weights) {
    Tensor context;
    ops::attention_pool_forward(&context, weights, k, scores.value(), layout);
  }
  return attention_pool(tape, keys, scores, layout);
}

}  // namespace recur::nn
