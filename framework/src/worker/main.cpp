// mathpool-worker: loads plugins once, runs their setups once, then serves
// tasks from its host over a private socket inherited at start (protocol.hpp).
//
// Usage (by the host only): mathpool-worker --channel FD --host PID
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fstream>

#include <fmt/format.h>

#include "channel.hpp"
#include "messages.hpp"
#include "fd_passing.hpp"
#include "plugin_loader.hpp"
#include "process_state.hpp"
#include "process_tree.hpp"
#include "reply_flusher.hpp"
#include "run_ranges.hpp"
#include "supervisor.hpp"

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

// Nanoseconds as seconds: divided, not multiplied by 1e-9, so the double is
// the one nearest the exact decimal and prints short in records
// (1.172e-06, not 1.1720000000000002e-06).
double seconds_of(std::int64_t ns) { return double(ns) / 1e9; }
double seconds_since(std::int64_t start_ns) { return seconds_of(monotonic_ns() - start_ns); }

// Checks the parameters against the analysis's documentation; returns the
// error for unknown ones (unless the analysis accepts any).
// The first problem of `params` against the analysis's documented
// parameters (the parameter it names, empty when the whole set is wrong).
std::optional<ParamProblem> check_params(const LoadedAnalysis& analysis, const Value& params) {
  if (params.is_null()) return std::nullopt;
  if (!params.is_object()) return ParamProblem{"", "parameters must be a map"};
  const Analysis& doc = analysis.guarded.doc;
  if (doc.open_params) return std::nullopt;
  for (const auto& item : params.items()) {
    bool known = false;
    for (const ParamDoc& p : doc.params) known = known || p.name == item.key();
    if (known) continue;
    std::string names;
    for (const ParamDoc& p : doc.params) names += (names.empty() ? "" : ", ") + p.name;
    return ParamProblem{item.key(), fmt::format("unknown parameter '{}' for {} (known: {})", item.key(), doc.name, names)};
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

// The process whose fatal signals are recorded: the worker itself, never a
// child a task forked (it shares the page but its death is not the worker's).
pid_t recording_pid = 0;

// Kills everything the tasks started, now, from a signal handler: daemons
// that double-forked and setsid are our children by then (we are their
// subreaper) or our children's, and out of our process group, so the host's
// kill of the group would miss them once we are gone.
void kill_children_now() { kill_descendants_of_self(); }

// Records the signal in the page and ends what the tasks started, then lets
// the signal end the process as it would have: SA_RESETHAND restored the
// default action, and the signal raised here (blocked while the handler
// runs) is delivered when it returns. Also the handler of SIGTERM, which the
// host sends first to a task over its time limit.
void record_fatal_signal(int signal) {
  const int saved_errno = errno;
  if (getpid() == recording_pid) {
    if (current.page && signal != SIGTERM) current.page->fatal_signal.store(signal, std::memory_order_relaxed);
    kill_children_now();
  }
  errno = saved_errno;
  ::raise(signal);
}

// Crashes leave their signal in the progress page, so the host can name the
// cause even when a waitpid(-1) elsewhere in the host program reaped us.
// An alternate stack lets a stack overflow be recorded too.
void record_fatal_signals() {
  recording_pid = getpid();
  static char alternate_stack[64 * 1024];
  stack_t stack{};
  stack.ss_sp = alternate_stack;
  stack.ss_size = sizeof alternate_stack;
  sigaltstack(&stack, nullptr);
  struct sigaction action {};
  action.sa_handler = record_fatal_signal;
  action.sa_flags = SA_RESETHAND | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS, SIGTERM})
    sigaction(signal, &action, nullptr);
}

// The worker is the subreaper of everything its tasks start, so children,
// grandchildren and daemons that double-fork and setsid all end up as its
// children when their parents go. After each task they are killed and
// reaped: nothing a task starts outlives it. Processes a setup started are
// spared (recorded after each setup): they serve the tasks that follow.
std::vector<pid_t> setup_children;

void note_setup_child(pid_t pid, void*) {
  if (std::find(setup_children.begin(), setup_children.end(), pid) == setup_children.end())
    setup_children.push_back(pid);
}

// Two descriptors kept in reserve for the sweep, which reads /proc (a
// directory and a file at a time): a task that used up its descriptors must
// not hide what it started.
int sweep_spares[2] = {-1, -1};

std::string state_lost;  // why this worker must be retired, once a task broke it

void reserve_sweep_descriptors() {
  for (int& fd : sweep_spares)
    if (fd < 0) fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Still none: a task holds every descriptor. The worker cannot sweep again.
  if ((sweep_spares[0] < 0 || sweep_spares[1] < 0) && state_lost.empty())
    state_lost = "a task used up the worker's descriptors";
}

void end_what_the_task_started() {
  siginfo_t info{};
  // __WALL: a child cloned without an exit signal is invisible to a plain
  // wait. The common case, a task that started nothing: one system call.
  if (setup_children.empty() && waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0 &&
      errno == ECHILD)
    return;
  for (int& fd : sweep_spares)
    if (fd >= 0) ::close(std::exchange(fd, -1));
  kill_descendants_of_self(setup_children.data(), int(setup_children.size()));
  reserve_sweep_descriptors();
}

// What a task changed in this process (timers, signals, limits) and must
// not reach the next task; restored on the sweep's schedule.
ProcessState process_state;

// How tasks run: one after another in this process, or each in a process
// forked from it (pool.isolation: task), so nothing of one survives into the next.
bool fork_per_task = false;

void run_setup(PluginLoader& loader, LoadedAnalysis& analysis) {
  const bool runs_now = !analysis.setup_done && analysis.guarded.setup;
  loader.ensure_setup(analysis);
  if (runs_now) for_each_child(note_setup_child, nullptr);
  if (current.page) current.page->in_setup.store(0, std::memory_order_release);
  // The host counts every setup's cost; one run on a first task would
  // otherwise hide in that task's time.
  if (runs_now && current.channel)
    current.channel->send_control(MessageType::setup,
                                  SetupMessage{analysis.guarded.doc.name, getpid(), analysis.setup_seconds}.encode());
}

// Runs the task's analysis: the result, or the error.
// A check request (protocol.hpp, kCheckAnalysis): each parameter set's
// problems, from the documented parameters and the analysis's own check.
std::pair<std::optional<Outcome>, std::optional<TaskError>> check_sets(PluginLoader& loader, const RunRequest& request) {
  const Value params = request.params.empty() ? Value::object() : msgpack_to_value(request.params);
  const std::string name = params.value("analysis", "");
  LoadedAnalysis* analysis = loader.find(name);
  if (!analysis) return {std::nullopt, TaskError{ErrorKind::invalid_params, fmt::format("unknown analysis '{}'", name)}};
  Value problems = Value::array();
  ReplyFlusher::Lent lent(reply_flusher);  // a plugin's check may be long too
  for (const Value& set : params.value("sets", Value::array())) {
    Value found = Value::array();
    if (auto invalid = check_params(*analysis, set)) {
      found.push_back({{"param", invalid->param}, {"message", invalid->message}});
    } else if (analysis->guarded.check) {
      for (const ParamProblem& p : analysis->guarded.check(set)) found.push_back({{"param", p.param}, {"message", p.message}});
    }
    problems.push_back(std::move(found));
  }
  Outcome outcome;
  outcome.ok = true;
  outcome.result = {{"problems", std::move(problems)}};
  return {std::move(outcome), std::nullopt};
}

std::pair<std::optional<Outcome>, std::optional<TaskError>> compute_task(PluginLoader& loader, LoadedAnalysis* analysis,
                                                                         const RunRequest& request) {
  if (analysis == nullptr && request.analysis == kCheckAnalysis) return check_sets(loader, request);
  if (analysis == nullptr)
    return {std::nullopt, TaskError{ErrorKind::invalid_params, fmt::format("unknown analysis '{}'", request.analysis)}};
  run_setup(loader, *analysis);
  if (analysis->setup_error) return {std::nullopt, *analysis->setup_error};
  Value params = request.params.empty() ? Value::object() : msgpack_to_value(request.params);
  if (params.is_null()) params = Value::object();
  if (auto invalid = check_params(*analysis, params))
    return {std::nullopt, TaskError{ErrorKind::invalid_params, std::move(invalid->message)}};
  Outcome outcome = [&] {
    ReplyFlusher::Lent lent(reply_flusher);  // replies queued before go out if the task is long
    return analysis->guarded.run(params, analysis->setup_state);
  }();
  if (!outcome.ok) return {std::nullopt, std::move(outcome.error)};
  return {std::move(outcome), std::nullopt};
}

// The task's result or error; a memory error (the task's, or its setup's)
// names the pool's memory_limit.
std::pair<std::optional<Outcome>, std::optional<TaskError>> compute(PluginLoader& loader, LoadedAnalysis* analysis,
                                                                    const RunRequest& request) {
  auto computed = compute_task(loader, analysis, request);
  if (computed.second && computed.second->kind == ErrorKind::memory) computed.second->message += memory_error_note;
  return computed;
}

// How deep a value nests (arrays and maps), stopping past `limit`.
int nesting(const Value& value, int limit) {
  if (limit < 0 || !value.is_structured()) return 0;
  int deepest = 0;
  for (const auto& item : value) {
    deepest = std::max(deepest, nesting(item, limit - 1));
    if (deepest >= limit) break;
  }
  return deepest + 1;
}

pid_t worker_pid = 0;  // this worker (a task's own process, under isolation: task, writes its reply too)

// Queues the reply; a result past the protocol's limits (protocol.hpp) is
// the task's result_too_large error, and one whose encoding runs out of
// memory its `memory` error (the worker then retires).
void queue_reply(Channel& channel, const RunRequest& request, double seconds, std::optional<Outcome>& outcome,
                 std::optional<TaskError>& error, std::uint8_t& flags) {
  if (!error && nesting(outcome->result, kMaxValueDepth) > kMaxValueDepth)
    error = TaskError{ErrorKind::result_too_large,
                      fmt::format("the result nests deeper than {} levels", kMaxValueDepth)};
  if (request.entry) return queue_record(channel, request, seconds, outcome, error, flags, worker_pid);
  if (!error) {
    const std::size_t before = channel.queued_bytes();
    try {
      channel.queue_ok_result(request.id, seconds, outcome->result);
      if (channel.queued_bytes() - before <= kMaxFrameBytes) return;
      error = TaskError{ErrorKind::result_too_large,
                        fmt::format("the result's encoding ({} bytes) exceeds the limit of {} bytes",
                                    channel.queued_bytes() - before, kMaxFrameBytes)};
    } catch (const std::bad_alloc&) {
      error = encoding_out_of_memory();
      flags |= kRetire;
    }
    channel.drop_last_frame(before);
  }
  outcome.reset();
  channel.queue_result(request.id, seconds, std::uint8_t(1 + int(error->kind)), flags, error->message);
}

// isolation: task. Shared with the task's processes: each says here that
// its reply is written, so one that exits with status 0 before is no reply.
struct TaskReplyMark {
  std::atomic<std::uint64_t> replied_to{0};  // the request's id + 1; 0: none
};
TaskReplyMark* reply_mark = nullptr;

// isolation: task. The task runs in a child that writes its own reply; what
// kills the child becomes the task's error, and the worker goes on.
std::optional<TaskError> run_in_child(PluginLoader& loader, LoadedAnalysis* analysis, Channel& channel,
                                      const RunRequest& request, std::int64_t start) {
  if (!reply_mark) {
    void* page = mmap(nullptr, sizeof(TaskReplyMark), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
      return TaskError{ErrorKind::crashed, fmt::format("cannot share a page with the task: {}", std::strerror(errno))};
    reply_mark = new (page) TaskReplyMark();
  }
  reply_mark->replied_to.store(0, std::memory_order_relaxed);
  // Whoever set SIGCHLD to be ignored (a setup, or the host program before
  // us), the kernel would reap the child and its exit status would be lost.
  std::signal(SIGCHLD, SIG_DFL);
  // A worker with threads (a setup's) cannot fork safely: a lock another
  // thread holds would stay locked in the task's process. Said, not risked.
  if (const int threads = count_threads(); threads > 1)
    return TaskError{ErrorKind::plugin_error,
                     fmt::format("isolation: task forks each task from its worker, and the setups left {} threads "
                                 "running in it, which makes forking unsafe; use isolation: worker, or a setup that "
                                 "leaves no thread running",
                                 threads)};
  channel.flush();        // the child must not write our replies a second time,
  std::fflush(nullptr);   // nor a setup's buffered output
  const pid_t child = fork();
  if (child < 0) return TaskError{ErrorKind::crashed, fmt::format("cannot fork the task: {}", std::strerror(errno))};
  if (child == 0) {
    setpgid(0, 0);  // its own group: kill(0, ...) in the task reaches what the task started, not us
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    auto [outcome, error] = compute(loader, analysis, request);
    std::uint8_t flags = 0;  // the child ends anyway: no need to retire the worker
    queue_reply(channel, request, seconds_since(start), outcome, error, flags);
    if (channel.flush()) reply_mark->replied_to.store(request.id + 1, std::memory_order_release);
    _exit(0);
  }
  setpgid(child, child);  // also here: whichever runs first
  int status = 0;
  pid_t reaped;
  while ((reaped = waitpid(child, &status, 0)) < 0 && errno == EINTR) {
  }
  const bool replied = reply_mark->replied_to.load(std::memory_order_acquire) == request.id + 1;
  if (reaped != child)  // reaped by someone else: its status is lost, its mark is not
    return replied ? std::nullopt
                   : std::optional<TaskError>(TaskError{ErrorKind::crashed, "the task's process ended without replying"});
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (replied) return std::nullopt;
    return TaskError{ErrorKind::crashed, "the task's process exited with status 0 before it replied"};
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == kWorkerExitOutOfMemory)
    return TaskError{ErrorKind::memory, "the task's process ran out of memory" + memory_error_note};
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return TaskError{ErrorKind::crashed, fmt::format("the task's process was killed by signal {} (SIG{})",
                                                     WTERMSIG(status), name ? name : "?")};
  }
  return TaskError{ErrorKind::crashed, fmt::format("the task's process exited with status {}", WEXITSTATUS(status))};
}

// Replies held back must never wait behind a long task: before a task of an
// analysis not known to be quick (below kQuickTaskNs last time), they go out.
constexpr std::int64_t kQuickTaskNs = 100000;
std::map<const LoadedAnalysis*, std::int64_t> last_task_ns;

// Runs one request and queues its reply; returns the reply's flags.
constexpr std::int64_t kMayHaveStartedProcessNs = 20000;
constexpr std::int64_t kSweepEveryNs = 1000000;
std::int64_t last_sweep_ns = 0;
long unswept_tasks = 0;  // quick tasks since the last sweep

void sweep_now() {
  end_what_the_task_started();
  last_sweep_ns = monotonic_ns();
  unswept_tasks = 0;
}

// The process state a task may have changed (timers, signals, limits:
// process_state.hpp) costs about 25 system calls to check, two of them reads
// of /proc text. Timers act by themselves, so they are stopped (8 system
// calls) after the first task that ends a millisecond or more after their
// last stop, and when the worker has waited for input that long; all of it
// is put back every 10 ms of tasks or of waiting, and before any task not
// known to take less than a millisecond: nothing a quick task changed
// reaches a long one (docs/containment.md). Under isolation: task, tasks
// never run in the worker. (All of it every millisecond was 4% of a worker's time in a
// degree-16 sweep, 1,900 restores of 32,768 tasks: perf record, 1 worker.)
constexpr std::int64_t kLongTaskNs = 1000000;  // a task not known under this gets a full restore first
constexpr std::int64_t kStopTimersEveryNs = 1000000;
constexpr std::int64_t kRestoreAllEveryNs = 10000000;
std::int64_t last_restore_ns = 0;     // the last full restore
std::int64_t last_timers_ns = 0;      // the last time timers were stopped (a restore does it too)
bool unrestored = false;  // tasks ran since the last full restore

void restore_now() {
  if (std::string lost = process_state.restore(); !lost.empty() && state_lost.empty()) state_lost = std::move(lost);
  last_restore_ns = last_timers_ns = monotonic_ns();
  unrestored = false;
}

// After a task in the worker, `end` its end: what is due.
void restore_after_task(std::int64_t end) {
  if (end - last_restore_ns >= kRestoreAllEveryNs) return restore_now();
  if (end - last_timers_ns >= kStopTimersEveryNs) {
    process_state.stop_timers();
    last_timers_ns = end;
  }
  unrestored = true;
}

// Input ran dry with tasks unrestored. A host that sends one task at a time
// (chunk_size 1) answers within tens of microseconds: a restore here would
// sit between each reply and the next request (it doubled the time per task).
// So the worker first waits for the next request until timers are due to be
// stopped, then until the full restore is due; only a wait that lasts that
// long ends in the restore. After a task, restore_after_task() keeps the
// schedule, as ever.
void restore_while_waiting(Channel& channel) {
  std::int64_t now = monotonic_ns();
  // Timers overdue already (the flush and sweep took the time) are stopped
  // whether a request is waiting or not.
  if (now - last_timers_ns < kStopTimersEveryNs && channel.wait_readable(last_timers_ns + kStopTimersEveryNs - now))
    return;
  process_state.stop_timers();
  last_timers_ns = now = monotonic_ns();
  if (now - last_restore_ns < kRestoreAllEveryNs && channel.wait_readable(last_restore_ns + kRestoreAllEveryNs - now))
    return;
  restore_now();
}

std::int64_t last_task_end_ns = 0;  // monotonic_ns() when the last task ended

constexpr std::uint8_t kChannelLost = 0x80;  // run_task's own flag, never sent

std::uint8_t run_task(PluginLoader& loader, Channel& channel, const RunRequest& request) {
  LoadedAnalysis* analysis = loader.find(std::string(request.analysis));
  const auto known = last_task_ns.find(analysis);
  const bool may_be_long = known == last_task_ns.end() || known->second >= kQuickTaskNs;
  // A channel that cannot be written (a task closed fd 3) answers nothing:
  // run no more tasks, end (the host gives their attempts back).
  if (channel.has_queued() && may_be_long && !channel.flush()) return kChannelLost;
  if (unrestored && (known == last_task_ns.end() || known->second >= kLongTaskNs)) restore_now();
  const auto start = monotonic_ns();
  ProgressPage& page = *current.page;
  page.started_ns.store(start, std::memory_order_relaxed);
  page.started.fetch_add(1, std::memory_order_release);
  std::uint8_t flags = 0;
  std::int64_t end = 0;  // one clock reading after the task: they cost ~100 ns each on some VMs
  std::optional<Outcome> outcome;
  std::optional<TaskError> error;
  if (fork_per_task) {
    // A setup not run yet runs here, in the worker, once: its state is what
    // every task's process inherits, and a crash in it is the setup's.
    if (analysis) run_setup(loader, *analysis);
    error = run_in_child(loader, analysis, channel, request, start);
    end = monotonic_ns();
  } else {
    std::tie(outcome, error) = compute(loader, analysis, request);
    // After std::bad_alloc the heap may be in any state: ask to be replaced.
    if (error && error->kind == ErrorKind::memory) flags |= kRetire;
    end = monotonic_ns();
    last_task_ns[analysis] = end - start;
  }
  last_task_end_ns = end;
  // Looking for what the task started costs a system call; a task that
  // started a process took at least a fork's time (a fork copies this
  // worker's page tables), so quicker tasks leave it to the next sweep, at
  // most a millisecond later or before the worker waits for input. The
  // process state a task may have changed is restored on the same schedule.
  if (fork_per_task || end - start >= kMayHaveStartedProcessNs || end - last_sweep_ns >= kSweepEveryNs)
    sweep_now();
  else
    ++unswept_tasks;
  if (!fork_per_task) restore_after_task(end);
  if (!state_lost.empty()) flags |= kRetireBrokenState;
  if (error || !fork_per_task) queue_reply(channel, request, seconds_of(end - start), outcome, error, flags);
  page.finished.fetch_add(1, std::memory_order_release);
  return flags;
}

ReadyMessage handshake(PluginLoader& loader, const HelloMessage& hello) {
  apply_memory_limit(hello.memory_limit);
  memory_error_note = memory_limit_note(hello.memory_limit);
  fork_per_task = hello.isolation == "task";
  loader.allow_insecure(hello.allow_insecure_plugins);
  loader.on_setup([](const std::string& name) {
    if (current.page) current.page->in_setup.store(1, std::memory_order_release);
    // Written at once: if the setup kills the process, the host knows whose it was.
    if (current.channel) current.channel->send_control(MessageType::setup, SetupMessage{name, getpid(), {}}.encode());
  });
  ReadyMessage ready;
  ready.pid = getpid();
  for (const auto& file : hello.plugins) {
    try {
      loader.load(file);
    } catch (const std::exception& e) {
      // The loader's words for a mapping refused (under RLIMIT_AS, or by a
      // noexec mount or a security module: hence "may").
      std::string what = e.what();
      if (hello.memory_limit > 0 &&
          (what.find("failed to map segment") != what.npos || what.find("Cannot allocate memory") != what.npos))
        what += memory_error_note + ", which may be too little to load it";
      ready.errors.push_back(std::move(what));
    }
  }
  for (const auto& [name, reason] : hello.quarantine.items()) loader.quarantine(name, reason.get<std::string>());
  // All setups run now, or those named; the rest on their first task.
  for (auto& [name, analysis] : loader.analyses()) {
    const bool now = !hello.setup || std::find(hello.setup->begin(), hello.setup->end(), name) != hello.setup->end();
    if (now) run_setup(loader, analysis);
  }
  for (const auto& [name, analysis] : loader.analyses()) ready.analyses.push_back(describe(analysis));
  return ready;
}

// Replies are batched (protocol.hpp, kReplyBatchNs): they go out when the
// input runs dry, every 4 ms, past 64 KiB, or before a task that may be long (run_task).
// Blame stays exact through the progress page.
// The channel's socket as the worker began serving: a task that closes fd 3,
// or puts another file there, leaves a channel that is not this one.
struct stat channel_identity {};

bool channel_intact(int fd) {
  struct stat now {};
  return ::fstat(fd, &now) == 0 && now.st_dev == channel_identity.st_dev && now.st_ino == channel_identity.st_ino;
}

int serve_tasks(Channel& channel, PluginLoader& loader) {
  ::fstat(channel.fd(), &channel_identity);
  worker_pid = getpid();
  // Why the worker stops when its channel fails: the host's end closed
  // (status 0), or a task broke the channel (kWorkerExitChannelLost).
  auto channel_ended = [&] { return channel_intact(channel.fd()) ? kWorkerExitOk : kWorkerExitChannelLost; };
  prctl(PR_SET_CHILD_SUBREAPER, 1);  // see end_what_the_task_started()
  for_each_child(note_setup_child, nullptr);  // what the setups started so far
  process_state.save();
  reserve_sweep_descriptors();
  std::int64_t last_flush = monotonic_ns();
  if (!fork_per_task) reply_flusher.start(channel);
  HeldEntries entries;
  ActiveRange range;
  for (;;) {
    // Replies are queued only by tasks, so the last one's end is "now" here.
    if (channel.has_queued() &&
        (channel.queued_bytes() >= kReplyBatchBytes || last_task_end_ns - last_flush >= kReplyBatchNs)) {
      if (!channel.flush()) return channel_ended();
      last_flush = last_task_end_ns;
    }
    try {
      RunRequest request;
      if (range.active()) {
        request = range.next();
      } else {
        std::optional<Frame> frame;
        if (!channel.has_buffered_frame() && !channel.fill()) return channel_ended();
        if (!channel.has_buffered_frame()) {
          if (!channel.flush()) return channel_ended();  // input ran dry: answers go out, then wait
          last_flush = monotonic_ns();
          if (unswept_tasks > 0) sweep_now();  // nothing of a quick task waits with us
          reply_flusher.idle();
          if (unrestored) restore_while_waiting(channel);
          frame = channel.receive();
          reply_flusher.busy();
        } else {
          frame = channel.next_frame();
        }
        if (!frame || frame->type == MessageType::exit) {
          channel.flush();
          sweep_now();
          return frame ? kWorkerExitOk : channel_ended();
        }
        if (frame->type == MessageType::entry) {
          entries.add(decode_entry(*frame));
          continue;
        }
        if (frame->type == MessageType::run_range) {
          const RunRange r = decode_run_range(*frame);
          range.start(entries.find(r.entry), r);
          continue;
        }
        if (frame->type != MessageType::run) return kWorkerExitProtocol;
        request = decode_run(*frame);
      }
      const std::uint8_t flags = run_task(loader, channel, request);
      if ((flags & kChannelLost) || reply_flusher.failed()) return channel_ended();
      if (flags & kRetire) {
        channel.flush();
        return kWorkerExitOutOfMemory;
      }
      if (flags & kRetireBrokenState) {
        channel.flush();
        return kWorkerExitOk;
      }
    } catch (const ProtocolError&) {
      return kWorkerExitProtocol;
    } catch (const std::bad_alloc&) {  // a run entry, or a task's parameters, past memory_limit
      channel.flush();
      return kWorkerExitOutOfMemory;
    }
  }
}

// This program's own path, for the workers a spawn supervisor starts.
std::string own_program() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  return n > 0 ? std::string(path, std::size_t(n)) : std::string();
}

// A fresh worker (spawned, or forked from the template): in its
// supervisor's session, which has no controlling terminal (the host made it
// a session of its own) and is ended with the supervisor (kill_session), but
// in a process group of its own, so a task's kill(0, ...) reaches only its
// worker; nothing on standard input; the channel closed in anything it executes.
void detach_from_terminal(int channel_fd) {
  setpgid(0, 0);  // the supervisor leads its session already: refused there, as it should be
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
  std::signal(SIGCHLD, SIG_DFL);  // an ignored SIGCHLD survives exec: children's statuses would be lost
  std::signal(SIGTTIN, SIG_IGN);
  std::signal(SIGTTOU, SIG_IGN);
  // Plugin output on stdout must never mix with the host's results.
  dup2(STDERR_FILENO, STDOUT_FILENO);
  detach_from_terminal(fd);
  limit_threads();

  Channel channel(fd);
  current = {&channel, receive_page(fd)};
  if (!current.page) return kWorkerExitBadHello;
  record_fatal_signals();
  std::optional<HelloMessage> hello;
  try {
    auto frame = channel.receive();
    if (!frame || frame->type != MessageType::hello) return kWorkerExitBadHello;
    hello = HelloMessage::decode(*frame);
  } catch (const ProtocolError& e) {
    channel.send_control(MessageType::refused, RefusedMessage{e.what()}.encode());
    return kWorkerExitBadHello;
  }
  if (hello->protocol != kProtocolVersion) {
    channel.send_control(MessageType::refused,
                         RefusedMessage{fmt::format("worker speaks protocol {}, host {}", kProtocolVersion,
                                                    hello->protocol)}
                             .encode());
    return kWorkerExitBadHello;
  }
  const std::string mode = hello->mode;
  if (mode == "spawn") {
    // A supervisor that starts workers: it loads no plugins.
    become_subreaper();
    ReadyMessage ready;
    ready.pid = getpid();
    if (!channel.send_control(MessageType::ready, ready.encode())) return kWorkerExitOk;
    SupervisorMode spawn;
    spawn.program = own_program();
    return run_supervisor(channel, spawn);
  }
  // The template is the subreaper of what its setups start, from the start.
  if (mode == "zygote") become_subreaper();
  PluginLoader loader;
  ReadyMessage loaded = handshake(loader, *hello);
  // A process with threads cannot be forked safely (a lock another thread
  // holds stays locked in the child; a thread of a setup may reap our
  // workers): the host then starts workers by spawn (containment.md).
  if (mode == "zygote") loaded.threads = count_threads();
  if (!channel.send_control(MessageType::ready, loaded.encode())) return kWorkerExitOk;
  if (mode != "zygote") return serve_tasks(channel, loader);
  SupervisorMode zygote;
  zygote.serve_forked = [&loader](Channel& worker_channel) {
    // The template's setups ran; what they started is the template's, not ours.
    setup_children.clear();
    release_inherited_task_dir();
    detach_from_terminal(worker_channel.fd());
    current = {&worker_channel, receive_page(worker_channel.fd())};
    if (!current.page) return kWorkerExitBadHello;
    recording_pid = getpid();
    ReadyMessage ready;
    ready.pid = getpid();
    return worker_channel.send_control(MessageType::ready, ready.encode()) ? serve_tasks(worker_channel, loader)
                                                                          : kWorkerExitOk;
  };
  return run_supervisor(channel, zygote);
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
