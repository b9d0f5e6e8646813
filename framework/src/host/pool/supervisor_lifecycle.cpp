// The pool's supervisors (protocol.hpp, process model): the current one,
// from which new workers come; older ones that live until their last worker
// retires; and, while the pool looks for the setup that breaks the
// template's fork, a probe. All start and answer inside the dispatcher's
// poll loop, so nothing here waits for a supervisor. Dispatcher thread only.
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "pool_impl.hpp"

namespace mathpool {

using namespace pool_detail;
using Supervisor = detail::SupervisorProcess;

void Pool::Impl::wait_for_supervisor(Slot& slot) {
  slot.supervisor.reset();
  enter(slot, SlotState::waiting_for_supervisor);
  if (!supervisor_ && !bisection_.active && supervisor_restart_at_ == Clock::time_point::max()) start_supervisor();
}

void Pool::Impl::start_supervisor() {
  supervisor_restart_at_ = Clock::time_point::max();
  detail::HelloMessage hello = hello_;
  hello.mode = forking() ? "zygote" : "spawn";
  auto supervisor =
      std::make_shared<Supervisor>(worker_program_, std::move(hello), options_.setup_timeout, kForkTimeout, &cgroups_);
  try {
    supervisor->start();
  } catch (const std::exception& e) {
    for (Slot& slot : slots_)
      if (slot.state == SlotState::waiting_for_supervisor) could_not_start(slot, e.what());
    return;
  }
  supervisor_ = std::move(supervisor);
  stats_dirty_ = true;
}

void Pool::Impl::read_supervisors(Clock::time_point now) {
  std::vector<std::shared_ptr<Supervisor>> all = old_supervisors_;
  if (supervisor_) all.push_back(supervisor_);
  if (bisection_.probe) all.push_back(bisection_.probe);
  for (const auto& supervisor : all) {
    if (!supervisor->alive()) continue;
    auto events = supervisor->read(now);
    handle_supervisor_events(supervisor, events);
  }
  retire_old_supervisors();
  if (!supervisor_ && !bisection_.active && now >= supervisor_restart_at_ && !stopping_) {
    const bool wanted = std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) {
      return s.state == SlotState::waiting_for_supervisor;
    });
    if (wanted) start_supervisor();
    else supervisor_restart_at_ = Clock::time_point::max();
  }
}

void Pool::Impl::handle_supervisor_events(const std::shared_ptr<Supervisor>& supervisor, Supervisor::Events& events) {
  const bool probe = supervisor == bisection_.probe;
  if (events.ready) {
    if (probe) supervisor->request_fork(Clock::now());
    else if (supervisor == supervisor_) supervisor_ready(*events.ready);
  }
  for (const auto& forked : events.forked) {
    if (probe) {  // it can fork: the culprit is not among its setups
      ::close(forked.channel_fd);
      ::close(forked.pidfd);
      return continue_bisection(true);
    }
    worker_forked(supervisor, forked);
  }
  if (events.threaded && supervisor == supervisor_ && forking()) {
    for (const auto& [request, message] : events.fork_failed)
      for (Slot& slot : slots_)
        if (slot.state == SlotState::forking && slot.fork_request == request && slot.supervisor == supervisor)
          wait_for_supervisor(slot);
    events.fork_failed.clear();
    spawn_instead(events.threaded);
  }
  for (const auto& [request, message] : events.fork_failed) {
    if (probe) return continue_bisection(false);
    for (Slot& slot : slots_)
      if (slot.state == SlotState::forking && slot.fork_request == request && slot.supervisor == supervisor)
        wait_for_supervisor(slot);
    if (supervisor == supervisor_) {
      supervisor->kill("");
      supervisor_ended(supervisor, "could not make a worker: " + message);
    }
  }
  for (const auto& [pid, status] : events.exited) worker_exited(supervisor, pid, status);
  if (events.ended) {
    if (probe) return continue_bisection(false);
    supervisor_ended(supervisor, *events.ended);
  }
}

void Pool::Impl::supervisor_ready(const detail::ReadyMessage& ready) {
  stats_dirty_ = true;
  supervisor_outside_kills_ = 0;
  if (forking() && ready.threads > 1) return spawn_instead(ready.threads);
  if (forking()) {
    handle_load_errors(ready.errors);
    detail::MutexLock lock(mutex_);
    if (!startup_done_) catalogue_ = ready.analyses;
  }
  for (Slot& slot : slots_)
    if (slot.state == SlotState::waiting_for_supervisor) start_slot(slot);
}

void Pool::Impl::spawn_instead(int threads) {
  // Chromium's and Android's zygotes refuse to fork with threads running: a
  // lock held by another thread stays locked in every child, and a setup's
  // thread may reap the workers. This pool spawns its workers instead (each
  // runs the setups itself); the template goes once its workers have.
  forking_unsafe_ = fmt::format(
      "the setups left {} threads running in the zygote template, which cannot fork safely; workers are started "
      "by spawn instead, and each runs the setups",
      threads);
  const std::shared_ptr<Supervisor> threaded = std::exchange(supervisor_, nullptr);
  for (Slot& slot : slots_)
    if (slot.state == SlotState::forking && slot.supervisor == threaded) {
      threaded->cancel_fork(slot.fork_request);
      slot.supervisor.reset();
      enter(slot, SlotState::waiting_for_supervisor);
    }
  if (threaded->phase() == Supervisor::Phase::ready) old_supervisors_.push_back(threaded);
  else threaded->stop();
  start_supervisor();
}

void Pool::Impl::worker_forked(const std::shared_ptr<Supervisor>& supervisor, const Supervisor::Forked& forked) {
  Slot* slot = nullptr;
  for (Slot& s : slots_)
    if (s.state == SlotState::forking && s.fork_request == forked.request && s.supervisor == supervisor) slot = &s;
  if (!slot) {  // nobody waits for it any more: it exits when its channel closes
    ::close(forked.channel_fd);
    ::close(forked.pidfd);
    return;
  }
  supervisor_failures_ = 0;
  detail::ProgressMapping progress;
  try {
    progress = detail::ProgressMapping::create();
  } catch (const std::exception& e) {
    // The host program is out of descriptors or memory: this worker goes
    // (its supervisor reaps it), and the slot tries again after a back-off.
    detail::send_signal(forked.pid, forked.pidfd, SIGKILL);
    ::close(forked.channel_fd);
    ::close(forked.pidfd);
    slot->supervisor.reset();
    return could_not_start(*slot, e.what());
  }
  slot->pid = forked.pid;
  slot->pidfd = forked.pidfd;
  // Into its own cgroup before it runs a setup or a task: it waits for its page first.
  slot->cgroup = cgroups_.adopt(forked.pid, fmt::format("worker-{}", forked.pid));
  slot->channel = detail::Channel(forked.channel_fd);
  // Only the worker answers (isolation: worker): bytes a task's escaped
  // process writes on the inherited channel are not its replies. Under
  // isolation: task, each task's own process writes its reply, and the
  // worker ends what the task started before the next one.
  if (options_.isolation == Isolation::worker) slot->channel.only_from(forked.pid);
  slot->progress = std::move(progress);
  slot->progress.hand_over(forked.channel_fd);  // a worker gone already shows up on its pidfd
  slot->answered = 0;
  slot->entries_sent.clear();
  slot->started_at = Clock::now();
  enter(*slot, SlotState::starting, slot->started_at + options_.setup_timeout);
  stats_dirty_ = true;
  // A forked worker has its plugins already; a spawned one is told what to load.
  if (!forking()) {
    detail::queue_message(slot->channel, detail::MessageType::hello, hello_);
    slot->channel.flush_some();
  }
}

void Pool::Impl::supervisor_ended(const std::shared_ptr<Supervisor>& supervisor, const std::string& why) {
  stats_dirty_ = true;
  for (const auto& [name, cost] : supervisor->setup_costs()) {
    past_setup_costs_[name].setups += cost.setups;
    past_setup_costs_[name].setup_seconds += cost.setup_seconds;
  }
  // Its workers die with it (PR_SET_PDEATHSIG): what they ran is not to blame.
  for (Slot& slot : slots_) {
    if (slot.supervisor != supervisor) continue;
    if (slot.state == SlotState::forking) {
      slot.supervisor.reset();
      enter(slot, SlotState::waiting_for_supervisor);
      continue;
    }
    if (has_process(slot)) {
      const pid_t pid = slot.pid;
      handle_input(slot);  // what it wrote before it died
      if (slot.pid != pid || !has_process(slot)) {
        if (slot.state != SlotState::dying) continue;
      } else {
        begin_death(slot, fmt::format("its supervisor {} ended ({})", supervisor->pid(), why));
      }
    }
    if (slot.state == SlotState::dying && slot.supervisor == supervisor) {
      slot.death.supervisor_lost = true;
      conclude_death(slot, detail::kStatusUnknown);
    }
  }
  std::erase_if(retiring_, [&](Retiring& r) {
    if (r.supervisor != supervisor) return false;
    if (r.pidfd >= 0) ::close(r.pidfd);
    r.cgroup.end();
    return true;
  });
  std::erase(old_supervisors_, supervisor);
  if (supervisor != supervisor_) return;
  const std::shared_ptr<Supervisor> ended = std::exchange(supervisor_, nullptr);
  const auto soon = Clock::now() + std::chrono::milliseconds(10);
  if (ended->killed_from_outside() && ++supervisor_outside_kills_ < kMaxOutsideKills) {
    supervisor_restart_at_ = soon;  // not its fault: a new one, at once
  } else if (!ended->became_ready() && !ended->died_in_setup().empty()) {
    note_setup_crash(ended->died_in_setup(), why);  // a setup killed the template: again, then without it
    supervisor_restart_at_ = soon;
  } else if (!ended->became_ready() && !ended->hung()) {
    for (Slot& slot : slots_)
      if (slot.state == SlotState::waiting_for_supervisor) could_not_start(slot, "the pool's supervisor " + why);
  } else {
    supervisor_broken(why);
  }
  for (Slot& slot : slots_)
    if (slot.state == SlotState::waiting_for_supervisor) wait_for_supervisor(slot);
}

void Pool::Impl::supervisor_broken(const std::string& reason) {
  ++supervisor_failures_;
  if (forking() && supervisor_failures_ >= 2) {
    // The same again with a fresh template: one of the setups breaks its
    // fork (a fork handler that blocks, descriptors used up...). Find it.
    std::vector<std::string> suspects;
    for (const auto& entry : catalogue_) {
      const std::string name = entry.value("name", "");
      const bool set_up = !hello_.setup || std::find(hello_.setup->begin(), hello_.setup->end(), name) !=
                                               hello_.setup->end();
      if (set_up && !hello_.quarantine.contains(name)) suspects.push_back(name);
    }
    supervisor_failures_ = 0;
    if (!suspects.empty()) {
      bisection_ = Bisection{};
      bisection_.active = true;
      bisection_.suspects = std::move(suspects);
      bisection_.reason = reason;
      return begin_bisection_trial();
    }
  }
  if (supervisor_failures_ >= kMaxStartFailures || (forking() && supervisor_failures_ == 0)) {
    supervisor_failures_ = 0;
    for (Slot& slot : slots_)
      if (slot.state == SlotState::waiting_for_supervisor)
        could_not_start(slot, "the pool's supervisor cannot make workers: " + reason);
    return;
  }
  supervisor_restart_at_ = Clock::now() + std::chrono::milliseconds(50 << std::min(supervisor_failures_, 4));
}

void Pool::Impl::begin_bisection_trial() {
  if (bisection_.suspects.empty()) {
    // No setup is to blame (the failures came from elsewhere: a stopped
    // supervisor, say): start afresh, quarantining nothing.
    bisection_ = Bisection{};
    supervisor_restart_at_ = Clock::now();
    return;
  }
  if (bisection_.suspects.size() == 1 && !bisection_.confirming) {
    bisection_.confirming = true;  // tried alone before it is blamed
  } else if (bisection_.suspects.size() == 1) {
    const std::string culprit = bisection_.suspects.front();
    const std::string reason = bisection_.reason;
    bisection_ = Bisection{};
    quarantine(culprit, fmt::format("analysis '{}' is quarantined: with its setup the zygote template cannot make "
                                    "workers (found by trying templates with part of the setups; last: {})",
                                    culprit, reason));
    supervisor_restart_at_ = Clock::now();
    return;
  }
  const auto half = bisection_.confirming ? bisection_.suspects.end()
                                          : bisection_.suspects.begin() + std::ptrdiff_t(bisection_.suspects.size() / 2);
  bisection_.trial.assign(bisection_.suspects.begin(), half);
  detail::HelloMessage hello = hello_;
  hello.mode = "zygote";
  hello.setup = bisection_.trial;
  bisection_.probe =
      std::make_shared<Supervisor>(worker_program_, std::move(hello), options_.setup_timeout, kForkTimeout, &cgroups_);
  try {
    bisection_.probe->start();
  } catch (const std::exception&) {
    continue_bisection(false);
  }
}

void Pool::Impl::continue_bisection(bool trial_forked) {
  if (bisection_.probe) bisection_.probe->stop();
  bisection_.probe.reset();
  std::vector<std::string> rest;
  for (const auto& name : bisection_.suspects)
    if (std::find(bisection_.trial.begin(), bisection_.trial.end(), name) == bisection_.trial.end())
      rest.push_back(name);
  bisection_.suspects = trial_forked ? rest : bisection_.trial;
  begin_bisection_trial();
}

void Pool::Impl::retire_old_supervisors() {
  std::erase_if(old_supervisors_, [this](const std::shared_ptr<Supervisor>& supervisor) {
    const bool used = std::any_of(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.supervisor == supervisor; }) ||
                      std::any_of(retiring_.begin(), retiring_.end(), [&](const Retiring& r) { return r.supervisor == supervisor; });
    if (used) return false;
    for (const auto& [name, cost] : supervisor->setup_costs()) {
      past_setup_costs_[name].setups += cost.setups;
      past_setup_costs_[name].setup_seconds += cost.setup_seconds;
    }
    supervisor->stop();
    return true;
  });
}

void Pool::Impl::quarantine(const std::string& analysis, const std::string& reason) {
  hello_.quarantine[analysis] = reason;
  if (!forking() || !supervisor_) return;
  // Workers from here on come from a template that knows; the old one lives
  // until its last worker retires, so running tasks are not disturbed.
  if (supervisor_->phase() == Supervisor::Phase::ready) old_supervisors_.push_back(supervisor_);
  else supervisor_->stop();
  for (Slot& slot : slots_)
    if (slot.state == SlotState::forking && slot.supervisor == supervisor_) {
      supervisor_->cancel_fork(slot.fork_request);
      slot.supervisor.reset();
      enter(slot, SlotState::waiting_for_supervisor);
    }
  supervisor_.reset();
  supervisor_restart_at_ = Clock::now();
}

}  // namespace mathpool
