#include "fork_handlers.hpp"

#include <dlfcn.h>

#include <atomic>
#include <cerrno>
#include <mutex>

namespace mathpool::detail {
namespace {

struct Handlers {
  void (*prepare)();
  void (*parent)();
  void (*child)();
  void* dso;  // the library that registered them
};

// Fixed storage: registrations come from library constructors before main().
constexpr int kMaxHandlers = 64;
Handlers recorded[kMaxHandlers];
int recorded_count = 0;
bool overflowed = false;
std::mutex recording;  // constant-initialised: usable before main()

void call(void (*handler)()) {
  if (handler) handler();
}

int snapshot(Handlers (&out)[kMaxHandlers]) {
  std::lock_guard lock(recording);
  for (int i = 0; i < recorded_count; ++i) out[i] = recorded[i];
  return recorded_count;
}

}  // namespace

bool fork_handlers_recorded() noexcept {
  std::lock_guard lock(recording);
  return !overflowed;
}

void run_fork_prepare_handlers() {
  Handlers handlers[kMaxHandlers];
  for (int i = snapshot(handlers); i-- > 0;)
    call(handlers[i].prepare);
}

void run_fork_parent_handlers() {
  Handlers handlers[kMaxHandlers];
  const int n = snapshot(handlers);
  for (int i = 0; i < n; ++i)
    call(handlers[i].parent);
}

void run_fork_child_handlers() {
  Handlers handlers[kMaxHandlers];
  const int n = snapshot(handlers);
  for (int i = 0; i < n; ++i)
    call(handlers[i].child);
}

}  // namespace mathpool::detail

// Exported from the worker program (see CMakeLists.txt), so that it comes
// before the C library's in every lookup, plugins' included.
extern "C" __attribute__((visibility("default"))) int __register_atfork(void (*prepare)(), void (*parent)(),
                                                                        void (*child)(), void* dso_handle) {
  using Register = int (*)(void (*)(), void (*)(), void (*)(), void*);
  static const auto next = reinterpret_cast<Register>(dlsym(RTLD_NEXT, "__register_atfork"));
  if (!next) return ENOMEM;
  const int rc = next(prepare, parent, child, dso_handle);
  if (rc == 0) {
    using namespace mathpool::detail;
    std::lock_guard lock(recording);
    if (recorded_count < kMaxHandlers) recorded[recorded_count++] = {prepare, parent, child, dso_handle};
    else overflowed = true;
  }
  return rc;
}

// A library being closed (dlclose, or the end of the process) finalises
// through __cxa_finalize, where the C library also drops the fork handlers
// it registered: so does our record. Exported like __register_atfork.
extern "C" __attribute__((visibility("default"))) void __cxa_finalize(void* dso_handle) {
  using Finalize = void (*)(void*);
  static const auto next = reinterpret_cast<Finalize>(dlsym(RTLD_NEXT, "__cxa_finalize"));
  if (dso_handle) {
    using namespace mathpool::detail;
    std::lock_guard lock(recording);
    int kept = 0;
    for (int i = 0; i < recorded_count; ++i)
      if (recorded[i].dso != dso_handle) recorded[kept++] = recorded[i];
    recorded_count = kept;
  }
  if (next) next(dso_handle);
}
