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
  std::size_t size() const noexcept { return ring_.size(); }
  PoolTask& front() { return ring_.front(); }
  const PoolTask& front() const { return ring_.front(); }
  PoolTask& back() { return ring_.back(); }
  const PoolTask& back() const { return ring_.back(); }
  PoolTask& operator[](std::size_t i) { return ring_[i]; }
  const PoolTask& operator[](std::size_t i) const { return ring_[i]; }
  iterator begin() { return ring_.begin(); }
  iterator end() { return ring_.end(); }
  Ring::const_iterator begin() const { return ring_.begin(); }
  Ring::const_iterator end() const { return ring_.end(); }

  void push_back(PoolTask&& task) {
    if (ring_.full()) grow();
    ring_.push_back(std::move(task));
  }
  void push_front(PoolTask&& task) {
    if (ring_.full()) grow();
    ring_.push_front(std::move(task));
  }
  void pop_front() { ring_.pop_front(); }
  void pop_back() { ring_.pop_back(); }
  void erase(iterator at) { ring_.erase(at); }
  void clear() noexcept { ring_.clear(); }  // keeps the room
  void swap(TaskQueue& other) noexcept { ring_.swap(other.ring_); }

 private:
  void grow() { ring_.set_capacity(std::max<std::size_t>(16, ring_.capacity() * 2)); }
  Ring ring_;
};

}  // namespace mathpool::detail
