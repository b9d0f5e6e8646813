#include "hash_cache.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>

#include "provenance.hpp"

namespace mathpool::detail {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kHexDigits = 64;
constexpr std::time_t kSettledSeconds = 2;

std::string key_of(const struct stat& st) {
  return fmt::format("{:x}-{:x}-{:x}-{}.{:09}-{}.{:09}", std::uint64_t(st.st_dev), std::uint64_t(st.st_ino),
                     std::uint64_t(st.st_size), std::int64_t(st.st_mtim.tv_sec), long(st.st_mtim.tv_nsec),
                     std::int64_t(st.st_ctim.tv_sec), long(st.st_ctim.tv_nsec));
}

bool is_hex_digest(std::string_view text) {
  if (text.size() != kHexDigits) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string read_entry(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "";
  char buffer[kHexDigits + 2];
  ssize_t got;
  while ((got = ::read(fd, buffer, sizeof buffer)) < 0 && errno == EINTR) {
  }
  ::close(fd);
  if (got < ssize_t(kHexDigits)) return "";
  std::string_view text(buffer, std::size_t(got));
  if (text.back() == '\n') text.remove_suffix(1);
  return is_hex_digest(text) ? std::string(text) : "";
}

void write_entry(const fs::path& dir, const std::string& key, const std::string& digest) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return;
  const fs::path temporary = dir / fmt::format(".{}.{}.tmp", key, ::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  const std::string line = digest + '\n';
  const bool written = ::write(fd, line.data(), line.size()) == ssize_t(line.size());
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), (dir / key).c_str()) != 0) ::unlink(temporary.c_str());
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
  struct stat before {};
  if (cache_dir.empty() || ::stat(file.c_str(), &before) != 0 || !S_ISREG(before.st_mode)) return sha256_file(file);
  const std::string key = key_of(before);
  if (std::string digest = read_entry(cache_dir / key); !digest.empty()) return digest;
  std::string digest = sha256_file(file);
  struct stat after {};
  if (is_hex_digest(digest) && ::stat(file.c_str(), &after) == 0 && key_of(after) == key &&
      after.st_ctim.tv_sec + kSettledSeconds <= now && after.st_mtim.tv_sec + kSettledSeconds <= now)
    write_entry(cache_dir, key, digest);
  return digest;
}

}  // namespace mathpool::detail
