// Helpers shared by the framework tests: temporary folders and running the
// mathpool command (no shell) with its output captured.
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "mathpool/pool.hpp"

namespace mathpool::test {

// A fresh private folder, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& text) const;

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out;
  std::string err;
};

// How long a program the tests start may run: less than ctest's 120 s per
// test, so a hung program is ended (with everything it started: mpirun's
// ranks, a pool's workers) and named in the test's failure, never left
// running past its test.
inline constexpr std::chrono::seconds kProgramDeadline{100};

// Runs the mathpool command with `args`; stdin is /dev/null.
CommandResult run_mathpool(const std::vector<std::string>& args);
// The same for any program (a path, not searched for). Past `deadline` it is
// ended (SIGTERM, then SIGKILL, to it and every process below it), the test
// fails saying so, and its exit code is 128 + the signal.
CommandResult run_program(const std::string& program, const std::vector<std::string>& args,
                          std::chrono::seconds deadline = kProgramDeadline);

// Starts the mathpool command in the background, its stdout and stderr going
// to `log`; returns its pid. wait_exit()
// returns its exit code (128 + signal), ending it as run_program does (a test
// failure) if it runs past `deadline`.
int start_mathpool(const std::vector<std::string>& args, const std::filesystem::path& log);
int start_program(const std::string& program, const std::vector<std::string>& args,
                  const std::filesystem::path& log);
int wait_exit(int pid, std::chrono::seconds deadline = kProgramDeadline);

// Reads a JSON Lines file into Values.
std::vector<Value> read_records(const std::filesystem::path& file);
// A file's whole contents ("" when it cannot be read).
std::string read_text(const std::filesystem::path& file);

// Whether the suites run in zygote start mode: the default, unless
// MATHPOOL_TEST_START=spawn (ctest's `spawn.` copies of the process suites).
bool zygote_mode();
// The state letter of a process (R, S, T, Z...), or 0 when it is gone.
char process_state(pid_t pid);
// Children of `pid`, of every thread.
std::vector<pid_t> children_of(pid_t pid);
// This process's children that are zombies.
std::vector<pid_t> zombie_children();
// Waits up to `limit` until process `pid` is inside system call `number`
// (/proc/PID/syscall), e.g. SYS_clock_nanosleep: a task that sleeps has
// started. False when it is not by then.
bool wait_in_syscall(pid_t pid, long number, std::chrono::milliseconds limit = std::chrono::seconds(10));
// Live processes (not zombies) whose name (/proc/PID/comm) is `comm`.
std::vector<pid_t> live_named(const std::string& comm);
// Waits up to `limit` for every process named `comm` to end; SIGKILLs (and
// returns) those left, so a failing test cleans up after itself.
std::vector<pid_t> wait_gone(const std::string& comm, std::chrono::milliseconds limit = std::chrono::seconds(1));
std::vector<Value> parse_records(const std::string& text);
// Every complete frame of a zstd file, decompressed; `frames` gets their count.
std::string zstd_frames(const std::filesystem::path& file, int* frames = nullptr);

// Runs `body` in a forked child and returns its exit status (98: it threw);
// the child never returns into the test runner.
int in_child(const std::function<int()>& body);

// Sets an environment variable for a scope (what workers started meanwhile inherit).
struct EnvVar {
  std::string name;
  EnvVar(std::string n, const std::string& value) : name(std::move(n)) { ::setenv(name.c_str(), value.c_str(), 1); }
  ~EnvVar() { ::unsetenv(name.c_str()); }
};

// Pool options that load only the example and testkit plugins.
PoolOptions test_pool_options(int workers);
// test_pool_options plus the hostile plugin, and no retries (a fault is its task's).
PoolOptions hostile_pool_options(int workers);
// Seconds since `start` on the steady clock.
double seconds_since(std::chrono::steady_clock::time_point start);

}  // namespace mathpool::test
