// job.hpp: this process's membership of the MPI job, shared by the router
// (rank 0) and the node agent (other ranks). Part of the MPI module.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "thread_annotations.hpp"
#include "plugin_search.hpp"

#include "mathpool/pool.hpp"
#include "transport.hpp"

namespace mathpool::mpi_detail {

// How often a rank says it is still there while a pool is open.
inline constexpr auto kHeartbeatInterval = std::chrono::seconds(1);
// The least node timeout: a few heartbeats.
inline constexpr auto kLeastNodeTimeout = std::chrono::seconds(2);

// "30s", "2500ms": a duration as the config writes it.
inline std::string format_duration(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000) : fmt::format("{}ms", d.count());
}

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
  // A rank silent for longer than this while a pool is open is lost
  // (mpi.node_timeout; rank 0 sends it to the agents with each pool).
  std::chrono::milliseconds node_timeout = std::chrono::seconds(30);

  // Marks the job as having lost `rank`: the first call wins. Any thread.
  void mark_lost(int lost_rank, const std::string& host, std::chrono::milliseconds silent) {
    mark_lost(fmt::format("MPI rank {} (host {}) sent nothing for {}; the job ends (mpi.node_timeout)", lost_rank,
                          host.empty() ? "unknown" : host, format_duration(silent)));
  }
  // The same for a rank that sent what cannot be read: `what` says which and why.
  void mark_lost(const std::string& what) {
    detail::MutexLock lock(lost_mutex_);
    if (lost_flag_.load()) return;
    lost_message_ = what + ": records done so far are kept, and `mathpool run --mpi --resume` runs the rest";
    lost_flag_.store(true);
  }
  bool lost() const noexcept { return lost_flag_.load(); }
  std::string lost_message() const {
    detail::MutexLock lock(lost_mutex_);
    return lost_message_;
  }

  // `workers: auto` on this machine: its cores, shared among the job's ranks
  // on it, so several ranks on one machine do not oversubscribe it.
  PoolOptions resolve_workers(PoolOptions options) const {
    if (options.workers <= 0) options.workers = std::max(1, detail::available_cores() / std::max(local_ranks, 1));
    return options;
  }

 private:
  mutable detail::Mutex lost_mutex_;
  std::atomic<bool> lost_flag_{false};
  std::string lost_message_ GUARDED_BY(lost_mutex_);
};

}  // namespace mathpool::mpi_detail
