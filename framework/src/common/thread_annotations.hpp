// thread_annotations.hpp: a mutex and its scoped lock that clang's
// -Wthread-safety understands (libstdc++'s std::mutex carries no
// annotations), and the macros to mark what each mutex guards.
//
//   Mutex mutex_;
//   int count_ GUARDED_BY(mutex_) = 0;
//   void bump() { MutexLock lock(mutex_); ++count_; }
//   void bump_locked() REQUIRES(mutex_) { ++count_; }
//
// Waiting on a condition: `std::condition_variable_any` with the MutexLock,
// in a loop (`while (!ready_) changed_.wait(lock);`), so the guarded reads
// stay inside the function the analysis checks. With other compilers the
// macros are empty and Mutex is a plain std::mutex.
#pragma once

#include <mutex>

#if defined(__clang__)
#define MATHPOOL_THREAD_ATTRIBUTE(x) __attribute__((x))
#else
#define MATHPOOL_THREAD_ATTRIBUTE(x)
#endif

#define CAPABILITY(x) MATHPOOL_THREAD_ATTRIBUTE(capability(x))
#define SCOPED_CAPABILITY MATHPOOL_THREAD_ATTRIBUTE(scoped_lockable)
#define GUARDED_BY(x) MATHPOOL_THREAD_ATTRIBUTE(guarded_by(x))
#define PT_GUARDED_BY(x) MATHPOOL_THREAD_ATTRIBUTE(pt_guarded_by(x))
#define REQUIRES(...) MATHPOOL_THREAD_ATTRIBUTE(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) MATHPOOL_THREAD_ATTRIBUTE(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) MATHPOOL_THREAD_ATTRIBUTE(acquire_capability(__VA_ARGS__))
#define RELEASE(...) MATHPOOL_THREAD_ATTRIBUTE(release_capability(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS MATHPOOL_THREAD_ATTRIBUTE(no_thread_safety_analysis)

namespace mathpool::detail {

// A std::mutex the analysis knows. Not recursive; not movable.
class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mutex_.lock(); }
  void unlock() RELEASE() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

// Holds a Mutex for its scope; unlock() and lock() in between (as
// std::condition_variable_any::wait does) are allowed. The Mutex must
// outlive it.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mutex_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  void lock() ACQUIRE() {
    mutex_.lock();
    held_ = true;
  }
  void unlock() RELEASE() {
    held_ = false;
    mutex_.unlock();
  }

 private:
  Mutex& mutex_;
  bool held_ = true;
};

}  // namespace mathpool::detail
