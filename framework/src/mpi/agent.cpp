// agent.cpp: a node agent, the part of a rank other than 0. It owns this
// machine's local pool while rank 0 has one open, runs the tasks rank 0 sends
// and sends their results back; plugin code runs only in the pool's workers.
#include "agent.hpp"

#include <csignal>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "local_pool.hpp"
#include "mathpool/mpi.hpp"
#include "run_entry.hpp"

namespace mathpool::mpi_detail {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) { g_stop_signal = signal; }

constexpr int kExitSignalled = 143;
constexpr auto kPollMin = std::chrono::microseconds(250);

// Where the local pool's results go: encoded at once into the next results
// message. A message is closed once it holds kMessageBytes (records travel
// whole, up to 256 MiB each; MPI counts a message's bytes in an int).
class Outbox final : public detail::Completion {
 public:
  void complete(std::uint64_t seq, detail::RawResult&& result) override {
    {
      detail::MutexLock lock(mutex_);
      add(seq, result);
    }
    arrived_.notify_one();
  }
  void complete_batch(detail::Finished* first, detail::Finished* last) override {
    {
      detail::MutexLock lock(mutex_);
      for (; first != last; ++first) add(first->seq, first->result);
    }
    arrived_.notify_one();
  }
  // The next message of results (empty when none), waiting at most `timeout` for one.
  std::string take(std::chrono::microseconds timeout) {
    detail::MutexLock lock(mutex_);
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    while (closed_.empty() && bytes_.empty() && arrived_.wait_until(lock, give_up) == std::cv_status::no_timeout) {
    }
    if (closed_.empty()) return std::exchange(bytes_, {});
    std::string next = std::move(closed_.front());
    closed_.pop_front();
    return next;
  }

 private:
  static constexpr std::size_t kMessageBytes = 64u << 20;
  void add(std::uint64_t seq, const detail::RawResult& result) REQUIRES(mutex_) {
    append_result(bytes_, seq, result);
    if (bytes_.size() >= kMessageBytes) closed_.push_back(std::exchange(bytes_, {}));
  }

  detail::Mutex mutex_;
  detail::CondVar arrived_;
  std::string bytes_ GUARDED_BY(mutex_);
  std::deque<std::string> closed_ GUARDED_BY(mutex_);  // full messages, oldest first
};

using Clock = std::chrono::steady_clock;

// Sends heartbeats to rank 0 from a thread of its own while the agent's own
// thread is inside a call that may take long (starting a local pool runs the
// setups; a clean close waits for running tasks). The agent's thread does not
// touch the transport meanwhile, so one thread at a time talks to MPI.
class Beating {
 public:
  Beating(Transport& transport, const std::string& node) : thread_([this, &transport, &node] {
    detail::MutexLock lock(mutex_);
    while (!done_) {
      transport.send(0, Tag::heartbeat, node);
      transport.progress();
      const auto next = std::chrono::steady_clock::now() + kHeartbeatInterval;
      while (!done_ && wake_.wait_until(lock, next) == std::cv_status::no_timeout) {
      }
    }
  }) {}
  ~Beating() {
    {
      detail::MutexLock lock(mutex_);
      done_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  Beating(const Beating&) = delete;
  Beating& operator=(const Beating&) = delete;

 private:
  detail::Mutex mutex_;
  detail::CondVar wake_;
  bool done_ GUARDED_BY(mutex_) = false;
  std::thread thread_;  // last: starts once the rest is ready
};

class Agent {
 public:
  explicit Agent(Job& job) : job_(job) {}

  int serve() {
    auto idle = kPollMin;
    while (!ended_) {
      if (g_stop_signal) {
        if (pool_) pool_->terminate();  // its workers end with it
        return kExitSignalled;
      }
      bool busy = false;
      while (auto message = job_.transport.try_receive()) {
        busy = true;
        if (message->source == 0) heard_ = Clock::now();
        handle(*message);
      }
      if (serving_) {
        beat();
        check_rank0();
      }
      // Waits for a first result when there is nothing else to do.
      std::string results = outbox_.take(busy ? std::chrono::microseconds(0) : idle);
      if (!results.empty()) {
        job_.transport.send(0, Tag::results, std::move(results));
        busy = true;
      }
      job_.transport.progress();
      // MPI can only be polled. Rank 0 gives a node tasks for about 50 ms at
      // once, so a pass every kPollMin is ample and gathers results into
      // fewer, larger messages; quiet spells wait longer, up to 2 ms with a
      // pool open and 20 ms without one.
      if (busy) std::this_thread::sleep_for(kPollMin);
      const auto most = pool_ ? std::chrono::microseconds(2000) : std::chrono::microseconds(20000);
      idle = busy ? kPollMin : std::min(idle * 2, most);
    }
    while (!job_.transport.progress()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return 0;
  }

 private:
  void handle(Message& message) {
    switch (message.tag) {
      case Tag::open: open(message.body); break;
      case Tag::tasks: run(message.body); break;
      case Tag::ranges: run_ranges(message.body); break;
      case Tag::cancel:
        if (pool_ && !message.body.empty())
          pool_->cancel_pending(TaskError{ErrorKind(message.body[0]), message.body.substr(1)});
        break;
      case Tag::close: close(!message.body.empty() && message.body[0] != 0); break;
      case Tag::end: ended_ = true; break;
      case Tag::heartbeat:  // rank 0's router runs; the body is its host name
        watching_ = serving_;
        if (rank0_host_.empty()) rank0_host_ = message.body;
        break;
      default: break;  // not for an agent
    }
  }

  void open(const std::string& body) {
    Value hello = {{"node", job_.node}, {"workers", 0}, {"error", ""}, {"protocol", kProtocolVersion}};
    serving_ = true;  // heartbeats from now until `closed`
    watching_ = false;
    {
      Beating beating(job_.transport, job_.node);
      try {
        pool_.reset();
        entries_.clear();
        PoolOptions options = decode_open(body, job_.node_timeout);
        pool_ = detail::make_local_pool(job_.resolve_workers(std::move(options)));
        hello["workers"] = pool_->local_size();
      } catch (const std::exception& e) {
        pool_.reset();
        hello["error"] = e.what();
      }
    }
    last_beat_ = Clock::now();
    heard_ = Clock::now();  // rank 0 waited for this agent meanwhile
    std::string bytes;
    detail::append_msgpack(bytes, hello);
    job_.transport.send(0, Tag::hello, std::move(bytes));
  }

  void run(const std::string& body) {
    Reader in(body);
    WireTask wire;
    std::vector<detail::PoolTask> tasks;
    while (!in.done()) {
      if (!read_task(in, wire)) return refuse("tasks", body.size());  // none of its tasks runs
      detail::PoolTask& task = tasks.emplace_back();
      task.analysis.assign(wire.analysis);
      task.params.assign(wire.params);
      task.completion = &outbox_;
      task.seq = wire.id;
    }
    if (!pool_) {  // its pool failed to start: rank 0 has given up already
      for (auto& task : tasks)
        outbox_.complete(task.seq, detail::error_result(ErrorKind::crashed, "no pool on this node", 0));
      return;
    }
    pool_->enqueue_local(tasks, false);
  }

  // Tasks of run entries: the entries come once, before their first run, and
  // are held until the pool closes (its tasks point at them).
  void run_ranges(const std::string& body) {
    if (!readable_ranges(body)) return refuse("ranges", body.size());  // none of its tasks runs
    Reader in(body);
    RangesItem item;
    std::vector<detail::PoolTask> tasks;
    while (read_ranges_item(in, item)) {
      if (item.entry) {
        // An id once held stays as it is: queued tasks point at it.
        if (entries_.count(item.entry_id)) continue;
        try {
          entries_.emplace(item.entry_id,
                           std::make_unique<detail::RunEntry>(detail::RunEntry::decode(item.entry_id, item.wire, true)));
        } catch (const std::exception&) {
          // Not held: its tasks fail below.
        }
        continue;
      }
      const auto held = entries_.find(item.entry_id);
      for (std::uint32_t k = 0; k < item.count; ++k) {
        std::uint64_t id;
        std::memcpy(&id, item.ids.data() + std::size_t(k) * sizeof id, sizeof id);
        if (held == entries_.end() || !pool_ || item.first_index + k >= held->second->tasks()) {
          outbox_.complete(id, pool_ ? detail::error_result(ErrorKind::protocol_error,
                                                            "a task of a run entry this node does not hold", 0)
                                     : detail::error_result(ErrorKind::crashed, "no pool on this node", 0));
          continue;
        }
        detail::PoolTask& task = tasks.emplace_back();
        task.entry = held->second.get();
        task.index = item.first_index + k;
        task.completion = &outbox_;
        task.seq = id;
      }
    }
    if (pool_) pool_->enqueue_local(tasks, false);
  }

  // A message from rank 0 this agent cannot read (another build's, or a
  // fault): its tasks cannot even be named, so rank 0 is told, and ends the
  // job as for a lost rank rather than wait for them.
  void refuse(const char* what, std::size_t bytes) {
    job_.transport.send(0, Tag::refused,
                        fmt::format("MPI rank {} (host {}) cannot read a {} message of {} bytes from rank 0; the job "
                                    "ends (do all ranks run one build of mathpool?)",
                                    job_.rank, job_.node, what, bytes));
  }

  void close(bool terminate) {
    if (pool_) {
      Beating beating(job_.transport, job_.node);
      if (terminate) pool_->terminate();
      else pool_->shutdown();
      pool_.reset();
    }
    entries_.clear();  // after the pool: no task points at them any more
    serving_ = watching_ = false;
    while (true) {
      std::string results = outbox_.take(std::chrono::microseconds(0));
      if (results.empty()) break;
      job_.transport.send(0, Tag::results, std::move(results));
    }
    job_.transport.send(0, Tag::closed, {});
  }

  // A heartbeat to rank 0 about every second while a pool is open, busy or
  // idle: this loop never waits long (at most 20 ms for a result).
  void beat() {
    const auto now = Clock::now();
    if (now - last_beat_ < kHeartbeatInterval) return;
    last_beat_ = now;
    job_.transport.send(0, Tag::heartbeat, job_.node);
  }

  // Rank 0 sends heartbeats while its router runs. Once they have come for
  // this pool, a rank 0 silent for longer than the node timeout (stopped, or
  // its machine gone) ends the job rather than leave this rank waiting.
  void check_rank0() {
    if (!watching_ || Clock::now() - heard_ <= job_.node_timeout) return;
    job_.mark_lost(0, rank0_host_, job_.node_timeout);
    std::fprintf(stderr, "mathpool: error: %s\n", job_.lost_message().c_str());
    std::fflush(stderr);
    if (pool_) pool_->terminate();  // its workers end with it
    MPI_Abort(MPI_COMM_WORLD, MpiJob::kExitRankLost);
  }

  Job& job_;
  Outbox outbox_;
  // Declared before the pool, so destroyed after it.
  std::map<std::uint64_t, std::unique_ptr<detail::RunEntry>> entries_;
  std::unique_ptr<detail::LocalPool> pool_;
  bool ended_ = false;
  bool serving_ = false;   // a pool is open: from `open` until `closed`
  bool watching_ = false;  // rank 0's heartbeats have come for this pool
  Clock::time_point last_beat_{};
  Clock::time_point heard_{};  // rank 0's last message
  std::string rank0_host_;
};

}  // namespace

int serve_as_agent(Job& job) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  Agent agent(job);
  return agent.serve();
}

}  // namespace mathpool::mpi_detail
