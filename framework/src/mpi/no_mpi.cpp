// no_mpi.cpp: MpiJob in a build without MPI: every use is a clear error.
#include <fmt/format.h>

#include "../host/pool_impl.hpp"
#include "mathpool/mpi.hpp"

namespace mathpool {

class MpiJob::Impl {};

namespace {
[[noreturn]] void unsupported() {
  throw Error(ErrorKind::invalid_config,
              "this build of mathpool has no MPI support (build it with Open MPI installed: "
              "Debian packages libopenmpi-dev and openmpi-bin)");
}
}  // namespace

bool MpiJob::supported() noexcept { return false; }
MpiJob::MpiJob(int&, char**&) { unsupported(); }
MpiJob::~MpiJob() = default;
int MpiJob::rank() const noexcept { return 0; }
int MpiJob::size() const noexcept { return 1; }
const std::string& MpiJob::node() const noexcept {
  static const std::string none;
  return none;
}
int MpiJob::serve() { unsupported(); }
void MpiJob::abandon() noexcept {}

Pool::Pool(MpiJob&, PoolOptions) { unsupported(); }

}  // namespace mathpool
