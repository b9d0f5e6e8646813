// task_queue.hpp: the pool's queues of tasks (submitted, queued, in flight
// on a worker), as rings that keep their room.
//
// Every task passes through three queues. As std::deques they allocated a
// block every four tasks and freed it when drained: 29 of 30 allocations
// the host made per task in the steady state of a 1M-task run (sampled with
// gdb). A ring grows by doubling when full and keeps its room when drained,
// so a pool in its steady state allocates nothing for its queues. It never
// shrinks: a queue holds at most a stream window's tasks (65,536 of about
// 128 bytes), or what a caller submitted at once.
//
// A run's consecutive tasks of one entry wait as one entry (PoolTask::count)
// until take_one() or take_run() hands them out: a task entry built, moved through two
// queues and destroyed for each was a sixth of the host's CPU per echo task.
// size() counts entries, tasks() tasks; the pool's decisions use tasks().
// A worker's in-flight list holds runs too (take_run(), sent as one range):
// all tasks of a run have one attempts, sent_at and the rest (one_of()).
//
// Not thread-safe (as std::deque): the pool guards incoming_ by its mutex,
// the other queues belong to the dispatcher thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#include <boost/circular_buffer.hpp>

#include "local_pool.hpp"

namespace mathpool::detail {

class TaskQueue {
 public:
  using Ring = boost::circular_buffer<PoolTask>;
  using iterator = Ring::iterator;

  bool empty() const noexcept { return ring_.empty(); }
  std::size_t size() const noexcept { return ring_.size(); }  // entries: a run of tasks is one
  std::size_t tasks() const noexcept { return tasks_; }       // tasks: a run counts each
  PoolTask& front() { return ring_.front(); }
  const PoolTask& front() const { return ring_.front(); }
  PoolTask& back() { return ring_.back(); }
  const PoolTask& back() const { return ring_.back(); }
  // Entry i: task i only where no entry is a run (after split_runs()).
  PoolTask& operator[](std::size_t i) { return ring_[i]; }
  const PoolTask& operator[](std::size_t i) const { return ring_[i]; }
  iterator begin() { return ring_.begin(); }
  iterator end() { return ring_.end(); }
  Ring::const_iterator begin() const { return ring_.begin(); }
  Ring::const_iterator end() const { return ring_.end(); }

  void push_back(PoolTask&& task) {
    if (ring_.full()) grow();
    tasks_ += task.count;
    ring_.push_back(std::move(task));
  }
  void push_front(PoolTask&& task) {
    if (ring_.full()) grow();
    tasks_ += task.count;
    ring_.push_front(std::move(task));
  }
  void pop_front() {
    tasks_ -= ring_.front().count;
    ring_.pop_front();
  }
  void pop_back() {
    tasks_ -= ring_.back().count;
    ring_.pop_back();
  }
  void erase(iterator at) {
    tasks_ -= at->count;
    ring_.erase(at);
  }
  // The first task: the front entry, or the first of the run of tasks it
  // holds (PoolTask::count), which then begins one later. Precondition: !empty().
  PoolTask take_one() {
    PoolTask& front = ring_.front();
    --tasks_;
    if (front.count == 1) {
      PoolTask task = std::move(front);
      ring_.pop_front();
      return task;
    }
    PoolTask task = one_of(front, 0);
    ++front.index, ++front.seq, ++front.id, --front.count;
    return task;
  }
  // The first `most` tasks (most > 0) as one entry: the whole front entry if
  // it holds no more, else a run of `most` of its tasks, which it then
  // begins after. Precondition: !empty().
  PoolTask take_run(std::uint64_t most) {
    PoolTask& front = ring_.front();
    if (front.count <= most) {
      tasks_ -= front.count;
      PoolTask task = std::move(front);
      ring_.pop_front();
      return task;
    }
    PoolTask task = one_of(front, 0);
    task.count = most;
    front.index += most, front.seq += most, front.id += most, front.count -= most;
    tasks_ -= most;
    return task;
  }
  // Drops the first task: the front entry, or the first of its run.
  void drop_one() {
    PoolTask& front = ring_.front();
    if (front.count == 1) return pop_front();
    ++front.index, ++front.seq, ++front.id, --front.count;
    --tasks_;
  }
  // The entry that holds task `i` (0-based, counting each task of a run).
  const PoolTask& entry_of_task(std::size_t i) const {
    if (ring_.size() == tasks_) return ring_[i];  // no runs: one entry a task
    for (const PoolTask& entry : ring_) {
      if (i < entry.count) return entry;
      i -= std::size_t(entry.count);
    }
    return ring_.back();  // i past the end: not asked
  }
  // Every run of tasks becomes its tasks, each an entry of its own (for the
  // paths that judge tasks one by one: a worker's death, a requeue).
  void split_runs() {
    if (ring_.size() == tasks_) return;
    Ring split(std::max<std::size_t>(16, tasks_));
    for (PoolTask& entry : ring_) {
      if (entry.count == 1) split.push_back(std::move(entry));
      else for (std::uint64_t k = 0; k < entry.count; ++k) split.push_back(one_of(entry, k));
    }
    ring_.swap(split);
  }
  void clear() noexcept {  // keeps the room
    ring_.clear();
    tasks_ = 0;
  }
  void swap(TaskQueue& other) noexcept {
    ring_.swap(other.ring_);
    std::swap(tasks_, other.tasks_);
  }

 private:
  void grow() { ring_.set_capacity(std::max<std::size_t>(16, ring_.capacity() * 2)); }
  Ring ring_;
  std::size_t tasks_ = 0;
};

}  // namespace mathpool::detail
