#include "channel.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

namespace mathpool::detail {
namespace {

bool write_all(int fd, const std::uint8_t* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

std::uint32_t read_length(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
         std::uint32_t(p[3]) << 24;
}

}  // namespace

Channel::Channel(Channel&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      in_(std::move(other.in_)),
      out_(std::move(other.out_)),
      in_pos_(other.in_pos_),
      out_pos_(other.out_pos_) {}

Channel& Channel::operator=(Channel&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    in_ = std::move(other.in_);
    out_ = std::move(other.out_);
    in_pos_ = other.in_pos_;
    out_pos_ = other.out_pos_;
  }
  return *this;
}

Channel::~Channel() { close(); }

void Channel::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  in_.clear();
  in_pos_ = 0;
  out_.clear();
  out_pos_ = 0;
}

bool Channel::send(const Value& message) {
  queue(message);
  return flush();
}

void Channel::queue(const Value& message) {
  const std::size_t start = out_.size();
  out_.resize(start + 4);
  Value::to_msgpack(message, out_);  // appends after the length prefix
  const auto size = static_cast<std::uint32_t>(out_.size() - start - 4);
  for (int i = 0; i < 4; ++i) out_[start + i] = static_cast<std::uint8_t>(size >> (8 * i));
}

namespace {

void put_string(std::vector<std::uint8_t>& out, std::string_view text) {
  const std::size_t n = text.size();
  if (n < 32) {
    out.push_back(static_cast<std::uint8_t>(0xa0 | n));
  } else if (n < 256) {
    out.push_back(0xd9);
    out.push_back(static_cast<std::uint8_t>(n));
  } else if (n < 65536) {
    out.push_back(0xda);
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    out.push_back(0xdb);
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(n >> shift));
  }
  out.insert(out.end(), text.begin(), text.end());
}

}  // namespace

void Channel::queue_run(std::uint64_t id, const std::string& analysis, const Value& params) {
  const std::size_t start = out_.size();
  out_.resize(start + 4);
  out_.push_back(0x84);  // a map of four entries, encoded as MessagePack by hand
  put_string(out_, "type");
  put_string(out_, "run");
  put_string(out_, "id");
  out_.push_back(0xcf);  // uint64
  for (int shift = 56; shift >= 0; shift -= 8) out_.push_back(static_cast<std::uint8_t>(id >> shift));
  put_string(out_, "analysis");
  put_string(out_, analysis);
  put_string(out_, "params");
  Value::to_msgpack(params, out_);
  const auto size = static_cast<std::uint32_t>(out_.size() - start - 4);
  for (int i = 0; i < 4; ++i) out_[start + i] = static_cast<std::uint8_t>(size >> (8 * i));
}

bool Channel::flush() {
  const bool ok = !has_queued() || write_all(fd_, out_.data() + out_pos_, out_.size() - out_pos_);
  out_.clear();
  out_pos_ = 0;
  return ok;
}

bool Channel::flush_some() {
  while (has_queued()) {
    ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_pos_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  out_.clear();
  out_pos_ = 0;
  return true;
}

void Channel::discard_output() noexcept {
  // Keep the rest of a frame already partly written; drop whole frames after it.
  std::size_t pos = 0;
  while (pos < out_.size()) {
    const std::size_t end = pos + 4 + read_length(out_.data() + pos);
    if (end > out_pos_) {
      if (pos < out_pos_) out_.resize(end);
      else out_.resize(pos);
      break;
    }
    pos = end;
  }
  if (out_pos_ >= out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
}

bool Channel::has_buffered_message() const noexcept {
  const std::size_t available = in_.size() - in_pos_;
  return available >= 4 && available >= 4 + std::size_t(read_length(in_.data() + in_pos_));
}

bool Channel::fill() {
  if (in_pos_ > 0 && in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  std::uint8_t buffer[65536];
  for (;;) {
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      in_.insert(in_.end(), buffer, buffer + n);
      if (static_cast<std::size_t>(n) < sizeof buffer) return true;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    return false;
  }
}

std::optional<Value> Channel::next_buffered() {
  const std::size_t available = in_.size() - in_pos_;
  if (available < 4) return std::nullopt;
  const std::uint32_t size = read_length(in_.data() + in_pos_);
  if (size > kMaxFrameBytes)
    throw ProtocolError(fmt::format("frame of {} bytes exceeds the limit", size));
  if (available < 4 + std::size_t(size)) return std::nullopt;
  const auto* begin = in_.data() + in_pos_ + 4;
  in_pos_ += 4 + size;
  Value message = Value::from_msgpack(begin, begin + size, true, false);
  if (message.is_discarded() || !message.is_object() || !message.contains("type") ||
      !message["type"].is_string())
    throw ProtocolError("undecodable message");
  return message;
}

std::optional<Value> Channel::receive() {
  for (;;) {
    if (auto message = next_buffered()) return message;
    std::uint8_t buffer[65536];
    ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (in_pos_ > 0 && in_pos_ == in_.size()) {
      in_.clear();
      in_pos_ = 0;
    }
    in_.insert(in_.end(), buffer, buffer + n);
  }
}

}  // namespace mathpool::detail
