#include "router.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <span>

#include <fmt/format.h>

#include "mathpool/mpi.hpp"
#include "msgpack_json.hpp"
#include "run_entry.hpp"

namespace mathpool::mpi_detail {
namespace {

using Clock = std::chrono::steady_clock;
using detail::error_result;

// Per tasks or ranges message: a message closes once past it (a ranges
// message with an entry can reach the entry's size, up to 8 MiB: run.cpp).
constexpr std::size_t kMaxBatchBytes = 1 << 20;
constexpr std::size_t kMaxQuota = 1 << 16;
// A node's quota covers this long of work for each of its workers, at the
// tasks' measured time, so it never runs dry between two messages; at least
// two tasks per worker. (Sized from the tasks' own time, not from the node's
// throughput, which the quota itself would limit.)
constexpr double kQuotaCoverSeconds = 0.05;
constexpr auto kPollMin = std::chrono::microseconds(250);
constexpr auto kPollMax = std::chrono::microseconds(2000);
// How long closing waits for the agents to confirm: a clean close after every
// result is in is quick; a terminate often comes because the job is ending
// and the agents are gone, so it waits only briefly.
constexpr auto kCloseWait = std::chrono::seconds(2);
constexpr auto kTerminateCloseWait = std::chrono::milliseconds(200);
// Once a rank is lost, rank 0's program has this long to write what is done
// and abort the job (mathpool run takes milliseconds); then the router does.
constexpr auto kLostGrace = std::chrono::seconds(10);

std::uint64_t make_id(std::uint32_t index, std::uint32_t generation) {
  return (std::uint64_t(generation) << 32) | index;
}

}  // namespace

Router::Router(Job& job, detail::LocalPool& local, const PoolOptions& options) : job_(job), local_(local) {
  nodes_.resize(std::size_t(job.size));
  nodes_[0].name = job.node;
  nodes_[0].workers = local.local_size();
  // Agents start their pools (plugin load, setups) at the same time; they
  // send heartbeats meanwhile, so one that is stopped or gone is found after
  // the node timeout rather than the setup timeout.
  std::string errors;
  bool lost = false;
  int waiting = job.size - 1;
  const auto deadline = Clock::now() + options.setup_timeout + std::chrono::seconds(30);
  for (Node& node : nodes_) node.heard = Clock::now();
  while (waiting > 0) {
    beat();
    job.transport.progress();
    auto message = job.transport.try_receive();
    if (!message) {
      if (find_silent()) {
        errors = job.lost_message();
        lost = true;
        break;
      }
      if (Clock::now() > deadline) {
        errors += "; some node agents did not answer within the setup timeout";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    if (message->source <= 0 || message->source >= job.size) continue;
    Node& node = nodes_[std::size_t(message->source)];
    node.heard = Clock::now();
    if (message->tag == Tag::heartbeat && node.name.empty()) node.name = message->body;  // until its hello
    if (message->tag != Tag::hello) continue;
    Value hello;
    try {
      hello = detail::msgpack_to_value(message->body);
      node.name = hello.at("node").get<std::string>();
      node.workers = hello.at("workers").get<int>();
      if (const int protocol = hello.value("protocol", 0); protocol != kProtocolVersion)
        errors += fmt::format("{}node {} (rank {}) speaks {} of mathpool's MPI messages, rank 0 version {}; "
                              "run one build of mathpool on every node",
                              errors.empty() ? "" : "; ", node.name, message->source,
                              protocol ? fmt::format("version {}", protocol) : std::string("an older version"),
                              kProtocolVersion);
      else if (const std::string error = hello.value("error", ""); !error.empty())
        errors += fmt::format("{}node {} (rank {}): {}", errors.empty() ? "" : "; ", node.name, message->source, error);
    } catch (const std::exception& e) {
      errors += fmt::format("{}rank {}: malformed hello ({})", errors.empty() ? "" : "; ", message->source, e.what());
    }
    --waiting;
  }
  for (Node& node : nodes_) {
    workers_ += node.workers;
    node.quota = std::size_t(std::max(node.workers, 1)) * 2;
  }
  if (!errors.empty()) {
    close_nodes(true);
    // A lost rank: the caller sees MpiJob::lost() and aborts the job.
    throw Error(lost ? ErrorKind::crashed : ErrorKind::start_failed, errors);
  }
  thread_ = std::thread([this] { loop(); });
}

void Router::open_nodes(Job& job, const PoolOptions& options) {
  for (int r = 1; r < job.size; ++r) job.transport.send(r, Tag::open, encode_open(job.node_timeout, options));
}

Router::~Router() {
  stop(true, std::nullopt);
  job_.pool_open = false;
}

void Router::enqueue(std::vector<Task>& tasks, bool) {
  std::vector<Task> refused;
  {
    detail::MutexLock lock(mutex_);
    if (closing_) {
      refused = std::move(tasks);
    } else {
      for (Task& task : tasks) pending_.push_back(std::move(task));
      activity_ = true;
    }
  }
  tasks.clear();
  for (Task& task : refused)
    task.completion->complete(task.seq, error_result(ErrorKind::crashed, "the pool is shut down", 0));
  changed_.notify_all();
}

void Router::cancel_pending(const TaskError& error) {
  std::deque<Task> cancelled;
  {
    detail::MutexLock lock(mutex_);
    cancelled.swap(pending_);
    cancel_ = error;  // the loop tells the agents
    activity_ = true;
  }
  for (Task& task : cancelled) task.completion->complete(task.seq, error_result(error.kind, error.message, 0));
  changed_.notify_all();
}

void Router::stop(bool terminate, std::optional<std::chrono::milliseconds> grace) {
  detail::MutexLock lock(mutex_);
  if (stopped_) return;
  if (!terminate) {
    const auto give_up = grace ? std::chrono::steady_clock::now() + *grace : std::chrono::steady_clock::time_point::max();
    while (!(pending_.empty() && held_ == 0)) {
      if (!grace) changed_.wait(lock);
      else if (changed_.wait_until(lock, give_up) == std::cv_status::timeout) break;
    }
    terminate = !(pending_.empty() && held_ == 0);
  }
  std::vector<detail::Finished> failed;
  if (terminate) {
    terminating_ = true;
    for (Task& task : pending_)
      failed.push_back({task.completion, task.seq, error_result(ErrorKind::crashed, "the pool was terminated", 0)});
    pending_.clear();
    // Tasks on other nodes fail now; rank 0's own are failed by its pool.
    for (std::uint32_t i = 0; i < owners_.size(); ++i) {
      Owner& owner = owners_[i];
      if (owner.node <= 0) continue;
      failed.push_back({owner.completion, owner.seq, error_result(ErrorKind::crashed, "the pool was terminated", 0)});
      owner.node = -1;
      free_.push_back(i);
      --held_;
    }
  }
  closing_ = true;
  stopped_ = true;
  lock.unlock();
  for (auto& f : failed) f.completion->complete(f.seq, std::move(f.result));
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Router::add_stats(PoolStats& stats) {
  detail::MutexLock lock(mutex_);
  stats.queued += long(pending_.size());
  for (std::size_t n = 0; n < nodes_.size(); ++n)
    stats.nodes.push_back({int(n), nodes_[n].name, nodes_[n].workers, long(nodes_[n].outstanding), nodes_[n].done});
}

std::uint64_t Router::hold(const Task& task, int node) {
  std::uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = std::uint32_t(owners_.size());
    owners_.emplace_back();
  }
  Owner& owner = owners_[index];
  owner.completion = task.completion;
  owner.seq = task.seq;
  owner.node = node;
  owner.entry = task.entry;
  ++owner.generation;
  ++held_;
  return make_id(index, owner.generation);
}

void Router::answer(detail::Finished* first, detail::Finished* last) {
  // Records that get "node", marked under the lock, written after it.
  thread_local std::vector<std::uint8_t> add_node;
  add_node.assign(std::size_t(last - first), 0);
  {
    detail::MutexLock lock(mutex_);
    for (detail::Finished& a : std::span(first, last)) {
      const auto index = std::uint32_t(a.seq);
      const auto generation = std::uint32_t(a.seq >> 32);
      if (index >= owners_.size() || owners_[index].node < 0 || owners_[index].generation != generation) {
        a.completion = nullptr;  // failed already (terminate): drop
        continue;
      }
      Owner& owner = owners_[index];
      Node& node = nodes_[std::size_t(owner.node)];
      --node.outstanding;
      ++node.done;
      // A moving average of the time inside the workers, for the quota.
      node.mean_seconds = node.mean_seconds < 0 ? a.result.seconds : 0.95 * node.mean_seconds + 0.05 * a.result.seconds;
      a.completion = owner.completion;
      a.seq = owner.seq;
      a.result.node = &node.name;
      if (a.result.line) {
        // A record line (its node's pool checked it: one compact JSON object)
        // answers only a task of a run entry.
        if (!owner.entry || a.result.payload.empty() || a.result.payload.back() != '}')
          a.result = detail::error_result(ErrorKind::protocol_error,
                                          fmt::format("node {} answered a task with a record it cannot have written",
                                                      node.name),
                                          a.result.worker);
        else if (owner.entry->fields().node)
          add_node[std::size_t(&a - first)] = 1;
      }
      owner.node = -1;
      free_.push_back(index);
      --held_;
    }
    activity_ = true;
  }
  // A record its worker wrote ends with "seconds" (or the field before it);
  // "node", the last field, is the one thing only rank 0 knows.
  for (std::size_t k = 0; k < add_node.size(); ++k) {
    if (!add_node[k]) continue;
    detail::Bytes& line = first[k].result.payload;
    line.pop_back();
    line += ",\"node\":";
    detail::append_json_string(line, *first[k].result.node);
    line += '}';
  }
  // Runs of the same owner go over together, as the dispatcher hands them.
  for (detail::Finished* i = first; i != last;) {
    detail::Finished* j = i + 1;
    while (j != last && j->completion == i->completion) ++j;
    if (i->completion) i->completion->complete_batch(i, j);
    i = j;
  }
  changed_.notify_all();
}

void Router::LocalCompletion::complete(std::uint64_t seq, detail::RawResult&& result) {
  // Also on other threads (a task the local pool refuses): not through answers_.
  detail::Finished one{nullptr, seq, std::move(result)};
  router_.answer(&one, &one + 1);
}

void Router::LocalCompletion::complete_batch(detail::Finished* first, detail::Finished* last) {
  // The results' room goes to their owners and the room they give back
  // returns to the local pool, which reuses it: no allocation per result.
  const std::size_t n = std::size_t(last - first);
  if (answers_.size() < n) answers_.resize(n, detail::Finished{nullptr, 0, {}});
  for (std::size_t i = 0; i < n; ++i) {
    answers_[i].completion = nullptr;
    answers_[i].seq = first[i].seq;
    std::swap(answers_[i].result, first[i].result);
  }
  router_.answer(answers_.data(), answers_.data() + n);
  for (std::size_t i = 0; i < n; ++i) std::swap(first[i].result, answers_[i].result);
}

void Router::resize_quota(Node& node) {
  if (node.mean_seconds < 0) return;  // no result yet: the initial quota
  const double per_worker = kQuotaCoverSeconds / std::max(node.mean_seconds, 1e-6);
  const double cover = per_worker * std::max(node.workers, 1);
  const std::size_t least = std::size_t(std::max(node.workers, 1)) * 2;
  node.quota = cover >= double(kMaxQuota) ? kMaxQuota : std::max(least, std::size_t(cover));
}

bool Router::feed() {
  bool fed = false;
  for (std::size_t n = 0; n < nodes_.size(); ++n) {
    Node& node = nodes_[n];
    std::vector<Task> local;
    std::string batch, ranges;
    {
      detail::MutexLock lock(mutex_);
      if (pending_.empty() || closing_ || job_.lost()) return fed;
      resize_quota(node);
      if (node.outstanding >= node.quota) continue;
      // Small top-ups wait until a quarter of the quota is free: fewer,
      // larger messages when tasks are tiny.
      const std::size_t room = node.quota - node.outstanding;
      if (room < node.quota / 4 && node.outstanding > 0) continue;
      const std::size_t count = std::min(room, pending_.size());
      // A run of tasks of one entry, consecutive in index, is one item: its
      // head, then an id per task (patched in when the run ends).
      const detail::RunEntry* run_entry = nullptr;
      std::uint64_t run_next = 0;
      std::size_t run_head = 0;
      std::uint32_t run_count = 0;
      auto end_run = [&] {
        if (run_entry) std::memcpy(ranges.data() + run_head + 17, &run_count, sizeof run_count);
        run_entry = nullptr;
      };
      for (std::size_t i = 0; i < count && batch.size() + ranges.size() < kMaxBatchBytes; ++i) {
        Task& task = pending_.front();
        const std::uint64_t id = hold(task, int(n));
        ++node.outstanding;
        if (n == 0) {
          task.completion = &local_completion_;
          task.seq = id;
          local.push_back(std::move(task));
        } else if (task.entry) {
          // The node's workers make each task's parameters and write its record.
          if (run_entry != task.entry || task.index != run_next || run_count == UINT32_MAX) {
            end_run();
            if (node.entries.insert(task.entry->id()).second)
              append_entry_item(ranges, task.entry->id(), task.entry->wire());
            run_entry = task.entry;
            run_head = ranges.size();
            run_count = 0;
            append_run_head(ranges, task.entry->id(), task.index, 0);
          }
          put<std::uint64_t>(ranges, id);
          ++run_count;
          run_next = task.index + 1;
        } else {
          append_task(batch, id, task.analysis, task.params);
        }
        pending_.pop_front();
      }
      end_run();
    }
    if (n == 0) {
      local_.enqueue_local(local, false);
    } else {
      if (!batch.empty()) job_.transport.send(int(n), Tag::tasks, std::move(batch));
      if (!ranges.empty()) job_.transport.send(int(n), Tag::ranges, std::move(ranges));
    }
    fed = true;
  }
  return fed;
}

bool Router::receive_all() {
  bool received = false;
  std::size_t n = 0;  // results in inbox_, whose room is reused message after message
  while (auto message = job_.transport.try_receive()) {
    received = true;
    if (message->source > 0 && message->source < job_.size) nodes_[std::size_t(message->source)].heard = Clock::now();
    if (message->tag == Tag::closed && message->source > 0 && message->source < job_.size)
      nodes_[std::size_t(message->source)].closed = true;
    if (message->tag == Tag::refused) {
      end_job(message->body);
      continue;
    }
    if (message->tag != Tag::results) continue;
    Reader in(message->body);
    while (!in.done()) {
      if (n == inbox_.size()) inbox_.push_back(detail::Finished{nullptr, 0, {}});
      detail::Finished& a = inbox_[n];
      detail::recycle(a.result);
      a.completion = nullptr;
      if (!read_result(in, a.seq, a.result)) {
        // Its other results cannot be found: the job ends, as for a lost rank.
        end_job(fmt::format("rank 0 cannot read a results message of {} bytes from MPI rank {} (host {}); the job "
                            "ends (do all ranks run one build of mathpool?)",
                            message->body.size(), message->source,
                            message->source > 0 && message->source < job_.size
                                ? nodes_[std::size_t(message->source)].name
                                : std::string("unknown")));
        break;
      }
      ++n;
    }
  }
  if (n > 0) answer(inbox_.data(), inbox_.data() + n);
  for (std::size_t k = 0; k < n; ++k) detail::recycle(inbox_[k].result);  // large room is not kept
  return received;
}

void Router::close_nodes(bool terminate) {
  const std::string body(1, terminate ? '\1' : '\0');
  for (std::size_t n = 1; n < nodes_.size(); ++n) job_.transport.send(int(n), Tag::close, body);
  // Results that still arrive are dropped: their tasks were failed or done.
  const auto deadline = Clock::now() + (terminate ? std::chrono::milliseconds(kTerminateCloseWait) : kCloseWait);
  auto all_closed = [this] {
    return std::all_of(nodes_.begin() + 1, nodes_.end(), [](const Node& n) { return n.closed; });
  };
  while (!all_closed() && Clock::now() < deadline) {
    job_.transport.progress();
    if (!receive_all()) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  job_.transport.progress();
}

void Router::beat() {
  const auto now = Clock::now();
  if (now - last_beat_ < kHeartbeatInterval) return;
  last_beat_ = now;
  for (std::size_t n = 1; n < nodes_.size(); ++n)
    if (!nodes_[n].closed) job_.transport.send(int(n), Tag::heartbeat, job_.node);
}

bool Router::find_silent() {
  const auto now = Clock::now();
  for (std::size_t n = 1; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    if (node.closed || now - node.heard <= job_.node_timeout) continue;
    job_.mark_lost(int(n), node.name, job_.node_timeout);
    lost_at_ = now;
    changed_.notify_all();
    return true;
  }
  return false;
}

void Router::end_job(const std::string& why) {
  job_.mark_lost(why);
  if (lost_at_ == Clock::time_point{}) lost_at_ = Clock::now();
  changed_.notify_all();
}

void Router::abort_if_forgotten() {
  if (lost_at_ == Clock::time_point{} || Clock::now() - lost_at_ < kLostGrace) return;
  std::fprintf(stderr, "mathpool: error: %s\n", job_.lost_message().c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, MpiJob::kExitRankLost);
}

void Router::loop() {
  auto idle = kPollMin;
  for (;;) {
    bool busy = false;
    {
      detail::MutexLock lock(mutex_);
      if (closing_) break;
      if (cancel_) {
        std::string body(1, char(cancel_->kind));
        body += cancel_->message;
        for (std::size_t n = 1; n < nodes_.size(); ++n) job_.transport.send(int(n), Tag::cancel, body);
        cancel_.reset();
      }
      busy = std::exchange(activity_, false);
    }
    busy |= receive_all();
    if (job_.lost()) abort_if_forgotten();
    else find_silent();
    busy |= feed();
    beat();
    job_.transport.progress();
    // MPI can only be polled. Every node holds about kQuotaCoverSeconds of
    // work, so a pass every kPollMin is ample and lets results gather into fewer,
    // larger messages; quiet spells poll less often. A submit or a local
    // result ends a quiet spell's wait at once.
    std::this_thread::sleep_for(kPollMin);
    idle = busy ? kPollMin : std::min(idle * 2, kPollMax);
    if (idle > kPollMin) {
      detail::MutexLock lock(mutex_);
      const auto until = std::chrono::steady_clock::now() + (idle - kPollMin);
      while (!activity_ && !closing_ && changed_.wait_until(lock, until) == std::cv_status::no_timeout) {
      }
    }
  }
  bool terminating;
  {
    detail::MutexLock lock(mutex_);
    terminating = terminating_;
  }
  close_nodes(terminating);
}

}  // namespace mathpool::mpi_detail
