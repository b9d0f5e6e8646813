#include "test_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <zstd.h>

extern char** environ;

namespace mathpool::test {
namespace {

// The programs the tests start remember plugin hashes (hash_cache.hpp) in
// the build tree's folder, not in the user's ~/.cache.
[[maybe_unused]] const bool cache_in_build_tree = [] {
  ::setenv("XDG_CACHE_HOME", BUILD_DIR "/test-cache", 1);
  return true;
}();

}  // namespace

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "mathpool-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& text) const {
  auto file = path_ / name;
  std::ofstream(file) << text;
  return file;
}

namespace {

// Starts `program` with `actions` (destroyed here); throws when it cannot.
pid_t spawn_program(const std::string& program, const std::vector<std::string>& args,
                    posix_spawn_file_actions_t* actions) {
  std::vector<std::string> all = {program};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawn(&pid, program.c_str(), actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(actions);
  if (rc != 0) throw std::runtime_error("cannot start " + program);
  return pid;
}

// `pid` and every process below it, parents first (collected before any is
// signalled, so none is reparented away).
void collect_tree(pid_t pid, std::vector<pid_t>& out) {
  out.push_back(pid);
  for (pid_t child : children_of(pid)) collect_tree(child, out);
}

// Ends a program that outlived its deadline, and everything it started (it
// stays in the test's process group, so a Ctrl-C reaches it): it and its
// descendants get SIGTERM (mpirun then stops its ranks), and SIGKILL 5 s
// later if it is still there; what is left of its tree when it has ended gets
// SIGKILL. `ended` says whether the program has ended, reaping it; it is
// called until it says so, never after.
void end_overdue(pid_t pid, const std::function<bool()>& ended) {
  std::vector<pid_t> tree;
  for (int signal : {SIGTERM, SIGKILL}) {
    tree.clear();
    collect_tree(pid, tree);
    for (pid_t p : tree) ::kill(p, signal);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool done = ended();
    while (!done && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      done = ended();
    }
    if (done) break;
  }
  // Its descendants, collected while it lived (ranks that ignore SIGTERM).
  for (pid_t p : tree)
    if (p != pid) ::kill(p, SIGKILL);
}

// Waits for `pid` until `give_up`: its exit status, or nullopt when it is
// still running then. -1 when it is not a child to wait for.
std::optional<int> wait_until(pid_t pid, std::chrono::steady_clock::time_point give_up, int& status) {
  for (;;) {
    const pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (got < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= give_up) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

CommandResult run_mathpool(const std::vector<std::string>& args) { return run_program(MATHPOOL_CLI, args); }

CommandResult run_program(const std::string& program, const std::vector<std::string>& args,
                          std::chrono::seconds deadline) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  const pid_t pid = spawn_program(program, args, &actions);
  close(out[1]);
  close(err[1]);
  CommandResult result;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open = 2;
  const auto read_ready = [&] {
    for (auto& p : fds) {
      if (p.fd < 0 || !p.revents) continue;
      char buffer[65536];
      ssize_t n = read(p.fd, buffer, sizeof buffer);
      if (n <= 0) {
        close(p.fd);
        p.fd = -1;
        --open;
      } else {
        (p.fd == out[0] ? result.out : result.err).append(buffer, size_t(n));
      }
    }
  };
  const auto give_up = std::chrono::steady_clock::now() + deadline;
  while (open > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (poll(fds, 2, int(std::min<long long>(left.count(), 1000))) > 0) read_ready();
  }
  int status = 0;
  // Its output closed, it may still run (a daemon that kept nothing open).
  if (open > 0 || !wait_until(pid, give_up, status)) {  // overdue: its output is read as it is ended
    end_overdue(pid, [&] {
      if (open > 0 && poll(fds, 2, 0) > 0) read_ready();
      return waitpid(pid, &status, WNOHANG) != 0;
    });
    ADD_FAILURE() << program << " did not end within " << deadline.count() << " s; it was ended with what it started";
  }
  for (auto& p : fds)
    if (p.fd >= 0) close(p.fd);
  result.exit_code = exit_code_of(status);
  return result;
}

int start_mathpool(const std::vector<std::string>& args, const std::filesystem::path& log) {
  return start_program(MATHPOOL_CLI, args, log);
}

int start_program(const std::string& program, const std::vector<std::string>& args,
                  const std::filesystem::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  return spawn_program(program, args, &actions);
}

int wait_exit(int pid, std::chrono::seconds deadline) {
  int status = 0;
  const std::optional<int> waited = wait_until(pid, std::chrono::steady_clock::now() + deadline, status);
  if (waited && *waited == -1) {
    ADD_FAILURE() << "process " << pid << " is not a child to wait for";
    return -1;
  }
  if (!waited) {
    end_overdue(pid, [&] { return waitpid(pid, &status, WNOHANG) != 0; });
    ADD_FAILURE() << "process " << pid << " did not end within " << deadline.count()
                  << " s; it was ended with what it started";
  }
  return exit_code_of(status);
}

std::vector<Value> parse_records(const std::string& text) {
  std::vector<Value> records;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) records.push_back(Value::parse(line));
  return records;
}

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<Value> read_records(const std::filesystem::path& file) { return parse_records(read_text(file)); }

bool zygote_mode() {
  // Zygote is the pool's default start mode, so it is the binary's default too;
  // ctest runs the process suites a second time with MATHPOOL_TEST_START=spawn.
  const char* start = std::getenv("MATHPOOL_TEST_START");
  return !(start && std::string(start) == "spawn");
}

char process_state(pid_t pid) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? 0 : stat[close + 2];
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* dir = opendir(tasks.c_str())) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      std::istringstream list(read_text(tasks + "/" + e->d_name + "/children"));
      for (pid_t child; list >> child;) out.push_back(child);
    }
    closedir(dir);
  }
  return out;
}

std::vector<pid_t> zombie_children() {
  std::vector<pid_t> zombies;
  for (pid_t child : children_of(getpid()))
    if (process_state(child) == 'Z') zombies.push_back(child);
  return zombies;
}

int in_child(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
      code = 98;
    }
    std::_Exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

PoolOptions test_pool_options(int workers) {
  PoolOptions options;
  options.workers = workers;
  // The pool suites run once per start mode (see CMakeLists.txt): zygote unless
  // MATHPOOL_TEST_START=spawn.
  options.start = zygote_mode() ? StartMode::zygote : StartMode::spawn;
  options.default_plugin_paths = false;
  options.plugin_paths = {EXAMPLE_PLUGIN, TESTKIT_PLUGIN};
  return options;
}

std::vector<pid_t> live_named(const std::string& comm) {
  std::vector<pid_t> found;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* e = readdir(proc)) {
      const pid_t pid = std::atoi(e->d_name);
      if (pid <= 0) continue;
      std::string name = read_text("/proc/" + std::to_string(pid) + "/comm");
      if (!name.empty() && name.back() == '\n') name.pop_back();
      const char state = process_state(pid);
      if (name == comm && state != 0 && state != 'Z' && state != 'X') found.push_back(pid);
    }
    closedir(proc);
  }
  return found;
}

std::vector<pid_t> wait_gone(const std::string& comm, std::chrono::milliseconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  std::vector<pid_t> left;
  while (!(left = live_named(comm)).empty() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (pid_t pid : left) ::kill(pid, SIGKILL);  // clean up after a failure
  return left;
}

PoolOptions hostile_pool_options(int workers) {
  PoolOptions options = test_pool_options(workers);
  options.plugin_paths.push_back(HOSTILE_PLUGIN);
  options.retries = 0;
  return options;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string zstd_frames(const std::filesystem::path& file, int* frames) {
  const std::string data = read_text(file);
  std::string text;
  std::size_t at = 0;
  int count = 0;
  while (at < data.size()) {
    const std::size_t size = ZSTD_findFrameCompressedSize(data.data() + at, data.size() - at);
    if (ZSTD_isError(size)) break;  // a truncated last frame
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    std::vector<char> buffer(ZSTD_DStreamOutSize());
    ZSTD_inBuffer in{data.data() + at, size, 0};
    for (std::size_t left = 1; left != 0 && !ZSTD_isError(left);) {
      ZSTD_outBuffer out{buffer.data(), buffer.size(), 0};
      left = ZSTD_decompressStream(dctx, &out, &in);
      text.append(buffer.data(), out.pos);
    }
    ZSTD_freeDCtx(dctx);
    at += size;
    ++count;
  }
  if (frames) *frames = count;
  return text;
}

bool wait_in_syscall(pid_t pid, long number, std::chrono::milliseconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  const std::string path = "/proc/" + std::to_string(pid) + "/syscall";
  do {
    const std::string text = read_text(path);  // "230 0x1 ..." while inside system call 230
    char* end = nullptr;
    if (!text.empty() && std::strtol(text.c_str(), &end, 10) == number && end != text.c_str()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  } while (std::chrono::steady_clock::now() < give_up);
  return false;
}

}  // namespace mathpool::test
