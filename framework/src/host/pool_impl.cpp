// The pool's dispatcher: construction, submission, the event loop, chunked
// dispatch, results and deadlines. Worker lifecycle lives in worker_lifecycle.cpp.
#include "pool_impl.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "plugin_search.hpp"
#include "worker_process.hpp"

namespace mathpool {

using namespace pool_detail;

Pool::Impl::Impl(PoolOptions options) : options_(std::move(options)) {
  if (options_.workers <= 0) options_.workers = detail::available_cores();
  worker_program_ = options_.worker_program.empty() ? detail::default_worker_program()
                                                    : options_.worker_program;
  plugin_files_ = find_plugin_files(options_);
  Value files = Value::array();
  for (const auto& file : plugin_files_) files.push_back(file.string());
  hello_ = {{"type", "hello"},
            {"protocol", kProtocolVersion},
            {"plugins", files},
            {"memory_limit", options_.memory_limit},
            {"allow_insecure_plugins", options_.allow_insecure_plugins},
            {"setup", options_.preload ? Value(*options_.preload) : Value(true)}};
  // Zygote workers are double-forked so they become our children, to be reaped
  // (and their exit status read) here.
  if (options_.start == StartMode::zygote && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    options_.start = StartMode::spawn;

  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  slots_.resize(static_cast<std::size_t>(options_.workers));
  stats_.workers.resize(slots_.size());
  for (std::size_t i = 0; i < slots_.size(); ++i) slots_[i].index = slots_[i].stats.slot = int(i);
  thread_ = std::thread([this] { run_loop(); });

  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return startup_done_; });
  if (!startup_error_.empty()) {
    std::string error = startup_error_;
    lock.unlock();
    terminate();
    ::close(std::exchange(wake_fd_, -1));
    throw Error(ErrorKind::plugin_error, error);
  }
}

Pool::Impl::~Impl() {
  shutdown();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Pool::Impl::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

std::vector<std::future<TaskResult>> Pool::Impl::submit(std::vector<TaskSpec> tasks, bool batch) {
  std::vector<std::future<TaskResult>> futures;
  futures.reserve(tasks.size());
  {
    std::lock_guard lock(mutex_);
    for (TaskSpec& spec : tasks) {
      auto task = std::make_unique<Task>();
      task->analysis = std::move(spec.analysis);
      task->params = std::move(spec.params);
      futures.push_back(task->promise.get_future());
      if (shutdown_requested_ || terminate_requested_) {
        task->promise.set_value(error_result(ErrorKind::crashed, "the pool is shut down", 0));
        ++stats_.tasks_failed;
        continue;
      }
      task->id = next_id_++;
      incoming_.push_back(std::move(task));
    }
    stats_.tasks_submitted += static_cast<long>(tasks.size());
    if (batch) ++stats_.batches;
  }
  wake();
  return futures;
}

PoolStats Pool::Impl::stats() const {
  std::lock_guard lock(mutex_);
  PoolStats copy = stats_;
  copy.uptime_seconds = std::chrono::duration<double>(Clock::now() - created_at_).count();
  return copy;
}

void Pool::Impl::cancel_pending(const TaskError& error) {
  {
    std::lock_guard lock(mutex_);
    cancel_request_ = error;
  }
  wake();
}

void Pool::Impl::shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutdown_requested_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
}

void Pool::Impl::terminate() {
  {
    std::lock_guard lock(mutex_);
    terminate_requested_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
}

void Pool::Impl::finish(TaskPtr task, TaskResult result) {
  result.attempts = task->attempts;
  {
    std::lock_guard lock(mutex_);
    ++(result.ok() ? stats_.tasks_ok : stats_.tasks_failed);
  }
  task->promise.set_value(std::move(result));
}

// ---- dispatcher thread ------------------------------------------------------

void Pool::Impl::run_loop() {
  if (options_.start == StartMode::zygote && !start_template()) return stop_all_workers();
  for (Slot& slot : slots_) start_slot(slot);
  std::vector<pollfd> fds;
  for (;;) {
    bool shutting_down = false;
    {
      std::lock_guard lock(mutex_);
      for (auto& task : incoming_) queue_.push_back(std::move(task));
      incoming_.clear();
      if (cancel_request_) {
        for (auto& task : queue_)
          task->promise.set_value(error_result(cancel_request_->kind, cancel_request_->message, 0));
        stats_.tasks_failed += static_cast<long>(queue_.size());
        queue_.clear();
        cancel_request_.reset();
      }
      shutting_down = shutdown_requested_;
      if (terminate_requested_) break;
    }
    dispatch();
    const bool idle = queue_.empty() && std::all_of(slots_.begin(), slots_.end(),
                                                    [](const Slot& s) { return s.inflight.empty(); });
    if (shutting_down && idle) break;

    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    for (Slot& slot : slots_)
      if (slot.channel.is_open())
        fds.push_back({slot.channel.fd(), short(POLLIN | (slot.channel.has_queued() ? POLLOUT : 0)), 0});
    const int ready = ::poll(fds.data(), fds.size(), poll_timeout_ms(Clock::now()));
    if (ready > 0) {
      if (fds[0].revents) {
        std::uint64_t drained;
        [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof drained);
      }
      std::size_t next = 1;
      for (Slot& slot : slots_) {
        if (!slot.channel.is_open()) continue;
        const pollfd& p = fds[next++];
        if (p.fd != slot.channel.fd() || !p.revents) continue;
        if (p.revents & POLLOUT) slot.channel.flush_some();
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) handle_input(slot);
      }
    }
    check_deadlines(Clock::now());
  }
  stop_all_workers();
}

std::size_t Pool::Impl::chunk_limit() const {
  if (options_.chunk_size > 0) return std::size_t(options_.chunk_size);
  // Hold about kChunkWork of work per worker, so dispatch costs stay a small
  // fraction of it, but split the remaining queue fairly so no worker idles.
  constexpr double kChunkWork = 0.002;
  constexpr std::size_t kMaxChunk = 256;
  std::size_t by_time = 2;  // before any measurement: one running, one waiting
  if (mean_task_seconds_ >= 0)
    by_time = mean_task_seconds_ * kMaxChunk < kChunkWork
                  ? kMaxChunk
                  : std::max<std::size_t>(1, std::size_t(kChunkWork / mean_task_seconds_));
  const std::size_t fair = (queue_.size() + slots_.size() - 1) / slots_.size();
  return std::max<std::size_t>(1, std::min(by_time, fair));
}

void Pool::Impl::dispatch() {
  for (Slot& slot : slots_) {
    if (queue_.empty()) return;
    if (slot.state != SlotState::ready) continue;
    std::size_t limit = chunk_limit();  // tasks the worker may hold, the running one included
    if (options_.max_tasks_per_worker > 0)
      limit = std::min<std::size_t>(limit, std::size_t(options_.max_tasks_per_worker - slot.stats.tasks));
    while (!queue_.empty() && slot.inflight.size() < limit) {
      TaskPtr task = std::move(queue_.front());
      queue_.pop_front();
      ++task->attempts;
      slot.channel.queue_run(task->id, task->analysis, task->params);
      if (slot.inflight.empty()) {
        slot.head_started = Clock::now();
        slot.head_timed_out = false;
      }
      slot.inflight.push_back(std::move(task));
    }
    slot.channel.flush_some();  // a dead worker shows up as end of stream on its channel
  }
}

void Pool::Impl::handle_input(Slot& slot) {
  const pid_t pid = slot.pid;
  const bool open = slot.channel.fill();
  try {
    while (auto message = slot.channel.next_buffered()) {
      handle_message(slot, *message);
      if (slot.pid != pid) return;  // retired or replaced: the rest was its
    }
  } catch (const detail::ProtocolError& e) {
    handle_death(slot, fmt::format("protocol error: {}", e.what()));
    return;
  } catch (const Value::exception& e) {  // a field of the wrong type
    handle_death(slot, fmt::format("protocol error: malformed message ({})", e.what()));
    return;
  } catch (const std::invalid_argument& e) {  // e.g. an unknown error kind
    handle_death(slot, fmt::format("protocol error: {}", e.what()));
    return;
  }
  if (!open) handle_death(slot, "");
}

void Pool::Impl::handle_message(Slot& slot, Value& message) {
  const std::string type = message.value("type", "");
  if (type == "setup") {
    slot.in_setup = message.value("analysis", "");
    return;
  }
  if (!slot.in_setup.empty()) setup_crashes_.erase(std::exchange(slot.in_setup, ""));  // it succeeded
  if (type == "ready" && slot.state == SlotState::starting) return handle_ready(slot, message);
  if (type == "result" && slot.state == SlotState::ready) return handle_result(slot, message);
  if (type == "refused") return fail_startup("worker refused the host: " + message.value("message", ""));
  throw detail::ProtocolError(fmt::format("unexpected '{}' message", type));
}

void Pool::Impl::handle_result(Slot& slot, Value& message) {
  if (slot.inflight.empty() || message.value("id", Value()) != slot.inflight.front()->id)
    throw detail::ProtocolError("result for a task that was not sent");
  // Read everything that can throw before the task leaves `inflight`, so a
  // malformed result is blamed on the task it belongs to.
  TaskResult result;
  result.worker = slot.pid;
  result.seconds = message.value("seconds", 0.0);
  if (message.value("ok", false)) {
    if (message.contains("result")) result.result = std::move(message["result"]);
  } else {
    const Value& error = message.at("error");
    result.error = TaskError{error_kind_from_string(error.value("kind", "plugin_error")),
                             error.value("message", "")};
  }
  TaskPtr task = std::move(slot.inflight.front());
  slot.inflight.pop_front();
  slot.head_started = Clock::now();
  mean_task_seconds_ = mean_task_seconds_ < 0 ? result.seconds
                                              : 0.9 * mean_task_seconds_ + 0.1 * result.seconds;
  ++slot.stats.tasks;
  ++slot.stats.tasks_total;
  {
    std::lock_guard lock(mutex_);
    stats_.workers[std::size_t(slot.index)] = slot.stats;
  }
  finish(std::move(task), std::move(result));
  // Out of memory, the worker exits. After a timeout's SIGTERM (the head
  // answered just in time) it is dying. Either way what it holds never ran.
  if (message.value("retire", false) || slot.head_timed_out) {
    requeue_unstarted(slot);
    return retire(slot, slot.head_timed_out ? "stopped at a time limit" : "ran out of memory");
  }
  if (options_.max_tasks_per_worker > 0 && slot.stats.tasks >= options_.max_tasks_per_worker &&
      slot.inflight.empty())
    retire(slot, fmt::format("recycled after {} tasks", slot.stats.tasks));
}

void Pool::Impl::check_deadlines(Clock::time_point now) {
  for (Slot& slot : slots_) {
    if (slot.state == SlotState::stopped && now >= slot.respawn_at && !stopping_) start_slot(slot);
    if (slot.state == SlotState::starting && !slot.setup_timed_out &&
        now - slot.started_at >= options_.setup_timeout) {
      slot.setup_timed_out = true;  // a hung setup: its death counts against the analysis
      ::kill(slot.pid, SIGKILL);
    }
    if (slot.state != SlotState::ready || slot.inflight.empty()) continue;
    if (options_.task_timeout && !slot.head_timed_out &&
        now - slot.head_started >= *options_.task_timeout) {
      slot.head_timed_out = true;
      ::kill(slot.pid, SIGTERM);
      slot.kill_at = now + kTerminateGrace;
    }
    if (slot.head_timed_out && now >= slot.kill_at) {
      ::kill(slot.pid, SIGKILL);
      slot.kill_at = Clock::time_point::max();
    }
  }
  std::erase_if(retiring_, [now](Retiring& r) {
    int status;
    if (waitpid(r.pid, &status, WNOHANG) == r.pid) return true;
    if (now >= r.kill_at) {
      detail::kill_and_reap(r.pid);
      return true;
    }
    return false;
  });
}

int Pool::Impl::poll_timeout_ms(Clock::time_point now) const {
  Clock::time_point next = Clock::time_point::max();
  for (const Slot& slot : slots_) {
    if (!stopping_) next = std::min(next, slot.respawn_at);
    if (slot.state == SlotState::starting && !slot.setup_timed_out)
      next = std::min(next, slot.started_at + options_.setup_timeout);
    if (slot.head_timed_out) next = std::min(next, slot.kill_at);
    if (options_.task_timeout && !slot.inflight.empty() && !slot.head_timed_out)
      next = std::min(next, slot.head_started + *options_.task_timeout);
  }
  if (!retiring_.empty()) next = std::min(next, now + std::chrono::milliseconds(20));
  if (next == Clock::time_point::max()) return -1;
  if (next <= now) return 0;
  return static_cast<int>(
      std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
}

}  // namespace mathpool
