// atfork_lib: a library with per-process state guarded by a lock, as many
// are (allocators, random generators, connection pools): its constructor
// registers fork handlers that take the lock before a fork and release it
// after, in parent and child. The hostile plugin opens, closes and opens it
// again in a setup (for tests/framework/test_attack2.cpp). Not a plugin.
#include <pthread.h>

namespace {
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
int prepare_runs = 0;
int child_runs = 0;
int lock_failures = 0;  // prepare found the lock taken: with a blocking lock, a deadlock

void prepare() {
  ++prepare_runs;
  if (pthread_mutex_trylock(&lock) != 0) ++lock_failures;
}
void parent() { pthread_mutex_unlock(&lock); }
void child() {
  ++child_runs;
  pthread_mutex_unlock(&lock);
}

__attribute__((constructor)) void register_handlers() { pthread_atfork(prepare, parent, child); }
}  // namespace

extern "C" __attribute__((visibility("default"))) int atfork_lib_child_runs() { return child_runs; }
extern "C" __attribute__((visibility("default"))) int atfork_lib_prepare_runs() { return prepare_runs; }
extern "C" __attribute__((visibility("default"))) int atfork_lib_lock_failures() { return lock_failures; }
