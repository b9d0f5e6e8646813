// channel.hpp: framed messages (protocol.hpp) over a stream socket between a
// host and a worker. Run and result frames carry their payloads as bytes, so
// nothing on the per-task path builds a value tree.
//
// Not thread-safe: one reader and one writer per Channel, which owns its file
// descriptor. A Frame is a view into the input buffer, valid until the next
// fill() or receive().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "msgpack_json.hpp"
#include "protocol.hpp"

namespace mathpool::detail {

struct Frame {
  MessageType type;
  std::string_view body;
};

class RunEntry;  // run_entry.hpp

struct RunRequest {
  std::uint64_t id = 0;
  std::string_view analysis;
  std::string_view params;  // MessagePack
  // A task of a run_range: its entry (the worker writes its record) and index.
  const RunEntry* entry = nullptr;
  std::uint64_t index = 0;
  std::string_view labels;  // MessagePack map, or nothing
};

struct ResultReply {
  std::uint64_t id = 0;
  double seconds = 0;
  std::uint8_t outcome = 0;  // 0: ok; 1 + ErrorKind: error
  std::uint8_t flags = 0;
  std::string_view payload;  // MessagePack result, or the error message
};

// Tasks first_index .. first_index + count - 1 of run entry `entry`, with
// task ids first_id .. first_id + count - 1 (protocol.hpp, run_range).
struct RunRange {
  std::uint64_t first_id = 0;
  std::uint64_t entry = 0;
  std::uint64_t first_index = 0;
  std::uint64_t count = 0;
};

struct EntryMessage {
  std::uint64_t id = 0;
  std::string_view wire;  // run_entry.hpp
};

struct RecordReply {
  std::uint64_t id = 0;
  double seconds = 0;
  std::uint8_t outcome = 0;  // 0: ok; 1 + ErrorKind: error
  std::uint8_t flags = 0;
  std::string_view message;  // the error's message
  std::string_view line;     // the task's whole record, without its newline
};

// A frame whose length passes kMaxFrameBytes: refused before it is read.
class FrameTooLarge : public ProtocolError {
 public:
  using ProtocolError::ProtocolError;
};

// Body decoders; each throws ProtocolError on malformed input.
Value decode_control(const Frame& frame);
RunRequest decode_run(const Frame& frame);
ResultReply decode_result(const Frame& frame);
RunRange decode_run_range(const Frame& frame);
EntryMessage decode_entry(const Frame& frame);
RecordReply decode_record(const Frame& frame);  // the line is not checked here
// Throws ProtocolError when a message names a pid (`claimed`) other than
// `process`, the one the host started (see protocol.hpp, setup).
void check_sender(pid_t claimed, pid_t process);

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

  // Appending frames to the output buffer (no system call).
  void queue_control(MessageType type, const Value& body);
  void queue_run(std::uint64_t id, std::string_view analysis, std::string_view params);
  void queue_entry(std::uint64_t id, std::string_view wire);
  void queue_run_range(const RunRange& range);
  void queue_record(std::uint64_t id, double seconds, std::uint8_t outcome, std::uint8_t flags,
                    std::string_view message, std::string_view line);
  void queue_result(std::uint64_t id, double seconds, std::uint8_t outcome, std::uint8_t flags,
                    std::string_view payload);
  // An ok result, encoded straight into the output buffer.
  void queue_ok_result(std::uint64_t id, double seconds, const Value& result);
  std::size_t queued_bytes() const noexcept { return out_.size() - out_pos_; }
  // Drops what was queued after queued_bytes() returned `queued` (a frame
  // that must not go out after all).
  void drop_last_frame(std::size_t queued) noexcept { out_.resize(out_pos_ + queued); }
  bool has_queued() const noexcept { return out_pos_ < out_.size(); }

  // Blocking write of everything queued; false when the peer is gone (what
  // was queued is then dropped). `release` false keeps the buffer's memory
  // (a thread that must not free: see worker/reply_flusher.hpp).
  bool flush(bool release = true);
  // queue_control + flush.
  bool send_control(MessageType type, const Value& body);
  // Blocking: one control frame with descriptors attached to its first byte
  // (SCM_RIGHTS); anything queued before goes first. False when the peer is gone.
  bool send_control_with_fds(MessageType type, const Value& body, const int* fds, int count);
  // Whether reads collect descriptors that come attached (recvmsg); off by default.
  void accept_fds(bool on) noexcept { accept_fds_ = on; }
  // Reads keep only what process `pid` wrote (the kernel names each
  // writer: SO_PASSCRED); bytes another process that holds a copy of the
  // socket wrote (a task's escaped child, say) are dropped and counted.
  // Bytes queued before this call carry no writer and are kept.
  void only_from(pid_t pid) noexcept;
  std::uint64_t dropped_bytes() const noexcept { return dropped_bytes_; }
  // The oldest descriptor received and not taken (frames that carry them say
  // how many), or -1. The caller owns it.
  int take_fd() noexcept;
  // Writes what the socket takes now without blocking; the rest stays queued
  // (a host must never block on a worker that is itself blocked writing).
  // Returns false when the peer is gone.
  bool flush_some();
  // Forgets queued output the peer has not taken (a frame half sent stays
  // whole, so the stream remains well-formed).
  void discard_output() noexcept;

  // Non-blocking: reads what is available; false at end of stream.
  bool fill();
  // The next complete buffered frame, if any. Throws ProtocolError on garbage.
  std::optional<Frame> next_frame();
  bool has_buffered_frame() const noexcept;
  // Blocking: the next frame, or nullopt at end of stream.
  std::optional<Frame> receive();
  // Waits up to `timeout_ns` (0: only looks) for bytes to read, the end of
  // the stream or an error: true when one came (or a frame is buffered).
  bool wait_readable(std::int64_t timeout_ns);

 private:
  std::size_t begin_result(std::uint64_t id, double seconds, std::uint8_t outcome, std::uint8_t flags);
  std::size_t begin_frame(MessageType type);
  void end_frame(std::size_t start);
  void release_output() noexcept;  // after everything queued was sent
  bool read_some(bool block);
  ssize_t receive_bytes(char* into, std::size_t size, int flags, bool& dropped);

  int fd_ = -1;
  bool accept_fds_ = false;
  pid_t sender_ = 0;  // only_from; 0: anyone
  std::uint64_t dropped_bytes_ = 0;
  std::deque<int> fds_;  // received, not yet taken
  std::string in_;  // storage: unread input is [in_pos_, in_end_)
  std::string out_;
  std::size_t in_pos_ = 0;
  std::size_t in_end_ = 0;
  std::size_t out_pos_ = 0;
};

}  // namespace mathpool::detail
