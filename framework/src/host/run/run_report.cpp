#include "run_report.hpp"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

namespace mathpool {
namespace detail {

const char* status_of(const RawResult& result) { return record_status(result.error ? &*result.error : nullptr); }

std::map<std::string, std::size_t> by_status_map(const std::array<std::uint64_t, kStatuses>& counts) {
  std::map<std::string, std::size_t> out;
  for (std::size_t s = 0; s < kStatuses; ++s)
    if (counts[s]) out[std::string(kStatusWords[s])] = std::size_t(counts[s]);
  return out;
}

void Tally::add(const TaskTag& tag, const RawResult& result) {
  if (tag.run >= counts_.size()) counts_.resize(tag.run + 1, {});
  ++counts_[tag.run][status_index(result.error ? &*result.error : nullptr)];
  if (result.error && failures_.size() < RunSummary::kMaxFailures)
    failures_.push_back(
        {names_[tag.run], tag.task, tag.repeat, std::string(to_string(result.error->kind)), result.error->message});
}

void fill_counts(const std::vector<std::string>& names, const StatusCounts& counts,
                 std::map<std::string, std::size_t>& by_status,
                 std::vector<std::pair<std::string, std::map<std::string, std::size_t>>>& by_run) {
  by_run.clear();
  std::array<std::uint64_t, kStatuses> all{};
  for (std::size_t run = 0; run < counts.size(); ++run) {
    for (std::size_t s = 0; s < kStatuses; ++s) all[s] += counts[run][s];
    if (auto of_run = by_status_map(counts[run]); !of_run.empty()) by_run.emplace_back(names[run], std::move(of_run));
  }
  by_status = by_status_map(all);
}

void Tally::fill(RunSummary& summary) const {
  fill_counts(names_, counts_, summary.by_status, summary.by_run);
  summary.failures = failures_;
}

std::string shown(std::string_view text, std::size_t limit) {
  const bool cut = text.size() > limit;
  if (cut) text = text.substr(0, limit);
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04x}", c);
    } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xa0 &&
               static_cast<unsigned char>(text[i + 1]) >= 0x80) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(text[++i]));
    } else {
      out += char(c);
    }
  }
  if (cut) out += "...";
  return out;
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
  std::string text;
  for (const std::string_view status : detail::kStatusWords)
    if (auto it = by_status.find(std::string(status)); it != by_status.end() && it->second)
      text += fmt::format("{}{} {}", text.empty() ? "" : ", ", it->second, status);
  return text.empty() ? "none" : text;
}



}  // namespace

std::string format_summary(const RunSummary& s) {
  const std::size_t ran = s.ok + s.failed;
  std::string out = fmt::format("mathpool: {} {}: {}", ran, ran == 1 ? "task" : "tasks", counts(s.by_status));
  if (s.skipped) out += fmt::format("; {} already in the output ({})", s.skipped, counts(s.skipped_by_status));
  if (s.interrupted) out += fmt::format("; interrupted, {} not run", s.planned - s.skipped - ran);
  out += '\n';
  for (const auto& [run, by_status] : s.by_run)
    out += fmt::format("  run {}: {}\n", detail::shown(run), counts(by_status));
  if (!s.failures.empty()) {
    out += s.failed > s.failures.size() ? fmt::format("  first {} of {} failures:\n", s.failures.size(), s.failed)
                                        : std::string("  failures:\n");
    for (const TaskFailure& f : s.failures)
      out += fmt::format("    {} task {} repeat {}: {}: {}\n", detail::shown(f.run), f.task, f.repeat, f.kind,
                         detail::shown(f.message, 160));
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
