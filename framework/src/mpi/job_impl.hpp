// job_impl.hpp: what an MpiJob holds, shared by the router (rank 0) and the
// node agent (other ranks).
#pragma once

#include <string>

#include "mathpool/mpi.hpp"
#include "transport.hpp"

namespace mathpool {

class MpiJob::Impl {
 public:
  int rank = 0;
  int size = 1;
  std::string node;  // this machine's host name
  bool finalize = true;
  // The one channel to the other ranks; used by one thread at a time (the
  // router's thread while a pool is open, else the caller's).
  mpi_detail::Transport transport;
};

}  // namespace mathpool
