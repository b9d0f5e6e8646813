// reply_flusher.hpp: a worker's replies go out while a long task runs.
//
// A worker sends its replies in batches (protocol.hpp, kReplyBatchNs), and
// before a task of an analysis not known to be quick. A quick analysis's
// long task (the one slow case of a sweep) would hold the batch before it
// until it ended: its records reached the output late, and an interrupt
// lost them. So around each task the worker lends the channel's output to
// a thread of its own, which writes what is queued once the same task has
// run for a whole kReplyBatchNs (between one and two of them after it began).
//
// Cost: an atomic store and a compare-and-swap a task, no system call; the
// thread sleeps in kReplyBatchNs steps while the worker serves and not at
// all while it waits for input (an idle pool does not wake up).
//
// Thread safety: every member function is the worker thread's. Between
// lend() and take_back() that thread must not touch the channel; outside
// them the flusher never does. The thread blocks every signal, so a
// signal meant for the worker (its time limit's SIGTERM) finds the task's
// thread. Not used under isolation: task, whose workers fork per task and
// must stay single-threaded.
#pragma once

#include <atomic>
#include <cstdint>

#include "channel.hpp"

namespace mathpool::detail {

class ReplyFlusher {
 public:
  // Starts the thread for `channel`, which must outlive the process (the
  // thread is never joined). False when it cannot start (a memory_limit too
  // tight for its stack): replies then wait for the task, as before.
  bool start(Channel& channel);
  bool running() const noexcept { return running_; }

  // Before a task: the queued replies become the flusher's to send.
  void lend() noexcept {
    if (!running_ || !channel_->has_queued()) return;
    lent_ = true;
    lends_.store(lends_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // the only writer
    state_.store(kLent, std::memory_order_release);
  }
  // After it: back to the worker, once a flush under way has ended.
  void take_back() noexcept {
    if (!lent_) return;
    lent_ = false;
    int expected = kLent;
    while (!state_.compare_exchange_weak(expected, kOwned, std::memory_order_acquire)) {
      if (expected == kTaken) state_.wait(kTaken, std::memory_order_acquire);
      expected = kLent;
    }
  }
  // Whether a flush of the thread's failed (the host is gone, or a task
  // broke the channel): its replies were dropped, so the worker must stop
  // as when its own flush fails. Read after take_back().
  bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  // The worker waits for input (idle) or serves again (busy).
  void idle() noexcept {
    if (running_ && busy_) busy_ = false, awake_.store(0, std::memory_order_relaxed);
  }
  void busy() noexcept {
    if (!running_ || busy_) return;
    busy_ = true;
    // A system call only when the thread sleeps for want of work (seq_cst
    // both sides: it sees the store, or this sees it is dormant).
    awake_.store(1);
    if (dormant_.load()) awake_.notify_one();
  }

  // While a task runs, the channel's output is the flusher's.
  class Lent {
   public:
    explicit Lent(ReplyFlusher& flusher) noexcept : flusher_(flusher) { flusher_.lend(); }
    ~Lent() { flusher_.take_back(); }
    Lent(const Lent&) = delete;
    Lent& operator=(const Lent&) = delete;

   private:
    ReplyFlusher& flusher_;
  };

 private:
  static constexpr int kOwned = 0;  // the worker's
  static constexpr int kLent = 1;   // a task runs: the flusher may take it
  static constexpr int kTaken = 2;  // the flusher writes

  static void* thread_main(void* self);
  void serve();

  Channel* channel_ = nullptr;
  bool running_ = false;
  bool lent_ = false;  // the worker's own
  bool busy_ = true;   // the worker's own
  std::atomic<int> state_{kOwned};
  std::atomic<std::uint64_t> lends_{0};
  std::atomic<int> awake_{1};
  std::atomic<bool> dormant_{false};  // the thread waits on awake_
  std::atomic<bool> failed_{false};   // written before the state goes back to kLent
};

// The worker's, set once by serve_tasks (never started under isolation: task).
extern ReplyFlusher reply_flusher;

}  // namespace mathpool::detail
