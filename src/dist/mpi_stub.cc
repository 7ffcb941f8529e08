// A build without MPI (RECUR_MPI=OFF or no MPI found): the MPI communicator refuses clearly.
#include "internal.h"
#include "recur/core/error.h"

namespace recur::dist {

bool mpi_compiled() { return false; }

namespace detail {
std::unique_ptr<Communicator> make_mpi_communicator(const CommOptions&) {
  RECUR_FAIL("this build of recur has no MPI communicator: install OpenMPI (libopenmpi-dev, see scripts/setup.sh) "
             "and reconfigure with -DRECUR_MPI=AUTO or ON");
}
}  // namespace detail

}  // namespace recur::dist
