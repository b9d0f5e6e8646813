// mathpool/mpi.hpp: one pool over the machines of an MPI job (Open MPI).
//
//   int main(int argc, char** argv) {
//     mathpool::MpiJob job(argc, argv);
//     if (job.rank() != 0) return job.serve();  // a node agent until rank 0 is done
//     mathpool::Pool pool(job, {});             // workers on every rank's machine
//     auto results = pool.map("lfsr.polynomial", many_params);
//   }                                           // ~Pool, then ~MpiJob releases the agents
//
// Every rank runs a node agent that owns an ordinary local pool of worker
// processes, so plugin code never runs inside an MPI rank: a crash stays a
// task's error record on its machine. Rank 0's pool keeps the tasks, hands
// bounded batches to the nodes as they have room (faster machines get more),
// and runs a share in its own local pool. If a rank or its machine is lost,
// MPI ends the job. While a pool is open, the ranks send each other
// heartbeats; a rank silent for longer than the node timeout (stopped, hung,
// or its network gone) is lost too: see lost().
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "mathpool/pool.hpp"

namespace mathpool {

// Membership of this process in an MPI job. Create one per process, on the
// main thread, before any pool; it must outlive every pool made from it.
// Not thread-safe.
class MpiJob {
 public:
  // The exit status of a job that lost a rank (`mathpool run --mpi` exits
  // with it, through MPI_Abort).
  static constexpr int kExitRankLost = 3;

  // Joins the job (MPI_Init_thread). Throws mathpool::Error (invalid_config)
  // when this build has no MPI support or MPI cannot start.
  MpiJob(int& argc, char**& argv);
  // Rank 0: tells the agents the job is over. Then leaves MPI (MPI_Finalize).
  ~MpiJob();
  MpiJob(const MpiJob&) = delete;
  MpiJob& operator=(const MpiJob&) = delete;

  // Whether this build of mathpool has MPI support.
  static bool supported() noexcept;

  int rank() const noexcept;
  int size() const noexcept;
  // This machine's host name, as result records name it ("node").
  const std::string& node() const noexcept;

  // Ranks other than 0: serves as this machine's node agent, one local pool
  // for each pool rank 0 opens, until rank 0's MpiJob ends. Returns the exit
  // status for main(): 0, or 143 when a signal (SIGTERM, SIGINT) stopped it.
  int serve();

  // Leaves without MPI_Finalize (an interrupted or failed rank 0, whose peers
  // the launcher ends anyway; a finalize could wait for them).
  void abandon() noexcept;

  // Rank 0, before making a pool: how long a rank may send nothing while a
  // pool is open before the job counts it as lost (`mpi.node_timeout`;
  // default 30 s, at least 2 s: heartbeats go every second). The agents get
  // it with each pool and apply it to rank 0 in turn.
  void set_node_timeout(std::chrono::milliseconds timeout);
  // Rank 0: the line that names a lost rank, empty while none is. Once a
  // rank is lost the pool hands out no more tasks and its lost tasks never
  // complete (so a config run stops as if interrupted: run_config() does
  // this). The program should write what it has, print the line and call
  // abort(kExitRankLost); when it has not ended the job 10 s after the loss,
  // the pool does (a job that lost a rank cannot end otherwise). ~MpiJob of a
  // job that lost a rank aborts it too.
  std::string lost() const;
  // Ends the whole job at once (MPI_Abort): every rank exits, the launcher
  // with `status` (Open MPI's mpirun prints a notice of its own).
  [[noreturn]] void abort(int status) noexcept;

  class Impl;

 private:
  friend class Pool;  // Pool(MpiJob&, PoolOptions) asks the job for its pool
  std::unique_ptr<Impl> impl_;
};

}  // namespace mathpool
