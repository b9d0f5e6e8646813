#include "zygote_client.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <mutex>

#include <fmt/format.h>

#include "../common/fd_passing.hpp"
#include "mathpool/error.hpp"

namespace mathpool::detail {
namespace {

// A forked worker is adopted by the host: the template's middle process
// exits, and the kernel hands the worker to the nearest child subreaper.
// The host is one only for the length of a fork request (the template
// answers once the middle process is gone, so the worker is ours by then),
// not for its whole life: a subreaper also adopts the orphans of every other
// child of the host program (its `sh -c 'job &'`), which it never waits for
// and which would stay zombies, and the children of dead workers.
// Descendants of a worker that dies during a window are reaped with the
// worker (kill_and_reap()).
//
// The exact guarantee: an orphan of the host program's own children is
// adopted by the host only if its parent dies during such a window (well
// under a millisecond per worker start); those stay zombies until the host
// program waits for any child or exits. Orphans whose parent dies at any
// other time go where they would go without a pool. A host program that is a
// child subreaper itself stays one. One lock for the process: several pools
// must not end each other's windows.
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

Value ZygoteTemplate::start(const std::filesystem::path& program, Value hello,
                            std::chrono::milliseconds setup_timeout) {
  stop();
  program_ = program;
  setup_timeout_ = setup_timeout;
  hello_ = std::move(hello);
  hello_["mode"] = "zygote";
  SpawnedWorker process = spawn_worker(program_);
  pid_ = process.pid;
  channel_ = std::move(process.channel);
  std::optional<Value> ready;
  died_in_setup_.clear();
  bool hung = false;
  const auto deadline = std::chrono::steady_clock::now() + setup_timeout_;
  // Waits for the next message, but never past the deadline.
  auto next = [&]() -> std::optional<Frame> {
    while (!channel_.has_buffered_frame()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{channel_.fd(), POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) == 0) {
        hung = true;
        return std::nullopt;
      }
      if (!channel_.fill()) return channel_.next_frame();
    }
    return channel_.next_frame();
  };
  std::optional<Frame> frame;
  try {
    if (channel_.send_control(MessageType::hello, hello_)) {
      // "setup" announcements come first, then "ready".
      while ((frame = next()) && frame->type == MessageType::setup) {
        const Value setup = decode_control(*frame);
        died_in_setup_ = setup.value("analysis", "");
        if (!setup.contains("seconds")) continue;  // it begins; a report with seconds: it is done
        AnalysisStats& cost = setup_costs_[std::exchange(died_in_setup_, "")];
        ++cost.setups;
        cost.setup_seconds += setup.at("seconds").get<double>();
      }
      if (frame && (frame->type == MessageType::ready || frame->type == MessageType::refused))
        ready = decode_control(*frame);
    }
  } catch (const ProtocolError&) {
    frame.reset();
  }
  const bool is_ready = frame && frame->type == MessageType::ready && ready;
  if (!is_ready) {
    const int status = kill_and_reap(pid_, process.progress.page());
    pid_ = -1;
    channel_.close();
    // SIGKILL comes from outside, never from a setup's own bug.
    last_death_was_sigkill_ = !hung && judge_exit(status).killed_from_outside;
    if (last_death_was_sigkill_) died_in_setup_.clear();
    if (hung)
      throw Error(ErrorKind::crashed,
                  fmt::format("zygote template hung in start-up (no ready after {} ms){}",
                              setup_timeout_.count(),
                              died_in_setup_.empty() ? "" : " in the setup of " + died_in_setup_));
    if (ready && frame && frame->type == MessageType::refused)
      throw Error(ErrorKind::crashed, ready->value("message", "worker refused the host"));
    throw Error(ErrorKind::crashed,
                fmt::format("zygote template {} during start-up{}", describe_wait_status(status),
                            died_in_setup_.empty() ? "" : " (in the setup of " + died_in_setup_ + ")"));
  }
  died_in_setup_.clear();
  start_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - (deadline - setup_timeout_)).count();
  return *ready;
}

SpawnedWorker ZygoteTemplate::fork_worker() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (pid_ <= 0) start(program_, hello_, setup_timeout_);
    const char request = 'F';
    int fd = -1;
    pid_t worker = -1;
    bool forked = false;
    {
      AdoptionWindow window;
      forked = ::send(channel_.fd(), &request, 1, MSG_NOSIGNAL) == 1 && receive_fd(channel_.fd(), &fd, &worker);
    }
    if (forked) {
      SpawnedWorker spawned{worker, Channel(fd), ProgressMapping::create()};
      spawned.progress.hand_over(fd);  // a worker gone already shows up at its ready message
      return spawned;
    }
    // The template died: reap it and start a clean one.
    const int status = kill_and_reap(pid_);
    last_death_was_sigkill_ = judge_exit(status).killed_from_outside;
    pid_ = -1;
    channel_.close();
  }
  throw Error(ErrorKind::crashed, "the zygote template cannot fork workers");
}

void ZygoteTemplate::restart(Value hello) {
  stop();
  hello_ = std::move(hello);
  hello_["mode"] = "zygote";
}

void ZygoteTemplate::stop() {
  if (pid_ > 0) {
    channel_.close();  // the template exits at end of stream
    kill_and_reap(pid_);
  }
  pid_ = -1;
}

}  // namespace mathpool::detail
