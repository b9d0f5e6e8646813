#include <fcntl.h>
#include <unistd.h>

#include <fstream>

#include "mathpool/run.hpp"

namespace mathpool {
namespace {

// Integers past signed 64 bits become strings, as SPEC.md requires.
void stringify_big_integers(Value& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(INT64_MAX)) v = std::to_string(u);
  } else if (v.is_structured()) {
    for (auto& item : v) stringify_big_integers(item);
  }
}

}  // namespace

namespace {

Value outcome_fields(TaskResult result) {
  Value fields = {{"status", result.status()}};
  if (result.ok()) {
    fields["result"] = std::move(result.result);
  } else {
    fields["error"] = {{"kind", std::string(to_string(result.error->kind))},
                       {"message", result.error->message}};
  }
  fields["worker"] = result.worker;
  fields["seconds"] = result.seconds;
  return fields;
}

}  // namespace

Value make_record(const TaskPlan& task, TaskResult result) {
  Value record = {{"run", task.run},       {"analysis", task.analysis}, {"task", task.task},
                  {"repeat", task.repeat}, {"params", task.params}};
  Value outcome = outcome_fields(std::move(result));
  for (auto& [key, value] : outcome.items()) record[key] = std::move(value);
  return record;
}

namespace {

bool has_big_integers(const Value& v) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX);
  if (v.is_structured())
    for (const auto& item : v)
      if (has_big_integers(item)) return true;
  return false;
}

// Appends `v` as record JSON; copies only when a big integer must become a string.
void append_json(std::string& out, const Value& v) {
  if (has_big_integers(v)) {
    Value copy = v;
    stringify_big_integers(copy);
    out += copy.dump(-1, ' ', false, Value::error_handler_t::replace);
  } else {
    out += v.dump(-1, ' ', false, Value::error_handler_t::replace);
  }
}

void append_string(std::string& out, const std::string& text) {
  out += Value(text).dump(-1, ' ', false, Value::error_handler_t::replace);
}

}  // namespace

// Built by hand rather than as a Value: this runs once per task on the host's
// hot path. The record tests check it against format_record(make_record()).
std::string record_head(const TaskPlan& task) {
  std::string head = "{\"run\":";
  append_string(head, task.run);
  head += ",\"analysis\":";
  append_string(head, task.analysis);
  head += ",\"task\":" + std::to_string(task.task) + ",\"repeat\":" + std::to_string(task.repeat);
  head += ",\"params\":";
  append_json(head, task.params);
  head += ',';  // the record goes on with record_tail
  return head;
}

std::string record_tail(TaskResult result) {
  std::string tail = "\"status\":\"";
  tail += result.status();
  if (result.ok()) {
    tail += "\",\"result\":";
    append_json(tail, result.result);
  } else {
    tail += "\",\"error\":{\"kind\":\"";
    tail += to_string(result.error->kind);
    tail += "\",\"message\":";
    append_string(tail, result.error->message);
    tail += '}';
  }
  tail += ",\"worker\":" + std::to_string(result.worker) + ",\"seconds\":";
  tail += Value(result.seconds).dump();
  tail += '}';
  return tail;
}

std::string format_record(Value record) {
  stringify_big_integers(record);
  return record.dump(-1, ' ', false, Value::error_handler_t::replace);
}

std::set<RecordKey> read_finished_records(const std::filesystem::path& output) {
  std::set<RecordKey> done;
  std::ifstream in(output, std::ios::binary);
  if (!in) return done;
  std::string line;
  std::streamoff good_end = 0;
  bool cut = false;
  for (int number = 1; std::getline(in, line); ++number) {
    if (in.eof()) {  // no newline: a line cut short by a killed writer
      cut = true;
      break;
    }
    Value record = Value::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object() || !record.contains("run") ||
        !record.contains("task") || !record.contains("repeat"))
      throw std::runtime_error(output.string() + ":" + std::to_string(number) +
                               ": not a result record; refusing to resume into this file");
    good_end += static_cast<std::streamoff>(line.size()) + 1;
    done.emplace(record["run"].get<std::string>(), record["task"].get<std::size_t>(),
                 record["repeat"].get<int>());
  }
  if (cut) {
    in.close();
    if (::truncate(output.c_str(), good_end) != 0) throw std::runtime_error("cannot repair " + output.string());
  }
  return done;
}

}  // namespace mathpool
