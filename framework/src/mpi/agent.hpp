// agent.hpp: the node agent that every rank but 0 runs (see agent.cpp).
#pragma once

#include "job.hpp"

namespace mathpool::mpi_detail {

// Serves rank 0's pools with a local pool each until rank 0 ends the job.
// Returns 0, or 143 when SIGTERM or SIGINT stopped it (its pool's workers
// are stopped first).
int serve_as_agent(Job& job);

}  // namespace mathpool::mpi_detail
