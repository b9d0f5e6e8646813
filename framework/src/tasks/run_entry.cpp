#include "run_entry.hpp"

#include <cstring>

#include "json_check.hpp"
#include "record_line.hpp"
#include "sweep.hpp"
#include "wire.hpp"

namespace mathpool::detail {
namespace {

std::uint64_t field_bits(const RecordFields& f) {
  return std::uint64_t(f.analysis) | std::uint64_t(f.params) << 1 | std::uint64_t(f.labels) << 2 |
         std::uint64_t(f.result) << 3 | std::uint64_t(f.error) << 4 | std::uint64_t(f.worker) << 5 |
         std::uint64_t(f.seconds) << 6 | std::uint64_t(f.node) << 7;
}
RecordFields fields_of(std::uint64_t b) {
  return {bool(b & 1), bool(b & 2), bool(b & 4), bool(b & 8), bool(b & 16), bool(b & 32), bool(b & 64), bool(b & 128)};
}

}  // namespace

RunEntry::RunEntry(std::uint64_t id, const AnalysisEntry& entry, const RecordFields& fields)
    : id_(id), fields_(fields), prefix_(record_prefix(entry.name, entry.analysis, fields)), tasks_(entry.task_count()) {
  entry_.name = entry.name;
  entry_.analysis = entry.analysis;
  entry_.params = entry.params;
  entry_.sweep = entry.sweep;
  entry_.repeat = entry.repeat;
  WireWriter out(wire_);
  out.bytes(entry.name);
  out.bytes(entry.analysis);
  std::string params;
  append_msgpack(params, entry.params);
  out.bytes(params);
  out.u64(std::uint64_t(entry.repeat));
  out.u64(field_bits(fields));
  out.u64(entry.sweep.size());
  for (const SweepAxis& axis : entry.sweep) write_axis(axis, out);
}

RunEntry RunEntry::decode(std::uint64_t id, std::string_view wire, bool keep_wire) {
  RunEntry e;
  e.id_ = id;
  WireReader in(wire);
  e.entry_.name.assign(in.bytes());
  e.entry_.analysis.assign(in.bytes());
  e.entry_.params = msgpack_to_value(in.bytes());
  if (!e.entry_.params.is_object()) throw ProtocolError("run entry: its fixed parameters are not a map");
  const std::uint64_t repeat = in.u64();
  if (repeat == 0 || repeat > std::uint64_t(INT32_MAX)) throw ProtocolError("run entry: a repeat out of range");
  e.entry_.repeat = int(repeat);
  e.fields_ = fields_of(in.u64());
  for (std::uint64_t n = in.count(); n > 0; --n) e.entry_.sweep.push_back(read_axis(in));
  if (!in.done()) throw ProtocolError("run entry: bytes after its end");
  const std::vector<SweepAxis>& sweep = e.entry_.sweep;
  for (std::size_t a = 0; a < sweep.size(); ++a) {
    if (sweep[a].size() == 0 || sweep[a].size() == UINT64_MAX) throw ProtocolError("run entry: an axis empty or too large");
    // A words axis's length comes from an earlier axis, a length for each of its values.
    if (const auto by = sweep[a].length_axis();
        by && (*by >= a || sweep[*by].length_axis() || axis_lengths(sweep[a]) != sweep[*by].size()))
      throw ProtocolError("run entry: a length axis that does not fit");
  }
  // Tasks are found by dividing by the axes' sizes: their product must be exact.
  if (e.entry_.parameter_sets() == UINT64_MAX || e.entry_.task_count() == UINT64_MAX)
    throw ProtocolError("run entry: too many tasks to count");
  e.prefix_ = record_prefix(e.entry_.name, e.entry_.analysis, e.fields_);
  e.tasks_ = e.entry_.task_count();
  if (keep_wire) e.wire_.assign(wire);
  return e;
}

void RunEntry::encode(std::uint64_t index, std::string& params, std::string& labels) const {
  entry_.encode_task(task_of(index), params, labels);
}

void RunEntry::append_head(std::string& out, std::uint64_t index, std::string_view params,
                           std::string_view labels) const {
  append_record_head(out, prefix_, task_of(index), repeat_of(index), params, fields_, labels);
}

void RunEntry::check_record(std::uint64_t index, std::string_view line) const {
  // The key as append_head() writes it, compared in place: the entry's prefix,
  // then the task's numbers from a buffer on the stack (a key built in a
  // string per record, and compared by a call, cost a tenth of the host's
  // time per echo task).
  char rest[kRecordKeyRestBytes];
  const std::size_t n = write_record_key_rest(rest, task_of(index), repeat_of(index)), key = prefix_.size() + n;
  if (line.size() < key || std::memcmp(line.data(), prefix_.data(), prefix_.size()) != 0 ||
      std::memcmp(line.data() + prefix_.size(), rest, n) != 0)
    throw ProtocolError("a record that does not begin as its task's (run, analysis, task, repeat)");
  // The key is this host's own bytes, a well-formed start of an object
  // ending in a member and its ','; what follows must complete it.
  if (!is_record_tail(line.substr(key)))
    throw ProtocolError("a record that is not one JSON object with a record's members");
}

}  // namespace mathpool::detail
