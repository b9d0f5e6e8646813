#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <fstream>

#include <stdexcept>

#include <fmt/format.h>

#include "mathpool/run.hpp"
#include "run_steps.hpp"
#include "output.hpp"
#include "record.hpp"

namespace mathpool {

// Every record byte goes through one writer (msgpack_json.cpp), whether it
// comes from a Value or straight from a worker's bytes.

Value make_record(const TaskPlan& task, TaskResult result) {
  Value record = {{"run", task.run},       {"analysis", task.analysis}, {"task", task.task},
                  {"repeat", task.repeat}, {"params", task.params},     {"status", result.status()}};
  if (result.ok()) {
    record["result"] = std::move(result.result);
  } else {
    record["error"] = {{"kind", std::string(to_string(result.error->kind))}, {"message", result.error->message}};
  }
  record["worker"] = result.worker;
  record["seconds"] = result.seconds;
  if (!result.node.empty()) record["node"] = result.node;
  return record;
}

std::string format_record(Value record) {
  std::string line;
  detail::append_value_json(line, record);
  return line;
}

std::string record_head(const TaskPlan& task) {
  detail::Bytes params;
  detail::append_msgpack(params, task.params);
  std::string head;
  detail::append_record_head(head, detail::record_prefix(task.run, task.analysis), task.task, task.repeat, params);
  return head;
}

std::string record_tail(TaskResult result) {
  detail::RawResult raw;
  raw.error = std::move(result.error);
  raw.worker = result.worker;
  raw.seconds = result.seconds;
  if (!raw.error) detail::append_msgpack(raw.payload, result.result);
  std::string tail;
  detail::append_record_tail(tail, raw);
  return tail;
}

namespace detail {

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

void append_record_head(std::string& out, std::string_view prefix, std::uint64_t task, int repeat,
                        std::string_view params, const RecordFields& fields, std::string_view labels) {
  char number[24];
  out += prefix;
  out.append(number, std::to_chars(number, number + sizeof number, task).ptr);
  out += ",\"repeat\":";
  out.append(number, std::to_chars(number, number + sizeof number, repeat).ptr);
  if (fields.params) {
    out += ",\"params\":";
    append_msgpack_json(out, params);
  }
  if (fields.labels && !labels.empty()) {
    out += ",\"labels\":";
    append_msgpack_json(out, labels);
  }
  out += ',';  // the record goes on with its tail
}

void append_record_tail(std::string& out, const RawResult& result, const RecordFields& fields) {
  out += "\"status\":\"";
  if (!result.error) {
    out += "ok\"";
    if (fields.result) {
      out += ",\"result\":";
      append_msgpack_json(out, result.payload);
    }
  } else {
    TaskResult status_only;
    status_only.error = TaskError{result.error->kind, {}};
    out += status_only.status();
    out += '"';
    if (fields.error) {
      out += ",\"error\":{\"kind\":\"";
      out += to_string(result.error->kind);
      out += "\",\"message\":";
      append_json_string(out, result.error->message);
      out += '}';
    }
  }
  char number[24];
  if (fields.worker) {
    out += ",\"worker\":";
    out.append(number, std::to_chars(number, number + sizeof number, result.worker).ptr);
  }
  if (fields.seconds) {
    out += ",\"seconds\":";
    append_json_float(out, result.seconds);
  }
  if (result.node && fields.node) {
    out += ",\"node\":";
    append_json_string(out, *result.node);
  }
  out += '}';
}

}  // namespace detail

std::set<RecordKey> read_finished_records(const std::filesystem::path& output) {
  std::set<RecordKey> done;
  detail::for_each_record_line(output, [&](const std::string& line, int number) {
    const Value record = Value::parse(line, nullptr, false);
    const auto field = [&](const char* key) { return record.is_object() ? record.find(key) : record.end(); };
    const auto run = field("run"), task = field("task"), repeat = field("repeat");
    if (record.is_discarded() || !record.is_object() || run == record.end() || !run->is_string() ||
        task == record.end() || !task->is_number_unsigned() || repeat == record.end() ||
        !repeat->is_number_unsigned())
      throw ConfigError(output.string() + ":" + std::to_string(number) +
                        ": not a result record; refusing to resume into this file");
    done.emplace(run->get<std::string>(), task->get<std::size_t>(), repeat->get<int>());
  });
  return done;
}

void detail::for_each_record_line(const std::filesystem::path& file,
                                  const std::function<void(const std::string& line, int number)>& record) {
  if (is_zstd_name(file)) {
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) return;
    zstd_complete_size(file);  // cuts off a partial last frame
    for_each_zstd_line(file, record);
    return;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return;
  std::string line;
  std::streamoff good_end = 0;
  for (int number = 1; std::getline(in, line); ++number) {
    if (in.eof()) {  // no newline: a line cut short by a killed writer
      in.close();
      if (::truncate(file.c_str(), good_end) != 0)
        throw std::runtime_error(file.string() + ": cannot cut off its partial last line");
      return;
    }
    record(line, number);
    good_end += static_cast<std::streamoff>(line.size()) + 1;
  }
}

std::uint64_t detail::record_bytes(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return 0;
  if (is_zstd_name(file)) return zstd_complete_size(file);
  const auto size = std::filesystem::file_size(file, ec);
  return ec ? 0 : size;
}

}  // namespace mathpool
