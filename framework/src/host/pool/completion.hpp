// completion.hpp: how a finished task leaves the dispatcher. A result stays
// bytes (RawResult) until whoever consumes it decides: a run writes a task's
// record line as its worker wrote it (or from the bytes, for a task no worker
// answered); a TaskResult decodes them into a Value on the consumer's thread,
// not the dispatcher's.
#pragma once

#include <cstdint>
#include <future>
#include <optional>

#include "msgpack_json.hpp"
#include "mathpool/pool.hpp"

namespace mathpool::detail {

// The outcome of one task as the worker sent it. Plain value type.
struct RawResult {
  std::optional<TaskError> error;  // set when the task did not succeed
  // The MessagePack result when ok (checked); for a task of a run entry
  // answered by its worker, the task's whole record line (checked), ok or not.
  Bytes payload;
  bool line = false;
  int worker = 0;
  double seconds = 0;
  int attempts = 0;
  // The host name of the machine that ran the task, in a pool across MPI
  // ranks (owned by that pool, which outlives the result); else nullptr.
  const std::string* node = nullptr;
};

// Clears a result for reuse: its payload's room is kept, unless large (a
// result of megabytes must not stay allocated in a ring of thousands).
inline void recycle(RawResult& result) {
  constexpr std::size_t kKeptRoom = 4096;
  result.error.reset();
  if (result.payload.capacity() > kKeptRoom) result.payload = Bytes();
  result.payload.clear();
  result.line = false;
  result.worker = 0;
  result.seconds = 0;
  result.attempts = 0;
  result.node = nullptr;
}

// Decodes the payload; a payload that cannot be decoded becomes plugin_error.
TaskResult to_task_result(RawResult&& raw);

class Completion;

// A finished task on its way out of the dispatcher.
struct Finished {
  Completion* completion;
  std::uint64_t seq;
  RawResult result;
};

// Where the dispatcher delivers finished tasks. Runs on the dispatcher
// thread, once per task, and must not block. It may take the results or swap
// them with results of its own it no longer needs (the dispatcher recycles
// what it is left with). complete_batch() hands over a
// run of tasks of this completion at once (one lock instead of many).
class Completion {
 public:
  virtual ~Completion() = default;
  virtual void complete(std::uint64_t seq, RawResult&& result) = 0;
  virtual void complete_batch(Finished* first, Finished* last) {
    for (; first != last; ++first) complete(first->seq, std::move(first->result));
  }
};

// One future's completion; deletes itself when it completes.
class PromiseCompletion final : public Completion {
 public:
  std::future<TaskResult> future() { return promise_.get_future(); }
  void complete(std::uint64_t, RawResult&& result) override {
    promise_.set_value(to_task_result(std::move(result)));
    delete this;
  }

 private:
  std::promise<TaskResult> promise_;
};

}  // namespace mathpool::detail
