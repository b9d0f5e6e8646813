// slot_logic.hpp: the pool's decisions as pure functions, apart from
// processes and sockets, so they are tested in milliseconds (tests/framework/
// test_slot_logic.cpp): the worker slot's state table, which task a worker's
// death is blamed on, which task is running by the host's observations, and
// how many tasks a worker holds at once.
//
// Stateless; thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mathpool::detail {

// The lifecycle of a worker slot (the table is in slot_logic.cpp, as data).
//
//   state                   process  deadline                             leaves for
//   stopped                 none     none                                 forking, waiting_*
//   waiting_to_restart      none     back-off over: start again           forking, waiting_*
//   waiting_for_supervisor  none     none: started when the pool's        forking, waiting_*
//                                    supervisor is ready (or failed)
//   forking                 none     none (the supervisor's own fork      starting; waiting_*
//                                    deadline ends it if it hangs)
//   starting                up       setup_timeout: SIGKILL               ready; hung_in_setup; dying
//   hung_in_setup           dying    none                                 dying
//   ready                   up       the running task's limit: SIGTERM    stopping_after_timeout; dying
//   stopping_after_timeout  dying    SIGKILL after a grace                dying
//   dying                   killed   no report in time: judged without    stopped
//   any                                                                   stopped (pool stops, retire)
enum class SlotState {
  stopped,
  waiting_to_restart,
  waiting_for_supervisor,
  forking,
  starting,
  hung_in_setup,
  ready,
  stopping_after_timeout,
  dying,
};
inline constexpr int kSlotStates = 9;

std::string_view to_string(SlotState state) noexcept;
// Whether the table allows `from` -> `to`.
bool slot_transition_allowed(SlotState from, SlotState to) noexcept;

using SteadyClock = std::chrono::steady_clock;

// The task a worker runs: its ordinal (1-based, since the worker started)
// and when it began.
struct RunningTask {
  std::uint64_t ordinal;
  SteadyClock::time_point since;
};

// What the host saw of a worker's chunk.
struct HostView {
  std::uint64_t answered = 0;           // results received
  std::size_t inflight = 0;             // tasks sent and not answered
  SteadyClock::time_point head_since;   // the first unanswered one began no later than this
};
// What the worker's progress page says (written in the worker's, and so
// the task's, address space).
struct PageView {
  std::uint64_t started = 0, finished = 0;
  SteadyClock::time_point started_at;   // when the running task began, by the worker's clock
};

// The task running by the host's own observations: the first unanswered one,
// since head_since. The page may only make that more precise: name a later
// task of the chunk that began no earlier than it was sent (`sent_at(i)`,
// i 0-based in the chunk), and an earlier start, never a later one. Nullopt
// when nothing is in flight, or the page says nothing runs (believed for
// blame only: see time_limit_task).
template <typename SentAt>
std::optional<RunningTask> running_task(const HostView& host, const std::optional<PageView>& page,
                                        SteadyClock::time_point now, SentAt&& sent_at);
// The task whose time limit counts: running_task, or the host's own view
// when the page says nothing runs (a page cannot stop the clock).
template <typename SentAt>
std::optional<RunningTask> time_limit_task(const HostView& host, const std::optional<PageView>& page,
                                           SteadyClock::time_point now, SentAt&& sent_at);

// Whether the page says the worker has begun none of its tasks in flight
// (it started no more tasks than the host has had answered). Said in a
// time limit's message; never believed for a decision.
bool page_shows_none_begun(const HostView& host, const std::optional<PageView>& page);

// What the host knows when a worker's death is judged.
struct DeathFacts {
  std::size_t inflight = 0;                      // tasks it held, in order
  std::uint64_t answered = 0;                    // results received from it
  std::optional<std::uint64_t> running;          // running_task's ordinal at death
  std::uint64_t timed_out = 0;                   // ordinal the host stopped at its time limit, 0: none
  bool in_setup = false;                         // it died in a setup
  bool supervisor_lost = false;                  // its supervisor died: nothing it ran is to blame
  // Its channel was lost (a task closed or replaced fd 3): the worker exited
  // saying so, or the host killed it, alive, when its channel closed. The
  // task that did it may have finished, its reply lost with the others the
  // worker held (replies go out in batches), so the task running is no
  // verdict; one alone in flight that had started is (suspects below).
  bool channel_lost = false;
  std::uint64_t started = 0;                     // tasks it began, by its progress page (0: unknown)
  bool out_of_memory = false;                    // its exit says so
  int culprit_attempts = 0;                      // attempts of the blamed task so far (this one included)
  int retries = 0;                               // pool.retries
};
enum class Verdict {
  none,      // no task is to blame: all go back, uncharged
  timeout,   // the culprit is `timeout`
  memory,    // the culprit is `memory`
  retry,     // the culprit runs again (charged)
  crashed,   // the culprit is `crashed`
};
struct Blame {
  std::optional<std::size_t> culprit;  // index in the chunk
  Verdict verdict = Verdict::none;
};
// Which task of the chunk a death is blamed on, and what it becomes. The
// culprit_attempts of DeathFacts is read only when there is a culprit.
Blame blame(const DeathFacts& facts);
// The culprit's index for blame(), for callers that need it before
// culprit_attempts is known.
std::optional<std::size_t> blamed_index(const DeathFacts& facts);

// How many tasks a worker may hold (the running one included): the work of
// kChunkBatches reply batches (protocol.hpp: 32 ms) at the mean task time, at
// most 4096, and no more than a fair share of the queue. `chunk_size` > 0 is
// the user's fixed choice. (It is topped up below half: with 2 ms of work and
// a reply batch every millisecond, workers of a degree-16 sweep often ran dry
// between a batch and the host's answer to it; each time a sleep and a
// wake-up. With 8 ms of work and 4 ms batches they did too: a degree-16 sweep's
// host CPU fell 19% against 1 ms batches, with 32 ms 28%; 6 interleaved runs each.)
std::size_t chunk_limit(int chunk_size, double mean_task_seconds, std::size_t queued, std::size_t workers);

// Suspects: the tasks in flight when a pool's supervisor died (all its
// workers die with it, so the death names none of them). Each runs alone
// from then on: nothing else is sent while it runs, and it is sent only
// when nothing else is in flight, so a second death while it runs is its own.
// Whether the task at the queue's front may be sent now.
constexpr bool may_send(bool task_is_suspect, std::size_t pool_in_flight, bool suspect_in_flight) {
  return !suspect_in_flight && (!task_is_suspect || pool_in_flight == 0);
}
// The suspect among a dead worker's tasks in flight (facts.inflight > 0):
// the one it was running by the host's observations, else the first.
std::size_t suspect_index(const DeathFacts& facts);
// After a lost channel with no verdict while tasks had begun: how many of
// the tasks in flight, from the first, are suspects (each began, by the page,
// so any of them may have broken the channel; at least the first). Each
// then runs alone, where a lost channel is its own verdict.
std::size_t channel_suspects(const DeathFacts& facts);

// ---- templates -------------------------------------------------------------

template <typename SentAt>
std::optional<RunningTask> running_task(const HostView& host, const std::optional<PageView>& page,
                                        SteadyClock::time_point now, SentAt&& sent_at) {
  if (host.inflight == 0) return std::nullopt;
  const RunningTask own{host.answered + 1, host.head_since};
  if (!page) return own;
  if (page->started <= page->finished) return std::nullopt;
  if (page->started <= host.answered || page->started - host.answered > host.inflight) return own;
  const std::size_t index = std::size_t(page->started - host.answered - 1);
  auto since = std::max(page->started_at, sent_at(index));
  since = std::min(since, std::min(own.since, now));
  return RunningTask{page->started, since};
}

template <typename SentAt>
std::optional<RunningTask> time_limit_task(const HostView& host, const std::optional<PageView>& page,
                                           SteadyClock::time_point now, SentAt&& sent_at) {
  if (host.inflight == 0) return std::nullopt;
  if (auto running = running_task(host, page, now, sent_at)) return running;
  return RunningTask{host.answered + 1, host.head_since};
}

}  // namespace mathpool::detail
