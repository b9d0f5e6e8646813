#include "record_line.hpp"

#include <charconv>
#include <cstring>

#include "msgpack_json.hpp"

namespace mathpool::detail {

std::string record_prefix(std::string_view run, std::string_view analysis, const RecordFields& fields) {
  std::string prefix = "{\"run\":";
  append_json_string(prefix, run);
  if (fields.analysis) {
    prefix += ",\"analysis\":";
    append_json_string(prefix, analysis);
  }
  prefix += ",\"task\":";
  return prefix;
}

namespace {
// Appends a number's digits (append with two pointers is a replace(): slower).
void append_number(std::string& out, auto v) {
  char number[24];
  out.append(number, std::size_t(std::to_chars(number, number + sizeof number, v).ptr - number));
}
}  // namespace

std::size_t write_record_key_rest(char (&out)[kRecordKeyRestBytes], std::uint64_t task, int repeat) noexcept {
  char* end = std::to_chars(out, out + 20, task).ptr;
  std::memcpy(end, ",\"repeat\":", 10);
  end = std::to_chars(end + 10, end + 21, repeat).ptr;  // an int: at most 11 bytes with a sign
  *end++ = ',';
  return std::size_t(end - out);
}

void append_record_key(std::string& out, std::string_view prefix, std::uint64_t task, int repeat) {
  char rest[kRecordKeyRestBytes];
  out += prefix;
  out.append(rest, write_record_key_rest(rest, task, repeat));
}

void append_record_head(std::string& out, std::string_view prefix, std::uint64_t task, int repeat,
                        std::string_view params, const RecordFields& fields, std::string_view labels) {
  append_record_key(out, prefix, task, repeat);
  if (fields.params) {
    out += "\"params\":";
    append_msgpack_json(out, params);
    out += ',';
  }
  if (fields.labels && !labels.empty()) {
    out += "\"labels\":";
    append_msgpack_json(out, labels);
    out += ',';
  }
  // the record goes on with its tail
}

std::size_t status_index(const TaskError* error) noexcept {
  if (!error) return 0;
  switch (error->kind) {
    case ErrorKind::timeout: return 2;
    case ErrorKind::crashed: return 3;
    case ErrorKind::memory: return 4;
    default: return 1;
  }
}

void append_record_tail(std::string& out, const RecordTail& tail, const RecordFields& fields) {
  out += "\"status\":\"";
  out += record_status(tail.error);
  out += '"';
  if (!tail.error) {
    if (fields.result) {
      out += ",\"result\":";
      if (tail.result_value) append_value_json(out, *tail.result_value);
      else append_msgpack_json(out, tail.result);
    }
  } else if (fields.error) {
    out += ",\"error\":{\"kind\":\"";
    out += to_string(tail.error->kind);
    out += "\",\"message\":";
    append_json_string(out, tail.error->message);
    out += '}';
  }
  if (fields.worker) {
    out += ",\"worker\":";
    append_number(out, tail.worker);
  }
  if (fields.seconds) {
    out += ",\"seconds\":";
    append_json_seconds(out, tail.seconds);
  }
  if (tail.node && fields.node) {
    out += ",\"node\":";
    append_json_string(out, *tail.node);
  }
  out += '}';
}

}  // namespace mathpool::detail
