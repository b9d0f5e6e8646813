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
// that have been up for a while: a process killed again and again while it
// starts is a different fault (a crash loop), tested elsewhere.
std::vector<int> running_children() {
  std::vector<int> pids;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream list(task.path() / "children");
    for (int pid; list >> pid;)
      if (process_age(pid) >= 0.05) pids.push_back(pid);
  }
  return pids;
}

TEST(Chaos, EveryTaskComesBackOnceWithItsCleanResultUnderRepeatedKills) {
  PoolOptions options = test::test_pool_options(2);
  options.retries = 1000;  // a kill is never the task's fault here
  Pool pool(options);
  std::atomic<bool> done{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937 random(12345);
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(4));
      auto pids = running_children();
      if (pids.empty()) continue;
      if (::kill(pids[random() % pids.size()], SIGKILL) == 0) ++kills;
    }
  });
  // Batches of 100 until the pool has been hit often enough.
  constexpr int kMinTasks = 2000;
  constexpr int kMinKills = 40;
  std::vector<std::future<TaskResult>> futures;
  int submitted = 0;
  while (submitted < kMinTasks || kills < kMinKills) {
    std::vector<TaskSpec> batch;
    for (int i = submitted; i < submitted + 100; ++i)
      batch.push_back({"example.sum", {{"values", {i, i % 7}}, {"offset", i % 3}}});
    submitted += 100;
    auto batch_futures = pool.submit_all(std::move(batch));
    batch_futures.back().wait();
    for (auto& f : batch_futures) futures.push_back(std::move(f));
  }
  done = true;
  killer.join();

  std::cout << "[ chaos    ] " << kills << " processes killed during " << submitted << " tasks\n";
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

}  // namespace
}  // namespace mathpool
