// A plugin whose setup always fails; its other analysis must keep working.
#include <stdexcept>

#include <mathpool/plugin.hpp>

MATHPOOL_PLUGIN("bad_setup", "1.0.0") {
  mathpool::Analysis broken;
  broken.name = "bad_setup.broken";
  broken.version = "1.0.0";
  broken.description = "Setup throws";
  broken.setup = []() -> std::any { throw std::runtime_error("the table is missing"); };
  broken.run = [](const mathpool::TaskContext&) { return mathpool::Value{{"ran", true}}; };
  registry.add(broken);
}
