// The pool registry: pools keyed by options, leased out, parked when no lease
// has held them for the idle timeout. One mutex guards the entries; pools are
// built and shut down outside it, so a slow start never blocks other callers.
#include "mathpool/registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "thread_annotations.hpp"
#include "default_pool_options.hpp"
#include "options_value.hpp"

namespace mathpool {
namespace detail {

using Clock = std::chrono::steady_clock;

// One pool of the registry. The fields below `options` are guarded by the
// registry's mutex, except `pool`, which is set once before any lease sees it.
struct RegistryEntry {
  PoolOptions options;
  std::weak_ptr<RegistryState> registry;  // gone after the registry: release does nothing
  std::shared_ptr<Pool> pool;             // null while the first acquire builds it
  std::exception_ptr build_error;         // the build failed: waiters rethrow it
  int leases = 0;
  bool parked = false;
  Clock::time_point released_at = Clock::now();
};

class RegistryState : public std::enable_shared_from_this<RegistryState> {
 public:
  explicit RegistryState(std::chrono::milliseconds idle_timeout) : idle_timeout_(idle_timeout) {}

  void start() {
    idle_thread_ = std::thread([this] { idle_loop(); });
  }

  PoolLease acquire(const PoolOptions& options) {
    if (getpid() != owner_)
      throw Error(ErrorKind::misuse, fmt::format("this pool registry belongs to process {}; a forked child "
                                                  "must make a registry of its own", owner_));
    detail::MutexLock lock(mutex_);
    if (shut_down_) throw Error(ErrorKind::misuse, "the pool registry is shut down");
    std::shared_ptr<RegistryEntry> entry;
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (!((*it)->options == options)) continue;
      // A pool that stopped serving is replaced; leases still on it keep it.
      if ((*it)->pool && !(*it)->pool->serving()) {
        entries_.erase(it);
        ++counters_.recreated;
        break;
      }
      entry = *it;
      break;
    }
    if (entry) {
      ++entry->leases;
      changed_.wait(lock, [&] { return entry->pool || entry->build_error; });
      if (entry->build_error) {
        --entry->leases;
        std::rethrow_exception(entry->build_error);
      }
      ++counters_.reused;
      if (std::exchange(entry->parked, false)) entry->pool->unpark();  // forks in the background
      return PoolLease(entry);
    }
    entry = std::make_shared<RegistryEntry>();
    entry->options = options;
    entry->registry = weak_from_this();
    entry->leases = 1;
    entries_.push_back(entry);
    lock.unlock();
    try {
      auto pool = std::make_shared<Pool>(options);  // blocks until the workers are ready
      lock.lock();
      entry->pool = std::move(pool);
      ++counters_.created;
    } catch (...) {
      lock.lock();
      entry->build_error = std::current_exception();
      std::erase(entries_, entry);
      changed_.notify_all();
      throw;
    }
    changed_.notify_all();
    return PoolLease(entry);
  }

  void released(RegistryEntry& entry) {
    detail::MutexLock lock(mutex_);
    if (--entry.leases > 0) return;
    entry.released_at = Clock::now();
    changed_.notify_all();  // the idle clock starts
  }

  void set_idle_timeout(std::chrono::milliseconds timeout) {
    detail::MutexLock lock(mutex_);
    idle_timeout_ = std::max(timeout, std::chrono::milliseconds(0));
    changed_.notify_all();
  }

  std::chrono::milliseconds idle_timeout() const {
    detail::MutexLock lock(mutex_);
    return idle_timeout_;
  }

  void park_idle() {
    detail::MutexLock lock(mutex_);
    for (const auto& entry : entries_)
      if (entry->pool && entry->leases == 0 && !entry->parked) park(*entry);
  }

  void shutdown(std::chrono::milliseconds grace) {
    std::vector<std::shared_ptr<RegistryEntry>> entries;
    {
      detail::MutexLock lock(mutex_);
      if (shut_down_) return;
      shut_down_ = true;
      entries.swap(entries_);
      changed_.notify_all();
    }
    if (idle_thread_.joinable()) idle_thread_.join();
    for (const auto& entry : entries)
      if (entry->pool) entry->pool->shutdown(grace);
  }

  RegistryStats stats() const {
    struct Seen {
      std::shared_ptr<Pool> pool;
      RegisteredPoolStats stats;
    };
    std::vector<Seen> seen;
    RegistryStats out;
    {
      detail::MutexLock lock(mutex_);
      out = counters_;
      out.idle_timeout = idle_timeout_;
      const auto now = Clock::now();
      for (const auto& entry : entries_) {
        RegisteredPoolStats s;
        s.options = describe(entry->options);
        s.leases = entry->leases;
        s.state = !entry->pool         ? RegisteredPoolState::starting
                  : entry->leases > 0  ? RegisteredPoolState::leased
                  : entry->parked      ? RegisteredPoolState::parked
                                       : RegisteredPoolState::idle;
        if (entry->leases == 0) s.idle_seconds = std::chrono::duration<double>(now - entry->released_at).count();
        seen.push_back({entry->pool, std::move(s)});
      }
    }
    for (Seen& s : seen) {  // reading /proc is slow: outside the lock
      if (s.pool) s.stats.pool = s.pool->stats();
      out.pools.push_back(std::move(s.stats));
    }
    return out;
  }

 private:
  void park(RegistryEntry& entry) REQUIRES(mutex_) {
    entry.pool->park();  // it waits for running tasks itself, never blocks
    entry.parked = true;
    ++counters_.parked;
  }

  // Sleeps until the next idle deadline, or until something changes when
  // there is none: an idle registry never wakes up.
  void idle_loop() {
    detail::MutexLock lock(mutex_);
    while (!shut_down_) {
      const auto now = Clock::now();
      auto next = Clock::time_point::max();
      for (const auto& entry : entries_) {
        if (!entry->pool || entry->leases > 0 || entry->parked) continue;
        const auto left = idle_timeout_ - std::chrono::duration_cast<std::chrono::milliseconds>(now - entry->released_at);
        if (left.count() <= 0) park(*entry);
        else next = std::min(next, now + std::min<std::chrono::milliseconds>(left, std::chrono::hours(24 * 365)));
      }
      if (next == Clock::time_point::max()) changed_.wait(lock);
      else changed_.wait_until(lock, next);
    }
  }

  // Guards these and every entry's leases, pool, parked and released_at.
  mutable Mutex mutex_;
  detail::CondVar changed_;
  std::vector<std::shared_ptr<RegistryEntry>> entries_ GUARDED_BY(mutex_);
  std::chrono::milliseconds idle_timeout_ GUARDED_BY(mutex_);
  bool shut_down_ GUARDED_BY(mutex_) = false;
  const pid_t owner_ = getpid();
  RegistryStats counters_ GUARDED_BY(mutex_);
  std::thread idle_thread_;
};

}  // namespace detail

// ---- leases -----------------------------------------------------------------

PoolLease& PoolLease::operator=(PoolLease&& other) noexcept {
  if (this != &other) {
    release();
    entry_ = std::move(other.entry_);
  }
  return *this;
}

Pool& PoolLease::pool() const noexcept { return *entry_->pool; }

void PoolLease::release() noexcept {
  if (!entry_) return;
  if (auto registry = entry_->registry.lock()) registry->released(*entry_);
  entry_.reset();
}

// ---- the registry -----------------------------------------------------------

PoolRegistry::PoolRegistry(std::chrono::milliseconds idle_timeout)
    : state_(std::make_shared<detail::RegistryState>(idle_timeout)) {
  state_->start();
}

PoolRegistry::~PoolRegistry() { state_->shutdown(std::chrono::seconds(2)); }

PoolLease PoolRegistry::acquire(const PoolOptions& options) { return state_->acquire(options); }
PoolLease PoolRegistry::acquire() { return state_->acquire(detail::default_pool_options()); }
void PoolRegistry::set_idle_timeout(std::chrono::milliseconds timeout) { state_->set_idle_timeout(timeout); }
std::chrono::milliseconds PoolRegistry::idle_timeout() const { return state_->idle_timeout(); }
void PoolRegistry::park_idle() { state_->park_idle(); }
void PoolRegistry::shutdown(std::chrono::milliseconds grace) { state_->shutdown(grace); }
RegistryStats PoolRegistry::stats() const { return state_->stats(); }

namespace {

std::mutex default_registry_mutex;
PoolRegistry* default_registry_instance = nullptr;  // never deleted: late users must not crash

void shut_down_default_registry() {
  std::lock_guard lock(default_registry_mutex);
  if (default_registry_instance) default_registry_instance->shutdown(std::chrono::seconds(2));
}

}  // namespace

PoolRegistry& default_registry() {
  std::lock_guard lock(default_registry_mutex);
  if (!default_registry_instance) {
    default_registry_instance = new PoolRegistry();
    std::atexit(shut_down_default_registry);
  }
  return *default_registry_instance;
}

std::string describe(const PoolOptions& options) {
  std::string line;
  const Value fields = detail::options_to_value(options);  // outlives the loop over its items
  for (const auto& [name, value] : fields.items())
    line += fmt::format("{}{}={}", line.empty() ? "" : " ", name,
                        value.is_string() ? value.get<std::string>() : value.is_null() ? "none" : value.dump());
  return line;
}

}  // namespace mathpool
