// stream_core.hpp: the byte-level heart of TaskStream. Parameters go in as
// MessagePack, results come out as RawResults in push order, from a ring of
// `window` slots: no future and no allocation per task in the steady state
// beyond the bytes themselves.
//
// push/take run on one consumer thread; complete() runs on the pool's
// dispatcher thread. The ring is guarded by `mutex_`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "completion.hpp"
#include "pool_impl.hpp"

namespace mathpool {

class TaskStream::Core final : public detail::Completion {
 public:
  // The automatic window (window 0) is never smaller than this: a stream of
  // fewer tasks that asks for just their count behaves the same, without a
  // ring of unused slots to build (megabytes, milliseconds of a one-shot run).
  static constexpr std::size_t kMinAutoWindow = 16384;

  Core(Pool::Impl& pool, std::size_t window);
  ~Core() override;

  std::size_t window() const noexcept { return ring_.size(); }
  std::size_t in_flight() const noexcept { return std::size_t(pushed_ - taken_); }
  bool full() const noexcept { return in_flight() >= window(); }

  // Queues a task (sent to the pool in batches). Precondition: !full().
  void push(std::string_view analysis, detail::Bytes&& params);
  // Queues task `index` of a run entry, which outlives the stream's tasks:
  // its worker writes its record (RawResult::line).
  void push(const detail::RunEntry& entry, std::uint64_t index);
  // Sends what push() has batched up.
  void submit();
  // Whether the oldest task in flight is done, waiting at most `timeout`.
  // False also when nothing is in flight.
  bool wait_next(std::chrono::milliseconds timeout);
  // Whether the oldest task in flight is done; claims the whole run of done
  // tasks after it at once, so take() needs no lock for them.
  bool next_ready();
  // Takes the oldest task's result, waiting for it: with joins_lines set, the
  // result of a run of tasks (RawResult::count). Precondition: in_flight() > 0.
  detail::RawResult take();
  // The same into `result`, whose bytes' room the ring keeps for reuse.
  void take_into(detail::RawResult& result);
  // When the result take() last returned reached the host (the dispatcher
  // handed it over), which may be well before take() returned it.
  std::chrono::steady_clock::time_point arrived() const noexcept { return arrived_; }

  void complete(std::uint64_t seq, detail::RawResult&& result) override;
  void lend_room(detail::Bytes& payload) override;
  void complete_batch(detail::Finished* first, detail::Finished* last) override;

 private:
  struct Entry {
    bool done = false;
    detail::RawResult result;
    std::chrono::steady_clock::time_point arrived{};
  };

  Pool::Impl& pool_;
  std::vector<Entry> ring_;
  std::vector<Pool::Impl::Task> batch_;  // a run entry's consecutive tasks as one (PoolTask::count)
  std::size_t batched_ = 0;              // tasks in batch_
  std::uint64_t pushed_ = 0;
  std::uint64_t taken_ = 0;
  std::uint64_t claimed_ = 0;  // done tasks from taken_ on, known without the lock
  bool counted_ = false;
  // Guards the ring's `done` flags and what complete() writes; an entry the
  // consumer has claimed (done, counted in claimed_) is the consumer's alone.
  detail::Mutex mutex_;
  detail::CondVar ready_;
  std::uint64_t waiting_for_ GUARDED_BY(mutex_) = UINT64_MAX;  // the seq the consumer sleeps on
  // The room of joined lines (RawResult::count) the consumer is done with,
  // lent to the dispatcher for the next result lines join (lend_room): grown
  // in one thread and freed in the other, each cost reallocations and an
  // arena's _int_free (3.8% and 2.3% of a million-echo run's CPU). At most
  // kSpareRooms; only results that lines join get one, so no ring slot keeps
  // 4 KiB (what 42c020e undid: 64 MiB for 16,384 slots).
  static constexpr std::size_t kSpareRooms = 64;
  std::vector<detail::Bytes> spare_rooms_ GUARDED_BY(mutex_);
  // Completions that published results and may not have notified yet: they
  // notify after unlocking (a notify under the lock wakes the consumer only
  // to block on the mutex), so the destructor waits for them to leave.
  std::atomic<int> completing_{0};
  std::chrono::steady_clock::time_point arrived_{};
};

namespace detail {
// What the library reads of a TaskStream: its core, bytes in and out.
struct StreamAccess {
  static TaskStream::Core& core(TaskStream& stream) noexcept { return *stream.core_; }
};
}  // namespace detail

}  // namespace mathpool
