// Tasks as index ranges, records written by workers (issue 21): a run entry's
// wire form gives a worker exactly the parameters and record heads the host
// would make; the host's check of a worker's record (run, task, repeat, one
// JSON object) agrees with nlohmann::json on what is JSON and refuses the rest.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "common/msgpack_json.hpp"
#include "mathpool/config.hpp"
#include "tasks/json_check.hpp"
#include "tasks/record_line.hpp"
#include "tasks/run_entry.hpp"
#include "host/run/run_steps.hpp"
#include "mathpool/run.hpp"
#include "test_support.hpp"

namespace mathpool {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

const fs::path kFile = "/configs/r.yaml";

// Every kind of axis: a list, a range, a product, words with a length from an
// earlier axis, labels, fixed parameters, repeats; and rows from a CSV file.
std::string every_axis(const fs::path& csv) {
  return "analyses:\n"
         "  - name: mixed\n    analysis: example.echo\n    repeat: 3\n    labels: [tag]\n"
         "    params: {fixed: \"é\\\"\\n\", big: 9007199254740993}\n"
         "    sweep:\n      tag: [a, b]\n      x: {range: [-3, 9, 4]}\n      p: {product: [[1, 2], {range: [0, 2]}]}\n"
         "      n: [1, 3, 2]\n      w: {words: {alphabet: [0, 1], length: n, prefix: [7]}}\n"
         "      f: [1.5, null, true, [], {}]\n"
         "  - name: rows\n    analysis: example.echo\n    labels: [name]\n    rows: {csv: " + csv.string() + "}\n"
         "    sweep:\n      y: [1, 2]\n";
}

RunConfig load(TempDir& dir) {
  const fs::path csv = dir.write("rows.csv", "name,a,b\nfirst,1,x\nsecond,-2,\"y,z\"\nthird,3.25,\n");
  return parse_config(every_axis(csv), kFile);
}

TEST(RunEntry, AWorkersCopyMakesTheHostsParametersLabelsAndHeadsForEveryTask) {
  TempDir dir;
  const RunConfig config = load(dir);
  std::size_t checked = 0;
  for (const detail::RecordFields& fields : {detail::RecordFields{}, detail::record_fields({"params", "labels"}),
                                             detail::record_fields({})}) {
    for (const AnalysisEntry& entry : config.analyses) {
      const detail::RunEntry host(7, entry, fields);
      const detail::RunEntry worker = detail::RunEntry::decode(7, host.wire());
      ASSERT_EQ(worker.tasks(), entry.task_count());
      ASSERT_EQ(worker.analysis(), entry.analysis);
      for (std::uint64_t index = 0; index < worker.tasks(); ++index) {
        std::string params, labels, want_params, want_labels, head, want_head;
        worker.encode(index, params, labels);
        entry.encode_task(index / std::uint64_t(entry.repeat), want_params, want_labels);
        ASSERT_EQ(params, want_params) << entry.name << " " << index;
        ASSERT_EQ(labels, want_labels) << entry.name << " " << index;
        worker.append_head(head, index, params, labels);
        detail::append_record_head(want_head, detail::record_prefix(entry.name, entry.analysis, fields),
                                   index / std::uint64_t(entry.repeat), int(index % std::uint64_t(entry.repeat)),
                                   want_params, fields, want_labels);
        ASSERT_EQ(head, want_head);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 3u * (2 * 3 * 4 * 7 * 5 * 3 + 3 * 2));
}

TEST(RunEntry, ARecordsHeadParsesToTheTasksRunTaskRepeatParamsAndLabels) {
  TempDir dir;
  const RunConfig config = load(dir);
  const std::vector<TaskPlan> plans = expand_tasks(config);  // the public expansion, task by task
  std::size_t p = 0;
  for (const AnalysisEntry& entry : config.analyses) {
    const detail::RunEntry run_entry(1, entry, {});
    for (std::uint64_t index = 0; index < run_entry.tasks(); ++index, ++p) {
      ASSERT_LT(p, plans.size());
      std::string params, labels, line;
      run_entry.encode(index, params, labels);
      run_entry.append_head(line, index, params, labels);
      detail::append_record_tail(line, detail::RecordTail{nullptr, "\xc0", 4, 0.5, nullptr});  // result: null
      const Value record = Value::parse(line);
      EXPECT_EQ(record.at("run"), plans[p].run);
      EXPECT_EQ(record.at("analysis"), plans[p].analysis);
      EXPECT_EQ(record.at("task"), plans[p].task);
      EXPECT_EQ(record.at("repeat"), plans[p].repeat);
      EXPECT_EQ(record.at("params"), plans[p].params);
      EXPECT_EQ(record.at("labels").size(), 1u);
      EXPECT_NO_THROW(run_entry.check_record(index, line));
    }
  }
  EXPECT_EQ(p, plans.size());
}

TEST(RunEntry, WireBytesCutShortOrChangedAreAProtocolErrorNeverACrash) {
  TempDir dir;
  const RunConfig config = load(dir);
  for (const AnalysisEntry& entry : config.analyses) {
    const std::string wire = detail::RunEntry(3, entry, {}).wire();
    for (std::size_t n = 0; n < wire.size(); ++n)
      EXPECT_THROW(detail::RunEntry::decode(3, wire.substr(0, n)), detail::ProtocolError) << n;
    EXPECT_THROW(detail::RunEntry::decode(3, wire + "x"), detail::ProtocolError);
    // Every byte changed in turn: refused, or an entry whose tasks still encode.
    for (std::size_t i = 0; i < wire.size(); ++i) {
      std::string changed = wire;
      changed[i] = char(changed[i] ^ 0x5a);
      try {
        const detail::RunEntry e = detail::RunEntry::decode(3, changed);
        std::string params, labels;
        if (e.tasks() > 0 && e.tasks() < (1u << 20)) {
          try {
            e.encode(e.tasks() - 1, params, labels);
          } catch (const detail::ProtocolError&) {
          }
        }
      } catch (const detail::ProtocolError&) {
      }
    }
  }
}

TEST(RunEntry, TheHostRefusesARecordOfAnotherTaskOrNotOneJsonObject) {
  TempDir dir;
  const RunConfig config = load(dir);
  const detail::RunEntry entry(1, config.analyses[0], {});
  auto line_of = [&](std::uint64_t index) {
    std::string params, labels, line;
    entry.encode(index, params, labels);
    entry.append_head(line, index, params, labels);
    detail::append_record_tail(line, detail::RecordTail{nullptr, "\x01", 4, 0.5, nullptr});
    return line;
  };
  const std::string line = line_of(5);  // task 1, repeat 2
  EXPECT_NO_THROW(entry.check_record(5, line));
  EXPECT_THROW(entry.check_record(4, line), detail::ProtocolError);   // another repeat
  EXPECT_THROW(entry.check_record(8, line), detail::ProtocolError);   // another task
  EXPECT_THROW(entry.check_record(5, line.substr(0, line.size() - 1)), detail::ProtocolError);
  EXPECT_THROW(entry.check_record(5, line + "{}"), detail::ProtocolError);
  EXPECT_THROW(entry.check_record(5, line + "\n"), detail::ProtocolError);
  EXPECT_THROW(entry.check_record(5, line.substr(0, line.size() - 1) + ",\"x\":1}\n{\"run\":1}"),
               detail::ProtocolError);
  // Cut inside its key, or empty: the key is compared in place, never past the line's end.
  for (std::size_t n = 0; n < line.find("\"params\""); ++n)
    EXPECT_THROW(entry.check_record(5, line.substr(0, n)), detail::ProtocolError) << n;
  const detail::RunEntry other(2, config.analyses[1], {});
  EXPECT_THROW(other.check_record(5, line), detail::ProtocolError);  // another run
}

// The key is compared in place from a buffer on the stack: the largest task
// numbers and repeats fit it, and a line that is the key alone, or one byte
// short of it, is refused.
TEST(RunEntry, TheKeysOfTheLargestTasksAndRepeatsAreCheckedInPlace) {
  const RunConfig config = parse_config(
      "analyses:\n  - name: big\n    analysis: example.echo\n    sweep: {x: {range: [0, 4000000000000000000]}}\n"
      "  - name: repeats\n    analysis: example.echo\n    repeat: 2147483647\n",
      kFile);
  for (const AnalysisEntry& analysis : config.analyses) {
    const detail::RunEntry entry(1, analysis, {});
    const std::uint64_t last = entry.tasks() - 1;
    std::string params, labels, line;
    entry.encode(last, params, labels);
    entry.append_head(line, last, params, labels);
    const std::string head = line;
    detail::append_record_tail(line, detail::RecordTail{nullptr, "\x01", 4, 0.5, nullptr});
    EXPECT_NO_THROW(entry.check_record(last, line)) << line;
    EXPECT_THROW(entry.check_record(last - 1, line), detail::ProtocolError) << line;
    const std::size_t key = head.find("\"params\"");
    ASSERT_NE(key, std::string::npos) << head;
    EXPECT_THROW(entry.check_record(last, line.substr(0, key)), detail::ProtocolError);
    EXPECT_THROW(entry.check_record(last, line.substr(0, key - 1)), detail::ProtocolError);
  }
}

// Found in review: a line a worker wrote with a second "task" (or "repeat",
// "run") after its key would pass a check of the key alone, and resume reads
// the last duplicate. Only the members a record has after its key are taken.
TEST(RunEntry, ARecordThatNamesAnotherTaskAfterItsKeyIsRefused) {
  TempDir dir;
  const RunConfig config = load(dir);
  const detail::RunEntry entry(1, config.analyses[1], {});
  std::string params, labels, line;
  entry.encode(0, params, labels);
  entry.append_head(line, 0, params, labels);
  const std::string head = line;
  detail::append_record_tail(line, detail::RecordTail{nullptr, "\x01", 4, 0.5, nullptr});
  EXPECT_NO_THROW(entry.check_record(0, line));
  for (const std::string forged : {"\"task\":7,", "\"repeat\":1,", "\"run\":\"x\",", "\"t\\u0061sk\":7,", "\"x\":1,"})
    EXPECT_THROW(entry.check_record(0, head + forged + line.substr(head.size())), detail::ProtocolError) << forged;
}

// Found in review: values may nest kMaxValueDepth levels inside a record (as
// the worker allows), and a binary value's {"bytes": [...]} two more.
TEST(RunEntry, ARecordWhoseResultNestsAsDeepAsTheProtocolAllowsIsTaken) {
  TempDir dir;
  const RunConfig config = load(dir);
  const detail::RunEntry entry(1, config.analyses[1], {});
  std::string params, labels, head;
  entry.encode(0, params, labels);
  entry.append_head(head, 0, params, labels);
  auto nested = [](int levels, const std::string& inside) {
    return std::string(std::size_t(levels), '[') + inside + std::string(std::size_t(levels), ']');
  };
  const std::string tail = ",\"worker\":4,\"seconds\":0.5}";
  EXPECT_NO_THROW(entry.check_record(0, head + "\"status\":\"ok\",\"result\":" + nested(200, "") + tail));
  EXPECT_NO_THROW(
      entry.check_record(0, head + "\"status\":\"ok\",\"result\":" + nested(199, "{\"bytes\":[1]}") + tail));
  EXPECT_THROW(entry.check_record(0, head + "\"status\":\"ok\",\"result\":" + nested(300, "") + tail),
               detail::ProtocolError);
}

// Found in review: a words axis whose length axis is patched to an earlier
// axis of another size made the worker index past its lengths (std::terminate
// from a noexcept function). Such an entry is refused.
TEST(RunEntry, AWordsAxisWhoseLengthAxisDoesNotFitIsRefused) {
  const RunConfig config = parse_config(
      "analyses:\n  - name: w\n    analysis: example.echo\n    sweep:\n      a: [1, 2, 3]\n"
      "      w: {words: {alphabet: [0, 1], length: 2}}\n",
      kFile);
  std::string wire = detail::RunEntry(1, config.analyses[0], {}).wire();
  ASSERT_NO_THROW(detail::RunEntry::decode(1, wire));
  // The last axis ends with its length axis (u64, none: all ones) and its size.
  ASSERT_EQ(wire.substr(wire.size() - 16, 8), std::string(8, '\xff'));
  wire.replace(wire.size() - 16, 8, std::string(8, '\0'));  // length axis: a, 3 values for 1 length
  EXPECT_THROW(detail::RunEntry::decode(1, wire), detail::ProtocolError);
}

// Differential: on records and on records with bytes changed (no whitespace,
// which a record never has outside strings), is_json_object says what
// nlohmann::json says of "one JSON object".
TEST(JsonCheck, AgreesWithNlohmannOnRecordsAndOnRecordsWithBytesChanged) {
  const std::vector<std::string> seeds = {
      R"({"run":"r","analysis":"a.b","task":12,"repeat":0,"params":{"x":-1.5e-7,"s":"\u00e9\"\\/\b\f\n\r\t"},"status":"ok","result":{"v":[1,2,{"k":null}],"t":true,"f":false},"worker":42,"seconds":1.25e-06})",
      "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"e\":\"\\ud83d\\ude00\",\"n\":[0,-0,0.5,1E+2,2e-3]}",
      "{}", "{\"a\":[]}", "{\"a\":{}}"};
  const std::string alphabet = "{}[]\":,-+.eE0123456789tfnrulsa\\/bu\x7f\x80\xbf\xc0\xc3\xe0\xed\xf0\xf4\xf5\xff\x01";
  std::mt19937 random(20261206);
  long agreed = 0;
  for (const std::string& seed : seeds) {
    EXPECT_TRUE(detail::is_json_object(seed)) << seed;
    for (int round = 0; round < 4000; ++round) {
      std::string s = seed;
      const int changes = 1 + int(random() % 3);
      for (int c = 0; c < changes; ++c) {
        const std::size_t at = s.empty() ? 0 : random() % s.size();
        const char byte = alphabet[random() % alphabet.size()];
        switch (random() % 3) {
          case 0: if (!s.empty()) s[at] = byte; break;
          case 1: s.insert(s.begin() + long(at), byte); break;
          default: if (!s.empty()) s.erase(at, 1); break;
        }
      }
      bool theirs = false;
      try {
        theirs = Value::parse(s).is_object();
      } catch (const Value::out_of_range&) {  // a number past a double's range: well formed all the same
        theirs = s.front() == '{';
      } catch (const Value::parse_error&) {
      }
      ASSERT_EQ(detail::is_json_object(s), theirs) << s;
      if (s.size() > 1 && s[0] == '{' && s[1] != '}')  // as the host checks what follows a record's key
        ASSERT_EQ(detail::is_json_members(s.substr(1)), theirs) << s;
      ++agreed;
    }
  }
  EXPECT_EQ(agreed, 20000);
  EXPECT_FALSE(detail::is_json_object("{\"a\":1} "));
  EXPECT_FALSE(detail::is_json_object("[1]"));
  EXPECT_FALSE(detail::is_json_object(""));
  EXPECT_FALSE(detail::is_json_members(std::string_view()));  // no bytes at all: not even a '}'
  EXPECT_FALSE(detail::is_record_tail(std::string_view()));
  EXPECT_FALSE(detail::is_json_members("}"));  // after a member's ',' comes another member
  std::string deep = "{\"a\":";
  for (int i = 0; i < 300; ++i) deep += '[';
  for (int i = 0; i < 300; ++i) deep += ']';
  EXPECT_FALSE(detail::is_json_object(deep + "}"));  // deeper than any value the protocol takes
}

// Less what differs from run to run: which process ran a task, for how long.
std::string without_worker_and_seconds(const std::string& records) {
  static const std::regex worker(R"(,"worker":[0-9]+|,"seconds":[-0-9.e+]+|worker [0-9]+)");
  return std::regex_replace(records, worker, "");
}

// The records workers write (run_config: tasks as ranges) are the bytes the
// host's own writer makes (run_plan: tasks with their parameters, records
// from the host), for results, the plugin's errors, crashes and repeats. (It
// found that 8 crashing tasks in a row could charge a quick task ahead of
// them: Faults.QuickTasksBeforeARunOfCrashingTasksAreNeverCharged.)
TEST(RecordsByWorkers, ARunsRecordsAreTheHostWritersBytesLessWorkerAndSeconds) {
  TempDir dir;
  const fs::path file = dir.write(
      "r.yaml", fmt::format("plugin_path: [\"{}\", \"{}\"]\npool: {{workers: 2, retries: 0}}\noutput: out.jsonl\n"
                            "analyses:\n"
                            "  - name: faults\n    analysis: testkit.echo\n    repeat: 2\n"
                            "    sweep:\n      fault: [\"\", crash, throw, invalid, \"\"]\n"
                            "      x: [1, 2.5, \"s\\u00e9\\\"q\", [1, {{a: null}}]]\n"
                            "  - name: words\n    analysis: example.echo\n    repeat: 3\n"
                            "    sweep:\n      n: [1, 2]\n      w: {{words: {{alphabet: [0, 1], length: n}}}}\n",
                            TESTKIT_PLUGIN, EXAMPLE_PLUGIN));
  const RunConfig config = load_config(file);
  const RunSummary ran = run_config(config, {});
  EXPECT_EQ(ran.ok + ran.failed, 5u * 4 * 2 + (2 + 4) * 3);
  std::ifstream in(dir.path() / "out.jsonl");
  const std::string by_workers((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<TaskPlan> plan = expand_tasks(config);
  Pool pool(pool_options_for(config, plan.size()));
  std::ostringstream by_host;
  run_plan(pool, std::move(plan), by_host);
  EXPECT_NE(by_workers.find("\"status\":\"crashed\""), std::string::npos);
  EXPECT_NE(by_workers.find("\"kind\":\"invalid_params\""), std::string::npos);
  EXPECT_EQ(without_worker_and_seconds(by_workers), without_worker_and_seconds(by_host.str()));
}

}  // namespace
}  // namespace mathpool
