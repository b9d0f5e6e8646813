// mathpool-worker: loads plugins once, runs their setups once, then serves
// tasks from its host over a private socket inherited at start.
//
// Usage (by the host only): mathpool-worker --channel FD --host PID
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "../common/channel.hpp"
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

Value error_value(const TaskError& error) {
  return {{"kind", std::string(to_string(error.kind))}, {"message", error.message}};
}

// Runs one request; the reply carries the result or the error, and the time.
Value run_task(PluginLoader& loader, Value& request) {
  const auto start = std::chrono::steady_clock::now();
  Value reply = {{"type", "result"}, {"id", request.value("id", Value())}};
  auto fail = [&](const TaskError& error) {
    reply["ok"] = false;
    reply["error"] = error_value(error);
    // After std::bad_alloc the heap may be in any state: ask to be replaced.
    if (error.kind == ErrorKind::memory) reply["retire"] = true;
  };
  const std::string name = request.value("analysis", "");
  LoadedAnalysis* analysis = loader.find(name);
  Value no_params = Value::object();
  Value& params = request.contains("params") && !request["params"].is_null() ? request["params"] : no_params;
  if (analysis == nullptr) {
    fail({ErrorKind::invalid_params, fmt::format("unknown analysis '{}'", name)});
  } else if (loader.ensure_setup(*analysis), analysis->setup_error) {
    fail(*analysis->setup_error);
  } else if (auto invalid = check_params(*analysis, params)) {
    fail(*invalid);
  } else {
    Outcome outcome = analysis->guarded.run(params, analysis->setup_state);
    if (outcome.ok) {
      reply["ok"] = true;
      reply["result"] = std::move(outcome.result);
    } else {
      fail(outcome.error);
    }
  }
  reply["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return reply;
}

// The channel the worker talks on now (the template's, then a forked worker's).
Channel* current_channel = nullptr;

Value handshake(PluginLoader& loader, const Value& hello) {
  apply_memory_limit(hello.value("memory_limit", std::int64_t{0}));
  loader.allow_insecure(hello.value("allow_insecure_plugins", false));
  loader.on_setup([](const std::string& name) {
    if (current_channel) current_channel->send({{"type", "setup"}, {"analysis", name}});
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
    if (now) loader.ensure_setup(analysis);
  }
  Value catalogue = Value::array();
  for (const auto& [name, analysis] : loader.analyses()) catalogue.push_back(describe(analysis));
  return {{"type", "ready"},      {"protocol", kProtocolVersion}, {"pid", getpid()},
          {"analyses", catalogue}, {"errors", errors}};
}

// Each reply is written before the next task starts: when a worker dies, the
// host knows exactly which task was running (requests arrive in bursts).
int serve_tasks(Channel& channel, PluginLoader& loader) {
  for (;;) {
    std::optional<Value> request;
    try {
      request = channel.receive();
    } catch (const ProtocolError&) {
      return 4;
    }
    if (!request) return 0;
    const std::string type = request->value("type", "");
    if (type == "exit") return 0;
    if (type != "run") return 4;
    Value reply = run_task(loader, *request);
    if (!channel.send(reply)) return 0;
    if (reply.value("retire", false)) return kWorkerExitOutOfMemory;
  }
}

int serve(int fd, pid_t host) {
  // Die with the host, and never outlive it as an orphan.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (host > 0 && getppid() != host) return 0;
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGPIPE, SIG_IGN);
  // Plugin output on stdout must never mix with the host's results.
  dup2(STDERR_FILENO, STDOUT_FILENO);
  limit_threads();

  Channel channel(fd);
  current_channel = &channel;
  auto hello = channel.receive();
  if (!hello || hello->value("type", "") != "hello") return 3;
  if (hello->value("protocol", 0) != kProtocolVersion) {
    channel.send({{"type", "refused"},
                  {"message", fmt::format("worker speaks protocol {}, host {}", kProtocolVersion,
                                          hello->value("protocol", 0))}});
    return 3;
  }
  PluginLoader loader;
  if (!channel.send(handshake(loader, *hello))) return 0;
  if (hello->value("mode", "") == "zygote") {
    return run_template(channel, host, [&loader](Channel& worker_channel) {
      current_channel = &worker_channel;
      Value ready = {{"type", "ready"},       {"protocol", kProtocolVersion}, {"pid", getpid()},
                     {"analyses", Value::array()}, {"errors", Value::array()}};
      return worker_channel.send(ready) ? serve_tasks(worker_channel, loader) : 0;
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
