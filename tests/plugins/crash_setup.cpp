// A plugin whose first analysis kills its worker during setup; the pool must
// quarantine that analysis and keep serving the other one.
#include <csignal>

#include <mathpool/plugin.hpp>

MATHPOOL_PLUGIN("crash_setup", "1.0.0") {
  mathpool::Analysis boom;
  boom.name = "crash_setup.boom";
  boom.version = "1.0.0";
  boom.description = "Setup raises SIGSEGV";
  boom.setup = []() -> std::any {
    std::raise(SIGSEGV);
    return {};
  };
  boom.run = [](const mathpool::TaskContext&) { return mathpool::Value{{"ran", true}}; };
  registry.add(boom);

  mathpool::Analysis fine;
  fine.name = "crash_setup.fine";
  fine.version = "1.0.0";
  fine.description = "No setup; always works";
  fine.run = [](const mathpool::TaskContext&) { return mathpool::Value{{"ran", true}}; };
  registry.add(fine);
}
