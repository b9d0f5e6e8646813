// Plugin trust: a plugin another user could change is refused, by the host's
// search and by the worker's loader, and what is checked is what is loaded.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/plugin_trust.hpp"
#include "mathpool/plugin.hpp"
#include "mathpool/pool.hpp"
#include "test_support.hpp"
#include "worker/plugin_loader.hpp"

namespace fs = std::filesystem;
using mathpool::Error;
using mathpool::Pool;
using mathpool::PoolOptions;
using mathpool::detail::PluginFile;
using mathpool::detail::PluginLoader;
using mathpool::test::TempDir;

namespace {

// `dir`/`sub`, created with `mode` (set exactly, whatever the umask).
fs::path make_dir(const TempDir& dir, const std::string& sub, mode_t mode) {
  const fs::path path = dir.path() / sub;
  fs::create_directories(path);
  ::chmod(path.c_str(), mode);
  return path;
}

// A copy of `plugin` at `folder`/`name`, with `mode`.
fs::path copy_plugin(const char* plugin, const fs::path& folder, const std::string& name,
                     mode_t mode = 0755) {
  const fs::path file = folder / name;
  fs::copy_file(plugin, file, fs::copy_options::overwrite_existing);
  ::chmod(file.c_str(), mode);
  return file;
}

// The message of the host's refusal to use `path`, or "" when the pool starts.
std::string host_error(const fs::path& path, bool allow_insecure = false) {
  PoolOptions options = mathpool::test::test_pool_options(1);
  options.plugin_paths = {path};
  options.allow_insecure_plugins = allow_insecure;
  try {
    Pool pool(options);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

// The message of the worker loader's refusal to load `file`, or "".
std::string loader_error(const fs::path& file, bool allow_insecure = false) {
  PluginLoader loader;
  loader.allow_insecure(allow_insecure);
  try {
    loader.load(file);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST(TrustFile, GroupWritableFileIsRefusedByHostAndWorker) {
  TempDir dir;
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, make_dir(dir, "p", 0700), "testkit.so", 0775);
  for (const std::string& error : {host_error(file), loader_error(file)}) {
    EXPECT_TRUE(contains(error, file.string())) << error;
    EXPECT_TRUE(contains(error, "the file is group-writable")) << error;
    EXPECT_TRUE(contains(error, "--allow-insecure-plugins")) << error;
  }
  EXPECT_EQ(loader_error(file, true), "");
}

TEST(TrustFile, WorldWritableFileIsRefused) {
  TempDir dir;
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, make_dir(dir, "p", 0700), "testkit.so", 0757);
  EXPECT_TRUE(contains(loader_error(file), "the file is world-writable")) << loader_error(file);
}

TEST(TrustFile, FileOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  TempDir dir;
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, make_dir(dir, "p", 0700), "testkit.so");
  ASSERT_EQ(::chown(file.c_str(), 65534, 65534), 0);
  EXPECT_TRUE(contains(loader_error(file), "owned by uid 65534")) << loader_error(file);
  EXPECT_TRUE(contains(host_error(file), "owned by uid 65534")) << host_error(file);
}

TEST(TrustDirectory, WorldWritableParentIsRefused) {
  TempDir dir;
  const fs::path open_dir = make_dir(dir, "open", 0777);
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, open_dir, "testkit.so");
  for (const std::string& error : {host_error(file), loader_error(file)}) {
    EXPECT_TRUE(contains(error, file.string())) << error;
    EXPECT_TRUE(contains(error, "directory " + open_dir.string() + " is world-writable")) << error;
  }
}

TEST(TrustDirectory, GroupWritableGrandparentIsRefused) {
  TempDir dir;
  const fs::path shared = make_dir(dir, "shared", 0775);
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, make_dir(dir, "shared/mine", 0700), "testkit.so");
  EXPECT_TRUE(contains(loader_error(file), "directory " + shared.string() + " is group-writable"))
      << loader_error(file);
}

TEST(TrustDirectory, SearchedDirectoryMayNotBeWritableEvenIfSticky) {
  TempDir dir;
  const fs::path sticky = make_dir(dir, "sticky", 01777);
  copy_plugin(TESTKIT_PLUGIN, sticky, "testkit.so");
  const std::string error = host_error(sticky);
  EXPECT_TRUE(contains(error, "is world-writable")) << error;
  EXPECT_EQ(host_error(sticky, true), "");
}

// The decision for sticky directories such as /tmp: others may add entries
// but not replace ours, so a private folder (or our own file) inside is safe.
TEST(TrustDirectory, StickyParentIsAccepted) {
  TempDir dir;
  const fs::path sticky = make_dir(dir, "sticky", 01777);
  const fs::path mine = copy_plugin(TESTKIT_PLUGIN, make_dir(dir, "sticky/mine", 0700), "testkit.so");
  EXPECT_EQ(loader_error(mine), "");
  EXPECT_EQ(host_error(mine), "");
  EXPECT_EQ(loader_error(copy_plugin(EXAMPLE_PLUGIN, sticky, "example.so")), "");
}

TEST(TrustDirectory, SymlinkToAFileInAWritableDirectoryIsRefused) {
  TempDir dir;
  const fs::path open_dir = make_dir(dir, "open", 0777);
  const fs::path target = copy_plugin(TESTKIT_PLUGIN, open_dir, "testkit.so");
  const fs::path link = make_dir(dir, "safe", 0700) / "testkit.so";
  fs::create_symlink(target, link);
  const std::string loader = loader_error(link);
  EXPECT_TRUE(contains(loader, link.string())) << loader;
  EXPECT_TRUE(contains(loader, "directory " + open_dir.string() + " is world-writable")) << loader;
  const std::string host = host_error(link);
  EXPECT_TRUE(contains(host, "directory " + open_dir.string() + " is world-writable")) << host;
}

// In the "Pool" suite so that it also runs with zygote workers (see CMakeLists.txt).
TEST(PoolTrust, AllowInsecureReachesEveryWorker) {
  TempDir dir;
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, make_dir(dir, "open", 0777), "testkit.so");
  PoolOptions options = mathpool::test::test_pool_options(2);
  options.plugin_paths = {file};
  options.allow_insecure_plugins = true;
  Pool pool(options);
  EXPECT_TRUE(pool.submit("testkit.pid", {}).get().ok());
}

// The file is replaced after it was checked: loading through the checked
// descriptor still gets the checked file, never the replacement.
TEST(TrustSwap, ASwappedFileIsNotWhatLoads) {
  TempDir dir;
  const fs::path folder = make_dir(dir, "p", 0700);
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, folder, "plugin.so");
  const fs::path impostor = copy_plugin(NOT_A_PLUGIN, folder, "impostor.so");

  PluginFile checked = PluginFile::open(file, false);
  ASSERT_TRUE(checked.ok()) << checked.problem();
  fs::rename(impostor, file);  // the swap, between check and load

  void* by_path = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(by_path, nullptr) << dlerror();
  EXPECT_EQ(dlsym(by_path, mathpool::kPluginEntrySymbol), nullptr) << "the path now names the impostor";
  void* by_fd = dlopen(checked.fd_path().c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(by_fd, nullptr) << dlerror();
  EXPECT_NE(dlsym(by_fd, mathpool::kPluginEntrySymbol), nullptr) << "the descriptor still names the plugin";
  EXPECT_NE(by_fd, by_path);
}

TEST(TrustSwap, LoaderKeepsEachLibrarysDescriptor) {
  // Two plugins loaded one after the other must not share a /proc/self/fd
  // name (the dynamic loader would hand back the first library).
  TempDir dir;
  const fs::path folder = make_dir(dir, "p", 0700);
  PluginLoader loader;
  loader.load(copy_plugin(EXAMPLE_PLUGIN, folder, "example.so"));
  loader.load(copy_plugin(TESTKIT_PLUGIN, folder, "testkit.so"));
  EXPECT_NE(loader.find("example.echo"), nullptr);
  EXPECT_NE(loader.find("testkit.pid"), nullptr);
}

TEST(TrustSwap, StaleDescriptorNameDoesNotHandBackAnotherLibrary) {
  // A library once loaded as /proc/self/fd/N keeps that name after N is
  // closed; a later plugin opened as N must still load itself.
  TempDir dir;
  const fs::path folder = make_dir(dir, "p", 0700);
  {
    PluginFile other = PluginFile::open(copy_plugin(TESTKIT_PLUGIN, folder, "testkit.so"), false);
    ASSERT_NE(dlopen(other.fd_path().c_str(), RTLD_NOW | RTLD_LOCAL), nullptr) << dlerror();
  }  // closes N, which the next open reuses
  PluginLoader loader;
  loader.load(copy_plugin(EXAMPLE_PLUGIN, folder, "example.so"));
  EXPECT_NE(loader.find("example.echo"), nullptr);
  EXPECT_EQ(loader.find("testkit.pid"), nullptr);
}

TEST(TrustFile, FifoIsRefusedWithoutHanging) {
  TempDir dir;
  const fs::path fifo = dir.path() / "plugin.so";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(contains(loader_error(fifo), "not a regular file")) << loader_error(fifo);
}

TEST(TrustCli, RefusalNamesThePathAndTheFlagOverridesIt) {
  TempDir dir;
  const fs::path file = copy_plugin(TESTKIT_PLUGIN, make_dir(dir, "p", 0700), "testkit.so", 0775);
  for (const std::string command : {"plugins", "describe"}) {
    std::vector<std::string> args = {command};
    if (command == "describe") args.push_back("testkit.pid");
    args.insert(args.end(), {"--plugin-path", file.string()});
    const auto refused = mathpool::test::run_mathpool(args);
    EXPECT_EQ(refused.exit_code, 2) << refused.err;
    EXPECT_TRUE(contains(refused.err, file.string() + " is writable by other users")) << refused.err;
    args.push_back("--allow-insecure-plugins");
    const auto allowed = mathpool::test::run_mathpool(args);
    EXPECT_EQ(allowed.exit_code, 0) << allowed.err;
  }
}
