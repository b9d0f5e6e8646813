#include "messages.hpp"

#include <set>

#include <fmt/format.h>

namespace mathpool::detail {
namespace {

// Reads the fields of one control message, strictly (messages.hpp).
class Fields {
 public:
  Fields(const char* message, const Frame& frame) : message_(message), map_(decode_control(frame)) {}

  const Value& any(const char* field) {
    const auto found = map_.find(field);
    if (found == map_.end()) fail(field, "is missing");
    seen_.insert(field);
    return *found;
  }
  bool has(const char* field) const { return map_.contains(field); }
  std::int64_t integer(const char* field) {
    const Value& v = any(field);
    if (!v.is_number_integer()) fail(field, "must be an integer");
    return v.get<std::int64_t>();
  }
  std::uint64_t unsigned_integer(const char* field) {
    const Value& v = any(field);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
      fail(field, "must be a non-negative integer");
    return v.get<std::uint64_t>();
  }
  pid_t pid(const char* field) {
    const std::int64_t v = integer(field);
    if (v <= 0 || v > std::int64_t(1) << 30) fail(field, "must be a process id");
    return pid_t(v);
  }
  int int32(const char* field) {
    const std::int64_t v = integer(field);
    if (v < INT32_MIN || v > INT32_MAX) fail(field, "is out of range");
    return int(v);
  }
  bool boolean(const char* field) {
    const Value& v = any(field);
    if (!v.is_boolean()) fail(field, "must be true or false");
    return v.get<bool>();
  }
  double number(const char* field) {
    const Value& v = any(field);
    if (!v.is_number()) fail(field, "must be a number");
    return v.get<double>();
  }
  std::string text(const char* field) {
    const Value& v = any(field);
    if (!v.is_string()) fail(field, "must be a string");
    return v.get<std::string>();
  }
  std::vector<std::string> texts(const char* field) {
    const Value& v = any(field);
    if (!v.is_array()) fail(field, "must be a list of strings");
    std::vector<std::string> out;
    for (const Value& item : v) {
      if (!item.is_string()) fail(field, "must be a list of strings");
      out.push_back(item.get<std::string>());
    }
    return out;
  }
  Value map(const char* field) {
    const Value& v = any(field);
    if (!v.is_object()) fail(field, "must be a map");
    return v;
  }
  Value list(const char* field) {
    const Value& v = any(field);
    if (!v.is_array()) fail(field, "must be a list");
    return v;
  }
  // Every field was read: anything else is unknown.
  void done() const {
    for (const auto& item : map_.items())
      if (!seen_.count(item.key()))
        throw ProtocolError(fmt::format("message '{}': unknown field '{}'", message_, item.key()));
  }

 private:
  [[noreturn]] void fail(const char* field, const char* what) const {
    throw ProtocolError(fmt::format("message '{}': field '{}' {}", message_, field, what));
  }
  const char* message_;
  Value map_;
  std::set<std::string> seen_;
};

}  // namespace

std::string memory_limit_note(std::int64_t bytes) {
  if (bytes <= 0) return {};
  constexpr std::int64_t kKiB = 1024, kMiB = kKiB << 10, kGiB = kMiB << 10;
  const std::string amount = bytes % kGiB == 0   ? fmt::format("{} GiB", bytes / kGiB)
                             : bytes % kMiB == 0 ? fmt::format("{} MiB", bytes / kMiB)
                             : bytes % kKiB == 0 ? fmt::format("{} KiB", bytes / kKiB)
                                                 : fmt::format("{} bytes", bytes);
  return fmt::format("; the pool's memory_limit is {} of address space per worker", amount);
}

Value HelloMessage::encode() const {
  Value v = {{"protocol", protocol},
             {"plugins", plugins},
             {"memory_limit", memory_limit},
             {"setup", setup ? Value(*setup) : Value(true)},
             {"quarantine", quarantine},
             {"isolation", isolation},
             {"allow_insecure_plugins", allow_insecure_plugins}};
  if (!mode.empty()) v["mode"] = mode;
  return v;
}

HelloMessage HelloMessage::decode(const Frame& frame) {
  Fields f("hello", frame);
  HelloMessage m;
  m.protocol = f.int32("protocol");
  if (m.protocol != kProtocolVersion) return m;  // the rest may differ: the caller refuses
  m.plugins = f.texts("plugins");
  m.memory_limit = f.integer("memory_limit");
  const Value& setup = f.any("setup");
  if (setup.is_array()) m.setup = f.texts("setup");
  else if (!setup.is_boolean() || !setup.get<bool>()) throw ProtocolError("message 'hello': field 'setup' must be true or a list of analyses");
  m.quarantine = f.map("quarantine");
  for (const auto& item : m.quarantine.items())
    if (!item.value().is_string()) throw ProtocolError("message 'hello': field 'quarantine' must map names to reasons");
  if (f.has("mode")) {
    m.mode = f.text("mode");
    if (m.mode != "zygote" && m.mode != "spawn") throw ProtocolError("message 'hello': field 'mode' must be zygote or spawn");
  }
  m.isolation = f.text("isolation");
  if (m.isolation != "worker" && m.isolation != "task")
    throw ProtocolError("message 'hello': field 'isolation' must be worker or task");
  m.allow_insecure_plugins = f.boolean("allow_insecure_plugins");
  f.done();
  return m;
}

Value ReadyMessage::encode() const {
  return {{"protocol", protocol}, {"pid", pid}, {"analyses", analyses}, {"errors", errors}, {"threads", threads}};
}

ReadyMessage ReadyMessage::decode(const Frame& frame) {
  Fields f("ready", frame);
  ReadyMessage m;
  m.protocol = f.int32("protocol");
  m.pid = f.pid("pid");
  m.analyses = f.list("analyses");
  m.errors = f.texts("errors");
  m.threads = f.int32("threads");
  f.done();
  return m;
}

Value SetupMessage::encode() const {
  Value v = {{"analysis", analysis}, {"pid", pid}};
  if (seconds) v["seconds"] = *seconds;
  return v;
}

SetupMessage SetupMessage::decode(const Frame& frame) {
  Fields f("setup", frame);
  SetupMessage m;
  m.analysis = f.text("analysis");
  m.pid = f.pid("pid");
  if (f.has("seconds")) m.seconds = f.number("seconds");
  f.done();
  return m;
}

Value RefusedMessage::encode() const { return {{"message", message}}; }

RefusedMessage RefusedMessage::decode(const Frame& frame) {
  Fields f("refused", frame);
  RefusedMessage m{f.text("message")};
  f.done();
  return m;
}

Value ForkMessage::encode() const { return {{"request", request}}; }

ForkMessage ForkMessage::decode(const Frame& frame) {
  Fields f("fork", frame);
  ForkMessage m{f.unsigned_integer("request")};
  f.done();
  return m;
}

Value ForkedMessage::encode() const { return {{"request", request}, {"pid", pid}}; }

ForkedMessage ForkedMessage::decode(const Frame& frame) {
  Fields f("forked", frame);
  ForkedMessage m;
  m.request = f.unsigned_integer("request");
  m.pid = f.pid("pid");
  f.done();
  return m;
}

Value ForkFailedMessage::encode() const { return {{"request", request}, {"message", message}, {"threads", threads}}; }

ForkFailedMessage ForkFailedMessage::decode(const Frame& frame) {
  Fields f("fork_failed", frame);
  ForkFailedMessage m;
  m.request = f.unsigned_integer("request");
  m.message = f.text("message");
  m.threads = f.int32("threads");
  f.done();
  return m;
}

Value ExitedMessage::encode() const { return {{"pid", pid}, {"status", status}}; }

ExitedMessage ExitedMessage::decode(const Frame& frame) {
  Fields f("exited", frame);
  ExitedMessage m;
  m.pid = f.pid("pid");
  m.status = f.int32("status");
  f.done();
  return m;
}

Value WatchMessage::encode() const { return {{"busy", busy}}; }

WatchMessage WatchMessage::decode(const Frame& frame) {
  Fields f("watch", frame);
  WatchMessage m{f.boolean("busy")};
  f.done();
  return m;
}

Value ExitMessage::encode() const { return Value::object(); }

ExitMessage ExitMessage::decode(const Frame& frame) {
  Fields f("exit", frame);
  f.done();
  return {};
}

}  // namespace mathpool::detail
