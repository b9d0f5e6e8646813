// output.hpp: where a run's records go. A file that already holds records is
// never lost by accident: refused unless resumed or forcibly replaced, and
// replaced only once the first new record is written. A name ending in
// ".zst" gives zstd-compressed JSON Lines, written in frames ended at least
// every second, so a killed run keeps all but its last frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

namespace mathpool::detail {

// Whether `file`'s name asks for zstd compression.
bool is_zstd_name(const std::filesystem::path& file);
// Whether `file` is a regular file or does not exist yet (so it will be one).
bool is_regular_or_missing(const std::filesystem::path& file);

// Refuses (ConfigError) what a run must not do to `file`: overwrite an
// existing non-empty regular file without `resume` or `force`; resume from
// something that is not a regular file.
void check_output_policy(const std::filesystem::path& file, bool resume, bool force);

// A run's records, written as they come.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Writes whole records (each ending in '\n'). False when the output fails.
  virtual bool write(std::string_view records) = 0;
  // Called regularly while the run waits: ends a compressed frame that has
  // been open for a while, so its records survive a kill.
  virtual bool tick() = 0;
  // Ends the output. `completed`: the run finished, so a replaced file that
  // received no record is emptied too. False when the output fails.
  virtual bool finish(bool completed) = 0;
  // Whether the records go to a terminal (a progress line must make way).
  virtual bool terminal() const = 0;
};

// One run's hold on its output file: a second run (a --resume started while
// the first still runs, say) is refused instead of writing the same file at
// once (found from outside: duplicated and torn records). An exclusive
// flock() on the file, held until destroyed; it ends with the process, so a
// killed run leaves no stale lock. Only regular files: a terminal, /dev/null
// or a pipe is never held. Move-only; not thread-safe.
class OutputLock {
 public:
  OutputLock() = default;
  OutputLock(OutputLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OutputLock& operator=(OutputLock&& other) noexcept;
  ~OutputLock();
  bool held() const noexcept { return fd_ >= 0; }

  // Holds `file` when it is a regular file that exists (else holds nothing:
  // open_sink() takes it once it makes it). Throws ConfigError when another
  // run holds it.
  static OutputLock take(const std::filesystem::path& file);
  // Holds the file open on `fd` (a sink's own): the same, by its descriptor.
  static OutputLock take(int fd, const std::filesystem::path& file);

 private:
  explicit OutputLock(int fd) : fd_(fd) {}
  int fd_ = -1;  // owned; -1 when nothing is held
};

// Standard output (no file) or `file`, appended to when `append` (resume),
// else replaced at the first record. `first_record` runs once, just before
// the first record is written. Unless `held` (the caller holds the file's
// OutputLock), a regular file is held for as long as the sink lives. Throws
// ConfigError when the file cannot be opened or another run holds it.
std::unique_ptr<RecordSink> open_sink(const std::optional<std::filesystem::path>& file, bool append,
                                      std::function<void()> first_record = {}, bool held = false);

// The bytes of the complete frames of a zstd file, decompressed; a partial
// last frame (a killed writer) is cut off the file. Throws std::runtime_error
// when the file is not zstd data or cannot be cut.
std::uint64_t zstd_complete_size(const std::filesystem::path& file);
// Calls `line(text, number)` for each line of the complete frames of a zstd
// file (1-based). Throws std::runtime_error when the data is not zstd or the
// last line has no newline.
void for_each_zstd_line(const std::filesystem::path& file,
                        const std::function<void(const std::string& line, int number)>& line);

}  // namespace mathpool::detail
