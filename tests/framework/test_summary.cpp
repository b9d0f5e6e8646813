// End-to-end tests of what `mathpool run` tells its user: the summary on
// stderr at the end of every run (--quiet silences it), and the progress line
// on a terminal: failures as they happen, no ETA before a second of records,
// never mixed with records when stdout and stderr are the same terminal.
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "mathpool/run.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using mathpool::Value;
using namespace mathpool::test;

namespace {

const std::string kTestkit = TESTKIT_PLUGIN;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout (first 2000)\n" + r.out.substr(0, 2000) +
         "\n--- stderr\n" + r.err;
}

// Six ok tasks in one run, three failing ones (invalid_params) in another.
std::string mixed_config() {
  return "pool: {workers: 2}\n"
         "plugin_path: [" + kTestkit + "]\n"
         "analyses:\n"
         "  - name: good\n"
         "    analysis: example.echo\n"
         "    sweep: {x: [1, 2, 3, 4, 5, 6]}\n"
         "  - name: bad\n"
         "    analysis: testkit.throw_invalid\n"
         "    repeat: 3\n";
}

// Runs the mathpool command with stdout and stderr on one pseudo-terminal;
// returns everything the terminal received and the exit status.
std::string run_on_terminal(const std::vector<std::string>& args, int& status) {
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    std::vector<char*> argv;
    static const std::string program = MATHPOOL_CLI;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(master, buffer, sizeof buffer);
    if (n > 0) text.append(buffer, std::size_t(n));
    else if (n < 0 && errno == EINTR) continue;
    else break;  // EIO: the terminal's last user is gone
  }
  ::close(master);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return text;
}

// The lines a person sees: after each line's last carriage return (the
// terminal's column 0), erase-line sequences removed.
std::vector<std::string> visible_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && line.back() == '\r') line.pop_back();
    if (const auto cr = line.rfind('\r'); cr != std::string::npos) line = line.substr(cr + 1);
    for (std::size_t at; (at = line.find("\033[K")) != std::string::npos;) line.erase(at, 3);
    lines.push_back(line);
  }
  return lines;
}

}  // namespace

TEST(Summary, EveryRunEndsWithASummaryOnStderr) {
  TempDir dir;
  const fs::path config = dir.write("mixed.yaml", mixed_config());
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_EQ(parse_records(r.out).size(), 9u);
  // Counts by status, then by run.
  EXPECT_TRUE(contains(r.err, "mathpool: 9 tasks: 6 ok, 3 error\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "  run good: 6 ok\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "  run bad: 3 error\n")) << r.err;
  // The failures: run, task, kind, message.
  EXPECT_TRUE(std::regex_search(r.err, std::regex("\n    bad task 0 repeat 0: invalid_params: .+\n"))) << r.err;
  EXPECT_TRUE(contains(r.err, "bad task 0 repeat 2: invalid_params")) << r.err;
  // Wall time, throughput, workers, restarts.
  EXPECT_TRUE(std::regex_search(r.err, std::regex("\n  [0-9.]+ s, [0-9.]+ tasks/s, 2 workers, 0 restarts\n"))) << r.err;
  EXPECT_FALSE(contains(r.err, "\r")) << "no progress line off a terminal";
}

// A run's name and a task's message are the config's and the plugin's: on a
// terminal, an escape sequence among them would act (clear the screen, set a
// title), so the summary shows control characters escaped, as records do.
TEST(Summary, ControlCharactersOfNamesAndMessagesAreShownEscaped) {
  mathpool::RunSummary s;
  s.planned = 2;
  s.failed = 2;
  s.by_status = {{"error", 2}};
  s.by_run = {{"r\x1b[2J", {{"error", 2}}}};
  s.failures = {{"r\x1b[2J", 0, 0, "plugin_error", "line one\nline\ttwo\x07\x7f\x1b]0;title\x07"}};
  const std::string text = mathpool::format_summary(s);
  EXPECT_TRUE(contains(text, "  run r\\u001b[2J: 2 error\n")) << text;
  EXPECT_TRUE(contains(text, "    r\\u001b[2J task 0 repeat 0: plugin_error: line one line two\\u0007\\u007f\\u001b]0;title\\u0007\n"))
      << text;
  for (const char c : text) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c != 0x7f)) << int(c);
}

// The same from a config whose run name holds an escape.
TEST(Summary, ARunNameWithAnEscapeIsShownEscaped) {
  TempDir dir;
  const fs::path config = dir.write("esc.yaml",
                                    "plugin_path: [" + kTestkit + "]\n"
                                    "analyses:\n"
                                    "  - name: \"bad\\e[2J\"\n"
                                    "    analysis: testkit.throw_invalid\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "  run bad\\u001b[2J: 1 error\n")) << r.err;
  EXPECT_FALSE(contains(r.err, "\x1b")) << r.err;
  EXPECT_TRUE(contains(r.out, "\"run\":\"bad\\u001b[2J\"")) << r.out;
}

TEST(Summary, OnlyTheFirstFewFailuresAreListed) {
  TempDir dir;
  const fs::path config = dir.write("many.yaml",
                                    "pool: {workers: 2}\n"
                                    "plugin_path: [" + kTestkit + "]\n"
                                    "analyses:\n"
                                    "  - name: bad\n"
                                    "    analysis: testkit.throw_invalid\n"
                                    "    repeat: 40\n");
  const CommandResult r = run_mathpool({"run", config.string()});
  ASSERT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "mathpool: 40 tasks: 40 error\n")) << r.err;
  EXPECT_TRUE(contains(r.err, "first 5 of 40 failures:")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 9) << r.err;
}

TEST(Summary, QuietSilencesIt) {
  TempDir dir;
  const fs::path config = dir.write("mixed.yaml", mixed_config());
  const CommandResult r = run_mathpool({"run", config.string(), "--quiet"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_EQ(r.err, "");
}

TEST(Summary, AResumedRunSaysWhatWasAlreadyThere) {
  TempDir dir;
  const fs::path config = dir.write("mixed.yaml", "output: out.jsonl\n" + mixed_config());
  ASSERT_EQ(run_mathpool({"run", config.string(), "-q"}).exit_code, 1);
  const CommandResult r = run_mathpool({"run", config.string(), "--resume"});
  EXPECT_EQ(r.exit_code, 1) << "the output holds failures\n" << describe(r);
  EXPECT_EQ(r.err, "mathpool: 0 tasks: none; 9 already in the output (6 ok, 3 error)\n");
}

TEST(Summary, OnATerminalProgressShowsFailuresAndNeverMixesWithRecords) {
  TempDir dir;
  const fs::path config = dir.write("slow.yaml",
                                    "pool: {workers: 1}\n"
                                    "plugin_path: [" + kTestkit + "]\n"
                                    "analyses:\n"
                                    "  - name: bad\n"
                                    "    analysis: testkit.throw_invalid\n"
                                    "    repeat: 2\n"
                                    "  - name: slow\n"
                                    "    analysis: testkit.sleep\n"
                                    "    params: {ms: 60}\n"
                                    "    repeat: 40\n");
  int status = -1;
  const std::string text = run_on_terminal({"run", config.string()}, status);
  EXPECT_EQ(status, 1) << text;
  int records = 0;
  for (const std::string& line : visible_lines(text)) {
    if (!contains(line, "{\"run\"")) continue;
    ++records;
    EXPECT_EQ(line.rfind("{\"run\"", 0), 0u) << "a record shares its line with progress text: " << line;
    EXPECT_FALSE(Value::parse(line, nullptr, false).is_discarded()) << line;
  }
  EXPECT_EQ(records, 42) << text;
  // Failures show while the run goes on.
  EXPECT_TRUE(std::regex_search(text, std::regex("[0-9]+/42 tasks, 2 failed"))) << text;
  // No ETA before a second of records; every ETA shown is sane (the run takes ~2.5 s).
  const std::size_t first = text.find(" tasks");
  ASSERT_NE(first, std::string::npos) << text;
  EXPECT_FALSE(contains(text.substr(first, text.find('\r', first) - first), "ETA")) << text;
  const std::regex eta("ETA ([0-9]+)s");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), eta); it != std::sregex_iterator(); ++it)
    EXPECT_LE(std::stoi((*it)[1]), 10) << text;
  // The summary follows on lines of its own.
  EXPECT_TRUE(contains(text, "mathpool: 42 tasks: 40 ok, 2 error")) << text;
}
