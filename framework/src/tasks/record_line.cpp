#include "record_line.hpp"

#include <charconv>

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

void append_record_key(std::string& out, std::string_view prefix, std::uint64_t task, int repeat) {
  char number[24];
  out += prefix;
  out.append(number, std::to_chars(number, number + sizeof number, task).ptr);
  out += ",\"repeat\":";
  out.append(number, std::to_chars(number, number + sizeof number, repeat).ptr);
  out += ',';
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

const char* record_status(const TaskError* error) noexcept {
  if (!error) return "ok";
  switch (error->kind) {
    case ErrorKind::timeout: return "timeout";
    case ErrorKind::crashed: return "crashed";
    case ErrorKind::memory: return "memory";
    default: return "error";
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
  char number[24];
  if (fields.worker) {
    out += ",\"worker\":";
    out.append(number, std::to_chars(number, number + sizeof number, tail.worker).ptr);
  }
  if (fields.seconds) {
    out += ",\"seconds\":";
    append_json_float(out, tail.seconds);
  }
  if (tail.node && fields.node) {
    out += ",\"node\":";
    append_json_string(out, *tail.node);
  }
  out += '}';
}

}  // namespace mathpool::detail
