// Parking: an idle pool stops its workers and keeps the zygote template, so
// it holds one process and no CPU, and starts again by forking. Requests come
// from any thread (under the mutex); the dispatcher acts on them between
// passes (update_parking), never while a task is queued or running.
#include <algorithm>

#include "pool_impl.hpp"

namespace mathpool {

using namespace pool_detail;

void Pool::Impl::park() {
  {
    detail::MutexLock lock(mutex_);
    park_requested_ = true;
    unpark_requested_ = false;
  }
  wake();
}

void Pool::Impl::unpark() {
  {
    detail::MutexLock lock(mutex_);
    park_requested_ = false;
    unpark_requested_ = true;
  }
  wake();
}

bool Pool::Impl::serving() const noexcept {
  detail::MutexLock lock(mutex_);
  return getpid() == owner_ && !shutdown_requested_ && !terminate_requested_ && !stopped_;
}

void Pool::Impl::update_parking() {
  bool park_now, unpark_now;
  {
    detail::MutexLock lock(mutex_);
    park_now = park_requested_;
    unpark_now = std::exchange(unpark_requested_, false);
  }
  if (parked_) {
    if (queue_.empty() && !unpark_now) return;
    // Tasks came (or a lease was taken): fork the workers again. Tasks wait
    // in the queue until a worker is ready, as at a restart.
    parked_ = false;
    {
      detail::MutexLock lock(mutex_);
      park_requested_ = false;
      stats_.parked = false;
    }
    for (Slot& slot : slots_)
      if (slot.state == SlotState::stopped) start_slot(slot);
    stats_dirty_ = true;
    return;
  }
  const bool idle = queue_.empty() && std::all_of(slots_.begin(), slots_.end(),
                                                  [](const Slot& s) { return s.inflight.empty(); });
  if (!park_now || !idle) return;
  // What stats() shows turns parked, without the workers, before the first
  // worker is told to go: a caller who saw a worker end never reads the pool
  // as serving (the dispatcher can be preempted between the two).
  parked_ = true;
  {
    detail::MutexLock lock(mutex_);
    park_requested_ = false;
    stats_.parked = true;
    for (WorkerStats& w : stats_.workers) w.pid = 0;
  }
  park_workers();
}

// Like a retirement without the restart: each worker is asked to exit and
// reaped by check_deadlines (SIGKILL after the grace). Not a restart either,
// so the slot's restart count stays.
void Pool::Impl::park_workers() {
  for (Slot& slot : slots_) {
    if (slot.pid > 0) {
      retiring_.push_back({slot.pid, std::exchange(slot.pidfd, -1), slot.supervisor, Clock::now() + kRetireGrace,
                           std::move(slot.cgroup)});
      release_channel(slot);
    }
    close_process(slot);
    slot.pid = -1;
    slot.stats.pid = 0;
    enter(slot, SlotState::stopped);
    slot.in_setup.clear();
  }
  stats_dirty_ = true;
}

}  // namespace mathpool
