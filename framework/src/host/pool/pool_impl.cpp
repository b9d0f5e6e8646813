// The pool's dispatcher: construction, submission, the event loop, chunked
// dispatch, results and deadlines. Worker lifecycle lives in worker_lifecycle.cpp.
#include "pool_impl.hpp"
#include "run_entry.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "plugin_search.hpp"

namespace mathpool {

using namespace pool_detail;

Pool::Impl::Impl(PoolOptions options) : options_(std::move(options)) {
  if (options_.workers <= 0) options_.workers = detail::available_cores();
  detail::reserve_descriptors(options_.workers);
  worker_program_ = options_.worker_program.empty() ? detail::default_worker_program()
                                                    : options_.worker_program;
  plugin_files_ = find_plugin_files(options_);
  for (const auto& file : plugin_files_) hello_.plugins.push_back(file.string());
  hello_.memory_limit = options_.memory_limit;
  hello_.isolation = options_.isolation == Isolation::task ? "task" : "worker";
  hello_.allow_insecure_plugins = options_.allow_insecure_plugins;
  hello_.setup = options_.preload;

  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  slots_.resize(static_cast<std::size_t>(options_.workers));
  stats_.workers.resize(slots_.size());
  for (std::size_t i = 0; i < slots_.size(); ++i) slots_[i].index = slots_[i].stats.slot = int(i);
  thread_ = std::thread([this] { run_loop(); });

  detail::MutexLock lock(mutex_);
  while (!startup_done_) changed_.wait(lock);
  if (!startup_error_.empty()) {
    std::string error = startup_error_;
    lock.unlock();
    terminate();
    ::close(std::exchange(wake_fd_, -1));
    throw Error(ErrorKind::start_failed, error);
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

void Pool::Impl::enqueue(std::vector<Task>& tasks, bool batch) {
  // A forked child's copy has no router thread: enqueue_local() refuses it.
  if (router_ && getpid() == owner_) {
    // Across MPI ranks, tasks of run entries travel as index ranges too: each
    // node's workers write their records, and rank 0 adds the node's name.
    // (The router takes them one by one: a stream's runs of tasks are undone.)
    if (std::any_of(tasks.begin(), tasks.end(), [](const Task& t) { return t.count > 1; })) {
      std::vector<Task> one_by_one;
      for (Task& task : tasks) detail::for_each_task(std::move(task), [&](Task&& t) { one_by_one.push_back(std::move(t)); });
      tasks.swap(one_by_one);
    }
    return router_->enqueue(tasks, batch);
  }
  enqueue_local(tasks, batch);
}

void Pool::Impl::enqueue_local(std::vector<Task>& tasks, bool batch) {
  if (tasks.empty()) return;
  if (getpid() != owner_) {
    // After fork() the dispatcher thread and the workers stayed with the parent.
    std::vector<Task> refused = std::move(tasks);
    tasks.clear();
    for (Task& run : refused)
      detail::for_each_task(std::move(run), [&](Task&& task) {
        task.completion->complete(task.seq, error_result(ErrorKind::crashed,
                                                         fmt::format("this pool belongs to process {}; a forked "
                                                                     "child must create a pool of its own",
                                                                     owner_),
                                                         0));
      });
    return;
  }
  std::vector<Task> refused;
  {
    detail::MutexLock lock(mutex_);
    std::size_t count = 0;
    for (const Task& task : tasks) count += task.count;
    stats_.tasks_submitted += static_cast<long>(count);
    if (batch) ++stats_.batches;
    if (shutdown_requested_ || terminate_requested_) {
      refused = std::move(tasks);
      stats_.tasks_failed += static_cast<long>(count);
    } else {
      const bool was_empty = incoming_.empty();
      for (Task& task : tasks) {
        task.id = next_id_;
        next_id_ += task.count;
        incoming_.push_back(std::move(task));
      }
      tasks.clear();
      // Only the first submission since the dispatcher's last pass wakes it,
      // and only when its queue is short (hungry_, turned on under this lock).
      if (!was_empty) return;
      if (!hungry_.load(std::memory_order_relaxed)) return;
    }
  }
  for (Task& run : refused)
    detail::for_each_task(std::move(run), [](Task&& task) {
      task.completion->complete(task.seq, error_result(ErrorKind::crashed, "the pool is shut down", 0));
    });
  tasks.clear();
  wake();
}

namespace {

// One task for submit() and submit_local(), and the future of its result.
std::future<TaskResult> one_task(std::string analysis, const Value& params, std::vector<Pool::Impl::Task>& one) {
  auto* completion = new detail::PromiseCompletion();
  auto future = completion->future();
  one.resize(1);
  one[0].analysis = std::move(analysis);
  detail::append_msgpack(one[0].params, params.is_null() ? Value::object() : params);
  one[0].completion = completion;
  return future;
}

}  // namespace

std::future<TaskResult> Pool::Impl::submit_local(std::string analysis, Value params) {
  std::vector<Task> one;
  auto future = one_task(std::move(analysis), params, one);
  enqueue_local(one, false);
  return future;
}

std::future<TaskResult> Pool::Impl::submit(std::string analysis, Value params) {
  std::vector<Task> one;
  auto future = one_task(std::move(analysis), params, one);
  enqueue(one, false);
  return future;
}

namespace {

// Resident and proportional memory of a process, from /proc (0 when gone).
void read_memory(int pid, long& rss, long& pss) {
  rss = pss = 0;
  if (pid <= 0) return;
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(rollup, line);) {  // "Rss:  1616 kB"; the first line is a header
    long kb = 0;
    if (std::sscanf(line.c_str(), "Rss: %ld kB", &kb) == 1) rss = kb * 1024;
    if (std::sscanf(line.c_str(), "Pss: %ld kB", &kb) == 1) pss = kb * 1024;
  }
}

}  // namespace

PoolStats Pool::Impl::stats(bool memory) const {
  PoolStats copy;
  {
    detail::MutexLock lock(mutex_);
    copy = stats_;
    copy.queued += long(incoming_.tasks());
  }
  copy.uptime_seconds = std::chrono::duration<double>(Clock::now() - created_at_).count();
  if (router_) router_->add_stats(copy);
  if (!memory) return copy;
  for (WorkerStats& w : copy.workers) read_memory(w.pid, w.rss_bytes, w.pss_bytes);
  read_memory(copy.template_pid, copy.template_rss_bytes, copy.template_pss_bytes);
  return copy;
}

void Pool::Impl::cancel_pending(const TaskError& error) {
  if (router_) router_->cancel_pending(error);
  {
    detail::MutexLock lock(mutex_);
    cancel_request_ = error;
  }
  wake();
}

void Pool::Impl::shutdown() {
  if (getpid() != owner_) return;  // a forked child's copy: the threads and workers are the parent's
  if (router_) router_->stop(false, std::nullopt);
  {
    detail::MutexLock lock(mutex_);
    shutdown_requested_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
}

void Pool::Impl::shutdown(std::chrono::milliseconds grace) {
  if (getpid() != owner_) return;  // as shutdown(): nothing of this copy runs in this process
  if (router_) router_->stop(false, grace);
  detail::MutexLock lock(mutex_);
  shutdown_requested_ = true;
  lock.unlock();
  wake();
  lock.lock();
  const auto give_up = std::chrono::steady_clock::now() + grace;
  while (!stopped_ && changed_.wait_until(lock, give_up) == std::cv_status::no_timeout) {
  }
  if (!stopped_) terminate_requested_ = true;
  lock.unlock();
  wake();
  if (thread_.joinable()) thread_.join();
}

void Pool::Impl::terminate() {
  if (getpid() != owner_) return;
  if (router_) router_->stop(true, std::nullopt);
  {
    detail::MutexLock lock(mutex_);
    terminate_requested_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
}

detail::RawResult& Pool::Impl::claim_result() {
  if (done_count_ == done_.size()) done_.emplace_back();
  detail::RawResult& result = done_[done_count_].result;
  detail::recycle(result);
  return result;
}

void Pool::Impl::finish(const Task& task) {
  detail::Finished& done = done_[done_count_++];
  detail::RawResult& result = done.result;
  done.completion = task.completion;
  done.seq = task.seq;
  result.attempts = task.attempts;
  count_finished(task, bool(result.error), result.seconds);
}

// An ok record of a task of a completion that joins lines: onto the last
// finished result when that is its completion's ok lines and ends with the
// task before this one. False when the task needs a result of its own.
bool Pool::Impl::join_line(const Task& task, std::string_view line) {
  if (!task.completion->joins_lines || done_count_ == 0) return false;
  detail::Finished& last = done_[done_count_ - 1];
  detail::RawResult& joined = last.result;
  if (last.completion != task.completion || !joined.line || joined.error || last.seq + joined.count != task.seq ||
      joined.payload.size() + 1 + line.size() > detail::kJoinedRoom)
    return false;
  // Its room, when lines begin to join it, from what the consumer is done
  // with, not grown by doubling (reallocations were 3.8% of a million-echo
  // run's CPU, a tenth of the host's).
  if (joined.count == 1 && joined.payload.capacity() < detail::kJoinedRoom) task.completion->lend_room(joined.payload);
  joined.payload += '\n';
  joined.payload += line;
  ++joined.count;
  return true;
}

void Pool::Impl::count_finished(const Task& task, bool failed, double seconds) {
  ++(failed ? finished_failed_ : finished_ok_);
  // Tasks of the entry of the last one are of its analysis: no comparison.
  if (!last_stats_ || ((!task.entry || task.entry != last_stats_entry_) && analysis_of(task) != last_stats_analysis_)) {
    last_stats_analysis_ = analysis_of(task);
    last_stats_ = &analysis_stats_[last_stats_analysis_];
  }
  last_stats_entry_ = task.entry;
  ++(failed ? last_stats_->tasks_failed : last_stats_->tasks_ok);
  last_stats_->seconds += seconds;
  stats_dirty_ = true;
}

void Pool::Impl::finish(Task&& task, detail::RawResult&& result) {
  claim_result() = std::move(result);
  finish(std::move(task));
}

// Statistics first, so a caller who has a result also sees it counted.
void Pool::Impl::deliver() {
  publish_stats();
  // Runs of tasks for the same completion go over together.
  for (std::size_t i = 0; i < done_count_;) {
    std::size_t j = i + 1;
    while (j < done_count_ && done_[j].completion == done_[i].completion) ++j;
    done_[i].completion->complete_batch(done_.data() + i, done_.data() + j);
    i = j;
  }
  // The entries stay, and the bytes they hold are reused; a large result's
  // are freed now, as they were when each result was its own.
  for (std::size_t i = 0; i < done_count_; ++i) detail::recycle(done_[i].result);
  done_count_ = 0;
}

// Per-task counters are the dispatcher's own; they reach stats_ once per pass.
void Pool::Impl::publish_stats() {
  if (!stats_dirty_) return;
  detail::MutexLock lock(mutex_);
  stats_.tasks_ok += std::exchange(finished_ok_, 0);
  stats_.tasks_failed += std::exchange(finished_failed_, 0);
  long in_flight = 0;
  for (const Slot& slot : slots_) {
    stats_.workers[std::size_t(slot.index)] = slot.stats;
    in_flight += long(slot.inflight.tasks());
  }
  stats_.queued = long(queue_.tasks());
  stats_.in_flight = in_flight;
  stats_.analyses = analysis_stats_;
  const bool zygote = forking();
  stats_.start_note = forking_unsafe_;
  stats_.template_pid = zygote && supervisor_ && supervisor_->alive() ? supervisor_->pid() : 0;
  stats_.template_setup_seconds = zygote && supervisor_ ? supervisor_->start_seconds() : 0;
  std::map<std::string, AnalysisStats> setups = past_setup_costs_;  // the templates' setups, over all of them
  for (const auto& supervisor : old_supervisors_)
    for (const auto& [name, cost] : supervisor->setup_costs()) setups[name].setups += cost.setups, setups[name].setup_seconds += cost.setup_seconds;
  if (supervisor_)
    for (const auto& [name, cost] : supervisor_->setup_costs()) setups[name].setups += cost.setups, setups[name].setup_seconds += cost.setup_seconds;
  for (const auto& [name, cost] : setups) {
    stats_.analyses[name].setups += cost.setups;
    stats_.analyses[name].setup_seconds += cost.setup_seconds;
  }
  stats_dirty_ = false;
}

// ---- dispatcher thread ------------------------------------------------------

void Pool::Impl::take_incoming() {
  detail::TaskQueue cancelled;
  std::optional<TaskError> cancel;
  {
    detail::MutexLock lock(mutex_);
    stats_dirty_ = stats_dirty_ || !incoming_.empty();  // the queue depth changes
    if (queue_.empty()) queue_.swap(incoming_);
    else
      for (auto& task : incoming_) queue_.push_back(std::move(task));
    incoming_.clear();
    if (cancel_request_) {
      cancel = std::exchange(cancel_request_, std::nullopt);
      cancelled.swap(queue_);
    }
  }
  fail_all(cancelled, cancel->kind, cancel->message);
}

void Pool::Impl::fail_all(detail::TaskQueue& tasks, ErrorKind kind, const std::string& message) {
  for (Task& run : tasks)
    detail::for_each_task(std::move(run), [&](Task&& task) { finish(std::move(task), error_result(kind, message, 0)); });
  tasks.clear();
}

void Pool::Impl::run_loop() {
  for (Slot& slot : slots_) start_slot(slot);
  std::vector<pollfd> fds;
  std::vector<std::pair<std::size_t, detail::SupervisorProcess*>> polled_supervisors;  // first fd's index
  for (;;) {
    take_incoming();
    bool shutting_down;
    {
      detail::MutexLock lock(mutex_);
      shutting_down = shutdown_requested_;
      if (terminate_requested_) break;
    }
    update_parking();
    dispatch();
    deliver();
    // Hungry below another full chunk per worker. Turned on under the lock
    // submitters read it under: what they left in incoming_ meanwhile,
    // without a wake-up, is taken in the next pass, at once.
    const bool hungry =
        queue_.empty() || queue_.tasks() < detail::chunk_limit(options_.chunk_size, mean_seconds_of(analysis_of(queue_.front())),
                                                               queue_.tasks(), slots_.size()) * slots_.size() + 1;
    if (hungry != hungry_.load(std::memory_order_relaxed)) {
      bool waiting = false;
      {
        detail::MutexLock lock(mutex_);
        hungry_.store(hungry, std::memory_order_relaxed);
        waiting = hungry && !incoming_.empty();
      }
      if (waiting) wake();
    }
    const bool idle = queue_.empty() && std::all_of(slots_.begin(), slots_.end(),
                                                    [](const Slot& s) { return s.inflight.empty(); });
    if (shutting_down && idle) break;
    // Supervisors look for processes that escaped a task only while tasks run.
    if (supervisor_) supervisor_->watch(!idle);
    for (const auto& supervisor : old_supervisors_) supervisor->watch(!idle);

    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    for (Slot& slot : slots_) {
      if (!slot.channel.is_open()) continue;
      fds.push_back({slot.channel.fd(), short(POLLIN | (slot.channel.has_queued() ? POLLOUT : 0)), 0});
      fds.push_back({slot.pidfd, short(slot.pidfd >= 0 ? POLLIN : 0), 0});
    }
    // Supervisors after the slots: they are read in check_deadlines.
    polled_supervisors.clear();
    auto watch = [&fds, &polled_supervisors](const std::shared_ptr<detail::SupervisorProcess>& supervisor) {
      if (!supervisor || !supervisor->alive()) return;
      polled_supervisors.emplace_back(fds.size(), supervisor.get());
      fds.push_back({supervisor->channel_fd(), short(POLLIN | (supervisor->wants_to_write() ? POLLOUT : 0)), 0});
      fds.push_back({supervisor->pidfd(), short(supervisor->pidfd() >= 0 ? POLLIN : 0), 0});
      if (supervisor->wants_to_write()) supervisor->write_some();
    };
    watch(supervisor_);
    watch(bisection_.probe);
    for (const auto& supervisor : old_supervisors_) watch(supervisor);
    for (const Retiring& r : retiring_)
      if (r.pidfd >= 0) fds.push_back({r.pidfd, POLLIN, 0});
    const int ready = ::poll(fds.data(), fds.size(), poll_timeout_ms(Clock::now()));
    if (ready > 0) {
      // Before anything this pass does: a supervisor is read (check_deadlines)
      // only when its channel or pidfd said so.
      for (const auto& [index, supervisor] : polled_supervisors)
        if (fds[index].revents || fds[index + 1].revents) supervisor->mark_readable();
      if (fds[0].revents) {
        std::uint64_t drained;
        [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof drained);
      }
      std::size_t next = 1;
      for (Slot& slot : slots_) {
        if (!slot.channel.is_open()) continue;
        const pollfd& channel = fds[next++];
        const pollfd& process = fds[next++];
        if (channel.fd != slot.channel.fd()) continue;  // replaced during this pass
        if (channel.revents & POLLOUT) slot.channel.flush_some();
        const pid_t pid = slot.pid;
        if (channel.revents & (POLLIN | POLLHUP | POLLERR)) handle_input(slot);
        // The process ended while something it started may still hold the
        // channel open: what it wrote before dying is read first.
        if (slot.pid == pid && slot.pid > 0 && (process.revents & POLLIN) && has_process(slot)) {
          handle_input(slot);
          if (slot.pid == pid) begin_death(slot, "");
        }
      }
    }
    check_deadlines(Clock::now());
    deliver();
  }
  stop_all_workers();
}

double Pool::Impl::mean_seconds_of(const std::string& analysis) const {
  const auto known = mean_by_analysis_.find(analysis);
  return known == mean_by_analysis_.end() ? -1.0 : known->second;
}

void Pool::Impl::dispatch() {
  if (queue_.empty()) return;
  std::size_t in_flight = 0;
  bool suspect_in_flight = false;  // sent alone: the slot holds it only
  for (const Slot& slot : slots_) {
    in_flight += slot.inflight.tasks();
    suspect_in_flight = suspect_in_flight || (slot.inflight.tasks() == 1 && slot.inflight.front().suspect);
  }
  for (Slot& slot : slots_) {
    if (queue_.empty()) return;
    if (slot.state != SlotState::ready) continue;
    // Tasks the worker may hold, the running one included.
    std::size_t limit =
        detail::chunk_limit(options_.chunk_size, mean_seconds_of(analysis_of(queue_.front())), queue_.tasks(), slots_.size());
    if (options_.max_tasks_per_worker > 0)
      limit = std::min<std::size_t>(limit, std::size_t(options_.max_tasks_per_worker - slot.stats.tasks));
    // Top up only below half the limit, so each write carries many tasks.
    if (slot.inflight.tasks() * 2 > limit) continue;
    const Clock::time_point now = Clock::now();
    if (slot.inflight.empty()) slot.head_since = now;
    detail::RunRange range;  // tasks of one run entry, consecutive in id and index, go as one frame
    const detail::RunEntry* range_entry = nullptr;
    auto send_range = [&] {
      if (range_entry) slot.channel.queue_run_range(range);
      range_entry = nullptr;
    };
    while (!queue_.empty() && slot.inflight.tasks() < limit) {
      const Task& next = queue_.front();
      // Another analysis than the task before it: no more than its own limit.
      if (options_.chunk_size <= 0 && !slot.inflight.empty() && !detail::same_analysis(next, slot.inflight.back())) {
        limit = std::min(limit, detail::chunk_limit(0, mean_seconds_of(analysis_of(next)), queue_.tasks(), slots_.size()));
        if (slot.inflight.tasks() >= limit) break;
      }
      if (!detail::may_send(next.suspect, in_flight, suspect_in_flight)) break;
      // A run of a run entry's tasks (never sent, none suspect) goes as one
      // entry of the in-flight list, as much of it as fits.
      Task task = queue_.take_run(limit - slot.inflight.tasks());
      suspect_in_flight = task.suspect;
      in_flight += task.count;
      ++task.attempts;
      task.sent_at = now;
      if (!task.entry) {
        send_range();
        slot.channel.queue_run(task.id, task.analysis, task.params);
      } else if (range_entry == task.entry && task.id == range.first_id + range.count &&
                 task.index == range.first_index + range.count) {
        range.count += task.count;
      } else {
        send_range();
        send_entry(slot, *task.entry);
        range_entry = task.entry;
        range = {task.id, task.entry->id(), task.index, task.count};
      }
      slot.inflight.push_back(std::move(task));
      stats_dirty_ = true;
      if (suspect_in_flight) break;  // alone
    }
    send_range();
    slot.channel.flush_some();  // a dead worker shows up on its pidfd
  }
}

detail::PoolTask detail::one_of(const PoolTask& run, std::uint64_t k) {
  PoolTask task;
  task.entry = run.entry;  // which names the analysis: a run's `analysis` is empty
  task.completion = run.completion;
  task.index = run.index + k;
  task.seq = run.seq + k;
  task.id = run.id + k;
  // A run's tasks share the rest (attempts 0 and the defaults while queued).
  task.attempts = run.attempts;
  task.refunds = run.refunds;
  task.suspect = run.suspect;
  task.alone_deaths = run.alone_deaths;
  task.sent_at = run.sent_at;
  return task;
}

const std::string& detail::analysis_of(const PoolTask& task) noexcept {
  return task.entry ? task.entry->analysis() : task.analysis;
}

void Pool::Impl::send_entry(Slot& slot, const detail::RunEntry& entry) {
  if (std::find(slot.entries_sent.begin(), slot.entries_sent.end(), entry.id()) != slot.entries_sent.end()) return;
  slot.channel.queue_entry(entry.id(), entry.wire());
  slot.entries_sent.push_back(entry.id());
  if (slot.entries_sent.size() > detail::kKeptEntries) slot.entries_sent.pop_front();
}

void Pool::Impl::handle_input(Slot& slot) {
  if (!has_process(slot)) return;
  const pid_t pid = slot.pid;
  const bool open = slot.channel.fill();
  // Every reply just read was sent before this: one clock reading for all.
  input_read_at_ = Clock::now();
  try {
    while (auto frame = slot.channel.next_frame()) {
      handle_frame(slot, *frame);
      if (slot.pid != pid || !has_process(slot)) return;  // retired or replaced: the rest was its
    }
  } catch (const detail::ProtocolError& e) {
    return refuse_reply(slot, e);
  } catch (const Value::exception& e) {  // a field of the wrong type
    return refuse_reply(slot, e);
  } catch (const std::invalid_argument& e) {
    return refuse_reply(slot, e);
  }
  if (!open) begin_death(slot, "", true);
}

void Pool::Impl::refuse_reply(Slot& slot, const std::exception& error) {
  const std::string what = fmt::format("protocol error: {}", error.what());
  if (answers(slot) && !slot.inflight.empty()) {
    // The reply in the way is the first unanswered task's: its error, charged.
    const Clock::time_point now = Clock::now();
    Task task = slot.inflight.take_one();
    ++slot.answered;
    // A result past the limits is refused by the worker itself
    // (result_too_large); what reaches the host and is refused is not a reply.
    detail::RawResult result = error_result(
        ErrorKind::protocol_error,
        fmt::format("protocol error: worker {} sent a reply the host refused ({}); the worker was stopped", slot.pid,
                    error.what()),
        slot.pid);
    result.seconds = std::chrono::duration<double>(now - slot.head_since).count();
    finish(std::move(task), std::move(result));
    slot.head_since = now;
    // The host stops the worker for that task's reply: the tasks it holds
    // behind it, the one it has begun among them, go back uncharged. (Left to
    // the death's blame, the begun one was charged `crashed`.) Not after a
    // time limit's SIGTERM: that death's verdict is the timed-out task's.
    if (slot.state == SlotState::ready) requeue(slot.inflight, false, what, false);
  }
  begin_death(slot, what);
}

void Pool::Impl::handle_frame(Slot& slot, const detail::Frame& frame) {
  using detail::MessageType;
  if ((frame.type == MessageType::result || frame.type == MessageType::record) && answers(slot))
    return handle_result(slot, frame);
  if (frame.type == MessageType::setup) {
    const auto setup = detail::SetupMessage::decode(frame);
    detail::check_sender(setup.pid, slot.pid);
    if (setup.seconds) return count_setup(slot, setup);  // finished
    slot.in_setup = setup.analysis;                       // begins
    return;
  }
  if (frame.type == MessageType::ready && slot.state == SlotState::starting) {
    const auto ready = detail::ReadyMessage::decode(frame);
    detail::check_sender(ready.pid, slot.pid);
    return handle_ready(slot, ready);
  }
  if (frame.type == MessageType::ready && slot.state == SlotState::hung_in_setup) return;  // too late: it is being killed
  if (frame.type == MessageType::refused)
    return fail_startup("worker refused the host: " + detail::RefusedMessage::decode(frame).message);
  throw detail::ProtocolError(fmt::format("unexpected message of type {}", int(frame.type)));
}

void Pool::Impl::check_outcome(std::uint8_t outcome) {
  if (outcome > 1 + int(ErrorKind::protocol_error) || (outcome > 0 && !is_task_error_kind(ErrorKind(outcome - 1))))
    throw detail::ProtocolError("unknown error kind");
}

void Pool::Impl::handle_result(Slot& slot, const detail::Frame& frame) {
  detail::RawResult* result = nullptr;  // this task's own; none when its line joined the last one's
  std::uint8_t flags = 0;
  double seconds = 0;
  // An answer that comes after the host stopped its task at the time limit
  // (SIGTERM sent, the grace before SIGKILL running): the host's decision
  // stands, as when the task dies (containment.md). An ok answer there was
  // recorded ok, with seconds past the limit.
  const bool stopped_at_limit =
      slot.state == SlotState::stopping_after_timeout && slot.timed_out_task == slot.answered + 1;
  if (frame.type == detail::MessageType::record) {
    // A task of a run entry: its record, checked (it begins as this task's
    // must, and is one JSON object) before anything is believed of it.
    const detail::RecordReply reply = detail::decode_record(frame);
    if (slot.inflight.empty() || reply.id != slot.inflight.front().id || !slot.inflight.front().entry)
      throw detail::ProtocolError("a record for a task that was not sent");
    check_outcome(reply.outcome);
    const Task& task = slot.inflight.front();
    task.entry->check_record(task.index, reply.line);
    if (reply.outcome == 0 && !reply.message.empty()) throw detail::ProtocolError("an ok record with an error message");
    flags = reply.flags;
    seconds = reply.seconds;
    if (reply.outcome != 0 || stopped_at_limit || !join_line(task, reply.line)) {
      result = &claim_result();  // filled in place: its bytes are reused
      result->payload.assign(reply.line);
      result->line = true;
      if (reply.outcome != 0) result->error = TaskError{ErrorKind(reply.outcome - 1), std::string(reply.message)};
    }
  } else {
    const detail::ResultReply reply = detail::decode_result(frame);
    if (slot.inflight.empty() || reply.id != slot.inflight.front().id || slot.inflight.front().entry)
      throw detail::ProtocolError("result for a task that was not sent");
    check_outcome(reply.outcome);
    flags = reply.flags;
    seconds = reply.seconds;
    result = &claim_result();
    if (reply.outcome == 0) result->payload.assign(reply.payload);
    else result->error = TaskError{ErrorKind(reply.outcome - 1), std::string(reply.payload)};
  }
  if (stopped_at_limit) {  // its own result, whatever it says: the host writes the record
    result->payload.clear();
    result->line = false;
    result->error = TaskError{ErrorKind::timeout, timeout_message(slot.pid, slot.timed_out_unbegun)};
  }
  if (result) {
    result->seconds = seconds;
    result->worker = slot.pid;
  }
  if (!slot.in_setup.empty()) setup_crashes_.erase(std::exchange(slot.in_setup, ""));  // it succeeded
  // The first task in flight: an entry, or the first of a run, read in place
  // and dropped once counted.
  const Task& task = slot.inflight.front();
  ++slot.answered;
  slot.head_since = input_read_at_;  // the next task began no later than this
  if (!last_mean_ || ((!task.entry || task.entry != last_mean_entry_) && analysis_of(task) != last_mean_analysis_)) {
    last_mean_analysis_ = analysis_of(task);
    last_mean_ = &mean_by_analysis_.try_emplace(last_mean_analysis_, -1.0).first->second;
  }
  last_mean_entry_ = task.entry;
  *last_mean_ = *last_mean_ < 0 ? seconds : 0.9 * *last_mean_ + 0.1 * seconds;
  ++slot.stats.tasks;
  ++slot.stats.tasks_total;
  if (result) finish(task);
  else count_finished(task, false, seconds);
  slot.inflight.drop_one();
  // Out of memory, the worker exits. After a timeout's SIGTERM (the task
  // answered just in time) it is dying. Either way what it holds never ran.
  const bool timed_out = slot.state == SlotState::stopping_after_timeout;
  if ((flags & (detail::kRetire | detail::kRetireBrokenState)) || timed_out) {
    requeue(slot.inflight, false);
    return retire(slot, timed_out                           ? "stopped at a time limit"
                        : (flags & detail::kRetire) ? "ran out of memory"
                                                          : "a task changed its process state beyond repair");
  }
  if (options_.max_tasks_per_worker > 0 && slot.stats.tasks >= options_.max_tasks_per_worker &&
      slot.inflight.empty())
    retire(slot, fmt::format("recycled after {} tasks", slot.stats.tasks));
}

void Pool::Impl::count_setup(Slot& slot, const detail::SetupMessage& message) {
  const std::string& analysis = message.analysis;
  const double seconds = *message.seconds;
  if (slot.in_setup == analysis) {
    slot.in_setup.clear();
    setup_crashes_.erase(analysis);  // it succeeded
  }
  AnalysisStats& cost = analysis_stats_[analysis];
  ++cost.setups;
  cost.setup_seconds += seconds;
  if (slot.state == SlotState::ready) slot.stats.task_setup_seconds += seconds;
  stats_dirty_ = true;
}

detail::HostView Pool::Impl::host_view(const Slot& slot) {
  return {slot.answered, slot.inflight.tasks(), slot.head_since};
}

std::optional<detail::PageView> Pool::Impl::page_view(const Slot& slot) {
  std::optional<detail::PageView> page;
  if (const detail::ProgressPage* p = slot.progress.page()) {
    page.emplace();
    page->started = p->started.load(std::memory_order_acquire);
    page->finished = p->finished.load(std::memory_order_acquire);
    page->started_at = Clock::time_point(std::chrono::nanoseconds(p->started_ns.load(std::memory_order_relaxed)));
  }
  return page;
}

std::optional<Pool::Impl::RunningTask> Pool::Impl::running_task(const Slot& slot, Clock::time_point now,
                                                                 bool time_limit) const {
  const detail::HostView host = host_view(slot);
  const std::optional<detail::PageView> page = page_view(slot);
  const auto sent_at = [&slot](std::size_t i) { return slot.inflight.entry_of_task(i).sent_at; };
  return time_limit ? detail::time_limit_task(host, page, now, sent_at) : detail::running_task(host, page, now, sent_at);
}

// A task's time counts from the host's observations (running_task); a page
// that says nothing runs does not stop the clock.
void Pool::Impl::check_task_time(Slot& slot, Clock::time_point now) {
  if (!options_.task_timeout || slot.state != SlotState::ready || slot.inflight.empty()) return;
  const RunningTask running = *running_task(slot, now, true);
  if (now - running.since < *options_.task_timeout) return;
  // What the worker wrote, or its death, is read before it is judged: a host
  // that was late itself (a pass that blocked moving another worker into its
  // cgroup, a machine that did not run it) charged instant tasks whose answers
  // waited unread, and a segfault it had not yet seen, `timeout` (two CI runs,
  // MpiRun.RecordsEqualAPlainRunsAndNameTheirNode). The next pass reads them
  // at once (its poll does not wait: this deadline has passed), then judges.
  pollfd pending[2] = {{slot.channel.fd(), POLLIN, 0}, {slot.pidfd, short(slot.pidfd >= 0 ? POLLIN : 0), 0}};
  if (::poll(pending, 2, 0) > 0) return;
  slot.timed_out_task = running.ordinal;
  slot.timed_out_unbegun = detail::page_shows_none_begun(host_view(slot), page_view(slot));
  detail::send_signal(slot.pid, slot.pidfd, SIGTERM);
  enter(slot, SlotState::stopping_after_timeout, now + kTerminateGrace);
}

void Pool::Impl::check_deadlines(Clock::time_point now) {
  read_supervisors(now);
  for (Slot& slot : slots_) {
    if (now >= slot.deadline) on_slot_deadline(slot);
    check_task_time(slot, now);
  }
  std::erase_if(retiring_, [now](Retiring& r) {
    pollfd ended{r.pidfd, POLLIN, 0};
    if (r.pidfd < 0 || ::poll(&ended, 1, 0) > 0 || !r.supervisor || !r.supervisor->alive()) {
      if (r.pidfd >= 0) ::close(r.pidfd);
      r.cgroup.end();  // what it started ends with it
      return true;
    }
    if (now >= r.kill_at) {
      detail::send_signal(r.pid, r.pidfd, SIGKILL);
      r.kill_at = Clock::time_point::max();
    }
    return false;
  });
}

int Pool::Impl::poll_timeout_ms(Clock::time_point now) const {
  Clock::time_point next = Clock::time_point::max();
  for (const auto* supervisor : {&supervisor_, &bisection_.probe})
    if (*supervisor && (*supervisor)->alive()) next = std::min(next, (*supervisor)->deadline());
  for (const auto& supervisor : old_supervisors_) next = std::min(next, supervisor->deadline());
  if (!stopping_) next = std::min(next, supervisor_restart_at_);
  for (const Slot& slot : slots_) {
    if (!stopping_) next = std::min(next, slot.deadline);
    if (options_.task_timeout && !slot.inflight.empty() && slot.state == SlotState::ready) {
      next = std::min(next, running_task(slot, now, true)->since + *options_.task_timeout);
    }
  }
  if (!retiring_.empty()) next = std::min(next, now + std::chrono::milliseconds(20));
  if (next == Clock::time_point::max()) return -1;
  if (next <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
}

}  // namespace mathpool
