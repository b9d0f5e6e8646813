#include "cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "thread_annotations.hpp"

namespace mathpool::detail {
namespace {

bool write_file(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  ::close(fd);
  return ok;
}

// The directory of this process's cgroup in the cgroup v2 hierarchy, or ""
// with `reason` set when there is none (no cgroup2 mount, v1 only).
std::string own_cgroup_directory(std::string& reason) {
  std::string relative;
  {
    std::ifstream membership("/proc/self/cgroup");
    for (std::string line; std::getline(membership, line);)
      if (line.rfind("0::", 0) == 0) relative = line.substr(3);
  }
  if (relative.empty()) {
    reason = "this process is in no cgroup v2 hierarchy";
    return "";
  }
  // mountinfo: id parent dev root mountpoint options... - fstype source superoptions
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string type;
    tail >> type;
    if (type != "cgroup2") continue;
    std::istringstream head(line.substr(0, dash));
    std::string id, parent, device, root, mountpoint;
    head >> id >> parent >> device >> root >> mountpoint;
    // A mount of a subtree shows paths below its root only.
    if (root != "/") {
      if (relative.rfind(root, 0) != 0) continue;
      relative = relative.substr(root.size());
    }
    return mountpoint + (relative == "/" ? "" : relative);
  }
  reason = "no cgroup2 file system is mounted";
  return "";
}

// The cgroups directly inside the cgroup `path`.
std::vector<std::string> sub_cgroups(const std::string& path) {
  std::vector<std::string> inside;
  if (DIR* dir = opendir(path.c_str())) {
    while (dirent* entry = readdir(dir))
      if (entry->d_type == DT_DIR && entry->d_name[0] != '.') inside.push_back(path + "/" + entry->d_name);
    closedir(dir);
  }
  return inside;
}

// Removes a cgroup directory and every sub-cgroup a task made inside it,
// deepest first (a cgroup with children cannot go). False when one is still
// busy: its killed processes have not exited yet.
bool remove_directories(const std::string& path) {
  for (const std::string& child : sub_cgroups(path)) remove_directories(child);
  return ::rmdir(path.c_str()) == 0 || errno == ENOENT;
}

// Removes cgroups whose killed processes take a moment to exit, off the
// pool's dispatcher: a thread that retries each for a bounded time (after
// which the directory is left to the pool's removal, or to the next pool
// started in the same cgroup).
class Cleaner {
 public:
  void later(std::string path) {
    detail::MutexLock lock(mutex_);
    pending_.push_back({std::move(path), std::chrono::steady_clock::now() + kGiveUpAfter});
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    wake_.notify_one();
  }
  // Waits until nothing is pending (at most the give-up time).
  void drain() {
    detail::MutexLock lock(mutex_);
    const auto give_up = std::chrono::steady_clock::now() + kGiveUpAfter;
    while (!pending_.empty() && idle_.wait_until(lock, give_up) == std::cv_status::no_timeout) {
    }
  }

 private:
  static constexpr auto kGiveUpAfter = std::chrono::seconds(5);
  struct Pending {
    std::string path;
    std::chrono::steady_clock::time_point give_up;
  };
  [[noreturn]] void loop() {
    auto pause = std::chrono::milliseconds(1);
    for (;;) {
      std::vector<Pending> work;
      {
        detail::MutexLock lock(mutex_);
        while (pending_.empty()) wake_.wait(lock);
        work.swap(pending_);
      }
      std::vector<Pending> left;
      for (Pending& p : work)
        if (!remove_directories(p.path) && std::chrono::steady_clock::now() < p.give_up) left.push_back(std::move(p));
      detail::MutexLock lock(mutex_);
      for (Pending& p : left) pending_.push_back(std::move(p));
      if (pending_.empty()) {
        pause = std::chrono::milliseconds(1);
        idle_.notify_all();
        continue;
      }
      lock.unlock();
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(100));
    }
  }
  Mutex mutex_;
  detail::CondVar wake_, idle_;
  std::vector<Pending> pending_ GUARDED_BY(mutex_);
  std::thread thread_ GUARDED_BY(mutex_);
};

Cleaner& cleaner() {
  static Cleaner* instance = new Cleaner();  // never destroyed: its thread may outlive static destruction
  return *instance;
}

// Ends every cgroup inside `root` (killing what is left in them) and removes it.
void remove_tree(const std::string& root);

// Pools of hosts that are gone (killed, or exited without stopping their
// pool) leave their directory behind, with whatever daemons outlived them:
// the next pool in the same cgroup ends and removes them.
void remove_abandoned(const std::string& parent) {
  DIR* dir = opendir(parent.c_str());
  if (!dir) return;
  std::vector<std::string> abandoned;
  while (dirent* entry = readdir(dir)) {
    int host = 0, pool = 0;
    if (entry->d_type != DT_DIR || std::sscanf(entry->d_name, "mathpool-%d-%d", &host, &pool) != 2) continue;
    if (host > 0 && ::kill(host, 0) != 0 && errno == ESRCH) abandoned.push_back(parent + "/" + entry->d_name);
  }
  closedir(dir);
  for (const std::string& root : abandoned) remove_tree(root);
}

void remove_tree(const std::string& root) {
  for (const std::string& path : sub_cgroups(root)) write_file(path + "/cgroup.kill", "1");
  if (remove_directories(root)) return;
  // The killed exit within moments: wait for them here, once, at the end of
  // a pool (not on the dispatcher's way), then leave what is still busy.
  for (auto pause = std::chrono::microseconds(100), waited = std::chrono::microseconds(0);
       !remove_directories(root) && waited < std::chrono::milliseconds(500); waited += pause, pause *= 2)
    std::this_thread::sleep_for(pause);
}

}  // namespace

ProcessCgroup& ProcessCgroup::operator=(ProcessCgroup&& other) noexcept {
  if (this != &other) {
    end();
    path_ = std::exchange(other.path_, {});
    owner_ = other.owner_;
  }
  return *this;
}

void ProcessCgroup::end() {
  if (path_.empty()) return;
  if (getpid() != owner_) return path_.clear();
  write_file(path_ + "/cgroup.kill", "1");  // the cgroup and every sub-cgroup a task made
  // The killed exit within moments (a zombie no longer counts); the
  // directories go once they have, off the dispatcher if not at once.
  if (!remove_directories(path_)) cleaner().later(path_);
  path_.clear();
}

CgroupTree::CgroupTree() {
  if (const char* setting = std::getenv("MATHPOOL_CGROUPS"); setting && std::string_view(setting) == "off") {
    reason_ = "turned off by MATHPOOL_CGROUPS=off";
    return;
  }
  const std::string parent = own_cgroup_directory(reason_);
  if (parent.empty()) return;
  static std::atomic<int> pools{0};
  const std::string root = fmt::format("{}/mathpool-{}-{}", parent, getpid(), pools++);
  if (::mkdir(root.c_str(), 0755) != 0) {
    reason_ = fmt::format("cannot create a cgroup in {}: {}", parent, std::strerror(errno));
    return;
  }
  if (::access((root + "/cgroup.kill").c_str(), W_OK) != 0) {
    reason_ = "the kernel has no cgroup.kill (Linux 5.14 or later)";
    ::rmdir(root.c_str());
    return;
  }
  root_ = root;
  remove_abandoned(parent);
}

void CgroupTree::remove() {
  if (root_.empty() || getpid() != owner_) return;
  cleaner().drain();
  remove_tree(root_);  // and cgroups that could not be removed at their end (slow to die)
  root_.clear();
  reason_ = "removed";
}

ProcessCgroup CgroupTree::adopt(pid_t pid, std::string_view name) {
  if (root_.empty()) return {};
  const std::string path = fmt::format("{}/{}", root_, name);
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return {};
  ProcessCgroup cgroup(path);
  if (!write_file(path + "/cgroup.procs", std::to_string(pid))) {
    ::rmdir(path.c_str());
    return {};
  }
  return cgroup;
}

std::string CgroupTree::unavailable_reason() {
  CgroupTree tree;
  if (!tree.active()) return tree.reason();
  const pid_t child = fork();
  if (child < 0) return fmt::format("fork failed: {}", std::strerror(errno));
  if (child == 0) {
    for (;;) pause();
  }
  ProcessCgroup cgroup = tree.adopt(child, "probe");
  const bool moved = cgroup.active();
  if (moved) cgroup.end();
  else ::kill(child, SIGKILL);
  while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  return moved ? "" : fmt::format("cannot move a process into a cgroup below {}", tree.root_);
}

}  // namespace mathpool::detail
