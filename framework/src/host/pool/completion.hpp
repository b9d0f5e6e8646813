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
  // How many tasks this result stands for: more than one only for a
  // completion that joins lines (Completion::joins_lines), whose consecutive
  // tasks' ok records arrive as one result: `payload` holds their lines in
  // task order, joined by '\n'; `seconds`, `worker` and `attempts` are its
  // first task's.
  std::uint32_t count = 1;
};

// Clears a result for reuse: its payload's room is kept, unless large (a
// result of megabytes must not stay allocated in a ring of thousands).
constexpr std::size_t kKeptRoom = 4096;
// A result of joined lines (RawResult::count) holds at most this many bytes
// of lines. Its room grows with its lines and is released when it has been
// used (recycle()). Larger ones came from mmap or grew and shrank the
// dispatcher's malloc arena a page at a time (mprotect and page faults: 16 KiB
// cost more than it saved).
constexpr std::size_t kJoinedRoom = 4096;
inline void recycle(RawResult& result) {
  result.error.reset();
  // Joined lines' room goes too: kept, every slot of a stream's ring came to
  // hold kKeptRoom (64 MiB for 16,384 slots, where one record's is ~150 bytes).
  // Swapped out, not assigned: libstdc++ copies a short string into the room
  // a string has and keeps it, so `payload = Bytes()` never freed anything.
  if (result.payload.capacity() > kKeptRoom || result.count > 1) Bytes().swap(result.payload);
  result.payload.clear();
  result.line = false;
  result.worker = 0;
  result.seconds = 0;
  result.attempts = 0;
  result.node = nullptr;
  result.count = 1;
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
  // Set by a completion that takes joined lines (RawResult::count) before its
  // first task is queued, and left alone after: the dispatcher then joins the
  // ok records of its consecutive tasks into one result. Handing records over
  // one by one cost the host more than receiving and checking them (a ring
  // slot, a copy and a hand-over between threads per echo task).
  bool joins_lines = false;
  virtual void complete(std::uint64_t seq, RawResult&& result) = 0;
  // For a result that lines are about to join (its first line in `payload`):
  // room for kJoinedRoom bytes, its line kept, when the completion has room
  // its consumer is done with. Runs on the dispatcher thread.
  virtual void lend_room(Bytes& /*payload*/) {}
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
