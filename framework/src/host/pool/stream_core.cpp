#include "stream_core.hpp"
#include "run_entry.hpp"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace mathpool {
namespace {

// Tasks handed to the pool per lock and wake-up.
constexpr std::size_t kBatch = 256;

}  // namespace

namespace detail {

TaskResult to_task_result(RawResult&& raw) {
  // Joined results are a run's alone (Completion::joins_lines): never a TaskResult.
  if (raw.count != 1) throw std::logic_error("mathpool: a result of joined records taken as one task's");
  TaskResult result;
  result.worker = raw.worker;
  result.seconds = raw.seconds;
  result.attempts = raw.attempts;
  if (raw.node) result.node = *raw.node;
  result.error = std::move(raw.error);
  if (!result.error) {
    try {
      if (raw.line) result.result = Value::parse(raw.payload).at("result");  // a run's record
      else result.result = msgpack_to_value(raw.payload);
    } catch (const std::exception& e) {
      result.error = TaskError{ErrorKind::plugin_error, std::string("malformed result: ") + e.what()};
    }
  }
  return result;
}

}  // namespace detail

TaskStream::Core::Core(Pool::Impl& pool, std::size_t window) : pool_(pool) {
  // Automatic: two full chunks per worker (slot_logic.hpp: at most 4096
  // tasks each), so a worker of microsecond tasks is topped up before it runs
  // dry (with 1024 and a window of 4096, the workers of a million echo tasks
  // ran dry every few hundred tasks, each time a flush, a sleep and a
  // wake-up); at most 65,536 however many workers (an MPI job's pool counts
  // every rank's), so the host's memory stays bounded.
  if (window == 0) window = std::clamp<std::size_t>(std::size_t(pool.size()) * 8192, kMinAutoWindow, 65536);
  ring_.resize(window);
  batch_.reserve(std::min(window, kBatch));
}

TaskStream::Core::~Core() {
  while (in_flight() > 0) take();  // the pool still writes into the ring
  // A completion that published the last result may still be about to notify.
  while (completing_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

void TaskStream::Core::push(std::string_view analysis, detail::Bytes&& params) {
  Pool::Impl::Task& task = batch_.emplace_back();
  task.analysis.assign(analysis);
  task.params = std::move(params);
  task.completion = this;
  task.seq = pushed_++;
  if (++batched_ >= kBatch) submit();
}

void TaskStream::Core::push(const detail::RunEntry& entry, std::uint64_t index) {
  // The next task of the run of tasks pushed last goes with it (PoolTask::count).
  if (!batch_.empty()) {
    Pool::Impl::Task& run = batch_.back();
    if (run.entry == &entry && run.index + run.count == index && run.seq + run.count == pushed_) {
      ++run.count;
      ++pushed_;
      if (++batched_ >= kBatch) submit();
      return;
    }
  }
  Pool::Impl::Task& task = batch_.emplace_back();
  task.entry = &entry;  // which names the analysis
  task.index = index;
  task.completion = this;
  task.seq = pushed_++;
  if (++batched_ >= kBatch) submit();
}

void TaskStream::Core::submit() {
  if (batch_.empty()) return;
  pool_.enqueue(batch_, !counted_);  // a stream counts as one batch in the statistics
  counted_ = true;
  batched_ = 0;
}

bool TaskStream::Core::next_ready() {
  if (claimed_ > 0) return true;
  if (in_flight() == 0) return false;
  detail::MutexLock lock(mutex_);
  // A result of joined lines (RawResult::count) sits in its first task's
  // entry and stands for the entries after it, which stay not done.
  while (claimed_ < in_flight() && ring_[(taken_ + claimed_) % ring_.size()].done)
    claimed_ += ring_[(taken_ + claimed_) % ring_.size()].result.count;
  return claimed_ > 0;
}

bool TaskStream::Core::wait_next(std::chrono::milliseconds timeout) {
  if (next_ready()) return true;
  if (in_flight() == 0) return false;
  submit();
  detail::MutexLock lock(mutex_);
  Entry& entry = ring_[taken_ % ring_.size()];
  if (!entry.done) {
    waiting_for_ = taken_;
    ready_.wait_for(lock, timeout, [&] { return entry.done; });
    waiting_for_ = UINT64_MAX;
  }
  return entry.done;
}

detail::RawResult TaskStream::Core::take() {
  detail::RawResult result;
  take_into(result);
  return result;
}

void TaskStream::Core::take_into(detail::RawResult& result) {
  // Joined lines' room goes back to the dispatcher (lend_room), or is freed
  // (recycle): a ring slot never keeps it.
  if (result.count > 1 && result.payload.capacity() >= detail::kJoinedRoom / 2 &&
      result.payload.capacity() <= 2 * detail::kJoinedRoom) {
    result.payload.clear();
    detail::MutexLock lock(mutex_);
    if (spare_rooms_.size() < kSpareRooms) spare_rooms_.emplace_back().swap(result.payload);
  }
  detail::recycle(result);
  if (claimed_ == 0) {
    submit();
    detail::MutexLock lock(mutex_);
    Entry& entry = ring_[taken_ % ring_.size()];
    waiting_for_ = taken_;
    ready_.wait(lock, [&] { return entry.done; });
    waiting_for_ = UINT64_MAX;
    claimed_ = entry.result.count;
  }
  // A claimed entry is done: the dispatcher does not touch it again until it
  // is pushed anew, after this.
  Entry& entry = ring_[taken_ % ring_.size()];
  entry.done = false;
  arrived_ = entry.arrived;
  std::swap(entry.result, result);
  taken_ += result.count;
  claimed_ -= result.count;
}

// Both completions count themselves in `completing_` before they publish (so
// a consumer that sees the result sees the count) and notify after the
// unlock, so the woken consumer finds the mutex free.
void TaskStream::Core::lend_room(detail::Bytes& payload) {
  detail::MutexLock lock(mutex_);
  if (spare_rooms_.empty()) return;
  detail::Bytes& room = spare_rooms_.back();
  room.assign(payload);
  room.swap(payload);
  spare_rooms_.pop_back();
}

void TaskStream::Core::complete(std::uint64_t seq, detail::RawResult&& result) {
  const auto now = std::chrono::steady_clock::now();
  completing_.fetch_add(1, std::memory_order_relaxed);
  bool wake = false;
  {
    detail::MutexLock lock(mutex_);
    Entry& entry = ring_[seq % ring_.size()];
    entry.result = std::move(result);
    entry.arrived = now;
    entry.done = true;
    wake = seq == waiting_for_;  // wake the consumer only for what it waits on
  }
  if (wake) ready_.notify_one();
  completing_.fetch_sub(1, std::memory_order_release);
}

void TaskStream::Core::complete_batch(detail::Finished* first, detail::Finished* last) {
  bool wake = false;
  const auto now = std::chrono::steady_clock::now();
  completing_.fetch_add(1, std::memory_order_relaxed);
  {
    detail::MutexLock lock(mutex_);
    for (; first != last; ++first) {
      Entry& entry = ring_[first->seq % ring_.size()];
      std::swap(entry.result, first->result);  // the room of each result's bytes is reused
      entry.arrived = now;
      entry.done = true;
      wake = wake || first->seq == waiting_for_;
    }
  }
  // Once the consumer has its last result it may destroy this Core: the
  // destructor waits until `completing_` is back to 0 (TSan found a signal on
  // a destroyed condition variable before it did).
  if (wake) ready_.notify_one();
  completing_.fetch_sub(1, std::memory_order_release);
}

// ---- the public TaskStream --------------------------------------------------

TaskStream::TaskStream(Pool& pool, std::size_t window)
    : core_(std::make_unique<Core>(*pool.impl_, window)) {}
TaskStream::~TaskStream() = default;

std::size_t TaskStream::window() const noexcept { return core_->window(); }
std::size_t TaskStream::in_flight() const noexcept { return core_->in_flight(); }

void TaskStream::push(std::string_view analysis, const Value& params) {
  detail::Bytes bytes;
  detail::append_msgpack(bytes, params.is_null() ? Value::object() : params);
  core_->push(analysis, std::move(bytes));
}

std::optional<TaskResult> TaskStream::next() {
  if (core_->in_flight() == 0) return std::nullopt;
  return detail::to_task_result(core_->take());
}

}  // namespace mathpool
