// messages.hpp: the one schema of the control messages (protocol.hpp gives
// the frame layout and who sends what). Each message is a struct that
// encodes itself as a MessagePack map and decodes strictly: a missing field,
// a field of the wrong type or an unknown field is a ProtocolError naming the
// message and the field. Run and result frames are binary (channel.hpp).
//
// Plain value types; thread-compatible.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "channel.hpp"

namespace mathpool::detail {

// host -> worker or supervisor: what to load and how to run.
struct HelloMessage {
  int protocol = kProtocolVersion;
  std::vector<std::string> plugins;
  std::int64_t memory_limit = 0;
  // Analyses whose setups run now: all (nullopt) or those named.
  std::optional<std::vector<std::string>> setup;
  Value quarantine = Value::object();  // {analysis: reason}
  std::string mode;                    // "zygote" | "spawn" for a supervisor; "" for a worker
  std::string isolation = "worker";    // "worker" | "task"
  bool allow_insecure_plugins = false;

  Value encode() const;
  static HelloMessage decode(const Frame& frame);
};

// What a memory error adds when the pool has a memory_limit (`bytes` > 0):
// "; the pool's memory_limit is 512 MiB of address space per worker".
// Empty without one.
std::string memory_limit_note(std::int64_t bytes);

// process -> host: loaded and set up.
struct ReadyMessage {
  int protocol = kProtocolVersion;
  pid_t pid = 0;
  Value analyses = Value::array();  // the catalogue (describe() of each analysis)
  std::vector<std::string> errors;  // plugins that failed to load
  // Threads running in the process when it sent this (a zygote template
  // with more than one cannot fork safely: the host spawns workers instead).
  int threads = 1;

  Value encode() const;
  static ReadyMessage decode(const Frame& frame);
};

// process -> host: a setup begins (no seconds) or has run (its cost).
struct SetupMessage {
  std::string analysis;
  pid_t pid = 0;
  std::optional<double> seconds;

  Value encode() const;
  static SetupMessage decode(const Frame& frame);
};

// process -> host: it will not serve this host.
struct RefusedMessage {
  std::string message;

  Value encode() const;
  static RefusedMessage decode(const Frame& frame);
};

// host -> supervisor: make one worker.
struct ForkMessage {
  std::uint64_t request = 0;

  Value encode() const;
  static ForkMessage decode(const Frame& frame);
};

// supervisor -> host: the worker of a request (its channel and pidfd ride
// on the frame, SCM_RIGHTS).
struct ForkedMessage {
  std::uint64_t request = 0;
  pid_t pid = 0;

  Value encode() const;
  static ForkedMessage decode(const Frame& frame);
};

// supervisor -> host: the request could not be served.
struct ForkFailedMessage {
  std::uint64_t request = 0;
  std::string message;
  // > 1: refused because the template has threads running (forking it is
  // unsafe); the host then spawns workers instead.
  int threads = 0;

  Value encode() const;
  static ForkFailedMessage decode(const Frame& frame);
};

// supervisor -> host: a worker it made has ended.
struct ExitedMessage {
  pid_t pid = 0;
  int status = 0;  // the wait status

  Value encode() const;
  static ExitedMessage decode(const Frame& frame);
};

// host -> supervisor: whether tasks are in flight.
struct WatchMessage {
  bool busy = false;

  Value encode() const;
  static WatchMessage decode(const Frame& frame);
};

// host -> process: finish and exit.
struct ExitMessage {
  Value encode() const;
  static ExitMessage decode(const Frame& frame);
};

// Sends a message struct on `channel` as a control frame of its type.
template <typename Message>
void queue_message(Channel& channel, MessageType type, const Message& message) {
  channel.queue_control(type, message.encode());
}

}  // namespace mathpool::detail
