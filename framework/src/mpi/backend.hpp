// backend.hpp: the seam between the host library and the MPI module.
//
// The host library does not link MPI: a program that never joins an MPI job
// does not pay for loading Open MPI's libraries at start-up (about 5 ms
// here) and runs where they are not installed. MpiJob loads the module
// (libmathpool_mpi.so, beside libmathpool_host.so) when it is first made, and
// everything MPI goes through this interface. Both sides are this project's
// code, built together, so mathpool::Error may pass between them.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "local_pool.hpp"

namespace mathpool::mpi_detail {

// This process's part in an MPI job. Made by the module's entry point; the
// calls are those of mathpool::MpiJob (see mathpool/mpi.hpp).
class Backend {
 public:
  virtual ~Backend() = default;  // rank 0 releases the agents; leaves MPI
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  virtual const std::string& node() const noexcept = 0;
  virtual int serve() = 0;
  virtual void abandon() noexcept = 0;
  virtual void set_node_timeout(std::chrono::milliseconds timeout) = 0;
  virtual std::string lost() const = 0;
  [[noreturn]] virtual void abort(int status) noexcept = 0;
  // Rank 0: a local pool whose router spreads its tasks over the ranks.
  virtual std::unique_ptr<detail::LocalPool> open_pool(const PoolOptions& options) = 0;
};

// The module's entry point: joins the job (MPI_Init_thread). Throws
// mathpool::Error when MPI cannot start.
using JoinJob = Backend* (*)(int* argc, char*** argv);
inline constexpr const char* kJoinJobSymbol = "mathpool_mpi_join_job";
inline constexpr const char* kModuleFile = "libmathpool_mpi.so";

}  // namespace mathpool::mpi_detail
