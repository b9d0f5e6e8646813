#include "plugin_loader.hpp"

#include "channel.hpp"
#include "plugin_trust.hpp"

#include <dlfcn.h>
#include <link.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <system_error>

#define BOOST_DLL_USE_STD_FS
#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>

namespace mathpool::detail {

namespace {

// Boost.DLL keeps only an errno-style code; the dynamic loader's own message
// says what is wrong (not ELF, wrong class, an undefined symbol ...).
// `by_fd` is the name it was loaded by, shown as the plugin's own path.
std::string loader_message(const std::string& by_fd, const std::string& file) {
  dlerror();
  if (void* handle = dlopen(by_fd.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    dlclose(handle);
    return "the loader refused it";
  }
  const char* reported = dlerror();
  std::string message = reported ? reported : "the loader refused it";
  for (auto at = message.find(by_fd); at != std::string::npos; at = message.find(by_fd, at + file.size()))
    message.replace(at, by_fd.size(), file);
  return message;
}

// A /proc/self/fd name for `file` that no loaded library goes by. The
// dynamic loader matches names before files, so a library loaded earlier as
// /proc/self/fd/N (N since closed and reused) would be handed back instead.
std::string unused_fd_name(PluginFile& file) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    const std::string name = file.fd_path();
    void* loaded = dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD);
    if (!loaded) return name;
    link_map* map = nullptr;
    const bool taken = dlinfo(loaded, RTLD_DI_LINKMAP, &map) == 0 && map && name == map->l_name;
    dlclose(loaded);
    if (!taken) return name;  // this very file, loaded under another name
    file.renumber();
  }
  return file.fd_path();
}

}  // namespace

// FLINT aborts the process when an allocation fails. When a plugin brings
// FLINT in, route its allocations through functions that end the worker with
// the out-of-memory status instead, so the task is reported as `memory`.
extern "C" {
void* flint_alloc_or_exit(std::size_t size) {
  void* p = std::malloc(size);
  if (!p && size) _exit(kWorkerExitOutOfMemory);
  return p;
}
void* flint_calloc_or_exit(std::size_t count, std::size_t size) {
  void* p = std::calloc(count, size);
  if (!p && count && size) _exit(kWorkerExitOutOfMemory);
  return p;
}
void* flint_realloc_or_exit(void* old, std::size_t size) {
  void* p = std::realloc(old, size);
  if (!p && size) _exit(kWorkerExitOutOfMemory);
  return p;
}
void flint_free(void* p) { std::free(p); }
}

void route_flint_allocations(void* library) {
  using SetMemoryFunctions = void (*)(void* (*)(std::size_t), void* (*)(std::size_t, std::size_t),
                                      void* (*)(void*, std::size_t), void (*)(void*));
  if (auto set = reinterpret_cast<SetMemoryFunctions>(dlsym(library, "__flint_set_memory_functions")))
    set(flint_alloc_or_exit, flint_calloc_or_exit, flint_realloc_or_exit, flint_free);
}

struct PluginLoader::Libraries {
  std::vector<boost::dll::shared_library> loaded;  // kept until the process exits
  std::vector<int> descriptors;                     // of the loaded files, likewise
};

PluginLoader::PluginLoader() : libraries_(std::make_unique<Libraries>()) {}

PluginLoader::~PluginLoader() {
  // Deliberately leak the libraries: unloading would run plugin destructors
  // and invalidate objects (setup states) that may still be referenced.
  new Libraries(std::move(*libraries_));
}

void PluginLoader::load(const std::filesystem::path& file) {
  auto fail = [&](const std::string& reason) {
    throw Error(ErrorKind::plugin_error, fmt::format("plugin {}: {}", file.string(), reason));
  };
  // Checked and loaded through one descriptor: a file swapped in after the
  // check is never the one loaded. (The price: the plugin's $ORIGIN reads as
  // /proc/self/fd, so its dependencies must be on the default search path or
  // already loaded, as the SDK library is, the worker being linked to it.)
  PluginFile opened = PluginFile::open(file, allow_insecure_);
  if (!opened.ok()) fail(opened.problem());
  const std::string by_fd = unused_fd_name(opened);

  boost::dll::shared_library library;
  boost::dll::fs::error_code load_error;
  library.load(by_fd, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local,
               load_error);
  if (load_error) fail(fmt::format("not a loadable shared library ({})", loader_message(by_fd, file.string())));
  // The loader knows the library by the name /proc/self/fd/N and would hand
  // this library back for a later load by that name, so N stays taken.
  libraries_->descriptors.push_back(opened.release());
  if (!library.has(kPluginEntrySymbol))
    fail(fmt::format("not a mathpool plugin (no '{}' entry point)", kPluginEntrySymbol));

  auto entry = library.get<const PluginDescriptor*()>(kPluginEntrySymbol);
  const PluginDescriptor* descriptor = entry();
  if (descriptor == nullptr) fail("entry point returned no descriptor");
  if (descriptor->api_version != kPluginApiVersion)
    fail(fmt::format("built for plugin API version {}, this worker supports version {}",
                     descriptor->api_version, kPluginApiVersion));
  if (std::string_view(descriptor->build_abi) != MATHPOOL_BUILD_ABI)
    fail(fmt::format("built with ABI '{}', this worker has '{}'", descriptor->build_abi,
                     MATHPOOL_BUILD_ABI));

  std::vector<GuardedAnalysis> declared;
  std::string declare_error;
  if (!descriptor->declare(&declared, &declare_error))
    fail("declaring analyses failed: " + declare_error);

  for (const GuardedAnalysis& analysis : declared) {
    if (analysis.doc.name.empty()) fail("an analysis has an empty name");
    if (auto it = analyses_.find(analysis.doc.name); it != analyses_.end())
      fail(fmt::format("analysis '{}' is already provided by {}", analysis.doc.name,
                       it->second.plugin_file));
  }
  for (GuardedAnalysis& analysis : declared) {
    std::string name = analysis.doc.name;
    analyses_[name] = LoadedAnalysis{std::move(analysis), file.string(), {}, false, {}, 0};
  }
  route_flint_allocations(library.native());
  libraries_->loaded.push_back(std::move(library));
}

void PluginLoader::ensure_setup(LoadedAnalysis& analysis) {
  if (analysis.setup_done) return;
  analysis.setup_done = true;
  if (!analysis.guarded.setup) return;
  if (announce_) announce_(analysis.guarded.doc.name);
  const auto start = std::chrono::steady_clock::now();
  TaskError failure{ErrorKind::plugin_error, ""};
  analysis.setup_state = analysis.guarded.setup(&failure);
  analysis.setup_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!failure.message.empty()) {
    failure.message = "setup failed: " + failure.message;
    analysis.setup_error = failure;
  }
}

void PluginLoader::quarantine(const std::string& name, const std::string& reason) {
  if (LoadedAnalysis* analysis = find(name)) {
    analysis->setup_done = true;
    analysis->setup_error = TaskError{ErrorKind::plugin_error, reason};
  }
}

LoadedAnalysis* PluginLoader::find(const std::string& name) {
  auto it = analyses_.find(name);
  return it == analyses_.end() ? nullptr : &it->second;
}

Value describe(const LoadedAnalysis& analysis) {
  const Analysis& doc = analysis.guarded.doc;
  Value params = Value::array();
  for (const ParamDoc& p : doc.params)
    params.push_back({{"name", p.name}, {"type", p.type}, {"default", p.default_value},
                      {"meaning", p.meaning}});
  Value results = Value::array();
  for (const FieldDoc& f : doc.results)
    results.push_back({{"name", f.name}, {"type", f.type}, {"meaning", f.meaning}});
  Value out = {{"name", doc.name},           {"version", doc.version},
               {"description", doc.description}, {"plugin", analysis.plugin_file},
               {"open_params", doc.open_params}, {"has_setup", bool(analysis.guarded.setup)}, {"has_check", bool(analysis.guarded.check)},
               {"params", params},           {"results", results}};
  if (analysis.setup_done) {
    out["setup_seconds"] = analysis.setup_seconds;
    if (analysis.setup_error) out["setup_error"] = analysis.setup_error->message;
  }
  return out;
}

}  // namespace mathpool::detail
