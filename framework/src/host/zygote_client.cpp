#include "zygote_client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "../common/fd_passing.hpp"
#include "mathpool/error.hpp"

namespace mathpool::detail {
namespace {

// A template with one thread clones each worker as its sibling, a child of
// the host from the start. One with more threads (a setup left a thread
// pool running) cannot do that safely and double-forks instead: its middle
// process exits, and the kernel hands the worker to the nearest child
// subreaper. The host is one only for the length of such a fork request
// (the template answers once the middle process is gone, so the worker is
// ours by then), not for its whole life: a subreaper also adopts the
// orphans of every other child of the host program (its `sh -c 'job &'`),
// which it never waits for and which would stay zombies, and the children
// of dead workers. Descendants of a worker that dies during a window are
// reaped with the worker (kill_and_reap()).
//
// The exact guarantee, for double-forking templates only: an orphan of the
// host program's own children is adopted by the host only if its parent
// dies during such a window (well under a millisecond per worker start);
// those stay zombies until the host program waits for any child or exits.
// A host program that is a child subreaper itself stays one. One lock for
// the process: several pools must not end each other's windows.
class AdoptionWindow {
 public:
  AdoptionWindow() : lock_(mutex()) {
    int already = 0;
    prctl(PR_GET_CHILD_SUBREAPER, &already);
    opened_ = already == 0 && prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
  }
  ~AdoptionWindow() {
    if (opened_) prctl(PR_SET_CHILD_SUBREAPER, 0);
  }
  AdoptionWindow(const AdoptionWindow&) = delete;
  AdoptionWindow& operator=(const AdoptionWindow&) = delete;

 private:
  static std::mutex& mutex() {
    static std::mutex shared;
    return shared;
  }
  std::lock_guard<std::mutex> lock_;
  bool opened_ = false;
};

}  // namespace

bool ZygoteTemplate::supported() {
  int subreaper = 0;
  return prctl(PR_GET_CHILD_SUBREAPER, &subreaper) == 0;
}

void ZygoteTemplate::configure(const std::filesystem::path& program, Value hello,
                               std::chrono::milliseconds setup_timeout) {
  program_ = program;
  setup_timeout_ = setup_timeout;
  hello_ = std::move(hello);
  hello_["mode"] = "zygote";
}

void ZygoteTemplate::begin_start() {
  stop();
  SpawnedWorker process = spawn_worker(program_);
  pid_ = process.pid;
  // Into its own cgroup before its setups run (it starts nothing before the hello).
  if (cgroups_) cgroup_ = cgroups_->adopt(pid_, fmt::format("template-{}", pid_));
  pidfd_ = open_pidfd(pid_);
  channel_ = std::move(process.channel);
  progress_ = std::move(process.progress);
  phase_ = Phase::starting;
  died_in_setup_.clear();
  started_at_ = Clock::now();
  deadline_ = started_at_ + setup_timeout_;
  channel_.send_control(MessageType::hello, hello_);  // a template gone already shows up on its pidfd
}

std::optional<Value> ZygoteTemplate::advance(Clock::time_point now) {
  if (phase_ != Phase::starting) return std::nullopt;
  std::optional<Value> refused;
  try {
    const bool open = channel_.fill();
    // "setup" announcements come first, then "ready" (or "refused").
    while (auto frame = channel_.next_frame()) {
      const Value message = decode_control(*frame);
      check_sender(message, pid_);
      if (frame->type == MessageType::setup) {
        died_in_setup_ = message.value("analysis", "");
        if (message.contains("seconds")) {  // a report with seconds: that setup is done
          AnalysisStats& cost = setup_costs_[std::exchange(died_in_setup_, "")];
          ++cost.setups;
          cost.setup_seconds += message.at("seconds").get<double>();
        }
      } else if (frame->type == MessageType::ready) {
        phase_ = Phase::ready;
        adopts_workers_ = message.value("adopt", true);
        died_in_setup_.clear();
        start_seconds_ = std::chrono::duration<double>(Clock::now() - started_at_).count();
        return message;
      } else {
        if (frame->type == MessageType::refused) refused = message;
        fail_start(false, refused);
      }
    }
    pollfd process{pidfd_, POLLIN, 0};
    if (!open || (pidfd_ >= 0 && ::poll(&process, 1, 0) > 0)) fail_start(false, refused);
  } catch (const ProtocolError&) {
    fail_start(false, refused);
  }
  if (now >= deadline_) fail_start(true, refused);
  return std::nullopt;
}

void ZygoteTemplate::fail_start(bool hung, const std::optional<Value>& refused) {
  const int status = end_process(progress_.page());
  // SIGKILL comes from outside, never from a setup's own bug.
  last_death_was_sigkill_ = !hung && judge_exit(status).killed_from_outside;
  if (last_death_was_sigkill_) died_in_setup_.clear();
  if (hung)
    throw Error(ErrorKind::crashed,
                fmt::format("zygote template hung in start-up (no ready after {} ms){}", setup_timeout_.count(),
                            died_in_setup_.empty() ? "" : " in the setup of " + died_in_setup_));
  if (refused) throw Error(ErrorKind::crashed, refused->value("message", "worker refused the host"));
  throw Error(ErrorKind::crashed,
              fmt::format("zygote template {} during start-up{}", describe_wait_status(status),
                          died_in_setup_.empty() ? "" : " (in the setup of " + died_in_setup_ + ")"));
}

SpawnedWorker ZygoteTemplate::fork_worker() {
  if (phase_ != Phase::ready) throw Error(ErrorKind::crashed, "the zygote template is not ready");
  const char request = 'F';
  int fd = -1;
  pid_t worker = -1;
  bool forked = false;
  {
    std::optional<AdoptionWindow> window;
    if (adopts_workers_) window.emplace();
    forked = ::send(channel_.fd(), &request, 1, MSG_NOSIGNAL) == 1 && receive_fd(channel_.fd(), &fd, &worker);
  }
  if (!forked) {
    // The template died: reap it; the pool starts a clean one.
    last_death_was_sigkill_ = judge_exit(end_process()).killed_from_outside;
    throw Error(ErrorKind::crashed, "the zygote template cannot fork workers");
  }
  SpawnedWorker spawned{worker, Channel(fd), ProgressMapping::create()};
  spawned.progress.hand_over(fd);  // a worker gone already shows up at its ready message
  return spawned;
}

void ZygoteTemplate::stop() {
  if (pid_ > 0) {
    channel_.close();  // the template exits at end of stream
    end_process();
  }
}

int ZygoteTemplate::end_process(const ProgressPage* page) {
  const int status = kill_and_reap(pid_, page);
  cgroup_.end();
  channel_.close();
  if (pidfd_ >= 0) ::close(std::exchange(pidfd_, -1));
  progress_ = {};
  pid_ = -1;
  phase_ = Phase::stopped;
  return status;
}

}  // namespace mathpool::detail
