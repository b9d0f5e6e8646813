#include "run_ranges.hpp"

#include <new>

#include <fmt/format.h>

#include "protocol.hpp"
#include "record_line.hpp"

namespace mathpool::detail {

namespace {

// A record's bytes and its result's MessagePack (the worker's main thread
// only). Made at start-up and given room on the worker's first range, so a
// task's own process (isolation: task) neither registers a thread-local
// destructor nor grows them: each page a forked process writes is copied.
std::string line_bytes, result_bytes;
constexpr std::size_t kRecordRoom = 4096;

}  // namespace

void HeldEntries::add(const EntryMessage& message) {
  if (held_.count(message.id)) throw ProtocolError("a run entry sent twice");
  held_.emplace(message.id, RunEntry::decode(message.id, message.wire));
  order_.push_back(message.id);
  if (order_.size() > kKeptEntries) {
    held_.erase(order_.front());
    order_.pop_front();
  }
}

const RunEntry& HeldEntries::find(std::uint64_t id) const {
  const auto at = held_.find(id);
  if (at == held_.end()) throw ProtocolError("a range of a run entry the worker does not hold");
  return at->second;
}

void ActiveRange::start(const RunEntry& entry, const RunRange& range) {
  if (range.first_index + range.count > entry.tasks()) throw ProtocolError("a range past its run entry's tasks");
  if (!entry_ || entry_->id() != entry.id()) encoded_task_ = UINT64_MAX;
  if (line_bytes.capacity() < kRecordRoom) {
    line_bytes.reserve(kRecordRoom);
    result_bytes.reserve(kRecordRoom);
  }
  entry_ = &entry;
  next_id_ = range.first_id;
  next_index_ = range.first_index;
  left_ = range.count;
}

RunRequest ActiveRange::next() {
  RunRequest request;
  request.id = next_id_++;
  request.index = next_index_++;
  --left_;
  request.entry = entry_;
  request.analysis = entry_->analysis();
  if (const std::uint64_t task = entry_->task_of(request.index); task != encoded_task_) {
    params_.clear();
    labels_.clear();
    entry_->encode(request.index, params_, labels_);
    encoded_task_ = task;
  }
  request.params = params_;
  request.labels = labels_;
  return request;
}

std::string memory_error_note;

TaskError encoding_out_of_memory() {
  return TaskError{ErrorKind::memory, "the worker ran out of memory encoding the result" + memory_error_note};
}

void queue_record(Channel& channel, const RunRequest& request, double seconds, std::optional<Outcome>& outcome,
                  std::optional<TaskError>& error, std::uint8_t& flags, pid_t worker) {
  const RunEntry& entry = *request.entry;
  constexpr std::size_t kResultFrameHead = 23, kRecordFrameHead = 27;
  // The record line for a tail: the task's head, then the tail (status,
  // result or error, worker, seconds).
  auto write_line = [&](RecordTail& tail) {
    line_bytes.clear();
    entry.append_head(line_bytes, request.index, request.params, request.labels);
    tail.worker = worker;
    tail.seconds = seconds;
    append_record_tail(line_bytes, tail, entry.fields());
  };
  // Most records: the result written as JSON straight from its value. A
  // value's MessagePack is never more than 3 times its JSON (a float such as
  // 0.1: 9 bytes against 3), so a line this short passes both limits below
  // without encoding it (its MessagePack and transcoding it were ~3.8 us of a
  // degree-16 task's ~5 us of record: perf, 1 worker).
  if (!error && entry.fields().result) {
    bool fast = false;
    try {
      RecordTail tail;
      tail.result_value = &outcome->result;
      write_line(tail);
      fast = kResultFrameHead + 3 * line_bytes.size() <= kMaxFrameBytes;
    } catch (const std::bad_alloc&) {
      std::string().swap(line_bytes);  // freed (an assignment keeps the room); the way below says what ran out
    }
    if (fast) return channel.queue_record(request.id, seconds, 0, flags, std::string_view(), line_bytes);
  }
  for (;;) {
    try {
      result_bytes.clear();
      RecordTail tail;
      if (error) {
        tail.error = &*error;
      } else {
        append_msgpack(result_bytes, outcome->result);
        tail.result = result_bytes;
      }
      // The limit as a result frame has it (its MessagePack, 23 bytes of frame
      // around it), so a task's record is the same whichever way it travelled;
      // and a record line must fit a frame too.
      if (!error && kResultFrameHead + result_bytes.size() > kMaxFrameBytes) {
        error = TaskError{ErrorKind::result_too_large,
                          fmt::format("the result's encoding ({} bytes) exceeds the limit of {} bytes",
                                      kResultFrameHead + result_bytes.size(), kMaxFrameBytes)};
      } else {
        write_line(tail);
        const std::size_t frame = kRecordFrameHead + (error ? error->message.size() : 0) + line_bytes.size();
        if (frame <= kMaxFrameBytes) break;
        // (Parameters are at most a run entry's bytes: a record of this error fits.)
        if (error && error->kind == ErrorKind::result_too_large) break;
        error = TaskError{ErrorKind::result_too_large,
                          fmt::format("the result's record ({} bytes) exceeds the limit of {} bytes", frame,
                                      kMaxFrameBytes)};
      }
    } catch (const std::bad_alloc&) {
      if (error && error->kind == ErrorKind::memory) throw;
      error = encoding_out_of_memory();
      flags |= kRetire;
    }
    outcome.reset();
    std::string().swap(line_bytes);  // freed: an assignment of an empty string keeps the room
    std::string().swap(result_bytes);
  }
  channel.queue_record(request.id, seconds, error ? std::uint8_t(1 + int(error->kind)) : 0, flags,
                       error ? std::string_view(error->message) : std::string_view(), line_bytes);
}

}  // namespace mathpool::detail
