// mathpool/registry.hpp: pools for long-lived programs. A registry hands out
// leases on pools keyed by their options, keeps each pool warm between uses,
// and parks a pool nobody has leased for a while (its workers stop, its
// zygote template stays), so the next lease starts it again by forking.
//
//   mathpool::PoolLease lease = mathpool::default_registry().acquire({.workers = 8});
//   auto results = lease->map("lfsr.polynomial", many_params);
//   lease.release();   // or let it go out of scope
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "mathpool/pool.hpp"

namespace mathpool {

namespace detail {
struct RegistryEntry;
class RegistryState;
}  // namespace detail

// A registry's hold on one pool, for as long as the caller uses it. Move-only;
// releasing (explicitly or by destruction) starts the pool's idle clock. Not
// thread-safe itself, but any number of leases on one pool may be used from
// different threads, as the Pool is. The pool object lives as long as a lease
// on it, even past the registry's shutdown (it then refuses tasks).
class PoolLease {
 public:
  PoolLease() = default;
  PoolLease(PoolLease&& other) noexcept = default;
  PoolLease& operator=(PoolLease&& other) noexcept;
  PoolLease(const PoolLease&) = delete;
  PoolLease& operator=(const PoolLease&) = delete;
  ~PoolLease() { release(); }

  // Precondition: the lease holds a pool (operator bool).
  Pool& pool() const noexcept;
  Pool* operator->() const noexcept { return &pool(); }
  Pool& operator*() const noexcept { return pool(); }
  explicit operator bool() const noexcept { return entry_ != nullptr; }
  // Gives the pool back to its registry. Idempotent.
  void release() noexcept;

 private:
  friend class detail::RegistryState;
  explicit PoolLease(std::shared_ptr<detail::RegistryEntry> entry) : entry_(std::move(entry)) {}
  std::shared_ptr<detail::RegistryEntry> entry_;
};

enum class RegisteredPoolState {
  starting,  // the first lease is building it
  leased,    // at least one lease holds it
  idle,      // no lease; parked when idle_timeout has passed since the last release
  parked,    // workers stopped, zygote template kept; the next lease restarts them
};

struct RegisteredPoolStats {
  std::string options;  // a one-line summary of the pool's options
  RegisteredPoolState state = RegisteredPoolState::starting;
  int leases = 0;
  double idle_seconds = 0;  // since the last release, while not leased
  PoolStats pool;
};

struct RegistryStats {
  std::chrono::milliseconds idle_timeout{0};
  long created = 0;    // pools built (recreated ones included)
  long reused = 0;     // acquires served by a live pool
  long recreated = 0;  // pools found no longer serving and built anew
  long parked = 0;     // times a pool was parked after its idle timeout
  std::vector<RegisteredPoolStats> pools;
};

// Pools by options: acquire() reuses a serving pool with equal options or
// builds one. Thread-safe; one pool per distinct options however many threads
// ask at once. Owns its pools; destruction shuts them down (leases still held
// keep their Pool objects, which then refuse tasks). An idle pool costs no
// CPU: the registry's own thread sleeps until the next idle deadline, or for
// good when there is none.
class PoolRegistry {
 public:
  static constexpr std::chrono::milliseconds kDefaultIdleTimeout = std::chrono::minutes(5);

  explicit PoolRegistry(std::chrono::milliseconds idle_timeout = kDefaultIdleTimeout);
  ~PoolRegistry();
  PoolRegistry(const PoolRegistry&) = delete;
  PoolRegistry& operator=(const PoolRegistry&) = delete;

  // A lease on a serving pool with these options. A pool that stopped serving
  // (shut down, or made before a fork()) is replaced. A parked pool returns at
  // once and forks its workers in the background; its first tasks wait for
  // them. Building a pool blocks until its workers are ready and throws as the
  // Pool constructor does; other callers for the same options wait for it.
  // Throws mathpool::Error after shutdown() and in a forked child.
  PoolLease acquire(const PoolOptions& options);
  // A lease with the default pool's options (set_default_pool_options(), or
  // MATHPOOL_WORKERS and MATHPOOL_START).
  PoolLease acquire();

  void set_idle_timeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds idle_timeout() const;
  // Parks every pool no lease holds now, without waiting for its timeout.
  void park_idle();
  // Stops every pool (running tasks get `grace`, then are stopped) and
  // refuses further acquires. Idempotent.
  void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(2));
  RegistryStats stats() const;

 private:
  std::shared_ptr<detail::RegistryState> state_;  // leases reach it weakly
};

// The process-wide registry, made on first use; its pools are shut down at
// exit as the default pool's are (two seconds' grace). Thread-safe.
PoolRegistry& default_registry();

// A one-line summary of pool options, for logs and RegistryStats.
std::string describe(const PoolOptions& options);

}  // namespace mathpool
