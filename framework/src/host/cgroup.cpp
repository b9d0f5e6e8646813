#include "cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
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
  if (DIR* dir = opendir(root.c_str())) {
    std::vector<std::string> inside;
    while (dirent* entry = readdir(dir))
      if (entry->d_type == DT_DIR && entry->d_name[0] != '.') inside.push_back(root + "/" + entry->d_name);
    closedir(dir);
    for (std::string& path : inside) ProcessCgroup(std::move(path)).end();
  }
  ::rmdir(root.c_str());
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
  write_file(path_ + "/cgroup.kill", "1");
  // The killed exit within moments (a zombie no longer counts); the
  // directory can go once they have.
  auto pause = std::chrono::microseconds(50);
  for (auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
       ::rmdir(path_.c_str()) != 0 && errno == EBUSY && std::chrono::steady_clock::now() < give_up;
       pause = std::min(pause * 2, std::chrono::microseconds(5000)))
    std::this_thread::sleep_for(pause);
  path_.clear();  // a directory left behind goes with its tree
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
