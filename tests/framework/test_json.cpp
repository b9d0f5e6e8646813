// Machine-readable output (issue 19, item 10): `describe NAME --json`,
// `plugins --json`, and docs/record.schema.json, against which real records
// of every status are validated (Debian's python3-jsonschema, draft 2020-12).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "test_support.hpp"

namespace mathpool {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const std::string kSchema = std::string(SOURCE_DIR) + "/docs/record.schema.json";
const std::string kValidator = std::string(SOURCE_DIR) + "/tests/framework/validate_records.py";

TEST(DescribeJson, GivesParametersAndResultsAsJson) {
  const auto r = test::run_mathpool({"describe", "example.sum", "--json", "--plugin-path", EXAMPLE_PLUGIN});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Value a = Value::parse(r.out);
  EXPECT_EQ(a.at("name"), "example.sum");
  EXPECT_EQ(a.at("version"), "1.0.0");
  EXPECT_EQ(a.at("open_params"), false);
  ASSERT_EQ(a.at("params").size(), 2u);
  EXPECT_EQ(a.at("params")[0], (Value{{"name", "values"}, {"type", "list of integers"}, {"default", nullptr},
                                      {"required", true}, {"meaning", "the numbers to add"}}));
  EXPECT_EQ(a.at("params")[1].at("default"), "0");
  EXPECT_EQ(a.at("params")[1].at("required"), false);
  EXPECT_EQ(a.at("results")[0], (Value{{"name", "sum"}, {"type", "integer"}, {"meaning", "offset + the sum of values"}}));
  EXPECT_TRUE(fs::path(a.at("plugin").get<std::string>()).is_absolute());
  // An unknown one is still the one-line error.
  const auto unknown = test::run_mathpool({"describe", "example.nope", "--json", "--plugin-path", EXAMPLE_PLUGIN});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err.rfind("mathpool: error: unknown analysis 'example.nope'", 0), 0u) << unknown.err;
}

TEST(PluginsJson, ListsEveryAnalysis) {
  const auto r = test::run_mathpool({"plugins", "--json", "--plugin-path", EXAMPLE_PLUGIN});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Value list = Value::parse(r.out);
  ASSERT_TRUE(list.is_array());
  bool echo = false;
  for (const Value& a : list) {
    EXPECT_EQ(a.size(), 4u) << a.dump();
    if (a.at("name") == "example.echo") {
      echo = true;
      EXPECT_EQ(a.at("description"), "Returns its parameters unchanged");
      EXPECT_EQ(a.at("version"), "1.0.0");
    }
  }
  EXPECT_TRUE(echo) << r.out;
}

// Runs the validator on `records`; its exit code.
int validate(const fs::path& records, bool expect_invalid = false) {
  std::vector<std::string> args = {kValidator, kSchema, records.string()};
  if (expect_invalid) args.push_back("--invalid");
  const auto r = test::run_program("/usr/bin/python3", args);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return r.exit_code;
}

TEST(RecordSchema, RealRecordsOfEveryStatusAreValid) {
  TempDir dir;
  dir.write("rows.csv", "name,values\nfirst,\"[1, 2]\"\nsecond,\"[x]\"\n");
  const fs::path config = dir.write(
      "run.yaml",
      fmt::format("plugin_path: [\"{}\", \"{}\"]\npool: {{workers: 2, task_timeout: 300ms, retries: 0}}\n"
                  "analyses:\n"
                  "  - name: sums\n    analysis: example.sum\n    labels: [name]\n    rows: {{csv: rows.csv}}\n"
                  "  - name: big\n    analysis: example.echo\n    params: {{n: 18446744073709551615, f: .nan}}\n"
                  "  - name: slow\n    analysis: testkit.spin\n"
                  "  - name: crash\n    analysis: testkit.segfault\n"
                  "  - name: thrown\n    analysis: testkit.throw_int\n",
                  EXAMPLE_PLUGIN, TESTKIT_PLUGIN));
  const fs::path out = dir.path() / "out.jsonl";
  const auto r = test::run_mathpool({"run", config.string(), "-o", out.string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::set<std::string> statuses;
  for (const Value& record : test::read_records(out)) statuses.insert(record.at("status").get<std::string>());
  EXPECT_EQ(statuses, (std::set<std::string>{"ok", "error", "timeout", "crashed"})) << test::read_text(out);
  validate(out);
  // The schema is not vacuous: each of these breaks it.
  const fs::path bad = dir.write(
      "bad.jsonl",
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"fine\"}\n"
      "{\"run\":\"a\",\"task\":-1,\"repeat\":0,\"status\":\"ok\"}\n"
      "{\"task\":0,\"repeat\":0,\"status\":\"ok\"}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"ok\",\"extra\":1}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"error\",\"error\":{\"kind\":\"oops\",\"message\":\"\"}}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"timeout\",\"error\":{\"kind\":\"crashed\",\"message\":\"\"}}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"error\",\"result\":{}}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"ok\",\"labels\":[1]}\n");
  validate(bad, true);
  // And the kinds the protocol adds are allowed.
  const fs::path more = dir.write(
      "more.jsonl",
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"error\",\"error\":{\"kind\":\"result_too_large\",\"message\":\"m\"}}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"error\",\"error\":{\"kind\":\"protocol_error\",\"message\":\"m\"}}\n"
      "{\"run\":\"a\",\"task\":0,\"repeat\":0,\"status\":\"memory\",\"error\":{\"kind\":\"memory\",\"message\":\"m\"},"
      "\"worker\":1,\"seconds\":0.5,\"node\":\"n1\"}\n");
  validate(more);
}

}  // namespace
}  // namespace mathpool
