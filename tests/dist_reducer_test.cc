// GradientReducer's token weighting, in one process: with the local communicator, and with a
// dist::ThreadWorld of threads that stands in for several ranks (the real multi-process
// runs are in dist_mpi_test.cc).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <thread>

#include "dist/toy_problem.h"
#include "recur/dist/communicator.h"
#include "recur/dist/data_parallel.h"
#include "recur/dist/thread_world.h"
#include "test_util.h"

namespace recur {
namespace {

// A rank of a dist::ThreadWorld that counts its all-reduces.
class ThreadCommunicator final : public dist::Communicator {
 public:
  explicit ThreadCommunicator(std::unique_ptr<dist::Communicator> inner) : inner_(std::move(inner)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  int local_rank() const override { return inner_->local_rank(); }
  int local_size() const override { return inner_->local_size(); }
  std::string name() const override { return inner_->name(); }
  Device device() const override { return inner_->device(); }
  const dist::CommOptions& options() const override { return inner_->options(); }
  std::unique_ptr<dist::Work> all_reduce_async(Tensor& t, dist::ReduceOp op, double scale) override {
    ++all_reduces;
    return inner_->all_reduce_async(t, op, scale);
  }
  void broadcast(Tensor& t, int root) override { inner_->broadcast(t, root); }
  std::vector<double> all_gather(const std::vector<double>& values) override { return inner_->all_gather(values); }
  std::vector<int64_t> all_gather(const std::vector<int64_t>& values) override { return inner_->all_gather(values); }
  using dist::Communicator::all_gather;
  void barrier() override { inner_->barrier(); }
  [[noreturn]] void abort(int code) override {
    inner_->abort(code);
    std::_Exit(code);  // not reached
  }

  int all_reduces = 0;

 private:
  std::unique_ptr<dist::Communicator> inner_;
};

// Runs fn(rank, comm) on one thread per rank.
void run_world(int size, const std::function<void(int, ThreadCommunicator&)>& fn) {
  dist::ThreadWorld world(size);
  std::vector<std::unique_ptr<ThreadCommunicator>> comms;
  for (int r = 0; r < size; ++r) comms.push_back(std::make_unique<ThreadCommunicator>(world.communicator(r)));
  world.run(1, [&](int r) { fn(r, *comms[static_cast<size_t>(r)]); });
}

// Parameters with gradients set directly: rank r's gradient of parameter p is a known tensor.
struct FakeParams {
  dist::NamedParams params;
  FakeParams(const std::vector<Tensor>& grads) {
    for (size_t i = 0; i < grads.size(); ++i) {
      Var v(Tensor::zeros(grads[i].shape()), true);
      if (grads[i].defined()) v.grad().copy_from(grads[i]);
      params.emplace_back(fmt::format("p{}", i), v);  // (GCC 12 warns falsely on "p" + to_string)
    }
  }
};

TEST(DistReducer, WeightsEachRankByItsTokens) {
  // Three ranks with 5, 0 and 2 tokens; rank 1's gradients are NaN (it ran no backward, say) and
  // must not leak into the result: g = (5 g0 + 2 g2) / 7.
  Rng rng(3);
  const std::vector<Shape> shapes{{4, 3}, {7}, {2, 5}};
  std::vector<std::vector<Tensor>> grads(3);
  for (int r = 0; r < 3; ++r)
    for (const Shape& s : shapes)
      grads[static_cast<size_t>(r)].push_back(r == 1 ? Tensor::full(s, std::nan("")) : test::randn(s, rng));
  const std::vector<int64_t> tokens{5, 0, 2};
  std::vector<std::vector<Tensor>> result(3);
  std::vector<int64_t> totals(3), reduces(3);
  std::vector<size_t> buckets(3);
  run_world(3, [&](int r, ThreadCommunicator& comm) {
    FakeParams fp(grads[static_cast<size_t>(r)]);
    // A 40-byte cap: several buckets, so bucketing and weighting are tested together.
    dist::GradientReducer red(fp.params, comm, dist::ReducerOptions{40});
    const int before = comm.all_reduces;
    totals[static_cast<size_t>(r)] = red.reduce(tokens[static_cast<size_t>(r)]);
    reduces[static_cast<size_t>(r)] = comm.all_reduces - before;
    buckets[static_cast<size_t>(r)] = red.buckets().size();
    for (auto& [name, v] : fp.params) result[static_cast<size_t>(r)].push_back(v.grad().clone());
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(totals[static_cast<size_t>(r)], 7);
    // One all-reduce per bucket, not per parameter.
    EXPECT_EQ(static_cast<size_t>(reduces[static_cast<size_t>(r)]), buckets[static_cast<size_t>(r)]);
    for (size_t p = 0; p < shapes.size(); ++p) {
      Tensor want = Tensor::zeros(shapes[p]);
      for (int64_t i = 0; i < want.numel(); ++i)
        want.f32()[i] = static_cast<float>((5 * grads[0][p].item(i) + 2 * grads[2][p].item(i)) / 7.0);
      EXPECT_ALL_CLOSE(result[static_cast<size_t>(r)][p], want, 1e-6, 1e-7) << "rank " << r << " param " << p;
    }
  }
  EXPECT_GT(buckets[0], 1u);
}

TEST(DistReducer, NoTokensAnywhereZeroesTheGradients) {
  run_world(2, [&](int, ThreadCommunicator& comm) {
    FakeParams fp({Tensor::full({3}, 4.0)});
    dist::GradientReducer red(fp.params, comm);
    EXPECT_EQ(red.reduce(0), 0);
    EXPECT_EQ(fp.params[0].second.grad().to_vector(), (std::vector<float>{0, 0, 0}));
  });
}

TEST(DistReducer, ShardedToyModelMatchesTheWholeBatch) {
  // Three "ranks" compute their parts' gradients (sequentially, here), then reduce together; the
  // result must equal one backward over the whole batch.
  const auto data = disttest::toy_data(8, 21);
  std::vector<int64_t> all;
  for (int64_t i = 0; i < 8; ++i) all.push_back(i);
  disttest::ToyModel reference(9);
  disttest::toy_step(reference, data, all);
  const auto want = disttest::grads_of(reference);

  // A deliberately uneven split (1, 3 and 4 sequences), so a plain mean would be wrong.
  const int size = 3;
  const std::vector<std::vector<int64_t>> split{{0}, {1, 2, 3}, {4, 5, 6, 7}};
  std::vector<std::unique_ptr<disttest::ToyModel>> models;
  std::vector<int64_t> tokens;
  for (int r = 0; r < size; ++r) {
    models.push_back(std::make_unique<disttest::ToyModel>(9));
    disttest::toy_step(*models.back(), data, split[static_cast<size_t>(r)]);
    tokens.push_back(0);
    for (int64_t i : split[static_cast<size_t>(r)]) tokens.back() += data[static_cast<size_t>(i)].length();
  }
  ASSERT_NE(tokens[0], tokens[2]);
  std::vector<double> errors(size);
  run_world(size, [&](int r, ThreadCommunicator& comm) {
    dist::GradientReducer red(models[static_cast<size_t>(r)]->named_parameters(), comm, dist::ReducerOptions{512});
    red.reduce(tokens[static_cast<size_t>(r)]);
    errors[static_cast<size_t>(r)] = disttest::max_rel_diff(disttest::grads_of(*models[static_cast<size_t>(r)]), want);
  });
  for (int r = 0; r < size; ++r) EXPECT_LT(errors[static_cast<size_t>(r)], 1e-5) << "rank " << r;
}

TEST(DistReducer, LaterStepsAccumulateStraightIntoTheBuckets) {
  // After the first reduce() the gradients are views of the bucket buffers: the next steps'
  // backward passes write there directly, and the reduced result must still be the whole batch's.
  const auto data = disttest::toy_data(8, 23);
  const std::vector<std::vector<std::vector<int64_t>>> splits{{{0, 1, 2}, {3, 4, 5, 6, 7}},
                                                             {{0, 1, 2, 3, 4, 5}, {6, 7}}};
  std::vector<std::vector<Tensor>> want;
  {
    disttest::ToyModel reference(9);
    for (size_t step = 0; step < splits.size(); ++step) {
      for (auto& [name, v] : reference.named_parameters()) v.zero_grad();
      disttest::toy_step(reference, data, {0, 1, 2, 3, 4, 5, 6, 7});
      want.push_back(disttest::grads_of(reference));
    }
  }
  std::vector<std::vector<double>> errors(2, std::vector<double>(splits.size()));
  std::vector<int> moved(2, 0);
  run_world(2, [&](int r, ThreadCommunicator& comm) {
    disttest::ToyModel model(9);
    dist::GradientReducer red(model.named_parameters(), comm, dist::ReducerOptions{256});
    std::vector<const void*> where;
    for (size_t step = 0; step < splits.size(); ++step) {
      const auto& mine = splits[step][static_cast<size_t>(r)];
      // Both ranks at once: each has its own thread pool (ThreadWorld::run).
      for (auto& [name, v] : model.named_parameters()) v.zero_grad();
      disttest::toy_step(model, data, mine);
      int64_t tokens = 0;
      for (int64_t i : mine) tokens += data[static_cast<size_t>(i)].length();
      red.reduce(tokens);
      errors[static_cast<size_t>(r)][step] = disttest::max_rel_diff(disttest::grads_of(model), want[step]);
      std::vector<const void*> now;
      for (auto& [name, v] : model.named_parameters()) now.push_back(v.grad().raw());
      if (step > 0 && now != where) moved[static_cast<size_t>(r)] = 1;
      where = now;
    }
  });
  for (int r = 0; r < 2; ++r) {
    for (size_t step = 0; step < splits.size(); ++step)
      EXPECT_LT(errors[static_cast<size_t>(r)][step], 1e-5) << "rank " << r << " step " << step;
    EXPECT_EQ(moved[static_cast<size_t>(r)], 0) << "rank " << r << ": the gradients moved between steps";
  }
}

TEST(DistReducer, MismatchedModelsAreRejectedOnEveryRank) {
  std::vector<std::string> messages(2);
  run_world(2, [&](int r, ThreadCommunicator& comm) {
    FakeParams fp({Tensor::zeros({r == 0 ? 3 : 4})});
    try {
      dist::GradientReducer red(fp.params, comm);
    } catch (const Error& e) {
      messages[static_cast<size_t>(r)] = e.what();
    }
  });
  for (const auto& m : messages) EXPECT_NE(m.find("rank 1"), std::string::npos) << m;
}

TEST(DistReducer, BroadcastParametersCopiesRootValues) {
  std::vector<std::vector<float>> after(3);
  run_world(3, [&](int r, ThreadCommunicator& comm) {
    disttest::ToyModel model(50 + static_cast<uint64_t>(r));
    dist::broadcast_parameters(model.named_parameters(), comm, 2);
    for (const auto& [name, v] : model.named_parameters()) {
      const auto vals = v.value().to_vector();
      after[static_cast<size_t>(r)].insert(after[static_cast<size_t>(r)].end(), vals.begin(), vals.end());
    }
  });
  disttest::ToyModel root(52);
  std::vector<float> want;
  for (const auto& [name, v] : root.named_parameters()) {
    const auto vals = v.value().to_vector();
    want.insert(want.end(), vals.begin(), vals.end());
  }
  for (int r = 0; r < 3; ++r) EXPECT_EQ(after[static_cast<size_t>(r)], want) << "rank " << r;
}

TEST(DistLocal, WorldOfOneLeavesGradientsAndScales) {
  dist::LocalCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.name(), "local");
  Tensor t = Tensor::full({3}, 2.0);
  comm.all_reduce(t, dist::ReduceOp::Avg);
  EXPECT_EQ(t.item(0), 2.0);
  comm.all_reduce(t, dist::ReduceOp::Sum, 0.5);
  EXPECT_EQ(t.item(2), 1.0);
  comm.broadcast(t, 0);
  EXPECT_THROW(comm.broadcast(t, 1), Error);
  EXPECT_EQ(comm.all_gather(2.5), (std::vector<double>{2.5}));
  EXPECT_EQ(comm.all_gather(int64_t{7}), (std::vector<int64_t>{7}));
  comm.barrier();

  FakeParams fp({Tensor::full({2, 2}, 3.0), Tensor::full({5}, -1.0)});
  dist::GradientReducer red(fp.params, comm);
  EXPECT_EQ(red.reduce(17), 17);
  EXPECT_EQ(fp.params[0].second.grad().to_vector(), (std::vector<float>{3, 3, 3, 3}));
  EXPECT_EQ(red.last_tokens(), (std::vector<int64_t>{17}));
  EXPECT_EQ(red.reduce(0), 0);
  EXPECT_EQ(fp.params[1].second.grad().to_vector(), (std::vector<float>{0, 0, 0, 0, 0}));
  EXPECT_THROW(red.reduce(-1), Error);

  const dist::TokenMean m = dist::reduce_mean(comm, 0.5, 4);
  EXPECT_EQ(m.tokens, 4);
  EXPECT_DOUBLE_EQ(m.mean(), 0.5);
  EXPECT_DOUBLE_EQ(dist::reduce_mean(comm, std::nan(""), 0).mean(), 0.0);
  EXPECT_TRUE(dist::all_ranks(comm, true));
  EXPECT_FALSE(dist::all_ranks(comm, false));
}

TEST(DistFactory, KindsAndErrors) {
  EXPECT_EQ(dist::parse_backend("mpi"), dist::Backend::Mpi);
  EXPECT_THROW(dist::parse_backend("gloo"), Error);
  try {
    dist::make_communicator("tcp");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("auto, local, mpi or nccl"), std::string::npos) << e.what();
  }
  if (!dist::launched_by_mpirun()) {
    EXPECT_EQ(dist::make_communicator("auto")->name(), "local");
  }
  if (!dist::nccl_compiled()) {
    EXPECT_THROW(dist::make_communicator("nccl"), Error);
  }
  dist::LocalCommunicator comm;
  EXPECT_EQ(dist::select_device({Device::cpu()}, comm), Device::cpu());
  EXPECT_THROW(dist::select_device({}, comm), Error);
  // Local rank i takes the i-th device; a list too short names the rank left without one.
  EXPECT_EQ(dist::select_device({Device::cpu(), Device::cuda(1)}, 1, 2), Device::cuda(1));
  try {
    dist::select_device({Device::cuda(0), Device::cuda(1)}, 2, 3);
    ADD_FAILURE() << "no error for local rank 2 with 2 devices";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--devices cuda:0,cuda:1: this process is local rank 2 of 3"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace recur
