// thread_annotations.hpp: a mutex and its scoped lock that clang's
// -Wthread-safety understands (libstdc++'s std::mutex carries no
// annotations), and the macros to mark what each mutex guards.
//
//   Mutex mutex_;
//   int count_ GUARDED_BY(mutex_) = 0;
//   void bump() { MutexLock lock(mutex_); ++count_; }
//   void bump_locked() REQUIRES(mutex_) { ++count_; }
//
// Waiting on a condition: a CondVar with the MutexLock, in a loop
// (`while (!ready_) changed_.wait(lock);`), so the guarded reads stay inside
// the function the analysis checks. With other compilers the macros are
// empty and Mutex is a plain std::mutex.
#pragma once

#include <chrono>
#include <condition_variable>
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
  std::mutex& native() noexcept { return mutex_; }  // for CondVar only

 private:
  std::mutex mutex_;
};

// Holds a Mutex for its scope; unlock() and lock() in between are allowed.
// The Mutex must outlive it.
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
  std::mutex& native() noexcept { return mutex_.native(); }  // for CondVar only

 private:
  Mutex& mutex_;
  bool held_ = true;
};

// A condition variable waited on with a held MutexLock: std::condition_variable
// on the Mutex's own std::mutex. (std::condition_variable_any takes a mutex of
// its own in every wait and notify: in a degree-16 sweep the host made half
// again as many futex calls with it.) Thread-safe, as std::condition_variable.
class CondVar {
 public:
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }
  void wait(MutexLock& lock) {
    std::unique_lock<std::mutex> native(lock.native(), std::adopt_lock);
    cv_.wait(native);
    native.release();  // still held, by `lock`
  }
  template <class Ready>
  void wait(MutexLock& lock, Ready ready) {
    while (!ready()) wait(lock);
  }
  template <class Clock, class Duration>
  std::cv_status wait_until(MutexLock& lock, const std::chrono::time_point<Clock, Duration>& until) {
    std::unique_lock<std::mutex> native(lock.native(), std::adopt_lock);
    const std::cv_status status = cv_.wait_until(native, until);
    native.release();
    return status;
  }
  // Whether `ready()` holds, after waiting for it at most `timeout`.
  template <class Rep, class Period, class Ready>
  bool wait_for(MutexLock& lock, const std::chrono::duration<Rep, Period>& timeout, Ready ready) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!ready())
      if (wait_until(lock, until) == std::cv_status::timeout) return ready();
    return true;
  }

 private:
  std::condition_variable cv_;
};

}  // namespace mathpool::detail
