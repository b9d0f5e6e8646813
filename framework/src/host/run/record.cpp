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

void detail::append_record_tail(std::string& out, const RawResult& result, const RecordFields& fields) {
  RecordTail tail;
  if (result.error) tail.error = &*result.error;
  else tail.result = result.payload;
  tail.worker = result.worker;
  tail.seconds = result.seconds;
  tail.node = result.node;
  append_record_tail(out, tail, fields);
}

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
