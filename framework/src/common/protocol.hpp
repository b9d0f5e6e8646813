// protocol.hpp: the host-worker protocol, written down once. Every message
// type, its fields, the shared progress page and the worker's exit codes.
//
// A channel is a stream socket (the worker's fd 3). The host first hands the
// worker its progress page (a memfd, with SCM_RIGHTS), then frames flow:
//
//   frame   = u32 length (little-endian, of what follows) . u8 type . body
//
//   type      direction        body
//   hello     host -> worker   MessagePack map: protocol, plugins [paths], memory_limit,
//                              setup (true | [analysis names]), quarantine {name: reason},
//                              mode ("zygote" for a template), allow_insecure_plugins
//   ready     worker -> host   MessagePack map: protocol, pid, analyses [catalogue], errors [text];
//                              a template adds adopt (true: it double-forks its workers, and
//                              the host must be a child subreaper while it takes one in)
//   setup     worker -> host   MessagePack map: analysis, pid (announced before its setup
//                              runs, written at once, so a death in it is blamed on the setup);
//                              again with seconds when it has run (its cost, for statistics).
//                              A setup or ready message whose pid is not the process the host
//                              started is a protocol error: a copy (a setup that called
//                              daemon(), say) is speaking on the worker's channel
//   refused   worker -> host   MessagePack map: message
//   run       host -> worker   u64 id . u16 n . n bytes analysis name . MessagePack params
//   result    worker -> host   u64 id . f64 seconds . u8 outcome . u8 flags . payload
//                              outcome 0: ok, payload = MessagePack result;
//                              outcome 1 + ErrorKind: error, payload = UTF-8 message
//                              flags bit 0 (kRetire): the worker exits after this reply
//   exit      host -> worker   empty: finish and exit 0
//
// Results may be batched by the worker (written when its input runs dry, every
// millisecond, or when the buffer is large); blame stays exact because the
// worker counts started and finished tasks in the progress page, which the
// host reads when the worker dies or overstays a time limit.
//
// Zygote templates also take one-byte fork requests ('F') on their own
// channel and answer with the new worker's pid and channel (SCM_RIGHTS).
// The worker is the host's child when the answer comes.
#pragma once

#include <atomic>
#include <cstdint>

namespace mathpool::detail {

// Version of the protocol, checked in the handshake.
inline constexpr int kProtocolVersion = 2;

enum class MessageType : std::uint8_t {
  hello = 1,
  ready = 2,
  setup = 3,
  refused = 4,
  run = 5,
  result = 6,
  exit = 7,
};

// Flags of a result message.
inline constexpr std::uint8_t kRetire = 1;

// Larger frames are refused as corrupt rather than allocated.
inline constexpr std::uint32_t kMaxFrameBytes = 256u << 20;
// Deeper MessagePack values are refused (a recursive decoder would overflow).
inline constexpr int kMaxValueDepth = 200;

// Exit statuses of a worker process, and what the host makes of them.
inline constexpr int kWorkerExitOk = 0;              // told to exit, or the host went away
inline constexpr int kWorkerExitBadHello = 3;        // no or wrong handshake
inline constexpr int kWorkerExitProtocol = 4;        // an undecodable or unexpected message
inline constexpr int kWorkerExitTemplateFailure = 5; // a template could not fork
inline constexpr int kWorkerExitOutOfMemory = 86;    // the host reports `memory`

// One page shared by the host and a worker (a memfd both map). The worker
// writes, the host reads. `started` and `finished` count tasks since the
// worker started; a task is running while started > finished.
struct ProgressPage {
  std::atomic<std::uint64_t> started{0};
  std::atomic<std::uint64_t> finished{0};
  std::atomic<std::int64_t> started_ns{0};  // CLOCK_MONOTONIC when the running task began
  std::atomic<std::uint32_t> in_setup{0};   // 1 while an analysis's setup runs
  // The fatal signal the worker caught on its way down: the host reads the
  // cause of death here when another waiter in the host program took the exit status.
  std::atomic<std::int32_t> fatal_signal{0};
};
inline constexpr std::size_t kProgressPageBytes = 4096;
static_assert(sizeof(ProgressPage) <= kProgressPageBytes);

}  // namespace mathpool::detail
