// mathpool-worker: loads plugins once, runs their setups once, then serves
// tasks from its host over a private socket inherited at start (protocol.hpp).
//
// Usage (by the host only): mathpool-worker --channel FD --host PID
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include <fmt/format.h>

#include "../common/channel.hpp"
#include "../common/fd_passing.hpp"
#include "plugin_loader.hpp"
#include "zygote.hpp"

namespace mathpool::detail {
namespace {

void apply_memory_limit(std::int64_t bytes) {
  if (bytes <= 0) return;
  rlimit limit{static_cast<rlim_t>(bytes), static_cast<rlim_t>(bytes)};
  setrlimit(RLIMIT_AS, &limit);
}

// Keeps libraries inside plugins from starting a thread per core in every worker.
void limit_threads() {
  for (const char* name : {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"})
    setenv(name, "1", 0);
}

std::int64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Checks the parameters against the analysis's documentation; returns the
// error for unknown ones (unless the analysis accepts any).
std::optional<TaskError> check_params(const LoadedAnalysis& analysis, const Value& params) {
  if (params.is_null()) return std::nullopt;
  if (!params.is_object()) return TaskError{ErrorKind::invalid_params, "parameters must be a map"};
  const Analysis& doc = analysis.guarded.doc;
  if (doc.open_params) return std::nullopt;
  for (const auto& item : params.items()) {
    bool known = false;
    for (const ParamDoc& p : doc.params) known = known || p.name == item.key();
    if (known) continue;
    std::string names;
    for (const ParamDoc& p : doc.params) names += (names.empty() ? "" : ", ") + p.name;
    return TaskError{ErrorKind::invalid_params,
                     fmt::format("unknown parameter '{}' for {} (known: {})", item.key(), doc.name, names)};
  }
  return std::nullopt;
}

// What this worker process shares with its host: the channel and the page.
struct Link {
  Channel* channel = nullptr;
  ProgressPage* page = nullptr;
};
Link current;  // the template's, then a forked worker's

// The host's first words on a channel: the progress page, as a descriptor.
ProgressPage* receive_page(int channel_fd) {
  int page_fd = -1;
  pid_t unused = 0;
  if (!receive_fd(channel_fd, &page_fd, &unused)) return nullptr;
  void* mapped = mmap(nullptr, kProgressPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
  ::close(page_fd);
  return mapped == MAP_FAILED ? nullptr : static_cast<ProgressPage*>(mapped);
}

void run_setup(PluginLoader& loader, LoadedAnalysis& analysis) {
  loader.ensure_setup(analysis);
  if (current.page) current.page->in_setup.store(0, std::memory_order_release);
}

// Replies held back must never wait behind a long task: before a task of an
// analysis not known to be quick (below kQuickTaskNs last time), they go out.
constexpr std::int64_t kQuickTaskNs = 100000;
std::map<const LoadedAnalysis*, std::int64_t> last_task_ns;

// Runs one request and queues its reply; returns the reply's flags.
std::uint8_t run_task(PluginLoader& loader, Channel& channel, const RunRequest& request) {
  LoadedAnalysis* analysis = loader.find(std::string(request.analysis));
  const auto known = last_task_ns.find(analysis);
  if (channel.has_queued() && (known == last_task_ns.end() || known->second >= kQuickTaskNs)) channel.flush();
  const auto start = monotonic_ns();
  ProgressPage& page = *current.page;
  page.started_ns.store(start, std::memory_order_relaxed);
  page.started.fetch_add(1, std::memory_order_release);
  std::optional<TaskError> error;
  std::optional<Outcome> outcome;
  if (analysis == nullptr) {
    error = TaskError{ErrorKind::invalid_params, fmt::format("unknown analysis '{}'", request.analysis)};
  } else if (run_setup(loader, *analysis), analysis->setup_error) {
    error = *analysis->setup_error;
  } else {
    Value params = request.params.empty() ? Value::object() : msgpack_to_value(request.params);
    if (params.is_null()) params = Value::object();
    if (auto invalid = check_params(*analysis, params)) {
      error = *invalid;
    } else {
      outcome = analysis->guarded.run(params, analysis->setup_state);
      if (!outcome->ok) error = std::move(outcome->error);
    }
  }
  const std::int64_t took = monotonic_ns() - start;
  last_task_ns[analysis] = took;
  const double seconds = double(took) * 1e-9;
  std::uint8_t flags = 0;
  if (error) {
    // After std::bad_alloc the heap may be in any state: ask to be replaced.
    if (error->kind == ErrorKind::memory) flags |= kRetire;
    channel.queue_result(request.id, seconds, std::uint8_t(1 + int(error->kind)), flags, error->message);
  } else {
    channel.queue_ok_result(request.id, seconds, outcome->result);
  }
  page.finished.fetch_add(1, std::memory_order_release);
  return flags;
}

Value handshake(PluginLoader& loader, const Value& hello) {
  apply_memory_limit(hello.value("memory_limit", std::int64_t{0}));
  loader.allow_insecure(hello.value("allow_insecure_plugins", false));
  loader.on_setup([](const std::string& name) {
    if (current.page) current.page->in_setup.store(1, std::memory_order_release);
    // Written at once: if the setup kills the process, the host knows whose it was.
    if (current.channel) current.channel->send_control(MessageType::setup, {{"analysis", name}});
  });
  Value errors = Value::array();
  for (const auto& file : hello.value("plugins", Value::array())) {
    try {
      loader.load(file.get<std::string>());
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    }
  }
  const Value quarantined = hello.value("quarantine", Value::object());
  for (const auto& [name, reason] : quarantined.items()) loader.quarantine(name, reason.get<std::string>());
  // "setup": true sets up every analysis now; a list names the ones to set up
  // now; the rest are set up on their first task.
  const Value& setup = hello.contains("setup") ? hello["setup"] : Value(true);
  for (auto& [name, analysis] : loader.analyses()) {
    const bool now = setup.is_boolean() ? setup.get<bool>()
                                        : std::find(setup.begin(), setup.end(), name) != setup.end();
    if (now) run_setup(loader, analysis);
  }
  Value catalogue = Value::array();
  for (const auto& [name, analysis] : loader.analyses()) catalogue.push_back(describe(analysis));
  return {{"protocol", kProtocolVersion}, {"pid", getpid()}, {"analyses", catalogue}, {"errors", errors}};
}

// Replies are batched: they go out when the input runs dry, every
// millisecond, past 64 KiB, or before a task that may be long (run_task).
// Blame stays exact through the progress page.
int serve_tasks(Channel& channel, PluginLoader& loader) {
  constexpr std::int64_t kFlushEveryNs = 1000000;
  constexpr std::size_t kFlushBytes = 64 * 1024;
  std::int64_t last_flush = monotonic_ns();
  for (;;) {
    if (channel.has_queued() &&
        (channel.queued_bytes() >= kFlushBytes || monotonic_ns() - last_flush >= kFlushEveryNs)) {
      if (!channel.flush()) return kWorkerExitOk;
      last_flush = monotonic_ns();
    }
    std::optional<Frame> frame;
    try {
      if (!channel.has_buffered_frame() && !channel.fill()) return kWorkerExitOk;
      if (!channel.has_buffered_frame()) {
        if (!channel.flush()) return kWorkerExitOk;  // input ran dry: answers go out, then wait
        last_flush = monotonic_ns();
        frame = channel.receive();
      } else {
        frame = channel.next_frame();
      }
      if (!frame || frame->type == MessageType::exit) {
        channel.flush();
        return kWorkerExitOk;
      }
      if (frame->type != MessageType::run) return kWorkerExitProtocol;
      const std::uint8_t flags = run_task(loader, channel, decode_run(*frame));
      if (flags & kRetire) {
        channel.flush();
        return kWorkerExitOutOfMemory;
      }
    } catch (const ProtocolError&) {
      return kWorkerExitProtocol;
    }
  }
}

// A fresh worker (spawned, or forked from the template): its own session, so
// its process group is its own and it has no controlling terminal; nothing on
// standard input; the channel closed in anything it executes.
void detach_from_terminal(int channel_fd) {
  setsid();
  if (int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC); null >= 0) {
    dup2(null, STDIN_FILENO);
    if (null != STDIN_FILENO) ::close(null);
  }
  fcntl(channel_fd, F_SETFD, FD_CLOEXEC);
}

int serve(int fd, pid_t host) {
  // Die with the host, and never outlive it as an orphan.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (host > 0 && getppid() != host) return kWorkerExitOk;
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGTTIN, SIG_IGN);
  std::signal(SIGTTOU, SIG_IGN);
  // Plugin output on stdout must never mix with the host's results.
  dup2(STDERR_FILENO, STDOUT_FILENO);
  detach_from_terminal(fd);
  limit_threads();

  Channel channel(fd);
  current = {&channel, receive_page(fd)};
  if (!current.page) return kWorkerExitBadHello;
  std::optional<Value> hello;
  try {
    auto frame = channel.receive();
    if (!frame || frame->type != MessageType::hello) return kWorkerExitBadHello;
    hello = decode_control(*frame);
  } catch (const ProtocolError&) {
    return kWorkerExitBadHello;
  }
  if (hello->value("protocol", 0) != kProtocolVersion) {
    channel.send_control(MessageType::refused,
                         {{"message", fmt::format("worker speaks protocol {}, host {}", kProtocolVersion,
                                                  hello->value("protocol", 0))}});
    return kWorkerExitBadHello;
  }
  PluginLoader loader;
  if (!channel.send_control(MessageType::ready, handshake(loader, *hello))) return kWorkerExitOk;
  if (hello->value("mode", "") == "zygote") {
    return run_template(channel, host, [&loader](Channel& worker_channel) {
      detach_from_terminal(worker_channel.fd());
      current = {&worker_channel, receive_page(worker_channel.fd())};
      if (!current.page) return kWorkerExitBadHello;
      Value ready = {{"protocol", kProtocolVersion}, {"pid", getpid()}, {"analyses", Value::array()},
                     {"errors", Value::array()}};
      return worker_channel.send_control(MessageType::ready, ready) ? serve_tasks(worker_channel, loader)
                                                                    : kWorkerExitOk;
    });
  }
  return serve_tasks(channel, loader);
}

}  // namespace
}  // namespace mathpool::detail

int main(int argc, char** argv) {
  int fd = -1;
  pid_t host = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--channel") == 0) fd = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--host") == 0) host = static_cast<pid_t>(std::atoi(argv[i + 1]));
  }
  if (fd < 0) {
    std::fprintf(stderr, "mathpool-worker: started by a mathpool host only\n");
    return 2;
  }
  return mathpool::detail::serve(fd, host);
}
