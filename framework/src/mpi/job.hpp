// job.hpp: this process's membership of the MPI job, shared by the router
// (rank 0) and the node agent (other ranks). Part of the MPI module.
#pragma once

#include <algorithm>
#include <string>

#include "../host/plugin_search.hpp"

#include "mathpool/pool.hpp"
#include "transport.hpp"

namespace mathpool::mpi_detail {

struct Job {
  int rank = 0;
  int size = 1;
  std::string node;  // this machine's host name
  int local_ranks = 1;  // ranks of the job on this machine (this one included)
  bool finalize = true;
  // A pool across the ranks is open: the agents serve one at a time.
  bool pool_open = false;
  // The one channel to the other ranks; used by one thread at a time (the
  // router's thread while a pool is open, else the caller's).
  Transport transport;

  // `workers: auto` on this machine: its cores, shared among the job's ranks
  // on it, so several ranks on one machine do not oversubscribe it.
  PoolOptions resolve_workers(PoolOptions options) const {
    if (options.workers <= 0) options.workers = std::max(1, detail::available_cores() / std::max(local_ranks, 1));
    return options;
  }
};

}  // namespace mathpool::mpi_detail
