// A build without the CUDA backend (RECUR_CUDA=OFF or no nvcc): no devices, clear refusals.
#include "../cuda/rnn_cuda.h"
#include "device_ops.h"
#include "recur/core/cuda.h"
#include "recur/core/error.h"

#include <cstring>

namespace recur {

namespace {
[[noreturn]] void no_cuda(Device d) {
  RECUR_FAIL("device {} is not available: this build of recur has no CUDA backend (configure with -DRECUR_CUDA=ON "
             "on a machine with the CUDA toolkit)",
             d.str());
}
}  // namespace

namespace cuda {
bool compiled() { return false; }
int device_count() { return 0; }
void require(Device d) {
  if (d.is_cuda()) no_cuda(d);
}
std::string device_name(int device) { no_cuda(Device::cuda(device)); }
MemoryStats memory_stats(int) { return {}; }
void reset_peak(int) {}
void empty_cache(int) {}
void synchronize(int) {}
void set_current_device(int device) { require(Device::cuda(device)); }
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }
void set_rnn_persistent(bool) {}
bool rnn_persistent() { return false; }
const char* last_rnn_forward_path() { return ""; }
const char* last_rnn_backward_path() { return ""; }
void rnn_layer_forward(Tensor*, Tensor*, Tensor*, ops::RnnCache*, const Tensor& x, const PackedBatch&,
                       const ops::RnnWeights&, const Tensor*, const Tensor*, const ops::RnnLayerOptions&) {
  no_cuda(x.device());
}
void rnn_layer_backward(Tensor*, Tensor*, Tensor*, const ops::RnnWeightGrads&, const Tensor*, const Tensor*,
                        const Tensor*, const ops::RnnCache&, const Tensor& x, const Tensor&, const PackedBatch&,
                        const ops::RnnWeights&, const ops::RnnLayerOptions&) {
  no_cuda(x.device());
}
void sgemm(int device, bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
           float*, int64_t) {
  no_cuda(Device::cuda(device));
}
Timer::Timer(int device) : device_(device) { no_cuda(Device::cuda(device)); }
Timer::~Timer() = default;
void Timer::start() {}
double Timer::stop() { return 0.0; }
}  // namespace cuda

namespace devmem {
void* allocate(Device dev, size_t, size_t*) { no_cuda(dev); }
void release(Device, void*, size_t) {}
void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (dst_dev.is_cuda() || src_dev.is_cuda()) no_cuda(dst_dev.is_cuda() ? dst_dev : src_dev);
  if (bytes) std::memmove(dst, src, bytes);
}
void zero(Device dev, void*, size_t) { no_cuda(dev); }
void fill(Device dev, void*, DType, int64_t, double) { no_cuda(dev); }
void add(Device dev, void*, const void*, DType, int64_t) { no_cuda(dev); }
void gather_rows(Device dev, void*, const void*, const std::vector<int64_t>&, int64_t, DType, double) { no_cuda(dev); }
}  // namespace devmem

}  // namespace recur
