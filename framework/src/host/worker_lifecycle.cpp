// Worker lifecycle of the pool: starting workers (spawned or forked from the
// zygote template), handshakes, deaths and their verdicts, recycling,
// quarantine, and stopping everything. Runs on the dispatcher thread only.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

#include "pool_impl.hpp"

namespace mathpool {
namespace {

using namespace pool_detail;

std::string format_duration(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{}s", d.count() / 1000)
                               : fmt::format("{}ms", d.count());
}

}  // namespace

void Pool::Impl::note_setup_crash(const std::string& analysis, const std::string& reason) {
  if (++setup_crashes_[analysis] < kQuarantineAfter) return;
  hello_["quarantine"][analysis] =
      fmt::format("analysis '{}' is quarantined: its setup crashed {} times (last: {})", analysis,
                  setup_crashes_[analysis], reason);
  if (options_.start == StartMode::zygote) {
    // Workers from here on come from a template that knows; one starting
    // already (slots wait for it) starts again with the quarantine.
    const bool was_starting = zygote_.phase() == detail::ZygoteTemplate::Phase::starting;
    zygote_.stop();
    zygote_.configure(worker_program_, hello_, options_.setup_timeout);
    if (was_starting) begin_template_start();
  }
}

void Pool::Impl::handle_load_errors(const Value& ready) {
  const auto& errors = ready.at("errors");
  if (errors.empty()) return;
  std::string joined;
  for (const auto& e : errors) joined += (joined.empty() ? "" : "; ") + e.get<std::string>();
  fail_startup(joined);
}

void Pool::Impl::enter(Slot& slot, SlotState next, Clock::time_point deadline) {
  using S = SlotState;
  // The transitions of the table in pool_impl.hpp.
  [[maybe_unused]] const auto allowed = [](S from, S to) {
    if (to == S::stopped) return true;  // a death, a retirement, the pool stops
    switch (from) {
      case S::stopped:
      case S::waiting_to_restart:
      case S::waiting_for_template:
        return to == S::starting || to == S::waiting_to_restart || to == S::waiting_for_template;
      case S::starting: return to == S::ready || to == S::hung_in_setup;
      case S::ready: return to == S::stopping_after_timeout;
      default: return false;
    }
  };
  assert(allowed(slot.state, next));
  slot.state = next;
  slot.deadline = deadline;
}

void Pool::Impl::on_slot_deadline(Slot& slot) {
  switch (slot.state) {
    case SlotState::waiting_to_restart:
      if (!stopping_) start_slot(slot);
      return;
    case SlotState::starting:  // a hung setup: its death counts against the analysis
      enter(slot, SlotState::hung_in_setup);
      ::kill(slot.pid, SIGKILL);
      return;
    case SlotState::stopping_after_timeout:  // the grace after SIGTERM is over
      ::kill(slot.pid, SIGKILL);
      slot.deadline = Clock::time_point::max();
      return;
    default:
      return;
  }
}

void Pool::Impl::start_slot(Slot& slot) {
  const bool forked = options_.start == StartMode::zygote;
  if (forked && zygote_.phase() != detail::ZygoteTemplate::Phase::ready) return wait_for_template(slot);
  slot.started_at = Clock::now();
  try {
    detail::SpawnedWorker worker = forked ? zygote_.fork_worker() : detail::spawn_worker(worker_program_);
    if (forked) template_fork_failures_ = 0;
    slot.pid = worker.pid;
    // Into its own cgroup before it runs a setup or a task (it starts nothing before).
    slot.cgroup = cgroups_.adopt(worker.pid, fmt::format("worker-{}", worker.pid));
    slot.pidfd = detail::open_pidfd(worker.pid);
    slot.channel = std::move(worker.channel);
    slot.progress = std::move(worker.progress);
    slot.answered = 0;
    enter(slot, SlotState::starting, slot.started_at + options_.setup_timeout);
    stats_dirty_ = true;
    // A forked worker has its plugins already.
    if (!forked) slot.channel.send_control(detail::MessageType::hello, hello_);
  } catch (const std::exception& e) {
    // A template that died since its last fork is started anew, once; a
    // second failure in a row is the start's.
    if (forked && zygote_.phase() == detail::ZygoteTemplate::Phase::stopped && ++template_fork_failures_ == 1)
      return wait_for_template(slot);
    could_not_start(slot, e.what());
  }
}

void Pool::Impl::could_not_start(Slot& slot, const std::string& reason) {
  // The template killed from outside (even while the pool starts): fork
  // again from a new one soon.
  if (options_.start == StartMode::zygote && zygote_.last_death_was_sigkill() &&
      ++slot.outside_kills < kMaxOutsideKills)
    return enter(slot, SlotState::waiting_to_restart,
                 Clock::now() + std::chrono::milliseconds(10 << std::min(slot.outside_kills, 5)));
  enter(slot, SlotState::stopped);
  std::unique_lock lock(mutex_);
  const bool starting_up = !startup_done_;
  lock.unlock();
  if (starting_up) return fail_startup(reason);
  start_failed(slot, reason);
}

void Pool::Impl::start_failed(Slot& slot, const std::string& reason) {
  if (++slot.start_failures >= kMaxStartFailures) {
    const std::string message =
        fmt::format("worker failed to start {} times; last: {}", slot.start_failures, reason);
    fail_startup(message);
    // While no worker can start, queued tasks would wait forever: fail them.
    if (std::none_of(slots_.begin(), slots_.end(),
                     [](const Slot& s) { return answers(s); })) {
      std::deque<Task> failed;
      failed.swap(queue_);
      for (auto& task : failed) finish(std::move(task), error_result(ErrorKind::crashed, message, 0));
    }
  }
  // Back off so a worker that dies at start cannot spin the machine.
  enter(slot, SlotState::waiting_to_restart,
        Clock::now() + std::chrono::milliseconds(50 << std::min(slot.start_failures, 4)));
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
  if (!slot.in_setup.empty()) setup_crashes_.erase(std::exchange(slot.in_setup, ""));  // it succeeded
  enter(slot, SlotState::ready);
  slot.start_failures = 0;
  slot.outside_kills = 0;
  slot.stats.pid = slot.pid;
  slot.stats.tasks = 0;
  slot.stats.task_setup_seconds = 0;
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

void Pool::Impl::requeue(std::deque<Task>& tasks, bool charged) {
  while (!tasks.empty()) {
    Task task = std::move(tasks.back());
    tasks.pop_back();
    if (!charged) --task.attempts;  // it never ran, or its result was lost with the worker
    queue_.push_front(std::move(task));
  }
}

void Pool::Impl::release_channel(Slot& slot) {
  // Never block on a worker: drop what it has not taken, ask it to exit if
  // the socket has room, and let the grace period's SIGKILL do the rest.
  slot.channel.discard_output();
  slot.channel.queue_control(detail::MessageType::exit, Value::object());
  slot.channel.flush_some();
  close_process(slot);
}

void Pool::Impl::close_process(Slot& slot) {
  slot.cgroup.end();  // what the worker's tasks started, wherever it went (a retiring worker's moved on)
  slot.channel.close();
  if (slot.pidfd >= 0) ::close(std::exchange(slot.pidfd, -1));
  slot.progress = {};
  slot.timed_out_task = 0;
}

void Pool::Impl::retire(Slot& slot, const std::string& reason) {
  retiring_.push_back({slot.pid, Clock::now() + kRetireGrace, std::move(slot.cgroup)});
  release_channel(slot);
  slot.stats.restart_reasons.push_back(fmt::format("pid {}: {}", slot.pid, reason));
  ++slot.stats.restarts;
  slot.pid = -1;
  slot.stats.pid = 0;
  enter(slot, SlotState::stopped);
  start_slot(slot);
}

void Pool::Impl::handle_death(Slot& slot, const std::string& why) {
  const pid_t pid = slot.pid;
  const bool hung = slot.state == SlotState::hung_in_setup;
  const bool was_starting = slot.state == SlotState::starting || hung;
  // The progress page says what the worker was doing when it died.
  const detail::ProgressPage* page = slot.progress.page();
  const int status = detail::kill_and_reap(pid, page);
  const std::optional<RunningTask> running_at_death = running_task(slot);
  const bool setup_running = page && page->in_setup.load() != 0;
  const std::uint64_t timed_out_task = slot.timed_out_task;
  // A failed task's `seconds` is the time from its start to the fault.
  const double ran_for =
      running_at_death ? std::chrono::duration<double>(Clock::now() - running_at_death->since).count() : 0.0;
  close_process(slot);
  enter(slot, SlotState::stopped);
  slot.pid = -1;
  const detail::ExitVerdict verdict = detail::judge_exit(status);
  std::string reason = why.empty() ? verdict.description : why;
  if (hung) reason = fmt::format("hung in start-up (no ready after {} ms)", options_.setup_timeout.count());
  const bool killed_from_outside = !hung && verdict.killed_from_outside;
  const std::string setup = std::exchange(slot.in_setup, "");
  const bool in_setup = !setup.empty() && (setup_running || was_starting);
  if (in_setup) {
    if (!killed_from_outside) note_setup_crash(setup, reason);
    reason += " in the setup of " + setup;
  }

  if (!slot.inflight.empty()) {
    // Exact blame: the task the worker had begun and not finished (its page)
    // is the one that was running; those before it finished but their
    // results died with the worker, those after it never started.
    std::deque<Task> tasks;
    tasks.swap(slot.inflight);
    const std::size_t running = running_at_death && !in_setup
                                    ? std::size_t(running_at_death->ordinal - 1 - slot.answered)
                                    : tasks.size();
    if (running < tasks.size()) {
      Task culprit = std::move(tasks[running]);
      tasks.erase(tasks.begin() + std::ptrdiff_t(running));
      requeue(tasks, false);
      auto fail = [&](ErrorKind kind, std::string message) {
        detail::RawResult result = error_result(kind, std::move(message), pid);
        result.seconds = std::max(0.0, ran_for);
        finish(std::move(culprit), std::move(result));
      };
      if (running_at_death && timed_out_task == running_at_death->ordinal) {
        fail(ErrorKind::timeout, fmt::format("task exceeded its time limit of {}; worker {} stopped",
                                             format_duration(*options_.task_timeout), pid));
      } else if (verdict.out_of_memory) {
        fail(ErrorKind::memory, fmt::format("worker {} ran out of memory", pid));
      } else if (culprit.attempts <= options_.retries) {
        queue_.push_front(std::move(culprit));
      } else {
        fail(ErrorKind::crashed, fmt::format("worker {} {}", pid, reason));
      }
    } else {
      requeue(tasks, false);  // it died between tasks (or in a setup): no task is to blame
    }
  }
  slot.stats.restart_reasons.push_back(fmt::format("pid {}: {}", pid, reason));
  ++slot.stats.restarts;
  slot.stats.pid = 0;
  stats_dirty_ = true;
  if (!was_starting) return start_slot(slot);
  // An outside SIGKILL is not the worker's failure, unless it happens again
  // and again (an OOM killer at every start).
  if (killed_from_outside && ++slot.outside_kills < kMaxOutsideKills)
    return enter(slot, SlotState::waiting_to_restart, Clock::now() + std::chrono::milliseconds(10));
  start_failed(slot, reason);
}

void Pool::Impl::stop_all_workers() {
  stopping_ = true;  // no respawns from here on
  for (Slot& slot : slots_) {
    std::deque<Task> running;
    running.swap(slot.inflight);
    for (auto& task : running)
      finish(std::move(task), error_result(ErrorKind::crashed, "the pool was terminated", slot.pid));
    if (slot.pid > 0) {
      retiring_.push_back({slot.pid, Clock::now() + kTerminateGrace, std::move(slot.cgroup)});
      release_channel(slot);
    }
    close_process(slot);
    slot.pid = -1;
    enter(slot, SlotState::stopped);
  }
  std::deque<Task> queued;
  queued.swap(queue_);
  for (auto& task : queued) finish(std::move(task), error_result(ErrorKind::crashed, "the pool was terminated", 0));
  std::deque<Task> unsent;
  {
    std::lock_guard lock(mutex_);
    unsent.swap(incoming_);
  }
  for (auto& task : unsent) finish(std::move(task), error_result(ErrorKind::crashed, "the pool was terminated", 0));
  deliver();
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
  cgroups_.remove();  // now, not at destruction: the default pool is never destroyed
}

}  // namespace mathpool
