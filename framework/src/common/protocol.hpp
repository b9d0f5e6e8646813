// protocol.hpp: the host-worker protocol, written down once. Every message
// type, its fields, the shared progress page and the worker's exit codes.
//
// Process model (docs/containment.md): one supervisor per pool is the host's
// only child for that pool. In zygote mode it is the template (it loads the
// plugins and runs their setups); in spawn mode a launcher that loads none.
// It makes workers (glibc's fork() or posix_spawn), is a child subreaper for
// the pool's process tree, reaps everything and reports each worker's exit.
//
// A channel is a stream socket (fd 3 of the process). Frames flow:
//
//   frame   = u32 length (little-endian, of what follows) . u8 type . body
//
//   type      direction        body
//   hello     host -> process  MessagePack map: protocol, plugins [paths], memory_limit,
//                              setup (true | [analysis names]), quarantine {name: reason},
//                              mode ("zygote" | "spawn" for a supervisor, absent for a
//                              spawned worker), allow_insecure_plugins, isolation
//   ready     process -> host  MessagePack map: protocol, pid, analyses [catalogue], errors [text]
//   setup     process -> host  MessagePack map: analysis, pid (announced before its setup
//                              runs, written at once, so a death in it is blamed on the setup);
//                              again with seconds when it has run (its cost, for statistics).
//                              A setup or ready message whose pid is not the process the host
//                              started is a protocol error
//   refused   process -> host  MessagePack map: message
//   run       host -> worker   u64 id . u16 n . n bytes analysis name . MessagePack params;
//                              the name kCheckAnalysis asks for checks instead (params:
//                              {analysis, sets: [params...]}, result: {problems: [[{param,
//                              message}...] per set]}), without the analysis's setup
//   result    worker -> host   u64 id . f64 seconds . u8 outcome . u8 flags . payload
//                              outcome 0: ok, payload = MessagePack result;
//                              outcome 1 + ErrorKind: error, payload = UTF-8 message
//                              flags bit 0 (kRetire): the worker exits after this reply
//   entry     host -> worker   u64 entry id . the run entry's wire form (run_entry.hpp:
//                              its run, analysis, fixed parameters, repeat, record fields
//                              and sweep with its data); sent to a worker once, before
//                              the first range of that entry
//   run_range host -> worker   u64 first task id . u64 entry id . u64 first index . u64 count:
//                              tasks first index.. of that entry, with ids first id..; the
//                              worker makes each task's parameters from its index and
//                              answers each with a record
//   record    worker -> host   u64 id . f64 seconds . u8 outcome . u8 flags . u32 n . n bytes
//                              error message . the task's whole record line (no newline);
//                              the host checks that the line begins as that task's
//                              record must (run, analysis, task, repeat) and that the
//                              rest completes one JSON object with a record's members
//                              only (RunEntry::check_record), and refuses the reply
//                              otherwise; results nest as deep as in a result frame
//   exit      host -> process  empty map: finish and exit 0
//   fork      host -> super.   MessagePack map: request (u64): make one worker
//   forked    super. -> host   MessagePack map: request, pid; with two descriptors
//                              (SCM_RIGHTS, on the frame's first byte): the worker's
//                              channel and its pidfd
//   fork_failed super. -> host MessagePack map: request, message
//   exited    super. -> host   MessagePack map: pid, status (the wait status of a worker
//                              it made; only a parent can read it)
//   watch     host -> super.   MessagePack map: busy (bool): while tasks are in flight the
//                              supervisor looks for processes that escaped a task every
//                              100 ms; idle, once more and then only when a worker ends
//                              or a fork is asked (an idle pool does not wake up)
//
// Results may be batched by the worker (written when its input runs dry, every
// millisecond, or when the buffer is large). Time limits and blame are the
// host's: a task's limit counts from when the host sent it or when the
// previous result arrived, whichever is later; the progress page, written in
// the worker's (and so the task's) address space, may only make that earlier
// and name a task of the worker's chunk, never more.
#pragma once

#include <atomic>
#include <cstdint>

namespace mathpool::detail {

// Version of the protocol, checked in the handshake.
inline constexpr int kProtocolVersion = 5;

enum class MessageType : std::uint8_t {
  hello = 1,
  ready = 2,
  setup = 3,
  refused = 4,
  run = 5,
  result = 6,
  exit = 7,
  fork = 8,
  forked = 9,
  fork_failed = 10,
  exited = 11,
  watch = 12,
  entry = 13,
  run_range = 14,
  record = 15,
};
inline constexpr std::uint8_t kLastMessageType = 15;

// The reserved analysis name of a check request (see run above).
inline constexpr const char* kCheckAnalysis = "mathpool.check";

// Flags of a result message.
inline constexpr std::uint8_t kRetire = 1;             // out of memory: the worker exits
inline constexpr std::uint8_t kRetireBrokenState = 2;  // a task broke what the worker restores: it exits

// A worker's replies are batched: they go out when its input runs dry, past
// kReplyBatchBytes, before a task that may be long, and otherwise at least
// every kReplyBatchNs; a task that turns out long has them sent while it
// runs, one or two kReplyBatchNs after it began (worker/reply_flusher.hpp).
// Each batch costs the host a wake-up (tens of microseconds of its CPU on a
// virtual machine, whatever the batch holds): at 1 ms, a degree-16 sweep's
// host spent 5.0 us of CPU per task, at 4 ms 3.4 us.
// The host keeps each worker kChunkBatches batches' worth of work ahead
// (slot_logic.cpp, chunk_limit), so it tops a worker up from these reports
// long before it runs dry.
inline constexpr std::int64_t kReplyBatchNs = 4'000'000;
inline constexpr std::size_t kReplyBatchBytes = 64 * 1024;
inline constexpr int kChunkBatches = 8;

// Larger frames are refused as corrupt rather than allocated.
inline constexpr std::uint32_t kMaxFrameBytes = 256u << 20;
// Deeper MessagePack values are refused (a recursive decoder would overflow).
inline constexpr int kMaxValueDepth = 200;

// Exit statuses of a worker process, and what the host makes of them.
inline constexpr int kWorkerExitOk = 0;              // told to exit, or the host went away
inline constexpr int kWorkerExitBadHello = 3;        // no or wrong handshake
inline constexpr int kWorkerExitProtocol = 4;        // an undecodable or unexpected message
inline constexpr int kWorkerExitTemplateFailure = 5; // a supervisor could not go on
inline constexpr int kWorkerExitChannelLost = 6;     // its channel cannot be written (a task closed fd 3)
inline constexpr int kWorkerExitOutOfMemory = 86;    // the host reports `memory`

// One page shared by the host and a worker (a memfd both map). The worker
// writes, the host reads. `started` and `finished` count tasks since the
// worker started; a task is running while started > finished.
struct ProgressPage {
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> finished{0};
  std::atomic<std::int64_t> started_ns{0};  // CLOCK_MONOTONIC when the running task began
  std::atomic<std::uint32_t> in_setup{0};   // 1 while an analysis's setup runs
  // The fatal signal the worker caught on its way down (informative only:
  // the wait status comes from the supervisor).
  std::atomic<std::int32_t> fatal_signal{0};
};
inline constexpr std::size_t kProgressPageBytes = 4096;
static_assert(sizeof(ProgressPage) <= kProgressPageBytes);

}  // namespace mathpool::detail
