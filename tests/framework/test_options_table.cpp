// The one table of PoolOptions' fields (framework/src/host/pool_options_table.hpp)
// drives the config reader, the Value round trip, the MPI hello and describe().
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "host/config/options_value.hpp"
#include "host/config/pool_options_table.hpp"
#include "mathpool/config.hpp"

namespace mathpool::detail {
namespace {

PoolOptions unusual() {
  PoolOptions o;
  o.workers = 3;
  o.start = StartMode::spawn;
  o.isolation = Isolation::task;
  o.task_timeout = std::chrono::milliseconds(1500);
  o.memory_limit = std::int64_t(1) << 30;
  o.max_tasks_per_worker = 7;
  o.retries = 4;
  o.setup_timeout = std::chrono::seconds(9);
  o.chunk_size = 11;
  o.plugin_paths = {"/a/b", "c"};
  o.default_plugin_paths = false;
  o.allow_insecure_plugins = true;
  o.worker_program = "/opt/worker";
  o.preload = std::vector<std::string>{"x.y"};
  return o;
}

TEST(PoolOptionsTable, EachFieldSetsFromItsOwnUserForm) {
  const PoolOptions from = unusual();
  for (const auto& field : pool_option_fields()) {
    PoolOptions to;
    field.set(to, field.get(from));
    EXPECT_EQ(field.get(to), field.get(from)) << field.name;
  }
  EXPECT_TRUE(options_from_value(options_to_value(from)) == from);
  EXPECT_TRUE(options_from_value(options_to_value(PoolOptions{})) == PoolOptions{});
}

TEST(PoolOptionsTable, EveryFieldHasAUniqueNameAndAMeaning) {
  std::set<std::string_view> names;
  for (const auto& field : pool_option_fields()) {
    EXPECT_TRUE(names.insert(field.name).second) << field.name;
    EXPECT_FALSE(field.meaning.empty()) << field.name;
  }
  EXPECT_EQ(names.size(), options_to_value(PoolOptions{}).size());
}

TEST(PoolOptionsTable, TheConfigReaderSetsEveryConfigFieldFromTheTable) {
  const PoolOptions want = unusual();
  std::string yaml = "pool:\n";
  for (const auto& field : pool_option_fields())
    if (field.in_config) yaml += "  " + std::string(field.name) + ": " + field.get(want).dump() + "\n";
  yaml += "analyses:\n  - {name: a, analysis: example.echo}\n";
  const RunConfig config = parse_config(yaml, "table.yaml");
  for (const auto& field : pool_option_fields())
    if (field.in_config) EXPECT_EQ(field.get(config.pool), field.get(want)) << field.name;
}

TEST(PoolOptionsTable, ProgramsMayPassNumbersAndNone) {
  PoolOptions o = options_from_value(Value{{"workers", 2}, {"task_timeout", 1.5}, {"memory_limit", 1 << 21},
                                           {"chunk_size", "auto"}, {"preload", Value()}});
  EXPECT_EQ(o.workers, 2);
  EXPECT_EQ(o.task_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(o.memory_limit, 1 << 21);
  EXPECT_FALSE(o.preload);
  o = options_from_value(Value{{"task_timeout", Value()}, {"memory_limit", "none"}});
  EXPECT_FALSE(o.task_timeout);
  EXPECT_EQ(o.memory_limit, 0);
}

TEST(PoolOptionsTable, AnUnknownOrMalformedOptionIsNamed) {
  try {
    options_from_value(Value{{"wrokers", 2}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_config);
    EXPECT_NE(std::string(e.what()).find("'wrokers'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("workers, start"), std::string::npos) << e.what();
  }
  try {
    options_from_value(Value{{"start", "fork"}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'start' 'fork' is not one of: zygote, spawn"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace mathpool::detail

namespace mathpool {
namespace {

std::vector<ErrorKind> every_kind() {
  std::vector<ErrorKind> kinds;
  for (int k = 0; k <= int(ErrorKind::misuse); ++k) kinds.push_back(ErrorKind(k));
  return kinds;
}

// The one table of error kinds (docs/errors.md): the record schema names
// exactly the task kinds, and the table documents every kind.
TEST(ErrorKinds, TheRecordSchemaNamesExactlyTheTaskKinds) {
  std::ifstream file(std::string(SOURCE_DIR) + "/docs/record.schema.json");
  const Value schema = Value::parse(file);
  std::set<std::string> in_schema;
  for (const auto& kind : schema["$defs"]["error_kind"]["enum"]) in_schema.insert(kind.get<std::string>());
  std::set<std::string> task_kinds;
  for (ErrorKind kind : every_kind())
    if (is_task_error_kind(kind)) task_kinds.insert(std::string(to_string(kind)));
  EXPECT_EQ(in_schema, task_kinds);
}

TEST(ErrorKinds, TheTableDocumentsEveryKindAndNamesRoundTrip) {
  std::ifstream file(std::string(SOURCE_DIR) + "/docs/errors.md");
  const std::string table((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  for (ErrorKind kind : every_kind()) {
    const std::string name(to_string(kind));
    EXPECT_NE(table.find("| `" + name + "` |"), std::string::npos) << name;
    EXPECT_EQ(error_kind_from_string(name), kind);
  }
  EXPECT_THROW(error_kind_from_string("exploded"), Error);
}

}  // namespace
}  // namespace mathpool
