#include "reply_flusher.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>

namespace mathpool::detail {

ReplyFlusher reply_flusher;

namespace {
// Its own frames only: a flush and a futex wait (the sanitizers' runtimes
// need more than a bare thread would).
constexpr std::size_t kStackBytes = 256 * 1024;
}  // namespace

bool ReplyFlusher::start(Channel& channel) {
  if (running_) return true;
  channel_ = &channel;
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setstacksize(&attr, kStackBytes);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  // The thread starts with every signal blocked; this thread's mask is put back.
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &before);
  pthread_t thread;
  running_ = pthread_create(&thread, &attr, &ReplyFlusher::thread_main, this) == 0;
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  pthread_attr_destroy(&attr);
  return running_;
}

void* ReplyFlusher::thread_main(void* self) {
  static_cast<ReplyFlusher*>(self)->serve();
  return nullptr;
}

void ReplyFlusher::serve() {
  const timespec step{0, long(kReplyBatchNs)};
  std::uint64_t seen = lends_.load(std::memory_order_relaxed);
  for (;;) {
    if (awake_.load() == 0) {  // the worker waits for input: so does this thread
      dormant_.store(true);
      awake_.wait(0);
      dormant_.store(false);
    }
    timespec left = step;
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &left, &left) != 0) {
    }
    const std::uint64_t lends = lends_.load(std::memory_order_relaxed);
    if (lends != seen) {  // another task since the last look: it has not run a whole step yet
      seen = lends;
      continue;
    }
    int expected = kLent;
    if (!state_.compare_exchange_strong(expected, kTaken, std::memory_order_acquire)) continue;
    // The buffer's memory stays: a free here could make glibc give this
    // thread an arena of its own (64 MiB of address space under memory_limit).
    if (!channel_->flush(false)) failed_.store(true, std::memory_order_relaxed);
    state_.store(kLent, std::memory_order_release);
    state_.notify_one();
  }
}

}  // namespace mathpool::detail
