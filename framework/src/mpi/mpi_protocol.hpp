// mpi_protocol.hpp: the messages between rank 0 and the node agents, written
// down once. Each is one MPI message of bytes (MPI_BYTE); the MPI tag is its
// type. Numbers are little-endian (the machines of a job share a byte order).
//
//   tag      direction        body
//   open     0 -> agent       u64 node timeout (ms) . MessagePack map: the pool options
//                             (encode_open)
//   hello    agent -> 0       MessagePack map: node (host name), workers, error (text;
//                             empty when the agent's local pool started), protocol
//                             (kProtocolVersion: rank 0 refuses another, naming both)
//   tasks    0 -> agent       repeated: u64 id . u16 n . n bytes analysis . u32 m . m bytes params
//   ranges   0 -> agent       tasks of run entries (tasks/run_entry.hpp), repeated items:
//                               u8 0 . u64 entry id . u32 n . n bytes: an entry's wire form,
//                                 sent to a node once, before any run of it; the agent
//                                 holds it until its pool closes
//                               u8 1 . u64 entry id . u64 first index . u32 count .
//                                 count x u64 id: tasks first index, first index + 1, ...
//                                 of that entry; the node's workers make their parameters
//                                 and write their records
//   results  agent -> 0       repeated: u64 id . u8 outcome . u8 line . i32 worker .
//                             i32 attempts . f64 seconds . u32 m . m bytes (outcome 0 and
//                             line 0: MessagePack result; 1 + ErrorKind: UTF-8 error
//                             message; else empty) . [line 1: u32 k . k bytes: the task's
//                             record line, as its worker wrote it and the agent's pool
//                             checked it; rank 0 adds "node"]
//   cancel   0 -> agent       UTF-8 message: fail the tasks the agent has not started
//   close    0 -> agent       u8 terminate: stop the local pool (1: now, failing its tasks)
//   closed   agent -> 0       empty: the local pool has stopped; every result was sent before
//   end      0 -> agent       empty: the job is over, serve() returns
//   refused  agent -> 0       UTF-8 message: a message from rank 0 that the agent cannot
//                             read (it answers none of its tasks); rank 0 ends the job,
//                             as for a lost rank
//   heartbeat either way      the sender's host name: "still here", about every second
//                             while a pool is open
//                             (agent: from `open` until `closed`, even while it starts or
//                             stops its local pool; rank 0: while its router runs)
//
// Flow control: rank 0 gives each node at most its quota of tasks at once and
// sends more as results come back, so a fast node is fed more and a slow one
// never holds more than it can start soon. Nothing blocks: sends are MPI_Isend
// and receives follow MPI_Iprobe, so a rank never waits in MPI for a peer.
//
// Liveness: rank 0 notes when it last heard from each agent (any message
// counts). An agent silent for longer than the node timeout (`mpi.node_timeout`)
// is lost: rank 0 writes what is done and aborts the job. An agent that has
// heard rank 0's heartbeats for the open pool and then hears nothing for as
// long aborts the job itself (rank 0 stopped or gone).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "completion.hpp"
#include "mathpool/pool.hpp"

namespace mathpool::mpi_detail {

enum class Tag : int { open = 101, hello, tasks, results, cancel, close, closed, end, heartbeat, ranges, refused };
// This table's version: one more for any change of a message's bytes, so that
// ranks of different builds refuse each other at the start instead of
// misreading each other later.
inline constexpr int kProtocolVersion = 2;

// The pool options as rank 0 sends them (workers 0: each node's own cores).
std::string encode_options(const PoolOptions& options);
// Throws mathpool::Error (invalid_config) when they are malformed.
PoolOptions decode_options(std::string_view bytes);
// An `open` body: the node timeout, then the pool options.
std::string encode_open(std::chrono::milliseconds node_timeout, const PoolOptions& options);
// Throws mathpool::Error (invalid_config) when it is malformed.
PoolOptions decode_open(std::string_view bytes, std::chrono::milliseconds& node_timeout);

// Appending and reading fixed-size numbers.
template <typename T>
void put(std::string& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}

// Reads from a message body; every read is bounds-checked, so a truncated
// message is refused (ok() false) instead of read past its end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  bool ok() const noexcept { return ok_; }
  bool done() const noexcept { return rest_.empty(); }
  template <typename T>
  T get() {
    T value{};
    if (rest_.size() < sizeof(T)) {
      ok_ = false;
      rest_ = {};
      return value;
    }
    std::memcpy(&value, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return value;
  }
  std::string_view bytes(std::size_t n) {
    if (rest_.size() < n) {
      ok_ = false;
      rest_ = {};
      return {};
    }
    std::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return out;
  }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

// One task in a `tasks` message.
struct WireTask {
  std::uint64_t id = 0;
  std::string_view analysis;
  std::string_view params;
};
void append_task(std::string& out, std::uint64_t id, std::string_view analysis, std::string_view params);
// The next task of a `tasks` body; false at its end or when it is malformed.
bool read_task(Reader& in, WireTask& task);

// Items of a `ranges` message.
void append_entry_item(std::string& out, std::uint64_t entry_id, std::string_view wire);
// A run item's head; its `count` ids follow (put<std::uint64_t>).
void append_run_head(std::string& out, std::uint64_t entry_id, std::uint64_t first_index, std::uint32_t count);
struct RangesItem {
  bool entry = false;  // an entry (id, wire), else a run (id, first_index, ids)
  std::uint64_t entry_id = 0;
  std::string_view wire;
  std::uint64_t first_index = 0;
  std::uint32_t count = 0;
  std::string_view ids;  // count x u64
};
// The next item of a `ranges` body; false at its end or when it is malformed.
bool read_ranges_item(Reader& in, RangesItem& item);
// Whether a ranges message's body reads whole: every item complete and known.
bool readable_ranges(std::string_view body);

void append_result(std::string& out, std::uint64_t id, const detail::RawResult& result);
// The next result of a `results` body; false at its end or when it is malformed.
bool read_result(Reader& in, std::uint64_t& id, detail::RawResult& result);

}  // namespace mathpool::mpi_detail
