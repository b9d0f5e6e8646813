// testkit: analyses that count, sleep and misbehave on purpose, so the tests
// can watch the pool contain every fault. Not installed.
#include <signal.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <stdexcept>
#include <vector>

#include <flint/flint.h>
#include <mathpool/plugin.hpp>

namespace {

std::atomic<int> setup_calls{0};  // per worker process: setup must run once

struct Scratch {  // per-task state: starts empty for every task
  std::vector<std::int64_t> items;
};

mathpool::Analysis analysis(std::string name, std::string description,
                            std::function<mathpool::Value(const mathpool::TaskContext&)> run) {
  mathpool::Analysis a;
  a.name = "testkit." + name;
  a.version = "1.0.0";
  a.description = std::move(description);
  a.open_params = true;
  a.run = std::move(run);
  return a;
}

}  // namespace

MATHPOOL_PLUGIN("testkit", "1.0.0") {
  auto counted = analysis("setup_count", "Reports how often this worker ran the setup", [](const auto&) {
    return mathpool::Value{{"setup_calls", setup_calls.load()}, {"pid", getpid()}};
  });
  counted.setup = [] {
    ++setup_calls;
    return std::any(std::string("table"));
  };
  registry.add(counted);
  auto silent = analysis("silent_setup_failure", "Its setup throws an exception with an empty message",
                         [](const auto&) { return mathpool::Value{{"ran", true}}; });
  silent.setup = []() -> std::any { throw std::runtime_error(""); };
  registry.add(silent);

  registry.add(analysis("fresh", "Appends to per-task scratch state; returns its size", [](const auto& task) {
    Scratch scratch;  // the contract: nothing from an earlier task is visible here
    for (std::int64_t i = 0; i < task.params().integer("n", 3); ++i) scratch.items.push_back(i);
    return mathpool::Value{{"size", scratch.items.size()}, {"pid", getpid()}};
  }));
  registry.add(analysis("pid", "Returns the worker's pid", [](const auto&) {
    return mathpool::Value{{"pid", getpid()}};
  }));
  registry.add(analysis("env", "Returns the worker's environment variable `name` (null when unset)",
                        [](const auto& task) {
                          const char* value = std::getenv(task.params().string("name", "").c_str());
                          return mathpool::Value{{"value", value ? mathpool::Value(value) : mathpool::Value()}};
                        }));
  registry.add(analysis("sleep", "Sleeps for `ms` milliseconds", [](const auto& task) {
    std::this_thread::sleep_for(std::chrono::milliseconds(task.params().integer("ms", 10)));
    return mathpool::Value{{"pid", getpid()}};
  }));
  // Answers right after its worker's SIGTERM (a time limit's), whenever the
  // host sends it: "answers within the grace" without a race on the host's
  // promptness. Waits at most `ms` milliseconds for it.
  registry.add(analysis("answer_after_sigterm", "Catches SIGTERM and answers as soon as it comes (at most `ms` ms)",
                        [](const auto& task) {
                          static volatile sig_atomic_t terminated = 0;
                          terminated = 0;
                          struct sigaction on_term {};
                          on_term.sa_handler = [](int) { terminated = 1; };
                          ::sigaction(SIGTERM, &on_term, nullptr);
                          const auto give_up = std::chrono::steady_clock::now() +
                                               std::chrono::milliseconds(task.params().integer("ms", 10000));
                          while (!terminated && std::chrono::steady_clock::now() < give_up)
                            std::this_thread::sleep_for(std::chrono::milliseconds(1));
                          return mathpool::Value{{"pid", getpid()}, {"terminated", terminated != 0}};
                        }));
  registry.add(analysis("signal", "Raises signal `signal` in the worker", [](const auto& task) {
    ::raise(static_cast<int>(task.params().integer("signal", SIGSEGV)));
    return mathpool::Value{{"survived", true}};
  }));
  registry.add(analysis("segfault", "Dereferences a null pointer", [](const auto&) {
    volatile int* p = nullptr;
    return mathpool::Value{{"value", *p}};
  }));
  registry.add(analysis("abort", "Calls std::abort", [](const auto&) -> mathpool::Value { std::abort(); }));
  registry.add(analysis("flint_abort", "Calls flint_abort, as FLINT does on fatal errors",
                        [](const auto&) -> mathpool::Value { flint_abort(); }));
  registry.add(analysis("flint_allocate", "Asks FLINT for more memory than the worker may have",
                        [](const auto&) -> mathpool::Value {
                          void* p = flint_malloc(std::size_t{1} << 40);
                          flint_free(p);
                          return {{"allocated", p != nullptr}};
                        }));
  registry.add(analysis("exit", "Exits the worker mid-task with `code`", [](const auto& task) -> mathpool::Value {
    std::_Exit(static_cast<int>(task.params().integer("code", 0)));
  }));
  registry.add(analysis("spin", "Loops forever", [](const auto&) -> mathpool::Value {
    for (volatile std::uint64_t i = 0;; i = i + 1) {
    }
  }));
  registry.add(analysis("allocate", "Allocates without bound", [](const auto&) -> mathpool::Value {
    std::vector<std::vector<char>> hoard;
    for (;;) hoard.emplace_back(64u << 20, 'x');
  }));
  registry.add(analysis("stdout", "Prints to stdout and stderr, then succeeds", [](const auto&) {
    std::printf("garbage on stdout\n");
    std::fflush(stdout);
    std::fprintf(stderr, "noise on stderr\n");
    return mathpool::Value{{"printed", true}};
  }));
  registry.add(analysis("channel_garbage", "Writes garbage into the worker's channel", [](const auto&) {
    const char junk[] = "\xff\xff\xff\x7fnot a frame";
    [[maybe_unused]] auto n = ::send(3, junk, sizeof junk, MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::seconds(5));
    return mathpool::Value{{"unreachable", true}};
  }));
  registry.add(analysis("throw_int", "Throws an int (not a std::exception)", [](const auto&) -> mathpool::Value {
    throw 42;
  }));
  // example.echo with faults on demand, so one bad task can sit among many
  // good ones of the same analysis (tests/python).
  registry.add(analysis("echo", "Returns its parameters, unless `fault` (crash, spin, allocate, throw, invalid, "
                                "sleep, steal3: replaces fd 3) says to misbehave",
                        [](const auto& task) -> mathpool::Value {
                          const std::string fault = task.params().string("fault", "");
                          if (fault == "crash") {
                            volatile int* p = nullptr;
                            return mathpool::Value{{"value", *p}};
                          }
                          if (fault == "spin") {
                            volatile std::uint64_t i = 0;
                            for (;;) i = i + 1;
                          }
                          if (fault == "allocate") {
                            std::vector<std::vector<char>> hoard;
                            for (;;) hoard.emplace_back(64u << 20, 'x');
                          }
                          if (fault == "steal3") {  // the worker's channel replaced by /dev/null
                            const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
                            if (null >= 0 && null != 3) ::dup2(null, 3), ::close(null);
                            return task.params().raw();
                          }
                          if (fault == "throw") throw std::runtime_error("asked to fail");
                          if (fault == "invalid") throw mathpool::InvalidParams("parameter 'fault': asked to refuse");
                          if (fault == "sleep")
                            std::this_thread::sleep_for(std::chrono::milliseconds(task.params().integer("ms", 10)));
                          return task.params().raw();
                        }));
  registry.add(analysis("throw_invalid", "Throws InvalidParams", [](const auto&) -> mathpool::Value {
    throw mathpool::InvalidParams("parameter 'x' is wrong");
  }));
}
