// SDK big integers (mathpool/value.hpp) and the pool options of the Python
// module (pool_options_from_map): issue 20.
#include <gtest/gtest.h>

#include "common/msgpack_json.hpp"
#include "host/config/pool_options_map.hpp"
#include "mathpool/config.hpp"
#include "mathpool/run.hpp"

namespace mathpool {
namespace {

TEST(BigInteger, SmallOnesStayPlainIntegers) {
  EXPECT_EQ(big_integer("0"), Value(0));
  EXPECT_EQ(big_integer("-0"), Value(0));
  EXPECT_EQ(big_integer("+007"), Value(7));
  EXPECT_EQ(big_integer("-9223372036854775808"), Value(INT64_MIN));
  EXPECT_TRUE(big_integer("18446744073709551615").is_number_unsigned());
  EXPECT_FALSE(is_big_integer(big_integer("18446744073709551615")));
}

TEST(BigInteger, LargerOnesAreTaggedAndKeepTheirCanonicalText) {
  const Value v = big_integer("000340282366920938463463374607431768211456");
  ASSERT_TRUE(is_big_integer(v));
  EXPECT_EQ(big_integer_text(v), "340282366920938463463374607431768211456");
  EXPECT_EQ(big_integer_text(big_integer("-18446744073709551616")), "-18446744073709551616");
  EXPECT_EQ(big_integer_text(Value(42)), "42");
  EXPECT_THROW(big_integer("12a"), std::invalid_argument);
  EXPECT_THROW(big_integer("-"), std::invalid_argument);
  EXPECT_THROW(big_integer_text(Value("12")), std::invalid_argument);
}

TEST(BigInteger, CrossesMessagePackAndRecordsWriteItAsADecimalString) {
  const Value v{{"n", big_integer("-123456789012345678901234567890")}, {"b", Value::binary({1, 2})}};
  detail::Bytes bytes;
  detail::append_msgpack(bytes, v);
  const Value back = detail::msgpack_to_value(bytes);
  EXPECT_TRUE(is_big_integer(back["n"]));
  EXPECT_EQ(back, v);
  std::string json;
  detail::append_msgpack_json(json, bytes);
  EXPECT_EQ(json, R"({"n":"-123456789012345678901234567890","b":{"bytes":[1,2],"subtype":null}})");
}

TEST(PoolOptionsMap, TakesTheConfigsValueForms) {
  const PoolOptions o = detail::pool_options_from_map(Value{{"workers", "auto"},
                                                            {"start", "spawn"},
                                                            {"isolation", "task"},
                                                            {"task_timeout", 1.5},
                                                            {"memory_limit", "2GiB"},
                                                            {"max_tasks_per_worker", 10},
                                                            {"retries", 0},
                                                            {"chunk_size", 4},
                                                            {"setup_timeout", "1m"},
                                                            {"plugin_path", {"/a", "/b"}},
                                                            {"allow_insecure_plugins", true}});
  EXPECT_EQ(o.workers, 0);
  EXPECT_EQ(o.start, StartMode::spawn);
  EXPECT_EQ(o.isolation, Isolation::task);
  EXPECT_EQ(o.task_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(o.memory_limit, std::int64_t{2} << 30);
  EXPECT_EQ(o.max_tasks_per_worker, 10);
  EXPECT_EQ(o.retries, 0);
  EXPECT_EQ(o.chunk_size, 4);
  EXPECT_EQ(o.setup_timeout, std::chrono::minutes(1));
  EXPECT_EQ(o.plugin_paths.size(), 2u);
  EXPECT_TRUE(o.allow_insecure_plugins);
  EXPECT_EQ(detail::pool_options_from_map(Value()), PoolOptions{});
  EXPECT_FALSE(detail::pool_options_from_map(Value{{"task_timeout", nullptr}}).task_timeout);
}

TEST(PoolOptionsMap, ErrorsNameTheKey) {
  auto message = [](const Value& map) {
    try {
      detail::pool_options_from_map(map);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_config);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({{"workerz", 1}}),
            "unknown pool option 'workerz' (expected one of: workers, start, isolation, task_timeout, memory_limit, "
            "max_tasks_per_worker, retries, chunk_size, setup_timeout, plugin_path, allow_insecure_plugins)");
  EXPECT_EQ(message({{"workers", -1}}), "pool option 'workers': must be at least 1, got -1");
  EXPECT_EQ(message({{"retries", 1e10}}), "pool option 'retries': must be an integer >= 0, got 10000000000.0");
  EXPECT_EQ(message({{"memory_limit", "5 apples"}}).rfind("pool option 'memory_limit': ", 0), 0u);
  EXPECT_EQ(message({{"plugin_path", {1}}}), "pool option 'plugin_path': must be a path or a list of paths, got 1");
}

}  // namespace
}  // namespace mathpool
