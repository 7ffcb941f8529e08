// A build without NCCL (no CUDA backend, RECUR_NCCL=OFF or NCCL not found): the NCCL communicator
// refuses clearly.
#include "internal.h"
#include "recur/core/error.h"

namespace recur::dist {

bool nccl_compiled() { return false; }

namespace detail {
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator>, const CommOptions&) {
  RECUR_FAIL("this build of recur has no NCCL communicator: it needs the CUDA backend and NCCL (nccl.h, libnccl) at "
             "configure time; use the mpi communicator instead (GPU tensors are then staged through the host)");
}
}  // namespace detail

}  // namespace recur::dist
