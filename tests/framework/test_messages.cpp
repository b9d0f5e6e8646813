// The one message schema (framework/src/common/messages.hpp): every message
// round-trips, and decoding is strict: a missing, mistyped or unknown field
// is a ProtocolError naming the message and the field.
#include <gtest/gtest.h>

#include "common/messages.hpp"

namespace mathpool::detail {
namespace {

// A frame of `type` whose body is `body` encoded, as a channel would hand it out.
struct OwnedFrame {
  std::string bytes;
  Frame frame;
  OwnedFrame(MessageType type, const Value& body) {
    append_msgpack(bytes, body);
    frame = Frame{type, bytes};
  }
};

template <typename Message>
Message round_trip(MessageType type, const Message& message) {
  OwnedFrame owned(type, message.encode());
  return Message::decode(owned.frame);
}

template <typename Message>
std::string refused(MessageType type, const Value& body) {
  OwnedFrame owned(type, body);
  try {
    (void)Message::decode(owned.frame);
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "";
}

TEST(Messages, EveryMessageRoundTrips) {
  HelloMessage hello;
  hello.plugins = {"/a/p.so", "/b/q.so"};
  hello.memory_limit = 1 << 30;
  hello.setup = std::vector<std::string>{"x.y"};
  hello.quarantine = {{"x.z", "crashed twice"}};
  hello.mode = "zygote";
  hello.isolation = "task";
  hello.allow_insecure_plugins = true;
  const HelloMessage h = round_trip(MessageType::hello, hello);
  EXPECT_EQ(h.plugins, hello.plugins);
  EXPECT_EQ(h.memory_limit, hello.memory_limit);
  EXPECT_EQ(h.setup, hello.setup);
  EXPECT_EQ(h.quarantine, hello.quarantine);
  EXPECT_EQ(h.mode, "zygote");
  EXPECT_EQ(h.isolation, "task");
  EXPECT_TRUE(h.allow_insecure_plugins);
  EXPECT_FALSE(round_trip(MessageType::hello, HelloMessage{}).setup.has_value());

  ReadyMessage ready;
  ready.pid = 42;
  ready.analyses = Value::array({Value{{"name", "a.b"}}});
  ready.errors = {"cannot load"};
  ready.threads = 3;
  const ReadyMessage r = round_trip(MessageType::ready, ready);
  EXPECT_EQ(r.threads, 3);
  EXPECT_EQ(r.pid, 42);
  EXPECT_EQ(r.analyses, ready.analyses);
  EXPECT_EQ(r.errors, ready.errors);

  EXPECT_EQ(round_trip(MessageType::setup, SetupMessage{"a.b", 7, 0.5}).seconds, 0.5);
  EXPECT_FALSE(round_trip(MessageType::setup, SetupMessage{"a.b", 7, {}}).seconds);
  EXPECT_EQ(round_trip(MessageType::refused, RefusedMessage{"no"}).message, "no");
  EXPECT_EQ(round_trip(MessageType::fork, ForkMessage{9}).request, 9u);
  EXPECT_EQ(round_trip(MessageType::forked, ForkedMessage{9, 1234}).pid, 1234);
  EXPECT_EQ(round_trip(MessageType::fork_failed, ForkFailedMessage{9, "EMFILE"}).message, "EMFILE");
  const ExitedMessage exited = round_trip(MessageType::exited, ExitedMessage{1234, 139});
  EXPECT_EQ(exited.pid, 1234);
  EXPECT_EQ(exited.status, 139);
  EXPECT_TRUE(round_trip(MessageType::watch, WatchMessage{true}).busy);
  round_trip(MessageType::exit, ExitMessage{});
}

TEST(Messages, AnUnknownFieldIsRefusedByName) {
  Value body = ForkedMessage{1, 2}.encode();
  body["pdi"] = 3;
  const std::string what = refused<ForkedMessage>(MessageType::forked, body);
  EXPECT_NE(what.find("'forked'"), std::string::npos) << what;
  EXPECT_NE(what.find("'pdi'"), std::string::npos) << what;
  EXPECT_NE(refused<ExitMessage>(MessageType::exit, Value{{"now", true}}).find("'now'"), std::string::npos);
}

TEST(Messages, AMissingFieldIsRefusedByName) {
  const std::string what = refused<ExitedMessage>(MessageType::exited, Value{{"pid", 5}});
  EXPECT_NE(what.find("'exited'"), std::string::npos) << what;
  EXPECT_NE(what.find("'status'"), std::string::npos) << what;
  EXPECT_NE(refused<ReadyMessage>(MessageType::ready, Value{{"protocol", 3}, {"pid", 5}, {"analyses", Value::array()}})
                .find("'errors'"),
            std::string::npos);
}

TEST(Messages, AMistypedFieldIsRefusedByName) {
  EXPECT_NE(refused<WatchMessage>(MessageType::watch, Value{{"busy", 1}}).find("'busy'"), std::string::npos);
  EXPECT_NE(refused<SetupMessage>(MessageType::setup, Value{{"analysis", 3}, {"pid", 5}}).find("'analysis'"),
            std::string::npos);
  EXPECT_NE(refused<ForkedMessage>(MessageType::forked, Value{{"request", 1}, {"pid", -4}}).find("'pid'"),
            std::string::npos);
  EXPECT_NE(refused<ForkMessage>(MessageType::fork, Value{{"request", -1}}).find("'request'"), std::string::npos);
  Value hello = HelloMessage{}.encode();
  hello["isolation"] = "thread";
  EXPECT_NE(refused<HelloMessage>(MessageType::hello, hello).find("'isolation'"), std::string::npos);
  hello = HelloMessage{}.encode();
  hello["setup"] = false;
  EXPECT_NE(refused<HelloMessage>(MessageType::hello, hello).find("'setup'"), std::string::npos);
}

TEST(Messages, ABodyThatIsNotAMapIsRefused) {
  EXPECT_FALSE(refused<ForkMessage>(MessageType::fork, Value::array({1, 2})).empty());
  EXPECT_FALSE(refused<ExitMessage>(MessageType::exit, Value(7)).empty());
}

TEST(Messages, AHelloOfAnotherProtocolDecodesItsVersionOnly) {
  // So that the worker can refuse it in words, whatever else changed.
  const HelloMessage other = HelloMessage::decode(OwnedFrame(MessageType::hello, Value{{"protocol", 99}}).frame);
  EXPECT_EQ(other.protocol, 99);
}

}  // namespace
}  // namespace mathpool::detail
