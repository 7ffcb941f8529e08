// The program tests/dist_mpi_test.cc starts under `mpirun -np N`: each scenario checks one part of
// recur::dist across real processes and prints "<scenario> ok rank R" on success. Failed checks
// print "FAIL ..." and exit 2; a recur::Error prints "error: ..." and exits 1.
//
//   recur_dist_worker collectives            all_reduce / broadcast / all_gather / barrier / metrics
//   recur_dist_worker reducer                GradientReducer == the single-process gradient (also row-sparse)
//   recur_dist_worker kill    --timeout S    rank 1 SIGKILLs itself mid-run
//   recur_dist_worker hang    --timeout S    rank 1 stops taking part (sleeps) before a collective
//   recur_dist_worker error                  rank 1 throws outside any collective
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "recur/dist/communicator.h"
#include "recur/dist/data_parallel.h"
#include "toy_problem.h"

namespace recur {
namespace {

int g_failures = 0;

#define WORKER_CHECK(cond, ...)                                                                   \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      ++g_failures;                                                                               \
      std::cerr << fmt::format("FAIL {}:{}: {}: ", __FILE__, __LINE__, #cond) << fmt::format(__VA_ARGS__) << std::endl; \
    }                                                                                             \
  } while (0)

bool near(double a, double b, double tol = 1e-5) { return std::abs(a - b) <= tol * std::max(1.0, std::abs(b)); }

void collectives(dist::Communicator& c) {
  const int r = c.rank(), n = c.size();
  WORKER_CHECK(n >= 2, "size {}", n);
  WORKER_CHECK(c.name() == "mpi", "name {}", c.name());
  WORKER_CHECK(c.local_size() == n && c.local_rank() == r, "local {} of {}", c.local_rank(), c.local_size());
  const double ranks_sum = n * (n - 1) / 2.0;

  Tensor t = Tensor::from({2, 3}, {0, 1, 2, 3, 4, 5});
  for (int64_t i = 0; i < 6; ++i) t.f32()[i] += static_cast<float>(r);
  c.all_reduce(t);
  for (int64_t i = 0; i < 6; ++i) WORKER_CHECK(near(t.item(i), i * n + ranks_sum), "sum[{}] = {}", i, t.item(i));

  Tensor a = Tensor::full({5}, r + 1.0);
  c.all_reduce(a, dist::ReduceOp::Avg);
  WORKER_CHECK(near(a.item(4), (n + 1) / 2.0), "avg = {}", a.item(4));

  // Each rank scales its own contribution: sum_r (r + 1) * 1.
  Tensor s = Tensor::full({3}, 1.0);
  c.all_reduce(s, dist::ReduceOp::Sum, r + 1.0);
  WORKER_CHECK(near(s.item(0), ranks_sum + n), "scaled sum = {}", s.item(0));

  Tensor d = Tensor::full({4}, 0.25 * r, DType::F64);
  Tensor k = Tensor::full({4}, 1000000000000.0 * (r + 1), DType::I64);
  c.all_reduce(d);
  c.all_reduce(k);
  WORKER_CHECK(d.item(3) == 0.25 * ranks_sum, "f64 sum = {}", d.item(3));
  WORKER_CHECK(k.data<int64_t>()[0] == 1000000000000LL * static_cast<int64_t>(ranks_sum + n), "i64 sum = {}",
               k.data<int64_t>()[0]);

  // Two in flight at once, waited in the opposite order; a large one that takes many messages.
  Tensor big = Tensor::full({3 << 20}, 1.0);
  Tensor small = Tensor::full({7}, 2.0);
  auto w1 = c.all_reduce_async(big);
  auto w2 = c.all_reduce_async(small);
  w2->wait();
  w1->wait();
  WORKER_CHECK(big.item(0) == n && big.item((3 << 20) - 1) == n, "big sum = {}", big.item(0));
  WORKER_CHECK(small.item(6) == 2.0 * n, "small sum = {}", small.item(6));

  // A latecomer: the others wait for it in the all-reduce's gate (past its first second of
  // spinning, into the sleeping polls) and the sum is still right.
  if (r == n - 1) usleep(1300 * 1000);
  Tensor late = Tensor::full({1000}, r + 1.0);
  c.all_reduce(late);
  WORKER_CHECK(late.item(999) == ranks_sum + n, "late sum = {}", late.item(999));

  Tensor b = Tensor::full({2, 2}, 10.0 * r);
  c.broadcast(b, 1);
  WORKER_CHECK(b.item(3) == 10.0, "broadcast = {}", b.item(3));

  std::vector<double> g = c.all_gather(std::vector<double>{double(r), r + 0.5});
  WORKER_CHECK(g.size() == 2u * n, "all_gather size {}", g.size());
  for (int q = 0; q < n && g.size() == 2u * n; ++q)
    WORKER_CHECK(g[2 * q] == q && g[2 * q + 1] == q + 0.5, "all_gather[{}] = {}, {}", q, g[2 * q], g[2 * q + 1]);
  std::vector<int64_t> gi = c.all_gather(int64_t{7 * r});
  for (int q = 0; q < n; ++q) WORKER_CHECK(gi[q] == 7 * q, "all_gather i64[{}] = {}", q, gi[q]);
  c.barrier();

  // Metrics: rank r has mean loss r over r tokens (rank 0: no tokens and a NaN mean).
  dist::TokenMean m = dist::reduce_mean(c, r == 0 ? std::nan("") : double(r), r);
  double want_sum = 0;
  for (int q = 1; q < n; ++q) want_sum += double(q) * q;
  WORKER_CHECK(m.tokens == static_cast<int64_t>(ranks_sum) && near(m.sum, want_sum), "reduce_mean {} / {}", m.sum, m.tokens);
  std::vector<double> so = dist::sum_over_ranks(c, {1.0, double(r)});
  WORKER_CHECK(so[0] == n && so[1] == ranks_sum, "sum_over_ranks {}, {}", so[0], so[1]);
  WORKER_CHECK(dist::all_ranks(c, true), "all_ranks(true)");
  WORKER_CHECK(!dist::all_ranks(c, r != n - 1), "all_ranks(false on the last rank)");

  // Different models on different ranks: every rank fails with a message naming the odd one out,
  // and the communicator stays usable (the check is one complete all_gather).
  disttest::ToyModel model(1);
  Rng other_rng(2);
  nn::Linear other(3, 3, other_rng);
  bool threw = false;
  try {
    dist::GradientReducer reducer(r == n - 1 ? other.named_parameters() : model.named_parameters(), c);
  } catch (const Error& e) {
    threw = true;
    WORKER_CHECK(std::string(e.what()).find(fmt::format("rank {}", n - 1)) != std::string::npos, "message: {}", e.what());
  }
  WORKER_CHECK(threw, "a parameter mismatch was not detected");
  c.barrier();
}

// The gradient that GradientReducer leaves on every rank must equal the gradient one process
// computes on the whole batch, for uneven shards, an empty shard, and one bucket or many.
void reducer(dist::Communicator& c) {
  const int r = c.rank(), n = c.size();
  for (const int64_t batch : {int64_t{9}, int64_t{n - 1}}) {
    for (const int64_t bucket_bytes : {int64_t{25} << 20, int64_t{300}}) {
      const auto data = disttest::toy_data(batch, 77 + static_cast<uint64_t>(batch));
      std::vector<int64_t> all;
      for (int64_t i = 0; i < batch; ++i) all.push_back(i);

      disttest::ToyModel reference(100);  // rank 0's initial model, built in-process
      disttest::toy_step(reference, data, all);
      const std::vector<Tensor> want = disttest::grads_of(reference);

      disttest::ToyModel model(100 + static_cast<uint64_t>(r));  // each rank starts different...
      dist::broadcast_parameters(model.named_parameters(), c);   // ...until rank 0's values arrive
      const auto ref_params = reference.named_parameters();
      const auto params = model.named_parameters();
      for (size_t i = 0; i < params.size(); ++i)
        WORKER_CHECK(disttest::max_rel_diff({params[i].second.value()}, {ref_params[i].second.value()}) == 0,
                     "parameter {} differs after broadcast_parameters", params[i].first);

      dist::GradientReducer red(model.named_parameters(), c, dist::ReducerOptions{bucket_bytes});
      const dist::Shard mine = dist::shard(disttest::toy_items(data), r, n);
      double loss = 0;
      if (!mine.indices.empty()) loss = disttest::toy_step(model, data, mine.indices);
      const int64_t total = red.reduce(mine.tokens);
      int64_t want_total = 0;
      for (const auto& s : data) want_total += s.length();
      WORKER_CHECK(total == want_total, "global tokens {} vs {}", total, want_total);
      const double err = disttest::max_rel_diff(disttest::grads_of(model), want);
      WORKER_CHECK(err < 2e-5, "batch {} buckets {} shard tokens {}: gradient differs by {:.3g} (relative)", batch,
                   red.buckets().size(), mine.tokens, err);
      const dist::TokenMean m = dist::reduce_mean(c, loss, mine.tokens);
      std::cout << fmt::format("rank {}: batch {} shard {} tokens of {}, {} bucket(s), rel err {:.2e}, mean loss {:.5f}\n", r,
                               batch, mine.tokens, total, red.buckets().size(), err, m.mean());
    }
  }
}

// Row-sparse reduction of a large table (ReducerOptions::sparse_min_rows) leaves the same gradient
// as the dense sum: rows touched by one rank, by several, by none; a NaN; a rank without tokens;
// nothing touched at all; the dense fallback when most rows are touched, and after three such
// steps the table back in an ordinary bucket.
void sparse_reducer(dist::Communicator& c) {
  const int r = c.rank(), n = c.size();
  constexpr int64_t kRows = 40, kCols = 3, kBias = 5;
  enum Touch { Few, Many, None };
  // Rank q's gradient: rows q, q + 1 and 20 + 2q (Few), all but the last two (Many), or none.
  auto value = [](int q, int64_t row, int64_t col, Touch touch) -> float {
    const bool on = touch == Many ? row < kRows - 2 : touch == Few && (row == q || row == q + 1 || row == 20 + 2 * q);
    return on ? 0.5f * static_cast<float>(q + 1) + static_cast<float>(row) - 0.25f * static_cast<float>(col) : 0.0f;
  };
  for (const Touch touch : {Few, Many, None}) {
    for (const bool idle_last : {false, true}) {
      Var table(Tensor::zeros({kRows, kCols}), true, "table");
      Var bias(Tensor::zeros({kBias}), true, "bias");
      const dist::NamedParams params{{"embed.weight", table}, {"bias", bias}};
      Tensor g({kRows, kCols});
      for (int64_t i = 0; i < kRows * kCols; ++i) g.f32()[i] = value(r, i / kCols, i % kCols, touch);
      const bool nan = touch == Few;  // rank 0 puts a NaN into row 30
      if (nan && r == 0) g.f32()[30 * kCols + 1] = std::nanf("");
      auto tokens = [&](int q) { return idle_last && q == n - 1 ? int64_t{0} : int64_t{q + 1}; };
      int64_t total = 0;
      for (int q = 0; q < n; ++q) total += tokens(q);
      dist::ReducerOptions o;
      o.sparse_min_rows = 10;
      dist::GradientReducer red(params, c, o);
      // Four steps with the same reducer: the first sets fresh gradients, the others write into the
      // bucket views (as backward does). After three dense reduces the table rejoins the bias's bucket.
      for (int step = 0; step < 4; ++step) {
        if (step == 0) {
          table.grad() = g.clone();
          bias.grad() = Tensor::full({kBias}, r + 1.0);
        } else {
          table.grad().copy_from(g);
          bias.grad().copy_from(Tensor::full({kBias}, r + 1.0));
        }
        red.reduce(tokens(r));
        std::vector<bool> touched(kRows, false);
        for (int64_t row = 0; row < kRows; ++row) {
          for (int64_t col = 0; col < kCols; ++col) {
            double want = 0;
            for (int q = 0; q < n; ++q) {
              const double v = value(q, row, col, touch);
              want += static_cast<double>(tokens(q)) / static_cast<double>(total) * v;
              if (v != 0 && tokens(q) > 0) touched[static_cast<size_t>(row)] = true;
            }
            const double got = table.grad().f32()[row * kCols + col];
            if (nan && row == 30 && col == 1 && tokens(0) > 0) {
              WORKER_CHECK(std::isnan(got), "{} row 30: {} instead of NaN", static_cast<int>(touch), got);
              continue;
            }
            WORKER_CHECK(near(got, want), "touch {} idle {} step {} row {} col {}: {} vs {}", static_cast<int>(touch),
                         idle_last, step, row, col, got, want);
          }
        }
        for (int64_t i = 0; i < kBias; ++i) {
          double want = 0;
          for (int q = 0; q < n; ++q) want += static_cast<double>(tokens(q)) / static_cast<double>(total) * (q + 1);
          WORKER_CHECK(near(bias.grad().f32()[i], want), "bias {}: {} vs {}", i, bias.grad().f32()[i], want);
        }
        int64_t rows_sent = 0;
        for (int64_t row = 0; row < kRows; ++row) rows_sent += touched[static_cast<size_t>(row)] || (nan && row == 30);
        const bool want_sparse = touch != Many;
        WORKER_CHECK(red.last_sparse_tensors() == (want_sparse ? 1 : 0), "touch {}: {} sparse tensors",
                     static_cast<int>(touch), red.last_sparse_tensors());
        WORKER_CHECK(red.last_elements() == (want_sparse ? rows_sent * kCols : kRows * kCols) + kBias,
                     "touch {} idle {} step {}: {} elements sent, {} rows touched", static_cast<int>(touch), idle_last,
                     step, red.last_elements(), rows_sent);
        const size_t want_buckets = touch == Many && step >= 2 ? 1 : 2;
        WORKER_CHECK(red.buckets().size() == want_buckets, "touch {} step {}: {} buckets", static_cast<int>(touch),
                     step, red.buckets().size());
        if (touch == Few && !idle_last && step == 3)
          std::cout << fmt::format("rank {}: sparse table sent {} of {} elements\n", r, red.last_elements(),
                                   kRows * kCols + kBias);
      }
    }
  }
}

void kill_scenario(dist::Communicator& c) {
  for (int i = 0; i < 100; ++i) {
    Tensor t = Tensor::full({1000}, 1.0);
    c.all_reduce(t);
    if (c.rank() == 1 && i == 3) {
      std::cerr << "rank 1: killing myself (SIGKILL)" << std::endl;
      raise(SIGKILL);
    }
  }
  WORKER_CHECK(false, "the job survived a dead rank");
}

void hang_scenario(dist::Communicator& c) {
  Tensor t = Tensor::full({10}, 1.0);
  c.all_reduce(t);
  if (c.rank() == 1) {
    std::cerr << "rank 1: stops taking part" << std::endl;
    sleep(60);
  }
  c.all_reduce(t);
  WORKER_CHECK(false, "the second all_reduce completed without rank 1");
}

void error_scenario(dist::Communicator& c) {
  Tensor t = Tensor::full({10}, 1.0);
  c.all_reduce(t);
  if (c.rank() == 1) RECUR_FAIL("rank 1: a bad data line (simulated)");
  c.all_reduce(t);
  WORKER_CHECK(false, "the second all_reduce completed without rank 1");
}

int run(const std::string& scenario, double timeout) {
  auto comm = dist::make_communicator("auto", dist::CommOptions{timeout});
  if (scenario == "collectives") collectives(*comm);
  else if (scenario == "reducer") {
    reducer(*comm);
    sparse_reducer(*comm);
  }
  else if (scenario == "kill") kill_scenario(*comm);
  else if (scenario == "hang") hang_scenario(*comm);
  else if (scenario == "error") error_scenario(*comm);
  else RECUR_FAIL("unknown scenario '{}'", scenario);
  if (g_failures) return 2;
  std::cout << fmt::format("{} ok rank {}", scenario, comm->rank()) << std::endl;
  return 0;
}

}  // namespace
}  // namespace recur

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: recur_dist_worker collectives|reducer|kill|hang|error [--timeout S]\n";
    return 2;
  }
  double timeout = 60;
  for (int i = 2; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--timeout") == 0) timeout = std::atof(argv[i + 1]);
  try {
    return recur::run(argv[1], timeout);
  } catch (const recur::Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
