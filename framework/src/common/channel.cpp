#include "channel.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

namespace mathpool::detail {
namespace {

std::uint32_t read_length(const char* p) {
  const auto* u = reinterpret_cast<const std::uint8_t*>(p);
  return std::uint32_t(u[0]) | std::uint32_t(u[1]) << 8 | std::uint32_t(u[2]) << 16 | std::uint32_t(u[3]) << 24;
}

void store_le(char* at, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) at[i] = static_cast<char>(v >> (8 * i));
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  char at[8];
  store_le(at, v, bytes);
  out.append(at, std::size_t(bytes));
}

std::uint64_t get_le(std::string_view& in, int bytes) {
  if (in.size() < std::size_t(bytes)) throw ProtocolError("truncated message");
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t(static_cast<std::uint8_t>(in[i])) << (8 * i);
  in.remove_prefix(std::size_t(bytes));
  return v;
}

}  // namespace

Value decode_control(const Frame& frame) {
  Value body = msgpack_to_value(frame.body);
  if (!body.is_object()) throw ProtocolError("a control message is not a map");
  return body;
}

void check_sender(pid_t claimed, pid_t process) {
  if (claimed == process) return;
  throw ProtocolError(fmt::format("process {} wrote on the channel of process {} (a copy that a setup or task "
                                  "forked, such as a setup calling daemon()?)",
                                  claimed, process));
}

RunRequest decode_run(const Frame& frame) {
  std::string_view in = frame.body;
  RunRequest run;
  run.id = get_le(in, 8);
  const auto n = std::size_t(get_le(in, 2));
  if (in.size() < n) throw ProtocolError("truncated run message");
  run.analysis = in.substr(0, n);
  run.params = in.substr(n);
  return run;
}

namespace {
// What result and record frames begin with: u64 id . f64 seconds . u8 outcome . u8 flags.
template <typename Reply>
void read_reply_head(std::string_view& in, Reply& reply) {
  reply.id = get_le(in, 8);
  const std::uint64_t bits = get_le(in, 8);
  std::memcpy(&reply.seconds, &bits, sizeof reply.seconds);
  reply.outcome = static_cast<std::uint8_t>(get_le(in, 1));
  reply.flags = static_cast<std::uint8_t>(get_le(in, 1));
}
}  // namespace

ResultReply decode_result(const Frame& frame) {
  std::string_view in = frame.body;
  ResultReply reply;
  read_reply_head(in, reply);
  reply.payload = in;
  if (reply.outcome == 0) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(in.data());
    if (msgpack_check(p, in.size(), kMaxValueDepth) != in.size())
      throw ProtocolError("malformed result (trailing bytes)");
  }
  return reply;
}

RunRange decode_run_range(const Frame& frame) {
  std::string_view in = frame.body;
  RunRange range;
  range.first_id = get_le(in, 8);
  range.entry = get_le(in, 8);
  range.first_index = get_le(in, 8);
  range.count = get_le(in, 8);
  if (!in.empty()) throw ProtocolError("malformed run_range (trailing bytes)");
  if (range.count == 0 || range.first_index + range.count < range.first_index ||
      range.first_id + range.count < range.first_id)
    throw ProtocolError("malformed run_range (an empty or overflowing range)");
  return range;
}

EntryMessage decode_entry(const Frame& frame) {
  std::string_view in = frame.body;
  EntryMessage entry;
  entry.id = get_le(in, 8);
  entry.wire = in;
  return entry;
}

RecordReply decode_record(const Frame& frame) {
  std::string_view in = frame.body;
  RecordReply reply;
  read_reply_head(in, reply);
  const auto n = std::size_t(get_le(in, 4));
  if (in.size() < n) throw ProtocolError("truncated record message");
  reply.message = in.substr(0, n);
  reply.line = in.substr(n);
  return reply;
}

Channel::Channel(Channel&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      accept_fds_(other.accept_fds_),
      sender_(other.sender_),
      dropped_bytes_(other.dropped_bytes_),
      fds_(std::move(other.fds_)),
      in_(std::move(other.in_)),
      out_(std::move(other.out_)),
      in_pos_(other.in_pos_),
      in_end_(other.in_end_),
      out_pos_(other.out_pos_) {}

Channel& Channel::operator=(Channel&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    accept_fds_ = other.accept_fds_;
    sender_ = other.sender_;
    dropped_bytes_ = other.dropped_bytes_;
    fds_ = std::move(other.fds_);
    other.fds_.clear();
    in_ = std::move(other.in_);
    out_ = std::move(other.out_);
    in_pos_ = other.in_pos_;
    in_end_ = other.in_end_;
    out_pos_ = other.out_pos_;
  }
  return *this;
}

Channel::~Channel() { close(); }

void Channel::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  for (int fd : fds_) ::close(fd);
  fds_.clear();
  in_.clear();
  in_pos_ = in_end_ = 0;
  out_.clear();
  out_pos_ = 0;
}

std::size_t Channel::begin_frame(MessageType type) {
  const std::size_t start = out_.size();
  out_.append(4, '\0');
  out_ += static_cast<char>(type);
  return start;
}

void Channel::end_frame(std::size_t start) {
  const auto size = static_cast<std::uint32_t>(out_.size() - start - 4);
  for (int i = 0; i < 4; ++i) out_[start + std::size_t(i)] = static_cast<char>(size >> (8 * i));
}

void Channel::queue_control(MessageType type, const Value& body) {
  const std::size_t start = begin_frame(type);
  append_msgpack(out_, body);
  end_frame(start);
}

void Channel::queue_run(std::uint64_t id, std::string_view analysis, std::string_view params) {
  const std::size_t start = begin_frame(MessageType::run);
  put_le(out_, id, 8);
  put_le(out_, analysis.size(), 2);
  out_.append(analysis);
  out_.append(params);
  end_frame(start);
}

void Channel::queue_entry(std::uint64_t id, std::string_view wire) {
  const std::size_t start = begin_frame(MessageType::entry);
  put_le(out_, id, 8);
  out_.append(wire);
  end_frame(start);
}

void Channel::queue_run_range(const RunRange& range) {
  const std::size_t start = begin_frame(MessageType::run_range);
  put_le(out_, range.first_id, 8);
  put_le(out_, range.entry, 8);
  put_le(out_, range.first_index, 8);
  put_le(out_, range.count, 8);
  end_frame(start);
}

void Channel::queue_record(std::uint64_t id, double seconds, std::uint8_t outcome, std::uint8_t flags,
                           std::string_view message, std::string_view line) {
  // The frame's 27 bytes before its texts made in place and appended at once
  // (a byte at a time they were 3% of a worker's time, 1M echo tasks: perf).
  char head[27];
  std::uint64_t bits;
  std::memcpy(&bits, &seconds, sizeof bits);
  store_le(head, 1 + 22 + message.size() + line.size(), 4);
  head[4] = static_cast<char>(MessageType::record);
  store_le(head + 5, id, 8);
  store_le(head + 13, bits, 8);
  head[21] = static_cast<char>(outcome);
  head[22] = static_cast<char>(flags);
  store_le(head + 23, message.size(), 4);
  out_.append(head, sizeof head);
  out_.append(message);
  out_.append(line);
}

std::size_t Channel::begin_result(std::uint64_t id, double seconds, std::uint8_t outcome, std::uint8_t flags) {
  const std::size_t start = begin_frame(MessageType::result);
  put_le(out_, id, 8);
  std::uint64_t bits;
  std::memcpy(&bits, &seconds, sizeof bits);
  put_le(out_, bits, 8);
  out_ += static_cast<char>(outcome);
  out_ += static_cast<char>(flags);
  return start;
}

void Channel::queue_result(std::uint64_t id, double seconds, std::uint8_t outcome, std::uint8_t flags,
                           std::string_view payload) {
  const std::size_t start = begin_result(id, seconds, outcome, flags);
  out_.append(payload);
  end_frame(start);
}

void Channel::queue_ok_result(std::uint64_t id, double seconds, const Value& result) {
  const std::size_t start = begin_result(id, seconds, 0, 0);
  append_msgpack(out_, result);
  end_frame(start);
}

bool Channel::flush(bool release) {
  while (has_queued()) {
    const ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      out_.clear();
      out_pos_ = 0;
      return false;
    }
    out_pos_ += std::size_t(n);
  }
  if (release) release_output();
  return true;
}

bool Channel::send_control(MessageType type, const Value& body) {
  queue_control(type, body);
  return flush();
}

bool Channel::send_control_with_fds(MessageType type, const Value& body, const int* fds, int count) {
  if (!flush()) return false;
  queue_control(type, body);
  iovec data{out_.data(), out_.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  if (count < 1 || count > 4) return false;
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = CMSG_SPACE(sizeof(int) * std::size_t(count));
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int) * std::size_t(count));
  std::memcpy(CMSG_DATA(header), fds, sizeof(int) * std::size_t(count));
  ssize_t n;
  do n = ::sendmsg(fd_, &message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    release_output();
    return false;
  }
  out_pos_ = std::size_t(n);
  return flush();
}

int Channel::take_fd() noexcept {
  if (fds_.empty()) return -1;
  const int fd = fds_.front();
  fds_.pop_front();
  return fd;
}

void Channel::only_from(pid_t pid) noexcept {
  const int on = 1;
  if (pid > 0 && ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) == 0) sender_ = pid;
}

ssize_t Channel::receive_bytes(char* into, std::size_t size, int flags, bool& dropped) {
  dropped = false;
  if (!accept_fds_ && sender_ == 0) return ::recv(fd_, into, size, flags);
  iovec data{into, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8) + CMSG_SPACE(sizeof(ucred))];
  msghdr message{};
  message.msg_iov = &data;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  // With SO_PASSCRED the kernel never joins bytes of two writers in one read.
  const ssize_t n = ::recvmsg(fd_, &message, flags | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  std::vector<int> received;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET) continue;
    if (header->cmsg_type == SCM_CREDENTIALS && header->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred writer;
      std::memcpy(&writer, CMSG_DATA(header), sizeof writer);
      // pid 0: written before only_from(), when the kernel kept no writer.
      dropped = sender_ != 0 && writer.pid != 0 && writer.pid != sender_;
    } else if (header->cmsg_type == SCM_RIGHTS) {
      const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof fd);
        received.push_back(fd);
      }
    }
  }
  for (int fd : received) {
    if (dropped || !accept_fds_) ::close(fd);
    else fds_.push_back(fd);
  }
  if (dropped && n > 0) dropped_bytes_ += std::uint64_t(n);
  return n;
}

bool Channel::flush_some() {
  while (has_queued()) {
    const ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_pos_ += std::size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  release_output();
  return true;
}

void Channel::discard_output() noexcept {
  // Keep the rest of a frame already partly written; drop whole frames after it.
  std::size_t pos = 0;
  while (pos < out_.size()) {
    const std::size_t end = pos + 4 + read_length(out_.data() + pos);
    if (end > out_pos_) {
      out_.resize(pos < out_pos_ ? end : pos);
      break;
    }
    pos = end;
  }
  if (out_pos_ >= out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
}

// Buffers keep their storage between frames (no allocation per frame), but
// not the storage of a rare huge frame: a 128 MiB result would otherwise stay
// resident for the channel's life.
constexpr std::size_t kKeptBufferBytes = 1 << 20;

void Channel::release_output() noexcept {
  out_.clear();
  out_pos_ = 0;
  if (out_.capacity() > kKeptBufferBytes) std::string().swap(out_);
}

bool Channel::read_some(bool block) {
  // Compact first: frames handed out before this call are no longer used.
  if (in_pos_ == in_end_) {
    in_pos_ = in_end_ = 0;
    if (in_.size() > kKeptBufferBytes) std::string().swap(in_);
  } else if (in_pos_ > 0 && in_pos_ >= in_end_ / 2) {
    std::memmove(in_.data(), in_.data() + in_pos_, in_end_ - in_pos_);
    in_end_ -= in_pos_;
    in_pos_ = 0;
  }
  constexpr std::size_t kChunk = 65536;
  for (;;) {
    // Grown only, never shrunk to the data: resizing zero-fills, which would
    // cost a write to 16 pages per read (and in a forked task process, as
    // many copy-on-write faults).
    if (in_.size() < in_end_ + kChunk) in_.resize(in_end_ + kChunk);
    bool dropped = false;
    const ssize_t n = receive_bytes(in_.data() + in_end_, kChunk, block ? 0 : MSG_DONTWAIT, dropped);
    if (n > 0 && dropped) continue;  // another process's bytes: as if never written
    if (n > 0) in_end_ += std::size_t(n);
    if (n > 0) {
      if (block || std::size_t(n) < kChunk) return true;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return !block && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

bool Channel::fill() { return read_some(false); }

bool Channel::wait_readable(std::int64_t timeout_ns) {
  if (has_buffered_frame()) return true;
  using Clock = std::chrono::steady_clock;
  pollfd readable{fd_, POLLIN, 0};
  // Against a deadline: a signal (say a task's interval timer) every so often
  // must not restart the whole wait each time.
  const Clock::time_point deadline = Clock::now() + std::chrono::nanoseconds(std::max<std::int64_t>(0, timeout_ns));
  for (;;) {
    const std::int64_t left = std::max<std::int64_t>(0, (deadline - Clock::now()).count());
    const timespec timeout{time_t(left / 1000000000), long(left % 1000000000)};
    const int n = ::ppoll(&readable, 1, &timeout, nullptr);
    if (n >= 0) return n > 0;
    if (errno != EINTR) return true;  // the read that follows reports it
  }
}

bool Channel::has_buffered_frame() const noexcept {
  const std::size_t available = in_end_ - in_pos_;
  return available >= 4 && available >= 4 + std::size_t(read_length(in_.data() + in_pos_));
}

std::optional<Frame> Channel::next_frame() {
  const std::size_t available = in_end_ - in_pos_;
  if (available < 4) return std::nullopt;
  const std::uint32_t size = read_length(in_.data() + in_pos_);
  if (size > kMaxFrameBytes)
    throw FrameTooLarge(fmt::format("frame of {} bytes exceeds the limit of {} bytes", size, kMaxFrameBytes));
  if (size == 0) throw ProtocolError("empty frame");
  if (available < 4 + std::size_t(size)) return std::nullopt;
  const char* begin = in_.data() + in_pos_ + 4;
  in_pos_ += 4 + size;
  const auto type = static_cast<std::uint8_t>(begin[0]);
  if (type < std::uint8_t(MessageType::hello) || type > kLastMessageType)
    throw ProtocolError(fmt::format("unknown message type {}", type));
  return Frame{static_cast<MessageType>(type), std::string_view(begin + 1, size - 1)};
}

std::optional<Frame> Channel::receive() {
  for (;;) {
    if (has_buffered_frame()) return next_frame();
    // A length beyond the limit is refused now, not after reading it all.
    if (in_end_ - in_pos_ >= 4 && read_length(in_.data() + in_pos_) > kMaxFrameBytes) return next_frame();
    if (!read_some(true)) return std::nullopt;
  }
}

}  // namespace mathpool::detail
