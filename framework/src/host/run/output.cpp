#include "output.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <zstd.h>

#include "mathpool/config.hpp"

namespace mathpool::detail {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(std::size_t(n));
  }
  return true;
}

// Plain JSON Lines to a descriptor. A regular file that is being replaced is
// emptied just before its first new record.
class PlainSink : public RecordSink {
 public:
  PlainSink(int fd, bool owned, bool replace, std::function<void()> first)
      : fd_(fd), owned_(owned), replace_(replace), first_(std::move(first)), tty_(::isatty(fd) != 0) {}
  ~PlainSink() override {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  bool write(std::string_view records) override {
    if (records.empty()) return true;
    if (!started_ && !start()) return false;
    return put(records);
  }
  bool tick() override { return true; }
  bool finish(bool completed) override {
    bool ok = true;
    if (completed && !started_) ok = start();
    ok = end_output() && ok;
    if (owned_ && fd_ >= 0) {
      ok = ::close(fd_) == 0 && ok;
      fd_ = -1;
    }
    return ok;
  }
  bool terminal() const override { return tty_; }

 protected:
  virtual bool put(std::string_view bytes) { return write_all(fd_, bytes); }
  virtual bool end_output() { return true; }
  int fd_;

 private:
  bool start() {
    started_ = true;
    if (replace_ && ::ftruncate(fd_, 0) != 0) return false;
    if (first_) first_();
    return true;
  }
  bool owned_, replace_;
  std::function<void()> first_;
  bool tty_;
  bool started_ = false;
};

// zstd frames: records are compressed as they come; a frame ends once it has
// been open a second (or holds kFrameBytes), so a killed run loses at most
// its last frame, which --resume cuts off.
class ZstdSink : public PlainSink {
 public:
  ZstdSink(int fd, bool owned, bool replace, std::function<void()> first)
      : PlainSink(fd, owned, replace, std::move(first)), cctx_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize()) {
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, 3);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
  }
  ~ZstdSink() override { ZSTD_freeCCtx(cctx_); }
  bool tick() override { return !open_ || Clock::now() - opened_ < kFrameAge || end_frame(); }

 private:
  static constexpr auto kFrameAge = std::chrono::seconds(1);
  static constexpr std::size_t kFrameBytes = 8u << 20;

  bool put(std::string_view bytes) override {
    if (!open_) opened_ = Clock::now(), open_ = true, frame_bytes_ = 0;
    if (!compress(bytes, ZSTD_e_continue)) return false;
    frame_bytes_ += bytes.size();
    if (frame_bytes_ >= kFrameBytes || Clock::now() - opened_ >= kFrameAge) return end_frame();
    return true;
  }
  bool end_output() override { return !open_ || end_frame(); }
  bool end_frame() {
    open_ = false;
    return compress({}, ZSTD_e_end);
  }
  bool compress(std::string_view bytes, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
    for (;;) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      const std::size_t left = ZSTD_compressStream2(cctx_, &out, &in, mode);
      if (ZSTD_isError(left)) return errno = EIO, false;
      if (!write_all(fd_, std::string_view(out_.data(), out.pos))) return false;
      if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size) return true;
    }
  }
  ZSTD_CCtx* cctx_;
  std::vector<char> out_;
  bool open_ = false;
  Clock::time_point opened_;
  std::size_t frame_bytes_ = 0;
};

// Decompresses `file` frame by frame, calling `data` with each piece and
// `frame_end` at the end of each complete frame (its end offset in the file).
void read_zstd(const fs::path& file, const std::function<void(std::string_view)>& data,
               const std::function<void(std::uint64_t)>& frame_end) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot read the file", file.string()));
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::vector<char> input(ZSTD_DStreamInSize()), output(ZSTD_DStreamOutSize());
  std::uint64_t offset = 0;  // of input[0] in the file
  try {
    for (;;) {
      in.read(input.data(), std::streamsize(input.size()));
      const std::size_t n = std::size_t(in.gcount());
      if (n == 0) break;
      ZSTD_inBuffer buffer{input.data(), n, 0};
      bool full = false;  // output filled: more may be waiting inside
      while (buffer.pos < buffer.size || full) {
        ZSTD_outBuffer out{output.data(), output.size(), 0};
        const std::size_t left = ZSTD_decompressStream(dctx, &out, &buffer);
        if (ZSTD_isError(left))
          throw std::runtime_error(fmt::format("{}: not zstd-compressed records ({})", file.string(),
                                               ZSTD_getErrorName(left)));
        data(std::string_view(output.data(), out.pos));
        full = left != 0 && out.pos == out.size;
        if (left == 0) frame_end(offset + buffer.pos);
      }
      offset += n;
    }
  } catch (...) {
    ZSTD_freeDCtx(dctx);
    throw;
  }
  ZSTD_freeDCtx(dctx);
}

}  // namespace

bool is_zstd_name(const fs::path& file) { return file.extension() == ".zst"; }

bool is_regular_or_missing(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return errno == ENOENT;
  return S_ISREG(st.st_mode);
}

void check_output_policy(const fs::path& file, bool resume, bool force) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return;  // missing (or unreadable: opening it will say)
  if (!S_ISREG(st.st_mode)) {
    if (resume)
      throw ConfigError(fmt::format("--resume reads only a regular file, and {} is not one; run without --resume",
                                    file.string()));
    return;  // a terminal, /dev/null, a pipe: nothing there to lose
  }
  if (st.st_size > 0 && !resume && !force)
    throw ConfigError(fmt::format("the output file {} exists and is not empty; use --resume to run only its "
                                  "missing tasks, or --force to replace it",
                                  file.string()));
}

OutputLock& OutputLock::operator=(OutputLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // the lock goes with the last descriptor of its open file
}

OutputLock OutputLock::take(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return {};  // missing (or unreadable: writing it will say)
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return {};
  }
  try {
    OutputLock held = take(fd, file);
    ::close(fd);
    return held;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

OutputLock OutputLock::take(int fd, const fs::path& file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return {};
  // A descriptor of our own, so the lock lives as long as this object.
  const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (own < 0) throw ConfigError(fmt::format("cannot hold output file {} ({})", file.string(), std::strerror(errno)));
  OutputLock held(own);
  while (::flock(own, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK)
      throw ConfigError(fmt::format("the output file {} is being written by another run; wait for it to end "
                                    "(or stop it), then run again (--resume runs only its missing tasks)",
                                    file.string()));
    break;  // a file system without locks: run as before
  }
  return held;
}

namespace {
// A sink that holds its file for as long as it writes it: the lock, a base
// declared first, is let go after the sink has closed the file.
struct LockHolder {
  OutputLock lock;
};
template <typename Sink>
class HeldSink final : private LockHolder, public Sink {
 public:
  HeldSink(OutputLock held, int fd, bool replace, std::function<void()> first)
      : LockHolder{std::move(held)}, Sink(fd, true, replace, std::move(first)) {}
};
}  // namespace

std::unique_ptr<RecordSink> open_sink(const std::optional<fs::path>& file, bool append,
                                      std::function<void()> first_record, bool held) {
  if (!file) return std::make_unique<PlainSink>(STDOUT_FILENO, false, false, std::move(first_record));
  const bool regular = is_regular_or_missing(*file);
  // Never O_TRUNC: a run that fails before its first record leaves the file as it was.
  const int fd = ::open(file->c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : 0), 0666);
  if (fd < 0)
    throw ConfigError(fmt::format("cannot write output file {} ({})", file->string(), std::strerror(errno)));
  OutputLock lock;
  try {
    if (!held) lock = OutputLock::take(fd, *file);
  } catch (...) {
    ::close(fd);
    throw;
  }
  const bool replace = regular && !append;
  if (is_zstd_name(*file)) return std::make_unique<HeldSink<ZstdSink>>(std::move(lock), fd, replace, std::move(first_record));
  return std::make_unique<HeldSink<PlainSink>>(std::move(lock), fd, replace, std::move(first_record));
}

std::uint64_t zstd_complete_size(const fs::path& file) {
  std::error_code ec;
  const std::uint64_t file_size = fs::file_size(file, ec);
  if (ec) return 0;
  std::uint64_t decoded = 0, good_end = 0, good_decoded = 0;
  read_zstd(
      file, [&](std::string_view piece) { decoded += piece.size(); },
      [&](std::uint64_t end) {
        good_end = end;
        good_decoded = decoded;
      });
  if (good_end < file_size && ::truncate(file.c_str(), off_t(good_end)) != 0)
    throw std::runtime_error(file.string() + ": cannot cut off its partial last frame");
  return good_decoded;
}

void for_each_zstd_line(const fs::path& file, const std::function<void(const std::string& line, int number)>& line) {
  std::string pending;
  int number = 0;
  read_zstd(
      file,
      [&](std::string_view piece) {
        while (!piece.empty()) {
          const std::size_t newline = piece.find('\n');
          if (newline == std::string_view::npos) {
            pending.append(piece);
            return;
          }
          pending.append(piece.substr(0, newline));
          line(pending, ++number);
          pending.clear();
          piece.remove_prefix(newline + 1);
        }
      },
      [](std::uint64_t) {});
  if (!pending.empty())
    throw std::runtime_error(fmt::format("{}:{}: the last record has no end of line; not a file of result records",
                                         file.string(), number + 1));
}

}  // namespace mathpool::detail
