// Chaos: thousands of tasks while random pool processes (workers and the
// zygote template) are SIGKILLed again and again. Every task must come back
// exactly once, with the result a clean run gives.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "mathpool/pool.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

// Seconds since `pid` started (from /proc), or -1 when it is gone.
double process_age(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return -1;
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  std::ifstream uptime("/proc/uptime");
  double now = 0;
  uptime >> now;
  return now - std::stod(field) / double(sysconf(_SC_CLK_TCK));
}

// The pool's running processes (workers and template: our direct children)
// that have been up for at least `min_age` seconds.
std::vector<int> running_children(double min_age) {
  std::vector<int> pids;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream list(task.path() / "children");
    for (int pid; list >> pid;)
      if (process_age(pid) >= min_age) pids.push_back(pid);
  }
  return pids;
}

// SIGKILLs a random pool process every `period` until stopped.
class Killer {
 public:
  Killer(std::chrono::milliseconds period, double min_age)
      : thread_([this, period, min_age] {
          std::mt19937 random(12345);
          while (!done_) {
            std::this_thread::sleep_for(period);
            auto pids = running_children(min_age);
            if (pids.empty()) continue;
            if (::kill(pids[random() % pids.size()], SIGKILL) == 0) ++kills_;
          }
        }) {}
  ~Killer() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int kills() const { return kills_; }

 private:
  std::atomic<bool> done_{false};
  std::atomic<int> kills_{0};
  std::thread thread_;
};

TEST(Chaos, EveryTaskComesBackOnceWithItsCleanResultUnderRepeatedKills) {
  PoolOptions options = test::test_pool_options(2);
  options.retries = 1000;  // a kill is never the task's fault here
  Pool pool(options);
  // Processes up for 50 ms at least: one killed again and again while it
  // starts is a crash loop, which the stream test below also covers.
  Killer killer(std::chrono::milliseconds(4), 0.05);
  auto kills = [&] { return killer.kills(); };
  // Batches of 100 until the pool has been hit often enough.
  constexpr int kMinTasks = 2000;
  constexpr int kMinKills = 40;
  std::vector<std::future<TaskResult>> futures;
  int submitted = 0;
  while (submitted < kMinTasks || kills() < kMinKills) {
    std::vector<TaskSpec> batch;
    for (int i = submitted; i < submitted + 100; ++i)
      batch.push_back({"example.sum", {{"values", {i, i % 7}}, {"offset", i % 3}}});
    submitted += 100;
    auto batch_futures = pool.submit_all(std::move(batch));
    batch_futures.back().wait();
    for (auto& f : batch_futures) futures.push_back(std::move(f));
  }
  killer.stop();

  std::cout << "[ chaos    ] " << kills() << " processes killed during " << submitted << " tasks\n";
  ASSERT_EQ(futures.size(), std::size_t(submitted));
  for (int i = 0; i < submitted; ++i) {
    const TaskResult r = futures[std::size_t(i)].get();
    ASSERT_TRUE(r.ok()) << i << ": " << r.error->message;
    EXPECT_EQ(r.result.at("sum"), i + i % 7 + i % 3) << i;
  }
  const PoolStats stats = pool.stats();
  EXPECT_EQ(stats.tasks_ok, submitted);  // each task finished exactly once
  EXPECT_EQ(stats.tasks_failed, 0);
}

// The same through a task stream, and processes of any age are fair game,
// the template and workers that are still starting included. One kill every
// 50 ms: a start (a template start takes tens of milliseconds on a slow
// virtual machine) must be able to finish between kills, since a pool that
// is SIGKILLed at 20 starts in a row gives up by design (an OOM-killer loop).
TEST(Chaos, StreamedTasksComeBackOnceInOrderUnderKillsOfProcessesOfAnyAge) {
  PoolOptions options = test::test_pool_options(2);
  options.retries = 1000;
  Pool pool(options);
  Killer killer(std::chrono::milliseconds(50), 0);
  constexpr long kMinTasks = 3000;
  constexpr int kMinKills = 30;
  long produced = 0, consumed = 0;
  pool.map_stream(
      "example.sum",
      [&]() -> std::optional<Value> {
        if (produced >= kMinTasks && killer.kills() >= kMinKills) return std::nullopt;
        if (produced % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let kills land
        const long i = produced++;
        Value params = {{"values", {i, i % 7}}, {"offset", i % 3}};
        return params;
      },
      [&](TaskResult&& r) {
        const long i = consumed++;
        ASSERT_TRUE(r.ok()) << i << ": " << r.error->message;
        ASSERT_EQ(r.result.at("sum"), i + i % 7 + i % 3) << i;
      },
      256);
  killer.stop();
  std::cout << "[ chaos    ] " << killer.kills() << " processes of any age killed during " << produced
            << " streamed tasks\n";
  EXPECT_EQ(consumed, produced);
  EXPECT_EQ(pool.stats().tasks_ok, produced);
}

}  // namespace
}  // namespace mathpool
