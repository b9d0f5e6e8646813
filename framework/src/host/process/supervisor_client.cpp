#include "supervisor_client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include <fmt/format.h>

#include "mathpool/error.hpp"

namespace mathpool::detail {
namespace {

constexpr auto kStopGrace = std::chrono::milliseconds(200);

bool readable(int fd, int timeout_ms = 0) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

}  // namespace

SupervisorProcess::SupervisorProcess(const std::filesystem::path& program, HelloMessage hello,
                                     std::chrono::milliseconds setup_timeout, std::chrono::milliseconds fork_timeout,
                                     CgroupTree* cgroups)
    : program_(program),
      hello_(std::move(hello)),
      setup_timeout_(setup_timeout),
      fork_timeout_(fork_timeout),
      cgroups_(cgroups) {}

void SupervisorProcess::start() {
  SpawnedWorker process = spawn_worker(program_);
  pid_ = process.pid;
  pidfd_ = open_pidfd(pid_);
  // Into its own cgroup before its setups run (it starts nothing before the hello).
  if (cgroups_) cgroup_ = cgroups_->adopt(pid_, fmt::format("supervisor-{}", pid_));
  channel_ = std::move(process.channel);
  channel_.accept_fds(true);
  channel_.only_from(pid_);  // what a setup's helper writes on fd 3 is not the supervisor's
  progress_ = std::move(process.progress);
  phase_ = Phase::starting;
  started_at_ = Clock::now();
  start_deadline_ = started_at_ + setup_timeout_;
  queue_message(channel_, MessageType::hello, hello_);
  channel_.flush_some();  // the rest goes out as the poll loop finds room
}

std::uint64_t SupervisorProcess::request_fork(Clock::time_point now) {
  const std::uint64_t request = next_request_++;
  pending_[request] = now + fork_timeout_;
  queue_message(channel_, MessageType::fork, ForkMessage{request});
  channel_.flush_some();
  return request;
}

void SupervisorProcess::watch(bool busy) {
  if (busy == busy_ || phase_ == Phase::ended) return;
  busy_ = busy;
  queue_message(channel_, MessageType::watch, WatchMessage{busy});
  channel_.flush_some();
}

SupervisorProcess::Clock::time_point SupervisorProcess::deadline() const noexcept {
  Clock::time_point next = Clock::time_point::max();
  if (phase_ == Phase::starting) next = start_deadline_;
  for (const auto& [request, at] : pending_) next = std::min(next, at);
  return next;
}

SupervisorProcess::Events SupervisorProcess::read(Clock::time_point now) {
  Events events;
  if (phase_ == Phase::ended) return events;
  const bool look = std::exchange(readable_, false);
  const bool open = !look || channel_.fill();
  try {
    while (auto frame = channel_.next_frame()) {
      handle_frame(*frame, events);
      if (events.ended) break;
    }
  } catch (const std::exception& e) {  // ProtocolError, or a field of the wrong type
    events.ended = fmt::format("protocol error: {}", e.what());
  }
  if (events.ended) {
    *events.ended += " (" + end(true) + ")";
    return events;
  }
  bool dead = look && readable(pidfd_);
  // A dying process's channel closes moments before its pidfd says so: wait
  // for its real end (its status tells an outside kill apart). Moments can
  // be 100 ms on a loaded machine; only a process that closed its channel
  // and lives on (a setup that closed fd 3) waits the whole 500 ms.
  if (!open && !dead) dead = readable(pidfd_, 500);
  if (!open || dead) {
    // Its channel closed while it lives (a setup closed fd 3): kill it, never
    // wait for a process that may not end. One already ending (killed from
    // outside, and not yet scheduled to finish dying) is waited for: its
    // status, not a SIGKILL of ours, says how it ended.
    events.ended = end(!dead && !process_is_ending(pid_));
    if (phase_ == Phase::ended && !died_in_setup_.empty()) *events.ended += " in the setup of " + died_in_setup_;
    return events;
  }
  if (phase_ == Phase::starting && now >= start_deadline_) {
    hung_ = true;
    events.ended = fmt::format("hung in start-up (no ready after {} ms){}", setup_timeout_.count(),
                               died_in_setup_.empty() ? "" : " in the setup of " + died_in_setup_);
    end(true);
    return events;
  }
  for (const auto& [request, at] : pending_) {
    if (now < at) continue;
    hung_ = true;
    events.ended = fmt::format("did not answer a fork request within {} ms (stopped, or a fork handler blocks?)",
                               fork_timeout_.count());
    end(true);
    return events;
  }
  return events;
}

void SupervisorProcess::handle_frame(const Frame& frame, Events& events) {
  switch (frame.type) {
    case MessageType::setup: {
      const auto setup = SetupMessage::decode(frame);
      check_sender(setup.pid, pid_);
      died_in_setup_ = setup.analysis;
      if (setup.seconds) {  // that setup is done
        AnalysisStats& cost = setup_costs_[std::exchange(died_in_setup_, "")];
        ++cost.setups;
        cost.setup_seconds += *setup.seconds;
      }
      return;
    }
    case MessageType::ready: {
      auto ready = ReadyMessage::decode(frame);
      check_sender(ready.pid, pid_);
      if (ready.protocol != kProtocolVersion) throw ProtocolError("the supervisor speaks another protocol version");
      if (phase_ != Phase::starting) throw ProtocolError("a second ready message");
      phase_ = Phase::ready;
      became_ready_ = true;
      died_in_setup_.clear();
      start_seconds_ = std::chrono::duration<double>(Clock::now() - started_at_).count();
      events.ready = std::move(ready);
      return;
    }
    case MessageType::refused:
      events.ended = "refused the host: " + RefusedMessage::decode(frame).message;
      return;
    case MessageType::forked: {
      const auto message = ForkedMessage::decode(frame);
      Forked forked{message.request, message.pid, channel_.take_fd(), channel_.take_fd()};
      if (forked.channel_fd < 0 || forked.pidfd < 0 || pending_.erase(forked.request) == 0) {
        // Cancelled meanwhile (or descriptors missing): the worker sees its
        // channel close and exits.
        if (forked.channel_fd >= 0) ::close(forked.channel_fd);
        if (forked.pidfd >= 0) ::close(forked.pidfd);
        if (forked.channel_fd < 0 || forked.pidfd < 0) throw ProtocolError("a forked message without descriptors");
        return;
      }
      events.forked.push_back(forked);
      return;
    }
    case MessageType::fork_failed: {
      const auto failed = ForkFailedMessage::decode(frame);
      if (pending_.erase(failed.request)) events.fork_failed.emplace_back(failed.request, failed.message);
      if (failed.threads > 1) events.threaded = failed.threads;
      return;
    }
    case MessageType::exited: {
      const auto exited = ExitedMessage::decode(frame);
      events.exited.emplace_back(exited.pid, exited.status);
      return;
    }
    default:
      throw ProtocolError(fmt::format("unexpected message of type {} from a supervisor", int(frame.type)));
  }
}

std::string SupervisorProcess::end(bool kill) {
  if (phase_ == Phase::ended) return "ended";
  if (kill) send_signal(pid_, pidfd_, SIGKILL);
  // Dead now or soon (killed, or seen dead): while it is our unreaped zombie
  // its session's number is its own, and what is left of the session goes
  // (without cgroups, a setup's helper would otherwise outlive it; with them,
  // it catches a process that moved itself out of its cgroup, which a
  // delegated cgroup lets a task of the same user do).
  siginfo_t info{};
  int waited;
  while ((waited = ::waitid(P_PID, id_t(pid_), &info, WEXITED | WNOWAIT)) < 0 && errno == EINTR) {
  }
  // Reaped by someone else (a host program that ignores SIGCHLD or reaps
  // any child): still safe while no process has its pid.
  if ((waited == 0 && info.si_pid == pid_) || (waited < 0 && no_process_has_pid(pid_))) kill_session(pid_);
  int status = 0;
  pid_t reaped;
  while ((reaped = waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  std::string how = reaped == pid_ ? describe_wait_status(status)
                                   : "ended; its exit status was reaped by another waiter in the host program";
  killed_from_outside_ = !kill && reaped == pid_ && judge_exit(status).killed_from_outside;
  cgroup_.end();
  channel_.close();
  if (pidfd_ >= 0) ::close(std::exchange(pidfd_, -1));
  progress_ = {};
  pending_.clear();
  phase_ = Phase::ended;
  return how;
}

void SupervisorProcess::kill(const std::string&) {
  if (phase_ != Phase::ended) end(true);
}

void SupervisorProcess::stop() {
  if (phase_ == Phase::ended) return;
  channel_.discard_output();
  queue_message(channel_, MessageType::exit, ExitMessage{});
  channel_.flush_some();
  channel_.close();  // it ends at end of stream, with everything below it
  const bool gone = readable(pidfd_, int(kStopGrace.count()));
  end(!gone);
}

}  // namespace mathpool::detail
