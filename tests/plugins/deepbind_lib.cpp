// deepbind_lib: a library with its own random generator that a fork child
// handler reseeds, as OpenSSL's and many others' do. The process_model test
// plugin opens it with RTLD_DEEPBIND in a setup: every forked worker must
// draw its own numbers (glibc's fork() runs the handler). Not a plugin.
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>

namespace {
std::uint64_t state = 0;  // copied into a forked child, until a child handler reseeds it

void reseed() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  state = std::uint64_t(getpid()) * 0x9E3779B97F4A7C15ull ^ std::uint64_t(now.tv_nsec);
}

__attribute__((constructor)) void register_handler() {
  reseed();  // each process its own numbers; a forked child only through the handler
  pthread_atfork(nullptr, nullptr, reseed);
}
}  // namespace

extern "C" __attribute__((visibility("default"))) std::uint64_t deepbind_lib_next() {
  state = state * 6364136223846793005ull + 1442695040888963407ull;
  return state >> 1;
}
