// mpi_job.cpp: MpiJob in the host library. It loads the MPI module on first
// use (see backend.hpp) and forwards to it; without the module (a build
// without MPI, or Open MPI missing at run time) every use is a clear error.
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "backend.hpp"
#include "pool_impl.hpp"
#include "mathpool/mpi.hpp"

namespace mathpool {

class MpiJob::Impl {
 public:
  std::unique_ptr<mpi_detail::Backend> backend;
};

namespace {

// The module's entry point, or the reason there is none. Loaded once and
// never unloaded (MPI libraries are not made to be unloaded).
struct Module {
  mpi_detail::JoinJob join = nullptr;
  std::string missing;
};

const Module& module() {
  static const Module loaded = [] {
    Module m;
#ifndef MATHPOOL_MPI_MODULE
    m.missing = "this build of mathpool has no MPI support (build it with Open MPI installed: "
                "Debian packages libopenmpi-dev and openmpi-bin)";
#else
    // Beside this library, wherever it is installed.
    Dl_info self{};
    dladdr(reinterpret_cast<void*>(&module), &self);
    const std::filesystem::path file =
        std::filesystem::path(self.dli_fname ? self.dli_fname : "").parent_path() / mpi_detail::kModuleFile;
    // RTLD_GLOBAL: Open MPI's own components, which it loads later, expect
    // its symbols to be global.
    void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!handle) {
      const char* why = dlerror();
      m.missing = fmt::format("cannot load mathpool's MPI module ({}); is Open MPI installed "
                              "(Debian package openmpi-bin)?",
                              why ? why : file.string());
    } else {
      m.join = reinterpret_cast<mpi_detail::JoinJob>(dlsym(handle, mpi_detail::kJoinJobSymbol));
      if (!m.join) m.missing = fmt::format("{} has no entry point {}", file.string(), mpi_detail::kJoinJobSymbol);
    }
#endif
    return m;
  }();
  return loaded;
}

}  // namespace

bool MpiJob::supported() noexcept { return module().join != nullptr; }

MpiJob::MpiJob(int& argc, char**& argv) : impl_(std::make_unique<Impl>()) {
  if (!module().join) throw Error(ErrorKind::invalid_config, module().missing);
  impl_->backend.reset(module().join(&argc, &argv));
}

MpiJob::~MpiJob() = default;

int MpiJob::rank() const noexcept { return impl_->backend->rank(); }
int MpiJob::size() const noexcept { return impl_->backend->size(); }
const std::string& MpiJob::node() const noexcept { return impl_->backend->node(); }
int MpiJob::serve() { return impl_->backend->serve(); }
void MpiJob::abandon() noexcept { impl_->backend->abandon(); }
void MpiJob::set_node_timeout(std::chrono::milliseconds timeout) { impl_->backend->set_node_timeout(timeout); }
std::string MpiJob::lost() const { return impl_->backend->lost(); }
void MpiJob::abort(int status) noexcept {
  impl_->backend->abort(status);
  std::_Exit(status);  // not reached
}

Pool::Pool(MpiJob& job, PoolOptions options)
    : impl_(pool_detail::adopt_local_pool(job.impl_->backend->open_pool(options))) {}

}  // namespace mathpool
