#include "run_report.hpp"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace mathpool {
namespace detail {

namespace {

const char* const kStatusNames[] = {"ok", "error", "timeout", "crashed", "memory"};

std::size_t status_index(const RawResult& result) {
  if (!result.error) return 0;
  switch (result.error->kind) {
    case ErrorKind::timeout: return 2;
    case ErrorKind::crashed: return 3;
    case ErrorKind::memory: return 4;
    default: return 1;
  }
}

}  // namespace

const char* status_of(const RawResult& result) { return kStatusNames[status_index(result)]; }

void Tally::add(const TaskTag& tag, const RawResult& result) {
  if (tag.run >= counts_.size()) counts_.resize(tag.run + 1, {});
  ++counts_[tag.run][status_index(result)];
  if (result.error && failures_.size() < RunSummary::kMaxFailures)
    failures_.push_back(
        {names_[tag.run], tag.task, tag.repeat, std::string(to_string(result.error->kind)), result.error->message});
}

void Tally::fill(RunSummary& summary) const {
  summary.by_status.clear();
  summary.by_run.clear();
  for (std::size_t run = 0; run < counts_.size(); ++run) {
    std::map<std::string, std::size_t> by_status;
    for (std::size_t s = 0; s < kStatuses; ++s)
      if (counts_[run][s]) {
        by_status[kStatusNames[s]] = counts_[run][s];
        summary.by_status[kStatusNames[s]] += counts_[run][s];
      }
    if (!by_status.empty()) summary.by_run.emplace_back(names_[run], std::move(by_status));
  }
  summary.failures = failures_;
}

void Progress::update(std::uint64_t done, std::uint64_t failed, bool force) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (done > 0 && first_ == Clock::time_point{}) first_ = now, first_done_ = done;
  if (!force && now - last_ < std::chrono::milliseconds(200)) return;
  last_ = now;
  shown_ = true;
  std::string line = fmt::format("{}/{} tasks", done, total_);
  if (failed) line += fmt::format(", {} failed", failed);
  // Rates and ETAs from a second of records on: earlier ones measure the
  // pool's start and a first batch, not the run.
  const double measured = first_ == Clock::time_point{} ? 0 : std::chrono::duration<double>(now - first_).count();
  if (measured >= 1.0 && done > first_done_) {
    const double rate = double(done - first_done_) / measured;
    line += fmt::format("  {:.1f}/s  ETA {:.0f}s", rate, double(total_ - done) / rate);
  } else {
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    line += fmt::format("  {:.0f}s", elapsed);
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

void Progress::clear() {
  if (!enabled_ || !shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

}  // namespace detail

namespace {

std::string counts(const std::map<std::string, std::size_t>& by_status) {
  static const char* const order[] = {"ok", "error", "timeout", "crashed", "memory"};
  std::string text;
  for (const char* status : order)
    if (auto it = by_status.find(status); it != by_status.end() && it->second)
      text += fmt::format("{}{} {}", text.empty() ? "" : ", ", it->second, status);
  return text.empty() ? "none" : text;
}

std::string one_line(std::string text, std::size_t limit = 160) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

}  // namespace

std::string format_summary(const RunSummary& s) {
  const std::size_t ran = s.ok + s.failed;
  std::string out = fmt::format("mathpool: {} {}: {}", ran, ran == 1 ? "task" : "tasks", counts(s.by_status));
  if (s.skipped) out += fmt::format("; {} already in the output", s.skipped);
  if (s.interrupted) out += fmt::format("; interrupted, {} not run", s.planned - s.skipped - ran);
  out += '\n';
  for (const auto& [run, by_status] : s.by_run) out += fmt::format("  run {}: {}\n", run, counts(by_status));
  if (!s.failures.empty()) {
    out += s.failed > s.failures.size() ? fmt::format("  first {} of {} failures:\n", s.failures.size(), s.failed)
                                        : std::string("  failures:\n");
    for (const TaskFailure& f : s.failures)
      out += fmt::format("    {} task {} repeat {}: {}: {}\n", f.run, f.task, f.repeat, f.kind, one_line(f.message));
  }
  if (ran > 0 || s.workers > 0) {  // else no pool was started: nothing to time
    out += fmt::format("  {:.2f} s, {:.1f} tasks/s, {} {}, {} {}", s.seconds,
                       s.seconds > 0 ? double(ran) / s.seconds : 0.0, s.workers, s.workers == 1 ? "worker" : "workers",
                       s.restarts, s.restarts == 1 ? "restart" : "restarts");
    if (s.hosts.size() > 1) out += fmt::format(", {} machines", s.hosts.size());
    out += '\n';
  }
  if (!s.pool_note.empty()) out += fmt::format("  note: {}\n", s.pool_note);
  if (s.provenance) out += fmt::format("  provenance: {}\n", s.provenance->string());
  return out;
}

}  // namespace mathpool
