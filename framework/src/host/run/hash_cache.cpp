#include "hash_cache.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "provenance.hpp"

namespace mathpool::detail {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kHexDigits = 64;
constexpr std::time_t kSettledSeconds = 2;
constexpr long kFuseMagic = 0x65735546;    // FUSE_SUPER_MAGIC (not in linux/magic.h)
constexpr long kVboxsfMagic = 0x786f4256;  // vboxsf (not in linux/magic.h)

std::string key_of(const struct stat& st) {
  return fmt::format("{:x}-{:x}-{:x}-{}.{:09}-{}.{:09}", std::uint64_t(st.st_dev), std::uint64_t(st.st_ino),
                     std::uint64_t(st.st_size), std::int64_t(st.st_mtim.tv_sec), long(st.st_mtim.tv_nsec),
                     std::int64_t(st.st_ctim.tv_sec), long(st.st_ctim.tv_nsec));
}

// Where the change time is the kernel's own record of the last write. In an
// image (squashfs, ISO 9660) or a FUSE file system it is whatever the image
// or the daemon says: two images mounted one after the other can agree on
// every field of the key. Shares of a host's files (9p, SMB, VirtualBox)
// cache attributes the host may change behind them: configs are edited
// there, so those are hashed every time too.
bool keys_are_trusted(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return false;
  const long type = long(fs.f_type);
  for (const long untrusted : {long(SQUASHFS_MAGIC), long(ISOFS_SUPER_MAGIC), kFuseMagic, long(V9FS_MAGIC), long(CIFS_SUPER_MAGIC),
                               long(SMB2_SUPER_MAGIC), kVboxsfMagic})
    if (type == untrusted) return false;
  return true;
}

bool is_hex_digest(std::string_view text) {
  if (text.size() != kHexDigits) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string read_entry(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return "";
  struct stat st {};
  char buffer[kHexDigits + 2];
  ssize_t got = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    while ((got = ::read(fd, buffer, sizeof buffer)) < 0 && errno == EINTR) {
    }
  }
  ::close(fd);
  if (got < ssize_t(kHexDigits)) return "";
  std::string_view text(buffer, std::size_t(got));
  if (text.back() == '\n') text.remove_suffix(1);
  return is_hex_digest(text) ? std::string(text) : "";
}

// The folders up to `dir` that do not exist yet, made readable by the user alone.
bool make_private_dirs(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return true;
  if (errno != ENOENT || !dir.has_parent_path() || dir.parent_path() == dir) return false;
  return make_private_dirs(dir.parent_path()) && (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST);
}

void write_entry(const fs::path& dir, const std::string& key, const std::string& digest) {
  if (!make_private_dirs(dir)) return;
  const fs::path temporary = dir / fmt::format(".{}.{}.tmp", key, ::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  const std::string line = digest + '\n';
  const bool written = ::write(fd, line.data(), line.size()) == ssize_t(line.size());
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), (dir / key).c_str()) != 0) ::unlink(temporary.c_str());
}

// Cuts the folder to three quarters of kHashCacheEntries when it holds more,
// the entries written longest ago first (another process may prune at the
// same time: an entry already gone is no error). Temporary files go too,
// unless written in the last minute (a writer may be between its write and
// its rename).
void prune(const fs::path& dir, std::time_t now) {
  std::vector<std::pair<std::time_t, fs::path>> entries;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    const std::string name = it->path().filename();
    if (!name.empty() && name[0] == '.') {
      if (st.st_mtim.tv_sec + 60 < now) ::unlink(it->path().c_str());
      continue;
    }
    entries.emplace_back(st.st_mtim.tv_sec, it->path());
  }
  if (entries.size() <= kHashCacheEntries) return;
  const std::size_t keep = kHashCacheEntries * 3 / 4;
  std::nth_element(entries.begin(), entries.begin() + std::ptrdiff_t(entries.size() - keep), entries.end());
  for (std::size_t i = 0; i < entries.size() - keep; ++i) ::unlink(entries[i].second.c_str());
}

}  // namespace

fs::path hash_cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg == '/') return fs::path(xdg) / "mathpool" / "sha256";
  const char* home = std::getenv("HOME");
  if (home && *home == '/') return fs::path(home) / ".cache" / "mathpool" / "sha256";
  return {};
}

std::string cached_sha256_file(const fs::path& file, const fs::path& cache_dir, std::time_t now) {
  if (cache_dir.empty()) return sha256_file(file);
  // One open: its fstat is the key (an open makes NFS check the attributes
  // with the server), and the same descriptor is hashed.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return "";  // as sha256_file() has it
  struct stat before {};
  if (::fstat(fd, &before) != 0 || !S_ISREG(before.st_mode)) {
    ::close(fd);
    return sha256_file(file);  // not a regular file: read as it comes, without O_NONBLOCK
  }
  if (!keys_are_trusted(fd)) {
    std::string digest = sha256_fd(fd);  // hashed every time, from the descriptor at hand
    ::close(fd);
    return digest;
  }
  const std::string key = key_of(before);
  if (std::string digest = read_entry(cache_dir / key); !digest.empty()) {
    ::close(fd);
    return digest;
  }
  std::string digest = sha256_fd(fd);
  struct stat after {};
  const bool unchanged = ::fstat(fd, &after) == 0 && key_of(after) == key;
  ::close(fd);
  if (is_hex_digest(digest) && unchanged && after.st_ctim.tv_sec + kSettledSeconds <= now &&
      after.st_mtim.tv_sec + kSettledSeconds <= now) {
    write_entry(cache_dir, key, digest);
    prune(cache_dir, now);
  }
  return digest;
}

}  // namespace mathpool::detail
