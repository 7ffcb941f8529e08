// The recurrent layer on a GPU against the CPU path: every cell, both directions, ragged packed
// batches and the static masked mode, initial states, all gradients; both the persistent
// forward kernel and the per-step path. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "recur/core/cuda.h"
#include "recur/ops/rnn.h"
#include "recur/seq/packed.h"
#include "test_util.h"

namespace recur {
namespace {

using ops::CellType;

struct GpuCase {
  CellType cell;
  bool reverse;
  bool persistent;
  bool masked;  // static padded mode with mask lengths
};

std::string gpu_case_name(const ::testing::TestParamInfo<GpuCase>& info) {
  return std::string(ops::cell_name(info.param.cell)) + (info.param.reverse ? "_reverse" : "_forward") +
         (info.param.persistent ? "_persistent" : "_steps") + (info.param.masked ? "_masked" : "_packed");
}

struct LayerData {
  Tensor x, w_ih, w_hh, b_ih, b_hh, h0, c0, dy, dhn, dcn;
};

LayerData random_layer(CellType cell, const PackedBatch& pb, int64_t I, int64_t H, Rng& rng) {
  const int64_t GH = ops::gate_count(cell) * H;
  const double s = 2.0 / std::sqrt(static_cast<double>(I + H));
  LayerData d;
  d.x = test::randn({pb.tokens(), I}, rng, 1.0);
  d.w_ih = test::randn({GH, I}, rng, s);
  d.w_hh = test::randn({GH, H}, rng, s);
  d.b_ih = test::randn({GH}, rng, s);
  d.b_hh = test::randn({GH}, rng, s);
  d.h0 = test::randn({pb.batch(), H}, rng, 0.5);
  d.c0 = test::randn({pb.batch(), H}, rng, 0.5);
  d.dy = test::randn({pb.tokens(), H}, rng, 1.0);
  d.dhn = test::randn({pb.batch(), H}, rng, 1.0);
  d.dcn = test::randn({pb.batch(), H}, rng, 1.0);
  return d;
}

LayerData to_device(const LayerData& d, Device dev) {
  return {d.x.to(dev),  d.w_ih.to(dev), d.w_hh.to(dev), d.b_ih.to(dev), d.b_hh.to(dev),
          d.h0.to(dev), d.c0.to(dev),   d.dy.to(dev),   d.dhn.to(dev),  d.dcn.to(dev)};
}

struct LayerResult {
  Tensor y, hn, cn, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
};

LayerResult run_layer(const LayerData& d, const PackedBatch& pb, const ops::RnnLayerOptions& opt) {
  const bool lstm = opt.cell == CellType::LSTM;
  const Device dev = d.x.device();
  LayerResult r;
  ops::RnnCache cache;
  ops::RnnWeights w{&d.w_ih, &d.w_hh, &d.b_ih, &d.b_hh};
  ops::rnn_layer_forward(&r.y, &r.hn, lstm ? &r.cn : nullptr, &cache, d.x, pb, w, &d.h0, lstm ? &d.c0 : nullptr, opt);
  r.dx = Tensor::zeros(d.x.shape(), DType::F32, dev);
  r.dh0 = Tensor::zeros(d.h0.shape(), DType::F32, dev);
  r.dc0 = Tensor::zeros(d.c0.shape(), DType::F32, dev);
  r.dw_ih = Tensor::zeros(d.w_ih.shape(), DType::F32, dev);
  r.dw_hh = Tensor::zeros(d.w_hh.shape(), DType::F32, dev);
  r.db_ih = Tensor::zeros(d.b_ih.shape(), DType::F32, dev);
  r.db_hh = Tensor::zeros(d.b_hh.shape(), DType::F32, dev);
  ops::rnn_layer_backward(&r.dx, &r.dh0, lstm ? &r.dc0 : nullptr, {&r.dw_ih, &r.dw_hh, &r.db_ih, &r.db_hh}, &d.dy,
                          &d.dhn, lstm ? &d.dcn : nullptr, cache, d.x, r.y, pb, w, opt);
  return r;
}

void expect_same(const LayerResult& gpu, const LayerResult& cpu, bool lstm, double rtol, double atol) {
  EXPECT_ALL_CLOSE(gpu.y, cpu.y, rtol, atol);
  EXPECT_ALL_CLOSE(gpu.hn, cpu.hn, rtol, atol);
  if (lstm) {
    EXPECT_ALL_CLOSE(gpu.cn, cpu.cn, rtol, atol);
    EXPECT_ALL_CLOSE(gpu.dc0, cpu.dc0, rtol, atol);
  }
  EXPECT_ALL_CLOSE(gpu.dx, cpu.dx, rtol, atol);
  EXPECT_ALL_CLOSE(gpu.dh0, cpu.dh0, rtol, atol);
  EXPECT_ALL_CLOSE(gpu.dw_ih, cpu.dw_ih, rtol, atol);
  EXPECT_ALL_CLOSE(gpu.dw_hh, cpu.dw_hh, rtol, atol);
  EXPECT_ALL_CLOSE(gpu.db_ih, cpu.db_ih, rtol, atol);
  EXPECT_ALL_CLOSE(gpu.db_hh, cpu.db_hh, rtol, atol);
}

class CudaRnn : public ::testing::TestWithParam<GpuCase> {
 protected:
  void TearDown() override { cuda::set_rnn_persistent(true); }
};

TEST_P(CudaRnn, MatchesCpu) {
  RECUR_REQUIRE_GPU();
  const auto [cell, reverse, persistent, masked] = GetParam();
  cuda::set_rnn_persistent(persistent);
  Rng rng(11 + static_cast<uint64_t>(cell) * 7 + reverse * 3 + persistent + masked * 5);
  const int64_t I = 19, H = 37;  // odd sizes: ragged tiles and unit slices
  const std::vector<int64_t> lengths = {7, 12, 1, 9, 12, 3, 5};
  ops::RnnLayerOptions opt{cell, reverse, {}};
  PackedBatch pb;
  if (masked) {
    pb = PackedBatch::fixed(12, static_cast<int64_t>(lengths.size()));
    opt.mask_lengths = lengths;
  } else {
    pb = PackedBatch::from_lengths(lengths);
  }
  LayerData cpu = random_layer(cell, pb, I, H, rng);
  LayerData gpu = to_device(cpu, Device::cuda(0));
  LayerResult rc = run_layer(cpu, pb, opt);
  LayerResult rg = run_layer(gpu, pb, opt);
  EXPECT_EQ(std::string(cuda::last_rnn_forward_path()), persistent ? "persistent" : "steps");
  for (const Tensor* t : {&rg.y, &rg.hn, &rg.dx, &rg.dw_hh}) EXPECT_TRUE(t->device().is_cuda());
  expect_same(rg, rc, cell == CellType::LSTM, 1e-4, 2e-5);
}

INSTANTIATE_TEST_SUITE_P(Cells, CudaRnn,
                         ::testing::Values(GpuCase{CellType::LSTM, false, true, false},
                                           GpuCase{CellType::LSTM, true, true, false},
                                           GpuCase{CellType::LSTM, false, false, false},
                                           GpuCase{CellType::LSTM, true, false, false},
                                           GpuCase{CellType::LSTM, false, true, true},
                                           GpuCase{CellType::LSTM, true, false, true},
                                           GpuCase{CellType::GRU, false, true, false},
                                           GpuCase{CellType::GRU, true, true, false},
                                           GpuCase{CellType::GRU, false, false, false},
                                           GpuCase{CellType::GRU, true, false, true},
                                           GpuCase{CellType::GRU, false, true, true},
                                           GpuCase{CellType::RNN_TANH, false, true, false},
                                           GpuCase{CellType::RNN_TANH, true, false, false},
                                           GpuCase{CellType::RNN_RELU, false, true, false},
                                           GpuCase{CellType::RNN_RELU, true, false, true}),
                         gpu_case_name);

// The cases of EveryPathMatchesCpu. The masked tanh RNN runs 20 steps with a contractive W_hh: with
// a gain above 1 over 70 steps its gradients amplify float32 rounding past the comparison's
// tolerance on any device (seen on an H200: all three GPU paths agreed with each other, not with
// the CPU, to 1e-3).
struct EveryPathCase {
  PackedBatch pb;
  ops::RnnLayerOptions opt;
  LayerData data;
};
EveryPathCase every_path_case(CellType cell) {
  Rng rng(77);
  const bool masked = cell == CellType::RNN_TANH;
  const std::vector<int64_t> lengths =
      masked ? std::vector<int64_t>{9, 2, 14, 14, 5, 1, 20, 17} : std::vector<int64_t>{9, 2, 14, 14, 5, 1, 70, 33};
  EveryPathCase c;
  c.pb = masked ? PackedBatch::fixed(20, 8) : PackedBatch::from_lengths(lengths);
  c.opt = {cell, cell == CellType::GRU, masked ? lengths : std::vector<int64_t>{}};
  c.data = random_layer(cell, c.pb, 24, 96, rng);
  if (masked)  // a contractive W_hh (spectral radius ~0.7): an expansive one amplifies rounding
    for (int64_t i = 0; i < c.data.w_hh.numel(); ++i) c.data.w_hh.f32()[i] *= 0.4f;
  return c;
}

// Those cases are conditioned well enough: the CPU's float32 gradients match the double reference
// within half the GPU comparison's tolerance (runs everywhere). W_hh is expansive for GRU and LSTM
// (spectral radius ~1.8), so a change of summation order in the 70-step rows moves single
// gradients by ~5e-6.
TEST(CudaRnnBackward, TestCasesAreWellConditioned) {
  for (CellType cell : {CellType::GRU, CellType::LSTM, CellType::RNN_TANH}) {
    const EveryPathCase c = every_path_case(cell);
    const bool lstm = cell == CellType::LSTM;
    LayerResult r = run_layer(c.data, c.pb, c.opt);
    const LayerData& d = c.data;
    Tensor y, hn, cn;
    ops::RnnWeights w64{nullptr, nullptr, nullptr, nullptr};
    Tensor wi = d.w_ih.to(DType::F64), wh = d.w_hh.to(DType::F64), bi = d.b_ih.to(DType::F64),
           bh = d.b_hh.to(DType::F64);
    w64 = {&wi, &wh, &bi, &bh};
    Tensor x = d.x.to(DType::F64), h0 = d.h0.to(DType::F64), c0 = d.c0.to(DType::F64);
    Tensor dy = d.dy.to(DType::F64), dhn = d.dhn.to(DType::F64), dcn = d.dcn.to(DType::F64);
    Tensor dx = Tensor::zeros(x.shape(), DType::F64), dh0 = Tensor::zeros(h0.shape(), DType::F64),
           dc0 = Tensor::zeros(c0.shape(), DType::F64);
    Tensor gwi = Tensor::zeros(wi.shape(), DType::F64), gwh = Tensor::zeros(wh.shape(), DType::F64),
           gbi = Tensor::zeros(bi.shape(), DType::F64), gbh = Tensor::zeros(bh.shape(), DType::F64);
    ref::rnn_layer_backward(&dx, &dh0, lstm ? &dc0 : nullptr, {&gwi, &gwh, &gbi, &gbh}, &dy, &dhn,
                            lstm ? &dcn : nullptr, x, c.pb, w64, &h0, lstm ? &c0 : nullptr, c.opt);
    SCOPED_TRACE(ops::cell_name(cell));
    EXPECT_ALL_CLOSE(r.dw_hh, gwh, 5e-5, 1e-5);
    EXPECT_ALL_CLOSE(r.dw_ih, gwi, 5e-5, 1e-5);
    EXPECT_ALL_CLOSE(r.db_ih, gbi, 5e-5, 1e-5);
  }
}

// Every backward path (the persistent kernel, per-step split-K partials, per-step cuBLAS) agrees
// with the CPU: reverse GRU, forward LSTM and masked tanh RNN over ragged batches.
TEST(CudaRnnBackward, EveryPathMatchesCpu) {
  RECUR_REQUIRE_GPU();
  for (const char* mode : {"persistent", "splitk", "cublas"}) {
    setenv("RECUR_RNN_BACKWARD", mode, 1);
    for (CellType cell : {CellType::GRU, CellType::LSTM, CellType::RNN_TANH}) {
      const EveryPathCase c = every_path_case(cell);
      const PackedBatch& pb = c.pb;
      const ops::RnnLayerOptions& opt = c.opt;
      const LayerData& cpu = c.data;
      LayerResult rc = run_layer(cpu, pb, opt);
      LayerResult rg = run_layer(to_device(cpu, Device::cuda(0)), pb, opt);
      SCOPED_TRACE(std::string(mode) + " " + ops::cell_name(cell));
      EXPECT_EQ(std::string(cuda::last_rnn_backward_path()), mode);
      expect_same(rg, rc, cell == CellType::LSTM, 1e-4, 2e-5);
    }
  }
  unsetenv("RECUR_RNN_BACKWARD");
}

// The benchmark's batch-64 shape through the (opt-in) persistent backward: all gradients against
// the CPU.
TEST(CudaRnnBackward, PersistentAtBenchmarkShape) {
  RECUR_REQUIRE_GPU();
  setenv("RECUR_RNN_BACKWARD", "persistent", 1);
  Rng rng(12);
  PackedBatch pb = PackedBatch::from_lengths(std::vector<int64_t>(64, 12));
  LayerData cpu = random_layer(CellType::LSTM, pb, 256, 512, rng);
  ops::RnnLayerOptions opt{CellType::LSTM, false, {}};
  LayerResult rc = run_layer(cpu, pb, opt);
  LayerResult rg = run_layer(to_device(cpu, Device::cuda(0)), pb, opt);
  EXPECT_EQ(std::string(cuda::last_rnn_backward_path()), "persistent");
  expect_same(rg, rc, true, 2e-4, 5e-5);
  unsetenv("RECUR_RNN_BACKWARD");
}

// The benchmark's shape (H 512, batch 64 and batch 1) through the persistent kernel, forward only:
// outputs and final states against the CPU.
TEST(CudaRnnLarge, PersistentForwardAtBenchmarkShapes) {
  RECUR_REQUIRE_GPU();
  for (int64_t B : {64, 1}) {
    Rng rng(5 + static_cast<uint64_t>(B));
    const int64_t I = 256, H = 512, T = 20;
    PackedBatch pb = PackedBatch::fixed(T, B);
    LayerData cpu = random_layer(CellType::LSTM, pb, I, H, rng);
    LayerData gpu = to_device(cpu, Device::cuda(0));
    ops::RnnLayerOptions opt{CellType::LSTM, false, {}};
    ops::RnnWeights wc{&cpu.w_ih, &cpu.w_hh, &cpu.b_ih, &cpu.b_hh}, wg{&gpu.w_ih, &gpu.w_hh, &gpu.b_ih, &gpu.b_hh};
    Tensor yc, hc, cc, yg, hg, cg;
    ops::rnn_layer_forward(&yc, &hc, &cc, nullptr, cpu.x, pb, wc, nullptr, nullptr, opt);
    ops::rnn_layer_forward(&yg, &hg, &cg, nullptr, gpu.x, pb, wg, nullptr, nullptr, opt);
    EXPECT_EQ(std::string(cuda::last_rnn_forward_path()), "persistent") << "batch " << B;
    EXPECT_ALL_CLOSE(yg, yc, 1e-4, 2e-5);
    EXPECT_ALL_CLOSE(hg, hc, 1e-4, 2e-5);
    EXPECT_ALL_CLOSE(cg, cc, 1e-4, 2e-5);
  }
}

// Mixing devices is a clear error, not a crash.
TEST(CudaRnnErrors, MixedDevicesThrow) {
  RECUR_REQUIRE_GPU();
  Rng rng(3);
  PackedBatch pb = PackedBatch::from_lengths({3, 2});
  LayerData cpu = random_layer(CellType::GRU, pb, 4, 5, rng);
  Tensor xg = cpu.x.to(Device::cuda(0));
  ops::RnnWeights w{&cpu.w_ih, &cpu.w_hh, &cpu.b_ih, &cpu.b_hh};
  Tensor y, hn;
  EXPECT_THROW(ops::rnn_layer_forward(&y, &hn, nullptr, nullptr, xg, pb, w, nullptr, nullptr, {CellType::GRU, false, {}}),
               Error);
}

// Without a GPU, a CUDA tensor is refused with a message naming the device (runs everywhere).
TEST(CudaDevice, ParseAndRefuse) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_THROW(Device::parse("tpu"), Error);
  EXPECT_THROW(Device::parse("cuda:x"), Error);
  if (!cuda::available()) {
    try {
      Tensor t({2, 3}, DType::F32, Device::cuda(0));
      FAIL() << "allocating on cuda:0 without a GPU should throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
    }
  }
}

// Tensor basics on the GPU: round trips, fill, add_, clone, views.
TEST(CudaTensor, RoundTripFillAdd) {
  RECUR_REQUIRE_GPU();
  Rng rng(9);
  Tensor a = test::randn({33, 7}, rng);
  Tensor g = a.to(Device::cuda(0));
  EXPECT_TRUE(g.device().is_cuda());
  EXPECT_ALL_CLOSE(g.cpu(), a, 0, 0);
  Tensor h = g.clone();
  h.add_(g);
  Tensor twice = a.clone();
  twice.add_(a);
  EXPECT_ALL_CLOSE(h, twice, 0, 0);
  Tensor f = Tensor::full({5, 3}, 2.5, DType::F32, Device::cuda(0));
  EXPECT_EQ(f.item(7), 2.5);
  EXPECT_ALL_CLOSE(g.rows(3, 9), a.rows(3, 9), 0, 0);
  Tensor big({(int64_t(9) << 20) + 5}, DType::F32);  // larger than one staging chunk
  for (int64_t i = 0; i < big.numel(); i += 4099) big.f32()[i] = static_cast<float>(i % 1000);
  Tensor back = big.to(Device::cuda(0)).cpu();
  for (int64_t i = 0; i < big.numel(); i += 4099) ASSERT_EQ(back.f32()[i], big.f32()[i]) << i;
  const auto stats = cuda::memory_stats(0);
  EXPECT_GT(stats.peak, 0);
}

// Packing and unpacking on the GPU equal the CPU.
TEST(CudaPacked, PackUnpackPermute) {
  RECUR_REQUIRE_GPU();
  Rng rng(4);
  const std::vector<int64_t> lengths = {3, 6, 1, 6, 2};
  Tensor padded = test::randn({6, 5, 4}, rng);
  PackedBatch pc, pg;
  Tensor pk_c = pack_padded(padded, lengths, &pc);
  Tensor pk_g = pack_padded(padded.to(Device::cuda(0)), lengths, &pg);
  EXPECT_ALL_CLOSE(pk_g, pk_c, 0, 0);
  EXPECT_ALL_CLOSE(unpack_to_padded(pk_g, pg, -1.0f), unpack_to_padded(pk_c, pc, -1.0f), 0, 0);
  Tensor b = test::randn({5, 3}, rng);
  EXPECT_ALL_CLOSE(permute_batch(b.to(Device::cuda(0)), pc, true), permute_batch(b, pc, true), 0, 0);
  EXPECT_ALL_CLOSE(permute_batch(b.to(Device::cuda(0)), pc, false), permute_batch(b, pc, false), 0, 0);
}

}  // namespace
}  // namespace recur
