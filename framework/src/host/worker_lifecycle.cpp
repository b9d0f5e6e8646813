// Worker lifecycle of the pool: starting workers (spawned or forked from the
// zygote template), handshakes, deaths and their verdicts, recycling,
// quarantine, and stopping everything. Runs on the dispatcher thread only.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>

#include <fmt/format.h>

#include "pool_impl.hpp"
#include "worker_process.hpp"

namespace mathpool {
namespace {

using namespace pool_detail;

std::string format_duration(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000)
                               : fmt::format("{}ms", d.count());
}

}  // namespace

bool Pool::Impl::start_template() {
  for (;;) {
    try {
      Value ready = zygote_.start(worker_program_, hello_, options_.setup_timeout);
      handle_load_errors(ready);
      std::lock_guard lock(mutex_);
      catalogue_ = ready.at("analyses");
      return startup_error_.empty();
    } catch (const std::exception& e) {
      const std::string culprit = zygote_.died_in_setup();
      if (culprit.empty() || setup_crashes_[culprit] >= kQuarantineAfter) {
        fail_startup(e.what());
        return false;
      }
      note_setup_crash(culprit, e.what());  // then try again, maybe without it
    }
  }
}

void Pool::Impl::note_setup_crash(const std::string& analysis, const std::string& reason) {
  if (++setup_crashes_[analysis] < kQuarantineAfter) return;
  hello_["quarantine"][analysis] =
      fmt::format("analysis '{}' is quarantined: its setup crashed {} times (last: {})", analysis,
                  setup_crashes_[analysis], reason);
  if (options_.start == StartMode::zygote) zygote_.restart(hello_);
}

void Pool::Impl::handle_load_errors(const Value& ready) {
  const auto& errors = ready.at("errors");
  if (errors.empty()) return;
  std::string joined;
  for (const auto& e : errors) joined += (joined.empty() ? "" : "; ") + e.get<std::string>();
  fail_startup(joined);
}

void Pool::Impl::start_slot(Slot& slot) {
  slot.respawn_at = Clock::time_point::max();
  slot.started_at = Clock::now();
  try {
    const bool forked = options_.start == StartMode::zygote;
    detail::SpawnedWorker worker =
        forked ? zygote_.fork_worker() : detail::spawn_worker(worker_program_);
    slot.pid = worker.pid;
    slot.channel = std::move(worker.channel);
    slot.state = SlotState::starting;
    if (!forked) slot.channel.send(hello_);  // a forked worker has its plugins already
  } catch (const std::exception& e) {
    std::unique_lock lock(mutex_);
    const bool starting_up = !startup_done_;
    lock.unlock();
    if (starting_up) return fail_startup(e.what());
    if (options_.start == StartMode::zygote && zygote_.last_death_was_sigkill() &&
        ++slot.outside_kills < kMaxOutsideKills) {
      slot.respawn_at = Clock::now() + std::chrono::milliseconds(10);  // killed from outside
      return;
    }
    start_failed(slot, e.what());
  }
}

void Pool::Impl::start_failed(Slot& slot, const std::string& reason) {
  if (++slot.start_failures >= kMaxStartFailures) {
    const std::string message =
        fmt::format("worker failed to start {} times; last: {}", slot.start_failures, reason);
    fail_startup(message);
    // While no worker can start, queued tasks would wait forever: fail them.
    if (std::none_of(slots_.begin(), slots_.end(),
                     [](const Slot& s) { return s.state == SlotState::ready; })) {
      for (auto& task : queue_) finish(std::move(task), error_result(ErrorKind::crashed, message, 0));
      queue_.clear();
    }
  }
  // Back off so a worker that dies at start cannot spin the machine.
  slot.respawn_at =
      Clock::now() + std::chrono::milliseconds(50 << std::min(slot.start_failures, 4));
}

void Pool::Impl::fail_startup(const std::string& message) {
  std::lock_guard lock(mutex_);
  if (startup_done_) return;
  startup_done_ = true;
  startup_error_ = message;
  changed_.notify_all();
}

void Pool::Impl::handle_ready(Slot& slot, const Value& message) {
  if (message.value("protocol", 0) != kProtocolVersion)
    throw detail::ProtocolError("worker speaks another protocol version");
  handle_load_errors(message);
  slot.state = SlotState::ready;
  slot.start_failures = 0;
  slot.outside_kills = 0;
  slot.stats.pid = slot.pid;
  slot.stats.tasks = 0;
  slot.stats.setup_seconds =
      std::chrono::duration<double>(Clock::now() - slot.started_at).count();
  std::lock_guard lock(mutex_);
  stats_.workers[std::size_t(slot.index)] = slot.stats;
  if (!startup_done_ && catalogue_.empty()) catalogue_ = message.at("analyses");
  if (!startup_done_ && std::all_of(slots_.begin(), slots_.end(), [](const Slot& s) {
        return s.state == SlotState::ready;
      })) {
    startup_done_ = true;
    changed_.notify_all();
  }
}

void Pool::Impl::requeue_unstarted(Slot& slot) {
  while (!slot.inflight.empty()) {
    TaskPtr waiting = std::move(slot.inflight.back());
    slot.inflight.pop_back();
    --waiting->attempts;  // not charged: it never ran
    queue_.push_front(std::move(waiting));
  }
}

void Pool::Impl::release_channel(Slot& slot) {
  // Never block on a worker: drop what it has not taken, ask it to exit if
  // the socket has room, and let the grace period's SIGKILL do the rest.
  slot.channel.discard_output();
  slot.channel.queue({{"type", "exit"}});
  slot.channel.flush_some();
  slot.channel.close();
  slot.head_timed_out = false;
  slot.kill_at = Clock::time_point::max();
}

void Pool::Impl::retire(Slot& slot, const std::string& reason) {
  release_channel(slot);
  retiring_.push_back({slot.pid, Clock::now() + kRetireGrace});
  slot.stats.restart_reasons.push_back(fmt::format("pid {}: {}", slot.pid, reason));
  ++slot.stats.restarts;
  slot.pid = -1;
  slot.stats.pid = 0;
  slot.state = SlotState::stopped;
  start_slot(slot);
}

void Pool::Impl::handle_death(Slot& slot, const std::string& why) {
  const pid_t pid = slot.pid;
  const bool was_starting = slot.state == SlotState::starting;
  const int status = detail::kill_and_reap(pid);
  slot.channel.close();
  slot.state = SlotState::stopped;
  slot.pid = -1;
  slot.kill_at = Clock::time_point::max();
  const bool timed_out = std::exchange(slot.head_timed_out, false);
  std::string reason = why.empty() ? detail::describe_wait_status(status) : why;
  // SIGKILL comes from outside (a user, the OOM killer), never from a setup's own bug.
  const bool hung = std::exchange(slot.setup_timed_out, false);
  const bool killed_from_outside = !hung && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (hung) reason = fmt::format("hung in start-up (no ready after {} ms)", options_.setup_timeout.count());
  if (!slot.in_setup.empty()) {
    if (!killed_from_outside) note_setup_crash(slot.in_setup, reason);
    reason += " in the setup of " + std::exchange(slot.in_setup, "");
  }
  const bool out_of_memory = WIFEXITED(status) && WEXITSTATUS(status) == detail::kWorkerExitOutOfMemory;

  if (!slot.inflight.empty()) {
    // The worker writes each result before it starts the next task, so the
    // head is the task that was running; those behind it never started.
    TaskPtr head = std::move(slot.inflight.front());
    slot.inflight.pop_front();
    requeue_unstarted(slot);
    if (timed_out) {
      finish(std::move(head),
             error_result(ErrorKind::timeout,
                          fmt::format("task exceeded its time limit of {}; worker {} stopped",
                                      format_duration(*options_.task_timeout), pid),
                          pid));
    } else if (out_of_memory) {
      finish(std::move(head), error_result(ErrorKind::memory,
                                           fmt::format("worker {} ran out of memory", pid), pid));
    } else if (head->attempts <= options_.retries) {
      queue_.push_front(std::move(head));
    } else {
      finish(std::move(head),
             error_result(ErrorKind::crashed, fmt::format("worker {} {}", pid, reason), pid));
    }
  }
  slot.stats.restart_reasons.push_back(fmt::format("pid {}: {}", pid, reason));
  ++slot.stats.restarts;
  slot.stats.pid = 0;
  {
    std::lock_guard lock(mutex_);
    stats_.workers[std::size_t(slot.index)] = slot.stats;
  }
  if (!was_starting) return start_slot(slot);
  // An outside SIGKILL is not the worker's failure, unless it happens again
  // and again (an OOM killer at every start).
  if (killed_from_outside && ++slot.outside_kills < kMaxOutsideKills) {
    slot.respawn_at = Clock::now() + std::chrono::milliseconds(10);
    return;
  }
  start_failed(slot, reason);
}

void Pool::Impl::stop_all_workers() {
  stopping_ = true;  // no respawns from here on
  for (Slot& slot : slots_) {
    for (auto& task : slot.inflight)
      finish(std::move(task), error_result(ErrorKind::crashed, "the pool was terminated", slot.pid));
    slot.inflight.clear();
    if (slot.pid > 0) {
      release_channel(slot);
      retiring_.push_back({slot.pid, Clock::now() + kTerminateGrace});
    }
    slot.channel.close();
    slot.pid = -1;
    slot.state = SlotState::stopped;
  }
  for (auto& task : queue_) finish(std::move(task), error_result(ErrorKind::crashed, "the pool was terminated", 0));
  queue_.clear();
  std::deque<TaskPtr> unsent;
  {
    std::lock_guard lock(mutex_);
    unsent.swap(incoming_);
  }
  for (auto& task : unsent) finish(std::move(task), error_result(ErrorKind::crashed, "the pool was terminated", 0));
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    if (!startup_done_) {
      startup_done_ = true;
      if (startup_error_.empty()) startup_error_ = "the pool was stopped during start-up";
    }
    changed_.notify_all();
  }
  zygote_.stop();
  while (!retiring_.empty()) {
    check_deadlines(Clock::now());
    if (!retiring_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace mathpool
