// Worker lifecycle of the pool: starting workers (spawned or forked from the
// zygote template), handshakes, deaths and their verdicts, recycling,
// quarantine, and stopping everything. Runs on the dispatcher thread only.
#include <signal.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

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

// `unbegun`: the worker's progress page said it had not begun the task (a
// worker that got no CPU, or one stuck outside its tasks). Said, not
// believed: the limit counts from the host's own observations either way.
std::string Pool::Impl::timeout_message(int pid, bool unbegun) const {
  return fmt::format("task exceeded its time limit of {}; worker {} stopped{}", format_duration(*options_.task_timeout),
                     pid, unbegun ? " (its progress page showed the task not begun)" : "");
}

void Pool::Impl::note_setup_crash(const std::string& analysis, const std::string& reason) {
  if (++setup_crashes_[analysis] < kQuarantineAfter) return;
  quarantine(analysis, fmt::format("analysis '{}' is quarantined: its setup crashed {} times (last: {})", analysis,
                                   setup_crashes_[analysis], reason));
}

void Pool::Impl::handle_load_errors(const std::vector<std::string>& errors) {
  if (errors.empty()) return;
  std::string joined;
  for (const auto& e : errors) joined += (joined.empty() ? "" : "; ") + e;
  fail_startup(joined);
}

void Pool::Impl::enter(Slot& slot, SlotState next, Clock::time_point deadline) {
  if (!detail::slot_transition_allowed(slot.state, next)) {
    std::fprintf(stderr, "mathpool: internal error: worker slot %d went from %s to %s\n", slot.index,
                 std::string(to_string(slot.state)).c_str(), std::string(to_string(next)).c_str());
    ++invalid_transitions_;
  }
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
      detail::send_signal(slot.pid, slot.pidfd, SIGKILL);
      return;
    case SlotState::stopping_after_timeout:  // the grace after SIGTERM is over
      detail::send_signal(slot.pid, slot.pidfd, SIGKILL);
      slot.deadline = Clock::time_point::max();
      return;
    case SlotState::dying:  // no report from its supervisor: judged without its status
      conclude_death(slot, detail::kStatusUnknown);
      return;
    default:
      return;
  }
}

void Pool::Impl::start_slot(Slot& slot) {
  if (stopping_) return;
  if (!supervisor_ || supervisor_->phase() != detail::SupervisorProcess::Phase::ready) return wait_for_supervisor(slot);
  slot.supervisor = supervisor_;
  slot.fork_request = supervisor_->request_fork(Clock::now());
  enter(slot, SlotState::forking);
}

void Pool::Impl::could_not_start(Slot& slot, const std::string& reason) {
  slot.supervisor.reset();
  enter(slot, SlotState::stopped);
  detail::MutexLock lock(mutex_);
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
      detail::TaskQueue failed;
      failed.swap(queue_);
      fail_all(failed, ErrorKind::crashed, message);
    }
  }
  // Back off so a worker that dies at start cannot spin the machine.
  enter(slot, SlotState::waiting_to_restart,
        Clock::now() + std::chrono::milliseconds(50 << std::min(slot.start_failures, 4)));
}

void Pool::Impl::fail_startup(const std::string& message) {
  detail::MutexLock lock(mutex_);
  if (startup_done_) return;
  startup_done_ = true;
  startup_error_ = message;
  changed_.notify_all();
}

void Pool::Impl::handle_ready(Slot& slot, const detail::ReadyMessage& message) {
  if (message.protocol != kProtocolVersion) throw detail::ProtocolError("worker speaks another protocol version");
  handle_load_errors(message.errors);
  if (!slot.in_setup.empty()) setup_crashes_.erase(std::exchange(slot.in_setup, ""));  // it succeeded
  enter(slot, SlotState::ready);
  slot.start_failures = 0;
  slot.outside_kills = 0;
  slot.stats.pid = slot.pid;
  slot.stats.tasks = 0;
  slot.stats.task_setup_seconds = 0;
  slot.stats.setup_seconds =
      std::chrono::duration<double>(Clock::now() - slot.started_at).count();
  detail::MutexLock lock(mutex_);
  stats_.workers[std::size_t(slot.index)] = slot.stats;
  if (!startup_done_ && catalogue_.empty()) catalogue_ = message.analyses;
  if (!startup_done_ && std::all_of(slots_.begin(), slots_.end(), [](const Slot& s) {
        return s.state == SlotState::ready;
      })) {
    startup_done_ = true;
    changed_.notify_all();
  }
}

void Pool::Impl::requeue(detail::TaskQueue& tasks, bool charged, const std::string& why, bool count_refund) {
  // Only the first of them may have been running: it alone counts a refund,
  // so an innocent task queued behind a task that keeps killing its worker
  // is never charged for it.
  tasks.split_runs();
  while (!tasks.empty()) {
    Task task = std::move(tasks.back());
    tasks.pop_back();
    if (!charged) {
      --task.attempts;  // it never ran, or its result was lost with the worker
      if (count_refund && tasks.empty() && ++task.refunds > kMaxRefunds) {
        finish(std::move(task),
               error_result(ErrorKind::crashed,
                            fmt::format("its worker died {} times while it was the first task in flight, with no "
                                        "verdict on it{}",
                                        kMaxRefunds + 1, why.empty() ? "" : " (last: " + why + ")"),
                            0));
        continue;
      }
    }
    queue_.push_front(std::move(task));
  }
}

void Pool::Impl::release_channel(Slot& slot) {
  // Never block on a worker: drop what it has not taken, ask it to exit if
  // the socket has room, and let the grace period's SIGKILL do the rest.
  slot.channel.discard_output();
  detail::queue_message(slot.channel, detail::MessageType::exit, detail::ExitMessage{});
  slot.channel.flush_some();
  close_process(slot);
}

void Pool::Impl::close_process(Slot& slot) {
  slot.cgroup.end();  // what the worker's tasks started, wherever it went (a retiring worker's moved on)
  slot.channel.close();
  if (slot.pidfd >= 0) ::close(std::exchange(slot.pidfd, -1));
  slot.progress = {};
  slot.timed_out_task = 0;
  slot.timed_out_unbegun = false;
  slot.supervisor.reset();
}

void Pool::Impl::retire(Slot& slot, const std::string& reason) {
  retiring_.push_back({slot.pid, std::exchange(slot.pidfd, -1), slot.supervisor, Clock::now() + kRetireGrace,
                       std::move(slot.cgroup)});
  release_channel(slot);
  slot.stats.restart_reasons.push_back(fmt::format("pid {}: {}", slot.pid, reason));
  ++slot.stats.restarts;
  slot.pid = -1;
  slot.stats.pid = 0;
  enter(slot, SlotState::stopped);
  start_slot(slot);
}

void Pool::Impl::begin_death(Slot& slot, const std::string& why, bool channel_closed) {
  if (!has_process(slot)) return;
  const Clock::time_point now = Clock::now();
  DeathNote note;
  note.why = why;
  note.hung = slot.state == SlotState::hung_in_setup;
  note.was_starting = slot.state == SlotState::starting || note.hung;
  note.running = running_task(slot, now);
  const detail::ProgressPage* page = slot.progress.page();
  note.setup_running = page && page->in_setup.load() != 0;
  if (page) note.started = page->started.load(std::memory_order_acquire);
  note.timed_out_task = slot.timed_out_task;
  note.timed_out_unbegun = slot.timed_out_unbegun;
  // A failed task's `seconds` is the time from its start to the fault.
  if (note.running) note.ran_for = std::chrono::duration<double>(now - note.running->since).count();
  // Its channel closed and it still lives (a task closed fd 3): the
  // SIGKILL below is the host's, not a verdict on the task it runs.
  // A dying process closes its channel moments before its pidfd says so:
  // up to 100 ms for that, or one already on its way out (killed from
  // outside, not yet scheduled to finish dying on a loaded machine), so an
  // outside kill is not taken for the host's.
  if (channel_closed && slot.pidfd >= 0) {
    pollfd ended{slot.pidfd, POLLIN, 0};
    note.channel_closed_alive = ::poll(&ended, 1, 100) == 0 && !detail::process_is_ending(slot.pid);
  }
  detail::send_signal(slot.pid, slot.pidfd, SIGKILL);  // dead already, or it ends now
  slot.channel.close();
  slot.progress = {};
  slot.death = std::move(note);
  enter(slot, SlotState::dying, now + kReportGrace);
}

void Pool::Impl::worker_exited(const std::shared_ptr<detail::SupervisorProcess>& supervisor, pid_t pid, int status) {
  for (Slot& slot : slots_) {
    if (slot.pid != pid || slot.supervisor != supervisor) continue;
    if (has_process(slot)) {
      handle_input(slot);  // what it wrote before it died comes first
      if (slot.pid != pid) return;
      begin_death(slot, "");
    }
    if (slot.state == SlotState::dying) conclude_death(slot, status);
    return;
  }
  std::erase_if(retiring_, [&](Retiring& r) {
    if (r.pid != pid || r.supervisor != supervisor) return false;
    if (r.pidfd >= 0) ::close(r.pidfd);
    r.cgroup.end();
    return true;
  });
}

void Pool::Impl::conclude_death(Slot& slot, int status) {
  const pid_t pid = slot.pid;
  const DeathNote note = std::move(slot.death);
  slot.death = {};
  close_process(slot);
  enter(slot, SlotState::stopped);
  slot.pid = -1;
  const detail::ExitVerdict verdict = detail::judge_exit(status);
  std::string reason = note.why.empty() ? verdict.description : note.why;
  if (note.hung) reason = fmt::format("hung in start-up (no ready after {} ms)", options_.setup_timeout.count());
  const bool killed_from_outside = !note.hung && note.why.empty() && verdict.killed_from_outside;
  const std::string setup = std::exchange(slot.in_setup, "");
  const bool in_setup = !note.supervisor_lost && !setup.empty() && (note.setup_running || note.was_starting);
  if (in_setup) {
    if (!killed_from_outside) note_setup_crash(setup, reason);
    reason += " in the setup of " + setup;
  }

  slot.inflight.split_runs();  // judged task by task
  if (!slot.inflight.empty() && note.supervisor_lost && slot.inflight.size() == 1 && slot.inflight.front().suspect) {
    // A suspect runs alone: its supervisor died again while it ran, and
    // nothing else was in flight. An outside kill can land there too, so it
    // runs again, and only the kMaxRefunds + 1st such death charges it.
    Task task = std::move(slot.inflight.front());
    slot.inflight.clear();
    if (++task.alone_deaths <= kMaxRefunds) {
      --task.attempts;  // given back; the last death is charged
      queue_.push_front(std::move(task));
    } else {
      detail::RawResult result = error_result(
          ErrorKind::crashed,
          fmt::format("the pool's supervisor died {} times while this task ran alone (last on worker {}: {})",
                      kMaxRefunds + 1, pid, reason),
          pid);
      result.seconds = std::max(0.0, note.ran_for);
      finish(std::move(task), std::move(result));
    }
  }
  if (!slot.inflight.empty()) {
    detail::TaskQueue tasks;
    tasks.swap(slot.inflight);
    detail::DeathFacts facts;
    facts.inflight = tasks.size();
    facts.answered = slot.answered;
    if (note.running) facts.running = note.running->ordinal;
    facts.timed_out = note.timed_out_task;
    facts.in_setup = in_setup;
    facts.supervisor_lost = note.supervisor_lost;
    facts.channel_lost = (note.channel_closed_alive && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                         (WIFEXITED(status) && WEXITSTATUS(status) == detail::kWorkerExitChannelLost);
    facts.started = note.started;
    facts.out_of_memory = verdict.out_of_memory;
    facts.retries = options_.retries;
    if (const auto index = detail::blamed_index(facts)) facts.culprit_attempts = tasks[*index].attempts;
    // Its supervisor went, and every worker with it: no task is to blame
    // yet. The one each worker was running is a suspect and runs alone from
    // now on (may_send), where such a death is its own; none is charged a
    // refund (those behind it never ran).
    if (note.supervisor_lost) tasks[detail::suspect_index(facts)].suspect = true;
    const detail::Blame blame = detail::blame(facts);
    // A lost channel with no verdict: the task that broke it is one of those
    // the worker began; each runs alone from now on, where it is judged.
    // None is charged a refund meanwhile (found from outside: quick tasks of
    // the analysis of one that replaced fd 3 were charged `crashed`).
    const bool suspects_named = facts.channel_lost && !blame.culprit && !in_setup && facts.started > facts.answered;
    if (suspects_named)
      for (std::size_t i = 0, n = detail::channel_suspects(facts); i < n; ++i) tasks[i].suspect = true;
    std::optional<Task> culprit;
    if (blame.culprit) {
      culprit = std::move(tasks[*blame.culprit]);
      tasks.erase(tasks.begin() + std::ptrdiff_t(*blame.culprit));
    }
    // The others go back uncharged. Only a death with no verdict counts a
    // refund (the first of them may have been running, unseen): with a
    // culprit, those before it finished (their results were lost with the
    // worker) and those after never started, so a run of crashing tasks
    // cannot use up the refunds of a quick task ahead of it.
    requeue(tasks, false, reason, !note.supervisor_lost && !blame.culprit && !suspects_named);
    if (culprit) {
      auto fail = [&](ErrorKind kind, std::string message) {
        detail::RawResult result = error_result(kind, std::move(message), pid);
        result.seconds = std::max(0.0, note.ran_for);
        finish(std::move(*culprit), std::move(result));
      };
      switch (blame.verdict) {
        case detail::Verdict::timeout:
          fail(ErrorKind::timeout, timeout_message(pid, note.timed_out_unbegun));
          break;
        case detail::Verdict::memory:
          fail(ErrorKind::memory,
               fmt::format("worker {} ran out of memory{}", pid, detail::memory_limit_note(options_.memory_limit)));
          break;
        case detail::Verdict::retry: queue_.push_front(std::move(*culprit)); break;
        default: fail(ErrorKind::crashed, fmt::format("worker {} {}", pid, reason)); break;
      }
    }
  }
  slot.stats.restart_reasons.push_back(fmt::format("pid {}: {}", pid, reason));
  ++slot.stats.restarts;
  slot.stats.pid = 0;
  stats_dirty_ = true;
  if (stopping_) return;
  if (!note.was_starting || note.supervisor_lost) return start_slot(slot);
  // An outside SIGKILL is not the worker's failure, unless it happens again
  // and again (an OOM killer at every start).
  if (killed_from_outside && ++slot.outside_kills < kMaxOutsideKills)
    return enter(slot, SlotState::waiting_to_restart, Clock::now() + std::chrono::milliseconds(10));
  start_failed(slot, reason);
}

void Pool::Impl::stop_all_workers() {
  stopping_ = true;  // no respawns from here on
  for (Slot& slot : slots_) {
    detail::TaskQueue running;
    running.swap(slot.inflight);
    running.split_runs();
    for (auto& task : running)
      finish(std::move(task), error_result(ErrorKind::crashed, "the pool was terminated", slot.pid));
    if (slot.pid > 0) {
      retiring_.push_back({slot.pid, std::exchange(slot.pidfd, -1), slot.supervisor, Clock::now() + kTerminateGrace,
                           std::move(slot.cgroup)});
      release_channel(slot);
    }
    if (slot.supervisor && slot.state == SlotState::forking) slot.supervisor->cancel_fork(slot.fork_request);
    close_process(slot);
    slot.pid = -1;
    enter(slot, SlotState::stopped);
  }
  detail::TaskQueue queued;
  queued.swap(queue_);
  fail_all(queued, ErrorKind::crashed, "the pool was terminated");
  detail::TaskQueue unsent;
  {
    detail::MutexLock lock(mutex_);
    unsent.swap(incoming_);
  }
  fail_all(unsent, ErrorKind::crashed, "the pool was terminated");
  deliver();
  {
    detail::MutexLock lock(mutex_);
    stopped_ = true;
    if (!startup_done_) {
      startup_done_ = true;
      if (startup_error_.empty()) startup_error_ = "the pool was stopped during start-up";
    }
    changed_.notify_all();
  }
  std::vector<pollfd> ends;
  while (!retiring_.empty()) {
    check_deadlines(Clock::now());
    if (retiring_.empty()) break;
    // Woken as soon as one of them ends (its pidfd), at the latest in 2 ms
    // (a kill deadline, a supervisor gone). A sleep here cost every pool's
    // end up to 2 ms after its last worker had exited.
    ends.clear();
    for (const Retiring& r : retiring_)
      if (r.pidfd >= 0) ends.push_back({r.pidfd, POLLIN, 0});
    ::poll(ends.data(), ends.size(), 2);
  }
  if (bisection_.probe) bisection_.probe->stop();
  bisection_ = Bisection{};
  for (auto& supervisor : old_supervisors_) supervisor->stop();
  old_supervisors_.clear();
  if (supervisor_) supervisor_->stop();
  cgroups_.remove();  // now, not at destruction: the default pool is never destroyed
}

}  // namespace mathpool
