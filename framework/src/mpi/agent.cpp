// agent.cpp: a node agent, the part of a rank other than 0. It owns this
// machine's local pool while rank 0 has one open, runs the tasks rank 0 sends
// and sends their results back; plugin code runs only in the pool's workers.
#include "agent.hpp"

#include <csignal>
#include <condition_variable>
#include <mutex>

#include "../host/pool_impl.hpp"

namespace mathpool::mpi_detail {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int signal) { g_stop_signal = signal; }

constexpr int kExitSignalled = 143;
constexpr auto kPollMin = std::chrono::microseconds(250);

// Where the local pool's results go: encoded at once into the next results
// message.
class Outbox final : public detail::Completion {
 public:
  void complete(std::uint64_t seq, detail::RawResult&& result) override {
    {
      std::lock_guard lock(mutex_);
      append_result(bytes_, seq, result);
    }
    arrived_.notify_one();
  }
  void complete_batch(detail::Finished* first, detail::Finished* last) override {
    {
      std::lock_guard lock(mutex_);
      for (; first != last; ++first) append_result(bytes_, first->seq, first->result);
    }
    arrived_.notify_one();
  }
  // The results so far (empty when none), waiting at most `timeout` for one.
  std::string take(std::chrono::microseconds timeout) {
    std::unique_lock lock(mutex_);
    if (bytes_.empty()) arrived_.wait_for(lock, timeout, [this] { return !bytes_.empty(); });
    return std::exchange(bytes_, {});
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::string bytes_;
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
        handle(*message);
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
      case Tag::cancel:
        if (pool_ && !message.body.empty())
          pool_->cancel_pending(TaskError{ErrorKind(message.body[0]), message.body.substr(1)});
        break;
      case Tag::close: close(!message.body.empty() && message.body[0] != 0); break;
      case Tag::end: ended_ = true; break;
      default: break;  // not for an agent
    }
  }

  void open(const std::string& body) {
    Value hello = {{"node", job_.node}, {"workers", 0}, {"error", ""}};
    try {
      pool_.reset();
      pool_ = std::make_unique<Pool::Impl>(job_.resolve_workers(decode_options(body)));
      hello["workers"] = pool_->local_size();
    } catch (const std::exception& e) {
      pool_.reset();
      hello["error"] = e.what();
    }
    std::string bytes;
    detail::append_msgpack(bytes, hello);
    job_.transport.send(0, Tag::hello, std::move(bytes));
  }

  void run(const std::string& body) {
    Reader in(body);
    WireTask wire;
    std::vector<Pool::Impl::Task> tasks;
    while (read_task(in, wire)) {
      Pool::Impl::Task& task = tasks.emplace_back();
      task.analysis.assign(wire.analysis);
      task.params.assign(wire.params);
      task.completion = &outbox_;
      task.seq = wire.id;
    }
    if (!pool_) {  // its pool failed to start: rank 0 has given up already
      for (auto& task : tasks)
        outbox_.complete(task.seq, pool_detail::error_result(ErrorKind::crashed, "no pool on this node", 0));
      return;
    }
    pool_->enqueue_local(tasks, false);
  }

  void close(bool terminate) {
    if (pool_) {
      if (terminate) pool_->terminate();
      else pool_->shutdown();
      pool_.reset();
    }
    if (std::string results = outbox_.take(std::chrono::microseconds(0)); !results.empty())
      job_.transport.send(0, Tag::results, std::move(results));
    job_.transport.send(0, Tag::closed, {});
  }

  Job& job_;
  Outbox outbox_;
  std::unique_ptr<Pool::Impl> pool_;
  bool ended_ = false;
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
