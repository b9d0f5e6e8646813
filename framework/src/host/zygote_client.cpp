#include "zygote_client.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fmt/format.h>

#include "../common/fd_passing.hpp"
#include "mathpool/error.hpp"

namespace mathpool::detail {

Value ZygoteTemplate::start(const std::filesystem::path& program, Value hello) {
  stop();
  program_ = program;
  hello_ = std::move(hello);
  hello_["mode"] = "zygote";
  SpawnedWorker process = spawn_worker(program_);
  pid_ = process.pid;
  channel_ = std::move(process.channel);
  std::optional<Value> ready;
  died_in_setup_.clear();
  try {
    if (channel_.send(hello_)) {
      // "setup" announcements come first, then "ready".
      while ((ready = channel_.receive()) && ready->value("type", "") == "setup")
        died_in_setup_ = ready->value("analysis", "");
    }
  } catch (const ProtocolError&) {
  }
  if (!ready || ready->value("type", "") != "ready") {
    const int status = kill_and_reap(pid_);
    pid_ = -1;
    channel_.close();
    // SIGKILL comes from outside, never from a setup's own bug.
    last_death_was_sigkill_ = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (last_death_was_sigkill_) died_in_setup_.clear();
    if (ready && ready->value("type", "") == "refused")
      throw Error(ErrorKind::crashed, ready->value("message", "worker refused the host"));
    throw Error(ErrorKind::crashed,
                fmt::format("zygote template {} during start-up{}", describe_wait_status(status),
                            died_in_setup_.empty() ? "" : " (in the setup of " + died_in_setup_ + ")"));
  }
  died_in_setup_.clear();
  return *ready;
}

SpawnedWorker ZygoteTemplate::fork_worker() {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (pid_ <= 0) start(program_, hello_);
    const char request = 'F';
    int fd = -1;
    pid_t worker = -1;
    if (::send(channel_.fd(), &request, 1, MSG_NOSIGNAL) == 1 &&
        receive_fd(channel_.fd(), &fd, &worker))
      return SpawnedWorker{worker, Channel(fd)};
    // The template died: reap it and start a clean one.
    const int status = kill_and_reap(pid_);
    last_death_was_sigkill_ = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
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
