// Attention (dot, general, additive) over packed encoder outputs: against a naive double-precision
// implementation (outputs, weights, and autograd gradients against central differences of it), each
// query seeing only its own sequence, and CPU against GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "recur/core/cuda.h"
#include "recur/nn/attention.h"
#include "test_util.h"

namespace recur::nn {
namespace {

struct Case {
  AttentionKind kind;
  int64_t dq, dk, hidden;
};

std::string kind_name(AttentionKind k) {
  return k == AttentionKind::Dot ? "dot" : k == AttentionKind::General ? "general" : "additive";
}

// The naive reference: for each sequence, score its rows, softmax, weighted sum; in double.
std::vector<double> naive_context(const Case& c, const std::map<std::string, std::vector<double>>& p,
                                  const std::vector<double>& q, const std::vector<double>& k, const PackedBatch& pb,
                                  std::vector<double>* weights = nullptr) {
  const int64_t B = pb.batch(), N = pb.tokens(), A = c.hidden > 0 ? c.hidden : c.dk;
  const std::vector<int64_t> seq = row_sequences(pb);
  std::vector<double> out(static_cast<size_t>(B * c.dk), 0.0), score(static_cast<size_t>(N));
  for (int64_t r = 0; r < N; ++r) {
    const int64_t b = seq[static_cast<size_t>(r)];
    const double* qb = q.data() + b * c.dq;
    const double* kr = k.data() + r * c.dk;
    double s = 0;
    if (c.kind == AttentionKind::Dot) {
      for (int64_t i = 0; i < c.dk; ++i) s += qb[i] * kr[i];
    } else if (c.kind == AttentionKind::General) {
      const auto& W = p.at("w_q.weight");  // (dk, dq)
      for (int64_t i = 0; i < c.dk; ++i) {
        double wq = 0;
        for (int64_t j = 0; j < c.dq; ++j) wq += W[static_cast<size_t>(i * c.dq + j)] * qb[j];
        s += wq * kr[i];
      }
    } else {
      const auto &Wq = p.at("w_q.weight"), &bq = p.at("w_q.bias"), &Wk = p.at("w_k.weight"), &v = p.at("v.weight");
      for (int64_t a = 0; a < A; ++a) {
        double h = bq[static_cast<size_t>(a)];
        for (int64_t j = 0; j < c.dq; ++j) h += Wq[static_cast<size_t>(a * c.dq + j)] * qb[j];
        for (int64_t i = 0; i < c.dk; ++i) h += Wk[static_cast<size_t>(a * c.dk + i)] * kr[i];
        s += v[static_cast<size_t>(a)] * std::tanh(h);
      }
    }
    score[static_cast<size_t>(r)] = s;
  }
  std::vector<double> mx(static_cast<size_t>(B), -1e300), z(static_cast<size_t>(B), 0.0);
  for (int64_t r = 0; r < N; ++r)
    mx[static_cast<size_t>(seq[static_cast<size_t>(r)])] =
        std::max(mx[static_cast<size_t>(seq[static_cast<size_t>(r)])], score[static_cast<size_t>(r)]);
  for (int64_t r = 0; r < N; ++r) {
    const size_t b = static_cast<size_t>(seq[static_cast<size_t>(r)]);
    z[b] += std::exp(score[static_cast<size_t>(r)] - mx[b]);
  }
  if (weights) weights->assign(static_cast<size_t>(N), 0.0);
  for (int64_t r = 0; r < N; ++r) {
    const size_t b = static_cast<size_t>(seq[static_cast<size_t>(r)]);
    const double w = std::exp(score[static_cast<size_t>(r)] - mx[b]) / z[b];
    if (weights) (*weights)[static_cast<size_t>(r)] = w;
    for (int64_t i = 0; i < c.dk; ++i) out[b * static_cast<size_t>(c.dk) + static_cast<size_t>(i)] += w * k[static_cast<size_t>(r * c.dk + i)];
  }
  return out;
}

std::vector<double> to_doubles(const Tensor& t) {
  Tensor h = t.cpu();
  std::vector<double> v(static_cast<size_t>(h.numel()));
  for (int64_t i = 0; i < h.numel(); ++i) v[static_cast<size_t>(i)] = h.f32()[i];
  return v;
}

std::string case_name(const ::testing::TestParamInfo<Case>& param_info) { return kind_name(param_info.param.kind); }

class AttentionKinds : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionKinds, MatchesNaiveAndGradientsMatchCentralDifferences) {
  const Case c = GetParam();
  Rng init(3);
  Attention att({c.kind, c.dq, c.dk, c.hidden}, init);
  PackedBatch pb = PackedBatch::from_lengths({4, 1, 6, 3});
  Rng rng(8);
  Var q(test::randn({pb.batch(), c.dq}, rng, 0.7), true), k(test::randn({pb.tokens(), c.dk}, rng, 0.7), true);
  std::map<std::string, std::vector<double>> p;
  for (const auto& [name, v] : att.named_parameters()) p[name] = to_doubles(v.value());
  Tape tape;
  Tensor weights;
  Var ctx = att.forward(tape, q, k, pb, &weights);
  std::vector<double> ref_w;
  const std::vector<double> ref = naive_context(c, p, to_doubles(q.value()), to_doubles(k.value()), pb, &ref_w);
  ASSERT_EQ(ctx.value().numel(), static_cast<int64_t>(ref.size()));
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(ctx.value().f32()[i], ref[i], 1e-5) << i;
  for (size_t i = 0; i < ref_w.size(); ++i) EXPECT_NEAR(weights.f32()[i], ref_w[i], 1e-5) << i;

  // Gradients of sum(ctx * g) against central differences of the naive double function.
  Tensor g = test::randn(ctx.value().shape(), rng, 1.0);
  tape.backward(ctx, g);
  const std::vector<double> gd = to_doubles(g);
  auto loss = [&](const std::vector<double>& qv, const std::vector<double>& kv,
                  const std::map<std::string, std::vector<double>>& pv) {
    const std::vector<double> out = naive_context(c, pv, qv, kv, pb);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * gd[i];
    return s;
  };
  const double eps = 1e-6;
  auto check = [&](std::vector<double>& x, const Tensor& grad, const std::function<double()>& f, const std::string& what) {
    ASSERT_EQ(grad.numel(), static_cast<int64_t>(x.size())) << what;
    for (size_t i = 0; i < x.size(); ++i) {
      const double keep = x[i];
      x[i] = keep + eps;
      const double up = f();
      x[i] = keep - eps;
      const double down = f();
      x[i] = keep;
      const double num = (up - down) / (2 * eps);
      EXPECT_NEAR(grad.f32()[i], num, 2e-4 + 2e-3 * std::fabs(num)) << what << " element " << i;
    }
  };
  std::vector<double> qv = to_doubles(q.value()), kv = to_doubles(k.value());
  check(qv, q.grad(), [&] { return loss(qv, kv, p); }, "query");
  check(kv, k.grad(), [&] { return loss(qv, kv, p); }, "keys");
  for (const auto& [name, v] : att.named_parameters()) check(p[name], v.grad(), [&] { return loss(qv, kv, p); }, name);
}

INSTANTIATE_TEST_SUITE_P(Kinds, AttentionKinds,
                         ::testing::Values(Case{AttentionKind::Dot, 5, 5, 0}, Case{AttentionKind::General, 4, 6, 0},
                                           Case{AttentionKind::Additive, 4, 6, 7}),
                         case_name);

// A query attends only to its own sequence: changing another sequence's keys leaves it alone.
TEST(Attention, EachQuerySeesOnlyItsSequence) {
  Rng init(1), rng(2);
  Attention att({AttentionKind::Additive, 3, 4, 5}, init);
  PackedBatch pb = PackedBatch::from_lengths({2, 5, 3});
  Tensor q = test::randn({3, 3}, rng), k = test::randn({pb.tokens(), 4}, rng);
  Tape tape;
  NoGrad ng(tape);
  Tensor before = att.forward(tape, Var(q), Var(k), pb).value().clone();
  Tensor k2 = k.clone();
  for (int64_t t = 0; t < pb.steps(); ++t)
    for (int64_t j = 0; j < pb.batch_sizes[static_cast<size_t>(t)]; ++j)
      if (pb.sorted_indices[static_cast<size_t>(j)] == 1)  // sequence 1's rows
        for (int64_t i = 0; i < 4; ++i) k2.f32()[pb.row(t, j) * 4 + i] += 3.0f;
  Tensor after = att.forward(tape, Var(q), Var(k2), pb).value();
  for (int64_t b : {0, 2})
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(after.f32()[b * 4 + i], before.f32()[b * 4 + i]) << b;
  bool moved = false;
  for (int64_t i = 0; i < 4; ++i) moved |= after.f32()[4 + i] != before.f32()[4 + i];
  EXPECT_TRUE(moved);
  EXPECT_THROW(att.forward(tape, Var(test::randn({2, 3}, rng)), Var(k), pb), Error);  // one query per sequence
  EXPECT_THROW(Attention({AttentionKind::Dot, 3, 4, 0}, init), Error);                  // dot needs equal sizes
}

// The same module on the GPU: context, weights and every gradient equal the CPU's.
TEST(CudaAttention, MatchesCpu) {
  RECUR_REQUIRE_GPU();
  for (AttentionKind kind : {AttentionKind::Dot, AttentionKind::General, AttentionKind::Additive}) {
    Rng a(4), b(4), rng(6);
    const int64_t dq = 8, dk = 8;
    Attention cpu({kind, dq, dk, 6}, a), gpu({kind, dq, dk, 6}, b);
    gpu.to(Device::cuda(0));
    PackedBatch pb = PackedBatch::from_lengths({7, 2, 9, 1, 4});
    Tensor qv = test::randn({pb.batch(), dq}, rng), kv = test::randn({pb.tokens(), dk}, rng);
    Tensor g = test::randn({pb.batch(), dk}, rng);
    Var qc(qv.clone(), true), kc(kv.clone(), true), qg(qv.to(Device::cuda(0)), true), kg(kv.to(Device::cuda(0)), true);
    Tape tc, tg;
    Tensor wc, wg;
    Var yc = cpu.forward(tc, qc, kc, pb, &wc), yg = gpu.forward(tg, qg, kg, pb, &wg);
    SCOPED_TRACE(kind_name(kind));
    EXPECT_ALL_CLOSE(yg.value(), yc.value(), 1e-5, 1e-6);
    EXPECT_ALL_CLOSE(wg, wc, 1e-5, 1e-6);
    tc.backward(yc, g);
    tg.backward(yg, g.to(Device::cuda(0)));
    EXPECT_ALL_CLOSE(qg.grad(), qc.grad(), 1e-4, 1e-5);
    EXPECT_ALL_CLOSE(kg.grad(), kc.grad(), 1e-4, 1e-5);
    auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
    for (size_t i = 0; i < pc.size(); ++i) EXPECT_ALL_CLOSE(pg[i].second.grad(), pc[i].second.grad(), 1e-4, 1e-5);
  }
}

}  // namespace
}  // namespace recur::nn
