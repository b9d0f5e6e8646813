// Any bytes arriving on a channel decode to messages or raise ProtocolError;
// nothing else may escape, crash or hang.
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>

#include "common/channel.hpp"
#include "common/messages.hpp"
#include "tasks/json_check.hpp"
#include "tasks/run_entry.hpp"
#include "strict_value.hpp"  // tests/framework

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return 0;
  if (size > 0 && ::write(fds[1], data, size) != static_cast<ssize_t>(size)) {
    close(fds[0]);
    close(fds[1]);
    return 0;
  }
  close(fds[1]);
  mathpool::detail::Channel channel(fds[0]);
  // Every frame is decoded as the host would: control bodies into values,
  // results checked and written as record JSON.
  auto consume = [](const mathpool::detail::Frame& frame) {
    using mathpool::detail::MessageType;
    std::string json;
    if (frame.type == MessageType::result) {
      const auto reply = mathpool::detail::decode_result(frame);
      if (reply.outcome == 0) {
        mathpool::detail::append_msgpack_json(json, reply.payload);
        // Our reader (msgpack_to_value) must take what nlohmann's took, as
        // nlohmann took it: the same types all the way down.
        const mathpool::Value ours = mathpool::detail::msgpack_to_value(reply.payload);
        const auto* p = reinterpret_cast<const std::uint8_t*>(reply.payload.data());
        const mathpool::Value theirs = mathpool::Value::from_msgpack(p, p + reply.payload.size(), true, false);
        if (!mathpool::test::identical(ours, theirs)) __builtin_trap();
        // And a value is written as record JSON as its MessagePack would be.
        std::string direct, transcoded;
        mathpool::detail::append_value_json(direct, ours);
        mathpool::Value::to_msgpack(ours, transcoded);
        std::string via;
        mathpool::detail::append_msgpack_json(via, transcoded);
        if (direct != via) __builtin_trap();
      }
    } else if (frame.type == MessageType::run) {
      (void)mathpool::detail::decode_run(frame);
    } else if (frame.type == MessageType::run_range) {
      (void)mathpool::detail::decode_run_range(frame);
    } else if (frame.type == MessageType::entry) {
      // As a worker reads a run entry, and makes a task's parameters and record head from it.
      const auto message = mathpool::detail::decode_entry(frame);
      const auto entry = mathpool::detail::RunEntry::decode(message.id, message.wire);
      if (entry.tasks() > 0) {
        std::string params, labels, head;
        entry.encode(entry.tasks() - 1, params, labels);
        entry.append_head(head, entry.tasks() - 1, params, labels);
      }
    } else if (frame.type == MessageType::record) {
      const auto reply = mathpool::detail::decode_record(frame);
      (void)mathpool::detail::is_json_object(reply.line);
    } else {
      // Through the one schema (messages.hpp), strictly, as the host and the
      // worker decode them.
      using namespace mathpool::detail;
      switch (frame.type) {
        case MessageType::hello: (void)HelloMessage::decode(frame); break;
        case MessageType::ready: (void)ReadyMessage::decode(frame); break;
        case MessageType::setup: (void)SetupMessage::decode(frame); break;
        case MessageType::refused: (void)RefusedMessage::decode(frame); break;
        case MessageType::fork: (void)ForkMessage::decode(frame); break;
        case MessageType::forked: (void)ForkedMessage::decode(frame); break;
        case MessageType::fork_failed: (void)ForkFailedMessage::decode(frame); break;
        case MessageType::exited: (void)ExitedMessage::decode(frame); break;
        case MessageType::watch: (void)WatchMessage::decode(frame); break;
        case MessageType::exit: (void)ExitMessage::decode(frame); break;
        default: break;
      }
    }
  };
  try {
    while (channel.fill()) {
      while (auto frame = channel.next_frame()) consume(*frame);
    }
    while (auto frame = channel.next_frame()) consume(*frame);
  } catch (const mathpool::detail::ProtocolError&) {
  }
  return 0;
}
