// The pool's pure decisions (framework/src/host/slot_logic.hpp), with fake
// clocks and no processes: the slot state table row by row, the blame table
// row by row, the running task by the host's observations, chunk sizes.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "host/pool/slot_logic.hpp"
#include "host/pool/completion.hpp"
#include "host/pool/task_queue.hpp"
#include "mathpool/config.hpp"
#include "tasks/run_entry.hpp"

namespace mathpool::detail {
namespace {

using S = SlotState;
using namespace std::chrono_literals;
const SteadyClock::time_point t0{std::chrono::seconds(1000)};

// ---- the state table: every allowed row, and the rest refused -------------

const std::vector<std::pair<S, S>> kRows = {
    {S::stopped, S::forking},
    {S::stopped, S::waiting_to_restart},
    {S::stopped, S::waiting_for_supervisor},
    {S::waiting_to_restart, S::forking},
    {S::waiting_to_restart, S::waiting_to_restart},
    {S::waiting_to_restart, S::waiting_for_supervisor},
    {S::waiting_for_supervisor, S::forking},
    {S::waiting_for_supervisor, S::waiting_to_restart},
    {S::waiting_for_supervisor, S::waiting_for_supervisor},
    {S::forking, S::starting},
    {S::forking, S::forking},
    {S::forking, S::waiting_to_restart},
    {S::forking, S::waiting_for_supervisor},
    {S::starting, S::ready},
    {S::starting, S::hung_in_setup},
    {S::starting, S::dying},
    {S::hung_in_setup, S::dying},
    {S::ready, S::stopping_after_timeout},
    {S::ready, S::dying},
    {S::stopping_after_timeout, S::dying},
};

class SlotTableRow : public testing::TestWithParam<std::pair<S, S>> {};

TEST_P(SlotTableRow, IsAllowed) {
  const auto [from, to] = GetParam();
  EXPECT_TRUE(slot_transition_allowed(from, to)) << to_string(from) << " -> " << to_string(to);
}

INSTANTIATE_TEST_SUITE_P(SlotLogic, SlotTableRow, testing::ValuesIn(kRows), [](const auto& info) {
  return std::string(to_string(info.param.first)) + "_to_" + std::string(to_string(info.param.second));
});

TEST(SlotLogic, EveryStateMayStop) {
  for (int s = 0; s < kSlotStates; ++s) EXPECT_TRUE(slot_transition_allowed(S(s), S::stopped)) << to_string(S(s));
}

TEST(SlotLogic, EveryOtherTransitionIsRefused) {
  std::set<std::pair<S, S>> allowed(kRows.begin(), kRows.end());
  int refused = 0;
  for (int from = 0; from < kSlotStates; ++from)
    for (int to = 0; to < kSlotStates; ++to) {
      if (S(to) == S::stopped || allowed.count({S(from), S(to)})) continue;
      EXPECT_FALSE(slot_transition_allowed(S(from), S(to))) << to_string(S(from)) << " -> " << to_string(S(to));
      ++refused;
    }
  EXPECT_GT(refused, 40);
  EXPECT_FALSE(slot_transition_allowed(S::ready, S::starting));  // a ready worker never starts again
  EXPECT_FALSE(slot_transition_allowed(S::dying, S::ready));      // nor does a dying one
}

// ---- blame: one test per row -----------------------------------------------

DeathFacts chunk_of(std::size_t inflight, std::uint64_t answered = 0) {
  DeathFacts facts;
  facts.inflight = inflight;
  facts.answered = answered;
  facts.retries = 1;
  facts.culprit_attempts = 1;
  return facts;
}

TEST(SlotLogic, BlameNothingInFlightBlamesNoTask) {
  DeathFacts facts = chunk_of(0);
  facts.running = 1;
  EXPECT_FALSE(blame(facts).culprit);
}

TEST(SlotLogic, BlameTheRunningTaskIsRetriedWhileItHasRetriesLeft) {
  DeathFacts facts = chunk_of(5, 10);
  facts.running = 13;  // the third of the chunk
  const Blame b = blame(facts);
  ASSERT_TRUE(b.culprit);
  EXPECT_EQ(*b.culprit, 2u);
  EXPECT_EQ(b.verdict, Verdict::retry);
}

TEST(SlotLogic, BlameTheRunningTaskCrashesWhenItsRetriesAreSpent) {
  DeathFacts facts = chunk_of(5, 10);
  facts.running = 11;
  facts.culprit_attempts = 2;
  EXPECT_EQ(blame(facts).verdict, Verdict::crashed);
  EXPECT_EQ(*blame(facts).culprit, 0u);
}

TEST(SlotLogic, BlameOutOfMemoryIsTheRunningTasksMemoryRecord) {
  DeathFacts facts = chunk_of(3);
  facts.running = 2;
  facts.out_of_memory = true;
  EXPECT_EQ(blame(facts).verdict, Verdict::memory);
  EXPECT_EQ(*blame(facts).culprit, 1u);
}

TEST(SlotLogic, BlameTheTaskStoppedAtItsTimeLimitIsTheHostsOwnDecision) {
  DeathFacts facts = chunk_of(4, 2);
  facts.timed_out = 4;  // the second of the chunk
  facts.running = 6;    // whatever the page says at death
  facts.out_of_memory = true;
  const Blame b = blame(facts);
  EXPECT_EQ(*b.culprit, 1u);
  EXPECT_EQ(b.verdict, Verdict::timeout);
}

TEST(SlotLogic, BlameADeathInASetupBlamesNoTask) {
  DeathFacts facts = chunk_of(3);
  facts.running = 1;
  facts.in_setup = true;
  EXPECT_FALSE(blame(facts).culprit);
}

TEST(SlotLogic, BlameALostSupervisorBlamesNoTask) {
  DeathFacts facts = chunk_of(3);
  facts.running = 1;
  facts.supervisor_lost = true;
  EXPECT_FALSE(blame(facts).culprit);
}

TEST(SlotLogic, BlameADeathBetweenTasksBlamesNoTask) {
  EXPECT_FALSE(blame(chunk_of(3)).culprit);
}

TEST(SlotLogic, BlameARunningOrdinalOutsideTheChunkBlamesNoTask) {
  DeathFacts facts = chunk_of(3, 10);
  for (std::uint64_t ordinal : {5u, 10u, 14u, 1000u}) {
    facts.running = ordinal;
    EXPECT_FALSE(blame(facts).culprit) << ordinal;
  }
}

// ---- the running task: the host's observations, made precise by the page --

const auto sent_at = [](std::size_t i) { return t0 + std::chrono::milliseconds(10 * i); };

TEST(SlotLogic, RunningTaskWithoutAPageIsTheFirstUnansweredSinceTheHostSawIt) {
  const HostView host{7, 3, t0 + 50ms};
  const auto r = running_task(host, std::nullopt, t0 + 1s, sent_at);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ordinal, 8u);
  EXPECT_EQ(r->since, t0 + 50ms);
}

TEST(SlotLogic, RunningTaskThePageNamesALaterTaskOfTheChunkAndAnEarlierStart) {
  const HostView host{7, 3, t0 + 50ms};
  const PageView page{10, 9, t0 + 30ms};  // the third of the chunk, sent at t0 + 20 ms
  const auto r = running_task(host, page, t0 + 1s, sent_at);
  EXPECT_EQ(r->ordinal, 10u);
  EXPECT_EQ(r->since, t0 + 30ms);
}

TEST(SlotLogic, RunningTaskAPageStartInTheFutureCannotPostponeTheLimit) {
  const HostView host{0, 2, t0 + 50ms};
  const PageView page{1, 0, t0 + 100h};
  EXPECT_EQ(running_task(host, page, t0 + 1s, sent_at)->since, t0 + 50ms);
}

TEST(SlotLogic, RunningTaskAPageStartBeforeTheTaskWasSentIsRaisedToTheSending) {
  const HostView host{0, 3, t0 + 500ms};
  const PageView page{3, 2, t0};  // the third, sent at t0 + 20 ms
  EXPECT_EQ(running_task(host, page, t0 + 1s, sent_at)->since, t0 + 20ms);
}

TEST(SlotLogic, RunningTaskAPageOrdinalOutsideTheChunkIsIgnored) {
  const HostView host{7, 3, t0 + 50ms};
  for (std::uint64_t started : {3u, 7u, 11u, 99u}) {
    const PageView page{started, 0, t0};
    const auto r = running_task(host, page, t0 + 1s, sent_at);
    EXPECT_EQ(r->ordinal, 8u) << started;
    EXPECT_EQ(r->since, t0 + 50ms) << started;
  }
}

TEST(SlotLogic, RunningTaskAPageThatSaysNothingRunsCannotStopTheClock) {
  const HostView host{4, 2, t0 + 50ms};
  const PageView page{5, 5, t0};
  EXPECT_FALSE(running_task(host, page, t0 + 1s, sent_at)) << "for blame: between tasks";
  const auto limit = time_limit_task(host, page, t0 + 1s, sent_at);
  ASSERT_TRUE(limit) << "for the time limit: the host's own view";
  EXPECT_EQ(limit->ordinal, 5u);
  EXPECT_EQ(limit->since, t0 + 50ms);
}

// A time limit's message says when the page shows no task in flight begun:
// not after a task that finished unanswered (its reply is on the way).
TEST(SlotLogic, ThePageShowsNoTaskBegunOnlyWhenItStartedNoMoreThanWereAnswered) {
  const HostView host{4, 2, t0};
  EXPECT_TRUE(page_shows_none_begun(host, PageView{4, 4, t0}));
  EXPECT_TRUE(page_shows_none_begun(host, PageView{0, 0, t0})) << "a page that went backwards: still none";
  EXPECT_FALSE(page_shows_none_begun(host, PageView{5, 4, t0})) << "the first in flight runs";
  EXPECT_FALSE(page_shows_none_begun(host, PageView{5, 5, t0})) << "it finished, unanswered yet";
  EXPECT_FALSE(page_shows_none_begun(host, std::nullopt)) << "no page: nothing said";
  EXPECT_FALSE(page_shows_none_begun(HostView{4, 0, t0}, PageView{4, 4, t0})) << "nothing in flight";
}

TEST(SlotLogic, RunningTaskNothingInFlightIsNoTask) {
  EXPECT_FALSE(running_task(HostView{3, 0, t0}, std::nullopt, t0, sent_at));
  EXPECT_FALSE(time_limit_task(HostView{3, 0, t0}, PageView{4, 3, t0}, t0, sent_at));
}

// ---- chunk sizes -----------------------------------------------------------

TEST(SlotLogic, ChunkLimitIsTheUsersFixedChoice) { EXPECT_EQ(chunk_limit(7, 0.000001, 100000, 2), 7u); }

TEST(SlotLogic, ChunkLimitBeforeAnyMeasurementIsTwo) { EXPECT_EQ(chunk_limit(0, -1, 1000, 2), 2u); }

TEST(SlotLogic, ChunkLimitHoldsEightReplyBatchesOfWork) {
  EXPECT_EQ(chunk_limit(0, 0.0001, 100000, 2), 320u);  // 32 ms: 8 batches of 4 ms
  EXPECT_EQ(chunk_limit(0, 0.001, 100000, 2), 32u);
  EXPECT_EQ(chunk_limit(0, 1.0, 100000, 2), 1u);
  EXPECT_EQ(chunk_limit(0, 0.0000001, 100000, 2), 4096u);
}

TEST(SlotLogic, ChunkLimitSplitsAShortQueueFairly) {
  EXPECT_EQ(chunk_limit(0, 0.0000001, 10, 4), 3u);
  EXPECT_EQ(chunk_limit(0, 0.0000001, 0, 4), 1u);
}

// ---- suspects: tasks in flight at a supervisor's death run alone ----------

TEST(SlotLogic, AnOrdinaryTaskIsSentBesideOthers) { EXPECT_TRUE(may_send(false, 7, false)); }

TEST(SlotLogic, ASuspectWaitsUntilNothingElseIsInFlight) {
  EXPECT_FALSE(may_send(true, 1, false));
  EXPECT_TRUE(may_send(true, 0, false));
}

TEST(SlotLogic, NothingIsSentWhileASuspectRuns) {
  EXPECT_FALSE(may_send(false, 1, true));
  EXPECT_FALSE(may_send(true, 1, true));
}

TEST(SlotLogic, AWorkerTheHostKilledBecauseItsChannelClosedBlamesNoTask) {
  DeathFacts facts;
  facts.inflight = 3;
  facts.answered = 0;
  facts.running = 2;  // the page says the second task runs
  facts.channel_lost = true;
  EXPECT_FALSE(blame(facts).culprit);
  facts.timed_out = 2;  // the host's own time limit still names its task
  EXPECT_EQ(blame(facts).culprit, std::optional<std::size_t>(1));
}

// The task that broke the channel may have finished (its reply lost with
// the batch): every task the worker began is a suspect, and one alone in
// flight that began is the culprit.
TEST(SlotLogic, ALostChannelMakesEveryBegunTaskASuspectAndConvictsOneAlone) {
  DeathFacts facts;
  facts.inflight = 6;
  facts.answered = 10;
  facts.channel_lost = true;
  facts.started = 14;  // four of the six began, all finished
  EXPECT_FALSE(blame(facts).culprit);
  EXPECT_EQ(channel_suspects(facts), 4u);
  facts.started = 30;  // a page past what was sent: no more than were in flight
  EXPECT_EQ(channel_suspects(facts), 6u);
  facts.started = 0;  // no page
  EXPECT_EQ(channel_suspects(facts), 1u);

  DeathFacts alone;
  alone.inflight = 1;
  alone.answered = 7;
  alone.channel_lost = true;
  alone.started = 8;  // it began (and finished: nothing runs)
  alone.retries = 0;
  alone.culprit_attempts = 1;
  EXPECT_EQ(blame(alone).culprit, std::optional<std::size_t>(0));
  EXPECT_EQ(blame(alone).verdict, Verdict::crashed);
  alone.started = 7;  // it never began: not its doing
  EXPECT_FALSE(blame(alone).culprit);
}

TEST(SlotLogic, TheSuspectIsTheTaskTheWorkerWasRunning) {
  DeathFacts facts;
  facts.inflight = 5;
  facts.answered = 10;
  facts.supervisor_lost = true;
  facts.running = 13;  // the third of the five
  EXPECT_EQ(suspect_index(facts), 2u);
}

TEST(SlotLogic, WithoutAKnownRunningTaskTheFirstInFlightIsTheSuspect) {
  DeathFacts facts;
  facts.inflight = 5;
  facts.answered = 10;
  EXPECT_EQ(suspect_index(facts), 0u);
  facts.running = 10;  // answered already: not in flight
  EXPECT_EQ(suspect_index(facts), 0u);
  facts.running = 16;  // beyond what was sent
  EXPECT_EQ(suspect_index(facts), 0u);
}

// A stream's run of tasks (PoolTask::count) waits in the pool's queue as one
// entry, is handed out one task at a time (each its own index, seq and id,
// never sent), and counts as its tasks wherever the queue's length matters.
TEST(TaskQueue, ARunOfTasksIsHandedOutOneByOneAndCountedAsItsTasks) {
  const RunConfig config = parse_config(
      "analyses:\n  - name: r\n    analysis: example.echo\n    sweep: {x: {range: [0, 100]}}\n", "/configs/q.yaml");
  const RunEntry entry(1, config.analyses[0], {});
  TaskQueue queue;
  PoolTask single;
  single.analysis = "a";
  single.seq = 100;
  single.attempts = 2;
  PoolTask run;
  run.entry = &entry;
  run.index = 7, run.seq = 10, run.id = 50, run.count = 3;
  queue.push_back(std::move(run));
  queue.push_front(std::move(single));
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(queue.tasks(), 4u);
  const PoolTask first = queue.take_one();
  EXPECT_EQ(first.seq, 100u);
  EXPECT_EQ(first.attempts, 2);
  EXPECT_EQ(first.analysis, "a");
  EXPECT_EQ(queue.tasks(), 3u);
  for (std::uint64_t k = 0; k < 3; ++k) {
    const PoolTask task = queue.take_one();
    EXPECT_EQ(task.count, 1u);
    EXPECT_EQ(task.entry, &entry);
    EXPECT_EQ(analysis_of(task), "example.echo");
    EXPECT_EQ(task.index, 7 + k);
    EXPECT_EQ(task.seq, 10 + k);
    EXPECT_EQ(task.id, 50 + k);
    EXPECT_EQ(task.attempts, 0);
    EXPECT_EQ(queue.tasks(), 2 - k);
  }
  EXPECT_TRUE(queue.empty());
}

// What the pool fails when it cancels, stops or cannot start: a run partly
// handed out leaves exactly the tasks not sent yet, each once.
TEST(TaskQueue, ARunPartlyHandedOutLeavesEachTaskNotSentOnce) {
  const RunConfig config = parse_config(
      "analyses:\n  - name: r\n    analysis: example.echo\n    sweep: {x: {range: [0, 100]}}\n", "/configs/q.yaml");
  const RunEntry entry(1, config.analyses[0], {});
  PoolTask run;
  run.entry = &entry;
  run.seq = 5, run.index = 20, run.id = 9, run.count = 6;
  TaskQueue queue, other;
  other.push_back(std::move(run));
  queue.swap(other);
  EXPECT_EQ(queue.tasks(), 6u);
  EXPECT_EQ(other.tasks(), 0u);
  EXPECT_EQ(queue.take_one().seq, 5u);
  EXPECT_EQ(queue.take_one().seq, 6u);
  EXPECT_EQ(queue.tasks(), 4u);
  std::vector<std::uint64_t> seqs, indices, ids;
  for (PoolTask& left : queue)
    for_each_task(std::move(left), [&](PoolTask&& task) {
      EXPECT_EQ(task.count, 1u);
      seqs.push_back(task.seq), indices.push_back(task.index), ids.push_back(task.id);
    });
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{7, 8, 9, 10}));
  EXPECT_EQ(indices, (std::vector<std::uint64_t>{22, 23, 24, 25}));
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{11, 12, 13, 14}));
  queue.clear();
  EXPECT_EQ(queue.tasks(), 0u);
  PoolTask again;
  again.entry = &entry;
  again.count = 4;
  queue.push_back(std::move(again));
  queue.push_back(PoolTask{});
  queue.pop_front();  // a whole run at once
  EXPECT_EQ(queue.tasks(), 1u);
  queue.pop_back();
  EXPECT_EQ(queue.tasks(), 0u);
}

// A worker's in-flight list: a run goes as one entry, as much of it as fits
// (take_run), is answered task by task in place (drop_one), tells each
// task's entry (entry_of_task: sent_at for the time limit), and becomes its
// tasks for a death's judgement (split_runs), each with the run's attempts
// and sent_at.
TEST(TaskQueue, AWorkersListHoldsRunsAnsweredInPlaceAndSplitForADeath) {
  const RunConfig config = parse_config(
      "analyses:\n  - name: r\n    analysis: example.echo\n    sweep: {x: {range: [0, 100]}}\n", "/configs/q.yaml");
  const RunEntry entry(1, config.analyses[0], {});
  TaskQueue queue, inflight;
  PoolTask run;
  run.entry = &entry;
  run.index = 0, run.seq = 0, run.id = 1, run.count = 10;
  queue.push_back(std::move(run));
  PoolTask part = queue.take_run(4);
  EXPECT_EQ(part.count, 4u);
  EXPECT_EQ(queue.tasks(), 6u);
  EXPECT_EQ(queue.front().index, 4u);
  EXPECT_EQ(queue.front().id, 5u);
  part.attempts = 1;
  part.sent_at = std::chrono::steady_clock::time_point(std::chrono::seconds(7));
  inflight.push_back(std::move(part));
  PoolTask rest = queue.take_run(100);  // all that is left
  EXPECT_EQ(rest.count, 6u);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.tasks(), 0u);
  rest.attempts = 1;
  rest.sent_at = std::chrono::steady_clock::time_point(std::chrono::seconds(9));
  inflight.push_back(std::move(rest));
  EXPECT_EQ(inflight.size(), 2u);
  EXPECT_EQ(inflight.tasks(), 10u);
  EXPECT_EQ(inflight.entry_of_task(3).sent_at.time_since_epoch(), std::chrono::seconds(7));
  EXPECT_EQ(inflight.entry_of_task(4).sent_at.time_since_epoch(), std::chrono::seconds(9));
  inflight.drop_one();
  inflight.drop_one();
  EXPECT_EQ(inflight.tasks(), 8u);
  EXPECT_EQ(inflight.front().index, 2u);
  EXPECT_EQ(inflight.front().seq, 2u);
  EXPECT_EQ(inflight.front().id, 3u);
  EXPECT_EQ(inflight.entry_of_task(1).sent_at.time_since_epoch(), std::chrono::seconds(7));
  EXPECT_EQ(inflight.entry_of_task(2).sent_at.time_since_epoch(), std::chrono::seconds(9));
  inflight.split_runs();
  ASSERT_EQ(inflight.size(), 8u);
  EXPECT_EQ(inflight.tasks(), 8u);
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(inflight[i].count, 1u);
    EXPECT_EQ(inflight[i].index, 2 + i);
    EXPECT_EQ(inflight[i].id, 3 + i);
    EXPECT_EQ(inflight[i].attempts, 1);
    EXPECT_EQ(inflight[i].sent_at.time_since_epoch(), std::chrono::seconds(i < 2 ? 7 : 9));
  }
  while (!inflight.empty()) inflight.drop_one();
  EXPECT_EQ(inflight.tasks(), 0u);
}

// A result's bytes' room is kept for reuse when small, and freed when large
// or of joined lines (RawResult::count): found by the volume benchmark, the
// room was never freed (an empty string assigned keeps the room it replaces,
// in libstdc++), so every slot of a stream's ring came to hold 4-8 KiB of
// joined lines (79 MB at 2M echo tasks), and would have held a large result.
TEST(Recycle, ASmallResultsRoomIsKeptALargeOrJoinedOnesFreed) {
  RawResult small;
  small.payload.assign(200, 'x');
  const std::size_t room = small.payload.capacity();
  recycle(small);
  EXPECT_TRUE(small.payload.empty());
  EXPECT_EQ(small.payload.capacity(), room);

  RawResult large;
  large.payload.assign(1 << 20, 'x');
  large.error = TaskError{ErrorKind::plugin_error, "e"};
  recycle(large);
  EXPECT_LE(large.payload.capacity(), kKeptRoom);
  EXPECT_FALSE(large.error);

  RawResult joined;
  joined.payload.assign(3000, 'x');
  joined.count = 20;
  joined.line = true;
  recycle(joined);
  EXPECT_LT(joined.payload.capacity(), 3000u);
  EXPECT_EQ(joined.count, 1u);
  EXPECT_FALSE(joined.line);
}

}  // namespace
}  // namespace mathpool::detail
