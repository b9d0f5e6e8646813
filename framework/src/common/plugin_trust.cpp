#include "plugin_trust.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace mathpool::detail {

namespace fs = std::filesystem;

namespace {

// Who besides root and us could change what `st` describes, or empty. A
// sticky directory counts as safe when `sticky_ok`: others may add entries
// there but not rename or remove ours.
std::string stat_problem(const struct stat& st, bool sticky_ok) {
  if (st.st_uid != 0 && st.st_uid != ::geteuid())
    return fmt::format("is owned by uid {} (neither root nor this user)", st.st_uid);
  if (sticky_ok && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX)) return {};
  if (st.st_mode & S_IWOTH) return "is world-writable";
  if (st.st_mode & S_IWGRP) return "is group-writable";
  return {};
}

// The first directory from `dir` (a real path, without symlinks) up to the
// root that someone else could change, as a reason, or empty.
std::string ancestors_problem(fs::path dir) {
  for (;;) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0)
      return fmt::format("directory {} cannot be checked ({})", dir.string(), std::strerror(errno));
    if (std::string why = stat_problem(st, true); !why.empty())
      return fmt::format("directory {} {}", dir.string(), why);
    if (!dir.has_relative_path()) return {};
    dir = dir.parent_path();
  }
}

// Where the open `fd` really is: the kernel's name for it, so a symlink or a
// rename after the open cannot mislead the directory check.
std::string real_path_of(int fd) {
  const std::string link = fmt::format("/proc/self/fd/{}", fd);
  std::string buffer(4096, '\0');
  const ssize_t n = ::readlink(link.c_str(), buffer.data(), buffer.size());
  if (n <= 0 || static_cast<std::size_t>(n) >= buffer.size()) return {};
  buffer.resize(static_cast<std::size_t>(n));
  return buffer;
}

// Why the open regular file `fd` may not be trusted, or empty.
std::string descriptor_problem(int fd, const struct stat& st) {
  if (std::string why = stat_problem(st, false); !why.empty()) return "the file " + why;
  const fs::path real = real_path_of(fd);
  if (!real.is_absolute()) return "its location cannot be read from /proc/self/fd";
  return ancestors_problem(real.parent_path());
}

}  // namespace

PluginFile::PluginFile(PluginFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), problem_(std::move(other.problem_)) {}

PluginFile& PluginFile::operator=(PluginFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    problem_ = std::move(other.problem_);
  }
  return *this;
}

PluginFile::~PluginFile() {
  if (fd_ >= 0) ::close(fd_);
}

PluginFile PluginFile::open(const fs::path& file, bool allow_insecure) {
  PluginFile opened;
  // O_NONBLOCK: opening a FIFO put in a plugin's place must not hang.
  opened.fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (opened.fd_ < 0) {
    opened.problem_ = errno == ENOENT ? "no such file" : std::strerror(errno);
    return opened;
  }
  struct stat st {};
  if (::fstat(opened.fd_, &st) != 0) {
    opened.problem_ = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    opened.problem_ = "not a regular file";
  } else if (!allow_insecure) {
    if (std::string why = descriptor_problem(opened.fd_, st); !why.empty())
      opened.problem_ = fmt::format("writable by other users ({}); refusing to load it; {}", why,
                                    kInsecureOverrideHint);
  }
  return opened;
}

std::string PluginFile::fd_path() const { return fmt::format("/proc/self/fd/{}", fd_); }

void PluginFile::renumber() {
  const int moved = ::fcntl(fd_, F_DUPFD_CLOEXEC, fd_ + 1);
  if (moved < 0) return;
  ::close(fd_);
  fd_ = moved;
}

int PluginFile::release() { return std::exchange(fd_, -1); }

std::string search_directory_problem(const fs::path& dir) {
  std::error_code ec;
  const fs::path real = fs::canonical(dir, ec);
  if (ec) return {};  // a missing directory is reported where it is used
  struct stat st {};
  if (::stat(real.c_str(), &st) != 0) return {};
  std::string why = stat_problem(st, false);
  if (!why.empty()) why = fmt::format("directory {} {}", real.string(), why);
  else why = ancestors_problem(real.parent_path());
  if (why.empty()) return {};
  return fmt::format("writable by other users ({}); refusing to load from it; {}", why,
                     kInsecureOverrideHint);
}

}  // namespace mathpool::detail
