// hash_cache.hpp: the SHA-256 of the files a run's provenance names (its
// plugins, its config and the CSV files it reads), remembered between runs.
// (A config run again unchanged costs no hashing at all: the first digest of
// a run also started OpenSSL, about 1 ms of a one-shot run.)
//
// A one-shot run hashed its 9 MB of plugins anew each time: 5.5 ms of CPU
// beside the supervisor's start on a 2-core machine. The cache keys each
// file by what stat() says of it (device, inode, size, modification and
// change times to the nanosecond); writing a file changes its change time,
// which no user can set, so a changed plugin is hashed again (git's index
// decides the same way). A file changed less than two seconds before it is
// hashed is not remembered (a write in the same clock tick would leave the
// key as it was).
//
// The key comes from fstat() of the descriptor that is hashed (an open makes
// NFS check a file's attributes with its server). Files in images (squashfs,
// ISO 9660) and FUSE file systems are always hashed: there the change time
// is the image's or the daemon's, not the kernel's record of a write.
//
// The cache is the folder $XDG_CACHE_HOME/mathpool/sha256 (or
// $HOME/.cache/mathpool/sha256; folders it makes are the user's alone), one
// small file per key, written atomically; a folder that cannot be made or
// written only means no cache. Entries that are not regular files of 64 hex
// digits are ignored. Each plugin build adds an entry (65 bytes): when one is
// written into a folder of more than kHashCacheEntries, the folder is cut to
// three quarters of that, the entries written longest ago first (a plugin
// whose entry went is hashed again on its next run), with temporary files a
// killed writer left.
//
// Thread safety: any thread, any number of processes at once.
#pragma once

#include <cstddef>
#include <ctime>
#include <filesystem>
#include <string>

namespace mathpool::detail {

inline constexpr std::size_t kHashCacheEntries = 256;

// The cache folder: from XDG_CACHE_HOME, else HOME (empty: neither is an
// absolute path, no cache).
std::filesystem::path hash_cache_dir();

// sha256_file(file) (provenance.hpp), from the cache in `cache_dir` when it
// holds the file as stat() sees it now; otherwise computed, and remembered
// when the file was last changed two seconds or more before `now` (tests
// pass a later `now`). "" when the file cannot be read. Never throws but
// std::bad_alloc.
std::string cached_sha256_file(const std::filesystem::path& file, const std::filesystem::path& cache_dir,
                               std::time_t now = std::time(nullptr));

}  // namespace mathpool::detail
