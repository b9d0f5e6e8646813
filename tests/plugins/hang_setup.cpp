// A plugin whose first analysis's setup never returns; the pool must give up
// on it after the setup timeout, quarantine it, and serve the other one.
#include <chrono>
#include <thread>

#include <mathpool/plugin.hpp>

MATHPOOL_PLUGIN("hang_setup", "1.0.0") {
  mathpool::Analysis stuck;
  stuck.name = "hang_setup.stuck";
  stuck.version = "1.0.0";
  stuck.description = "Setup never returns";
  stuck.setup = []() -> std::any {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  };
  stuck.run = [](const mathpool::TaskContext&) { return mathpool::Value{{"ran", true}}; };
  registry.add(stuck);

  mathpool::Analysis fine;
  fine.name = "hang_setup.fine";
  fine.version = "1.0.0";
  fine.description = "No setup; always works";
  fine.run = [](const mathpool::TaskContext&) { return mathpool::Value{{"ran", true}}; };
  registry.add(fine);
}
