// provenance.hpp: FILE.meta.json beside a regular output file: which
// mathpool, plugins, analyses and config made the records, where and when,
// and how many tasks ended how. A resumed run keeps the earlier runs under
// "history" and warns (never refuses) when the config or an analysis changed.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>

#include "mathpool/run.hpp"

namespace mathpool::detail {

// SHA-256 of a file's bytes, as 64 hex digits; "" when it cannot be read.
std::string sha256_file(const std::filesystem::path& file);
// The same of what `fd` reads from where it stands to its end (the caller
// keeps and closes it).
std::string sha256_fd(int fd);
// "2026-12-06T01:02:03Z"
std::string iso_utc(std::chrono::system_clock::time_point time);
// The provenance file of an output: FILE.meta.json.
std::filesystem::path provenance_path(const std::filesystem::path& output);

class Provenance {
 public:
  using Warn = std::function<void(const std::string&)>;
  // For a run of `config` into `output`; a resumed run reads the earlier
  // provenance file and warns when the config's hash differs.
  Provenance(const RunConfig& config, const RunOptions& options, std::filesystem::path output, Warn warn);
  // Starts computing the SHA-256 of `plugins` (the files the pool will load)
  // on a thread of its own, while the pool starts: pool_ready() then finds
  // them done (a one-shot run waited 8 ms for a 7 MB plugin after its pool
  // was ready), or from the cache of earlier runs' hashes (hash_cache.hpp).
  // Any file not given here is hashed in pool_ready().
  void hash_plugins_ahead(std::vector<std::filesystem::path> plugins);
  // The pool has started: records the versions of the analyses the config
  // uses and the machines; a resumed run warns about changed versions.
  void pool_ready(const Pool& pool);
  // Writes the file (atomically): "running" at the first record, then the
  // summary's state at the end. A failure is a warning, not a failed run.
  void write(const RunSummary& summary, const std::string& state);
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path output_, path_;
  Warn warn_;
  Value meta_;      // this run's fields
  Value previous_;  // the file a resumed run found (null: none)
  std::set<std::string> used_;  // the analyses the config names
  // From hash_plugins_ahead(): each file's SHA-256, computed one after
  // another on `hashing_`'s thread (joined by its future's destructor).
  std::map<std::string, std::shared_future<std::string>> plugin_hashes_;
  std::future<void> hashing_;
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
};

}  // namespace mathpool::detail
