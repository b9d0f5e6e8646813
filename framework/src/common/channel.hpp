// channel.hpp: framed messages over a stream socket between a host and a worker.
//
// A frame is a 4-byte little-endian payload length followed by the payload, a
// MessagePack encoding of a Value. Not thread-safe: one reader and one writer
// per Channel, which owns its file descriptor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mathpool/value.hpp"

namespace mathpool::detail {

// Version of the host-worker protocol, checked in the handshake.
inline constexpr int kProtocolVersion = 1;
// Exit status of a worker that ran out of memory; the host reports `memory`.
inline constexpr int kWorkerExitOutOfMemory = 86;
// Larger frames are refused as corrupt rather than allocated.
inline constexpr std::uint32_t kMaxFrameBytes = 256u << 20;

// Thrown when the peer sends bytes that are not a valid frame or message.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Channel {
 public:
  Channel() = default;
  explicit Channel(int fd) : fd_(fd) {}
  Channel(Channel&& other) noexcept;
  Channel& operator=(Channel&& other) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel();

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  void close() noexcept;

  // Blocking send of one message; returns false when the peer is gone.
  bool send(const Value& message);
  // Appends a message to the output buffer; flush() sends everything queued in
  // one write, so a burst of messages costs one system call.
  void queue(const Value& message);
  // Queues {"type": "run", "id", "analysis", "params"} without copying the
  // parameters into a message Value first (the hot path of dispatch).
  void queue_run(std::uint64_t id, const std::string& analysis, const Value& params);
  bool flush();
  // Writes what the socket takes now without blocking; the rest stays queued
  // (a host must never block on a worker that is itself blocked writing).
  // Returns false when the peer is gone.
  bool flush_some();
  bool has_queued() const noexcept { return out_pos_ < out_.size(); }
  // Forgets queued output the peer has not taken (a frame half sent stays
  // whole, so the stream remains well-formed).
  void discard_output() noexcept;
  // True when a complete frame is already buffered (receive() will not block).
  bool has_buffered_message() const noexcept;
  // Blocking receive; nullopt at end of stream. Throws ProtocolError on garbage.
  std::optional<Value> receive();

  // Non-blocking use (host side): read what is available into the buffer,
  // returning false at end of stream; then take complete messages one by one.
  bool fill();
  std::optional<Value> next_buffered();

 private:
  int fd_ = -1;
  std::vector<std::uint8_t> in_;
  std::vector<std::uint8_t> out_;
  std::size_t in_pos_ = 0;
  std::size_t out_pos_ = 0;
};

}  // namespace mathpool::detail
