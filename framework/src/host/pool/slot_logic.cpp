#include "slot_logic.hpp"

#include "protocol.hpp"

#include <algorithm>
#include <array>

namespace mathpool::detail {
namespace {

using S = SlotState;
struct Transition {
  S from, to;
};
// The table of slot_logic.hpp, row by row (any -> stopped is always allowed).
constexpr std::array kTransitions{
    Transition{S::stopped, S::forking},
    Transition{S::stopped, S::waiting_to_restart},
    Transition{S::stopped, S::waiting_for_supervisor},
    Transition{S::waiting_to_restart, S::forking},
    Transition{S::waiting_to_restart, S::waiting_to_restart},
    Transition{S::waiting_to_restart, S::waiting_for_supervisor},
    Transition{S::waiting_for_supervisor, S::forking},
    Transition{S::waiting_for_supervisor, S::waiting_to_restart},
    Transition{S::waiting_for_supervisor, S::waiting_for_supervisor},
    Transition{S::forking, S::starting},
    Transition{S::forking, S::forking},
    Transition{S::forking, S::waiting_to_restart},
    Transition{S::forking, S::waiting_for_supervisor},
    Transition{S::starting, S::ready},
    Transition{S::starting, S::hung_in_setup},
    Transition{S::starting, S::dying},
    Transition{S::hung_in_setup, S::dying},
    Transition{S::ready, S::stopping_after_timeout},
    Transition{S::ready, S::dying},
    Transition{S::stopping_after_timeout, S::dying},
};

}  // namespace

std::string_view to_string(SlotState state) noexcept {
  constexpr std::array<std::string_view, kSlotStates> names{
      "stopped", "waiting_to_restart", "waiting_for_supervisor", "forking",          "starting",
      "hung_in_setup", "ready",          "stopping_after_timeout", "dying"};
  return names[std::size_t(state)];
}

bool slot_transition_allowed(SlotState from, SlotState to) noexcept {
  if (to == S::stopped) return true;
  return std::any_of(kTransitions.begin(), kTransitions.end(),
                     [&](const Transition& t) { return t.from == from && t.to == to; });
}

std::optional<std::size_t> blamed_index(const DeathFacts& facts) {
  if (facts.inflight == 0) return std::nullopt;
  // The task stopped at its time limit is the host's own decision.
  if (facts.timed_out > facts.answered && facts.timed_out - facts.answered <= facts.inflight)
    return std::size_t(facts.timed_out - 1 - facts.answered);
  if (facts.in_setup || facts.supervisor_lost) return std::nullopt;
  // Alone in flight and begun: it broke the channel, running or finished.
  if (facts.channel_lost) return facts.inflight == 1 && facts.started > facts.answered ? std::optional<std::size_t>(0) : std::nullopt;
  if (!facts.running) return std::nullopt;
  if (*facts.running <= facts.answered || *facts.running - facts.answered > facts.inflight) return std::nullopt;
  return std::size_t(*facts.running - 1 - facts.answered);
}

std::size_t suspect_index(const DeathFacts& facts) {
  if (facts.running && *facts.running > facts.answered && *facts.running - facts.answered <= facts.inflight)
    return std::size_t(*facts.running - 1 - facts.answered);
  return 0;
}

bool page_shows_none_begun(const HostView& host, const std::optional<PageView>& page) {
  return page && host.inflight > 0 && page->started <= host.answered;
}

std::size_t channel_suspects(const DeathFacts& facts) {
  if (facts.inflight == 0) return 0;
  if (facts.started <= facts.answered) return 1;
  return std::size_t(std::min<std::uint64_t>(facts.inflight, facts.started - facts.answered));
}

Blame blame(const DeathFacts& facts) {
  Blame blame;
  blame.culprit = blamed_index(facts);
  if (!blame.culprit) return blame;
  if (facts.timed_out != 0) blame.verdict = Verdict::timeout;
  else if (facts.out_of_memory) blame.verdict = Verdict::memory;
  else if (facts.culprit_attempts <= facts.retries) blame.verdict = Verdict::retry;
  else blame.verdict = Verdict::crashed;
  return blame;
}

std::size_t chunk_limit(int chunk_size, double mean_task_seconds, std::size_t queued, std::size_t workers) {
  if (chunk_size > 0) return std::size_t(chunk_size);
  // Work for kChunkBatches reply batches (protocol.hpp): 32 ms.
  constexpr double kChunkWork = double(kChunkBatches) * double(kReplyBatchNs) / 1e9;
  constexpr std::size_t kMaxChunk = 4096;
  std::size_t by_time = 2;  // before any measurement: one running, one waiting
  if (mean_task_seconds >= 0)
    by_time = mean_task_seconds * kMaxChunk < kChunkWork
                  ? kMaxChunk
                  : std::max<std::size_t>(1, std::size_t(kChunkWork / mean_task_seconds));
  const std::size_t fair = (queued + workers - 1) / std::max<std::size_t>(1, workers);
  return std::max<std::size_t>(1, std::min(by_time, fair));
}

}  // namespace mathpool::detail
