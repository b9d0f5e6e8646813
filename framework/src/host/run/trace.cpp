#include "trace.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iterator>

#include <fmt/format.h>

#include "mathpool/error.hpp"
#include "pool_impl.hpp"
#include "run_report.hpp"

namespace mathpool::detail {
namespace {

constexpr int kPoolTid = 0;          // the pool's track, in the host's process
constexpr int kFirstNodePid = 1000;  // processes for the machines of an MPI pool
constexpr double kMaxWindowWidening = 1e4;

bool counts_as_death(const char* status) {
  return std::strcmp(status, "timeout") == 0 || std::strcmp(status, "crashed") == 0 ||
         std::strcmp(status, "memory") == 0;
}

// A track's key in tracks_.
std::uint64_t track_key(int pid, int tid) { return (std::uint64_t(std::uint32_t(pid)) << 32) | std::uint32_t(tid); }

// The process a restart reason names: worker_lifecycle.cpp writes each as
// "pid N: why". 0 when it names none.
int pid_of_reason(const std::string& reason) {
  if (reason.rfind("pid ", 0) != 0) return 0;
  int pid = 0;
  for (std::size_t i = 4; i < reason.size() && reason[i] >= '0' && reason[i] <= '9' && pid < 100000000; ++i)
    pid = pid * 10 + (reason[i] - '0');
  return pid;
}

}  // namespace

std::string json_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", int(c));
        else out += c;
    }
  }
  out += '"';
  return out;
}

TraceWriter::TraceWriter(const std::filesystem::path& file, Clock::time_point start, const std::string& title,
                         std::uint64_t task_slice_limit)
    : start_(start), host_pid_(int(::getpid())), task_slice_limit_(task_slice_limit),
      window_us_(std::chrono::duration<double, std::micro>(kAggregateWindow).count()) {
  file_ = std::fopen(file.c_str(), "w");
  if (!file_)
    throw Error(ErrorKind::io_error, fmt::format("--trace: cannot write {} ({})", file.string(), std::strerror(errno)));
  out_.reserve((1 << 20) + 4096);
  fmt::format_to(std::back_inserter(out_), "{{\"traceEvents\":[\n");
  begin_event();
  fmt::format_to(std::back_inserter(out_), R"({{"ph":"M","name":"process_name","pid":{},"tid":0,"args":{{"name":{}}}}})", host_pid_,
             json_string(title));
  begin_event();
  fmt::format_to(std::back_inserter(out_), R"({{"ph":"M","name":"process_sort_index","pid":{},"tid":0,"args":{{"sort_index":0}}}})",
             host_pid_);
  track(host_pid_, host_pid_, fmt::format("host {}", host_pid_));
  track(host_pid_, kPoolTid, "pool");
  last_flush_ = Clock::now();
}

TraceWriter::~TraceWriter() {
  if (!closed_) finish(false);
}

double TraceWriter::micros(Clock::time_point t) const {
  return std::chrono::duration<double, std::micro>(t - start_).count();
}

void TraceWriter::begin_event() {
  if (out_.size() >= (1u << 20)) write_out();
  if (!first_event_) out_ += ",\n";
  first_event_ = false;
}

void TraceWriter::write_out() {
  if (!out_.empty() && std::fwrite(out_.data(), 1, out_.size(), file_) != out_.size()) failed_ = true;
  out_.clear();
}

void TraceWriter::name_track(int pid, int tid, const std::string& name) {
  begin_event();
  fmt::format_to(std::back_inserter(out_), R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":{}}}}})", pid, tid,
             json_string(name));
  // Workers sort by pid after the host's and the pool's tracks.
  begin_event();
  fmt::format_to(std::back_inserter(out_), R"({{"ph":"M","name":"thread_sort_index","pid":{},"tid":{},"args":{{"sort_index":{}}}}})", pid,
             tid, tid == kPoolTid ? -2 : tid == host_pid_ ? -3 : tid);
}

TraceWriter::Track& TraceWriter::track(int pid, int tid, const std::string& name) {
  auto [it, added] = tracks_.try_emplace(track_key(pid, tid));
  if (added) {
    it->second.pid = pid;
    it->second.tid = tid;
    name_track(pid, tid, name);
  }
  return it->second;
}

int TraceWriter::node_pid(const std::string* node) {
  if (!node) return host_pid_;
  auto it = std::find(nodes_.begin(), nodes_.end(), *node);
  if (it != nodes_.end()) return kFirstNodePid + int(it - nodes_.begin());
  nodes_.push_back(*node);
  const int pid = kFirstNodePid + int(nodes_.size()) - 1;
  begin_event();
  fmt::format_to(std::back_inserter(out_), R"({{"ph":"M","name":"process_name","pid":{},"tid":0,"args":{{"name":{}}}}})", pid,
             json_string("node " + *node));
  return pid;
}

TraceWriter::Track& TraceWriter::worker_track(int worker, const std::string* node) {
  const int pid = node_pid(node);
  if (worker <= 0) return track(host_pid_, kPoolTid, "pool");  // never given to a worker
  std::string name;
  if (auto slot = slot_of_pid_.find(worker); slot != slot_of_pid_.end() && !node)
    name = fmt::format("worker {} (slot {})", worker, slot->second);
  else
    name = fmt::format("worker {}", worker);
  return track(pid, worker, name);
}

void TraceWriter::slice(const Track& t, std::string_view name, std::string_view category, double ts, double dur,
                        const std::string& args) {
  begin_event();
  fmt::format_to(std::back_inserter(out_), R"({{"ph":"X","name":{},"cat":"{}","ts":{:.3f},"dur":{:.3f},"pid":{},"tid":{},"args":{{{}}}}})",
             json_string(name), category, ts, std::max(dur, 0.0), t.pid, t.tid, args);
}

void TraceWriter::instant(const Track& t, std::string_view name, double ts, const std::string& args) {
  if (instants_ >= kInstantLimit) {
    ++instants_dropped_;
    return;
  }
  ++instants_;
  begin_event();
  fmt::format_to(std::back_inserter(out_), R"({{"ph":"i","s":"t","name":{},"ts":{:.3f},"pid":{},"tid":{},"args":{{{}}}}})",
             json_string(name), ts, t.pid, t.tid, args);
}

void TraceWriter::pool_ready(const Pool& pool, Clock::time_point constructed, Clock::time_point ready) {
  pool_ = &pool;
  const double from = micros(constructed), to = micros(ready);
  const PoolStats stats = PoolAccess::counts(pool);
  Track& pool_track = track(host_pid_, kPoolTid, "pool");
  if (to > from)  // not for a pool made before the run (run_plan)
    slice(pool_track, "pool start", "pool", from, to - from,
          fmt::format(R"("workers":{},"start_mode":"{}")", stats.workers.size(),
                      stats.template_pid > 0 ? "zygote" : "spawn"));
  pool_track.cursor = to;
  if (stats.template_pid > 0) {
    template_pid_ = stats.template_pid;
    Track& t = track(host_pid_, stats.template_pid, fmt::format("template {} (supervisor)", stats.template_pid));
    const double setup = std::min(stats.template_setup_seconds * 1e6, to - from);
    slice(t, "template setup", "setup", from, setup,
          fmt::format(R"("seconds":{:.6f},"pid":{})", stats.template_setup_seconds, stats.template_pid));
    t.cursor = from + setup;
  }
  watch_workers(stats, to);
  last_poll_ = ready;
}

void TraceWriter::watch_workers(const PoolStats& stats, double now) {
  if (!stats.template_pid || stats.template_pid == template_pid_) {
  } else {
    // A new template: the old one ended (its reason is in its workers' deaths).
    Track& t = track(host_pid_, stats.template_pid, fmt::format("template {} (supervisor)", stats.template_pid));
    const double setup = stats.template_setup_seconds * 1e6;
    slice(t, "template setup", "setup", std::max(0.0, now - setup), setup,
          fmt::format(R"("seconds":{:.6f},"pid":{})", stats.template_setup_seconds, stats.template_pid));
    if (template_pid_) {
      Track& old = track(host_pid_, template_pid_, fmt::format("template {} (supervisor)", template_pid_));
      instant(old, "template replaced", std::max(now, old.cursor), fmt::format(R"("new_pid":{})", stats.template_pid));
    }
    template_pid_ = stats.template_pid;
  }
  if (slots_.size() < stats.workers.size()) slots_.resize(stats.workers.size());
  for (const WorkerStats& w : stats.workers) {
    SlotSeen& seen = slots_[std::size_t(w.slot) < slots_.size() ? std::size_t(w.slot) : 0];
    if (w.restarts > seen.restarts) {
      // Each earlier process's end, with its reason, on its own track: the
      // reason names the process, also one that came and went between two
      // reads (a crash loop's), whose track then names its slot and start.
      for (int k = seen.restarts; k < w.restarts; ++k) {
        ++deaths_;
        const std::string reason =
            std::size_t(k) < w.restart_reasons.size() ? w.restart_reasons[std::size_t(k)] : std::string();
        int pid = pid_of_reason(reason);
        if (pid <= 0 && k == seen.restarts) pid = seen.pid;
        if (pid <= 0) {  // never: every reason names its process
          instant(track(host_pid_, kPoolTid, "pool"), "worker ended", now,
                  fmt::format(R"("slot":{},"pid":0,"reason":{},"restart":{})", w.slot, json_string(reason), k + 1));
          continue;
        }
        Track& t = slot_track(pid, w.slot, k);
        // Where the task that ended it ended, when a record said so.
        t.died = t.ended >= 0 ? t.ended : std::max(now, t.cursor);
        if (!t.started && t.pending_setup < 0) {
          // Never seen alive: its start (not its setup's length) is drawn
          // where its first task began, or at its end if it ran none.
          t.pending_setup = 0;
          t.setup_unknown = true;
          if (t.first >= 0) replacement_setup(t, t.first);
        }
        instant(t, "worker ended", t.died,
                fmt::format(R"("slot":{},"pid":{},"reason":{},"restart":{})", w.slot, pid, json_string(reason), k + 1));
        t.ended = -1;
      }
      seen.restarts = w.restarts;
    }
    if (w.pid > 0 && w.pid != seen.pid) {
      const bool replacement = seen.pid > 0 || w.restarts > 0;
      Track& t = slot_track(w.pid, w.slot, w.restarts);
      const double setup = w.setup_seconds * 1e6;
      if (replacement) {
        // Its setup ended before this read, and before its first task.
        t.pending_setup = w.setup_seconds;
        if (t.first >= 0) replacement_setup(t, std::min(now, t.first));
      } else {
        t.started = true;  // with the pool: its setup slice says so
        slice(t, "worker setup", "setup", std::max(0.0, now - setup), std::min(setup, now),
              fmt::format(R"("seconds":{:.6f},"slot":{})", w.setup_seconds, w.slot));
        t.cursor = std::max(t.cursor, now);
      }
      seen.pid = w.pid;
    }
  }
}

// A worker's track once its slot is known: a track made before (by a record
// of a process the statistics had not shown yet) is named again.
TraceWriter::Track& TraceWriter::slot_track(int pid, int slot, int restart) {
  const bool known = slot_of_pid_.count(pid) > 0;
  slot_of_pid_[pid] = slot;
  const bool existed = tracks_.count(track_key(host_pid_, pid)) > 0;
  Track& t = worker_track(pid, nullptr);
  if (existed && !known) name_track(t.pid, t.tid, fmt::format("worker {} (slot {})", pid, slot));
  t.slot = slot;
  t.restart = restart;
  return t;
}

void TraceWriter::replacement_setup(Track& t, double end) {
  // Records come in task order, so a death can be read (and drawn) before
  // the record of the task that ended it: a start never comes after the end.
  if (t.died >= 0) end = std::min(end, t.died);
  const double setup = t.pending_setup * 1e6;
  const double from = std::max(0.0, end - setup);
  t.started = true;
  instant(t, "worker started", from, fmt::format(R"("slot":{},"restart":{})", t.slot, t.restart));
  if (!t.setup_unknown)
    slice(t, "worker setup", "setup", from, end - from,
          fmt::format(R"("seconds":{:.6f},"slot":{})", t.pending_setup, t.slot));
  t.pending_setup = -1;
}

void TraceWriter::poll(const Pool& pool, bool force) {
  const Clock::time_point now = Clock::now();
  if (closed_ || (!force && now - last_poll_ < kStatsInterval)) return;
  last_poll_ = now;
  watch_workers(PoolAccess::counts(pool), micros(now));
  if (now - last_flush_ >= std::chrono::seconds(1)) {  // a killed run still leaves most of its trace
    write_out();
    std::fflush(file_);
    last_flush_ = now;
  }
}

void TraceWriter::flush_bucket(Track& t) {
  Bucket& b = t.bucket;
  if (b.tasks == 0) return;
  slice(t, fmt::format("{} tasks", b.tasks), b.failed ? "aggregated,failed" : "aggregated", b.start, b.end - b.start,
        fmt::format(R"("tasks":{},"ok":{},"failed":{})", b.tasks, b.ok, b.failed));
  ++aggregate_slices_;
  b = Bucket();
  // Every further kTaskSliceLimit aggregated slices, windows ten times as long.
  if (aggregate_slices_ % task_slice_limit_ == 0) window_us_ = std::min(window_us_ * 10, 1e5 * kMaxWindowWidening);
}

void TraceWriter::task(std::string_view run, std::string_view analysis, std::uint64_t task, int repeat,
                       const RawResult& result, Clock::time_point arrived) {
  ++tasks_;
  const char* status = status_of(result);
  const bool ok = !result.error;
  if (!ok) ++failed_tasks_;
  const double end_at = micros(arrived);
  // A worker not seen yet (a replacement): its slot comes from the statistics.
  if (pool_ && result.worker > 0 && !result.node && !slot_of_pid_.count(result.worker) &&
      !tracks_.count(track_key(host_pid_, result.worker))) {
    last_poll_ = arrived;
    watch_workers(PoolAccess::counts(*pool_), end_at);
  }
  Track& t = worker_track(result.worker, result.node);
  const double dur = std::max(0.0, result.seconds * 1e6);
  // At (arrival - seconds) .. arrival, after the track's last slice: results
  // arrive in runs, so a run's tasks are drawn one after another.
  const double start = std::max({0.0, end_at - dur, t.cursor});
  t.cursor = start + dur;
  if (t.first < 0) t.first = start;
  if (t.pending_setup >= 0) replacement_setup(t, start);
  if (task_slices_ < task_slice_limit_) {
    ++task_slices_;
    if (run != last_run_) last_run_.assign(run), last_run_json_ = json_string(run);
    if (analysis != last_analysis_) last_analysis_.assign(analysis), last_analysis_json_ = json_string(analysis);
    begin_event();
    auto out = std::back_inserter(out_);
    if (ok) fmt::format_to(out, R"({{"ph":"X","name":{},"cat":"ok",)", last_run_json_);
    else fmt::format_to(out, R"({{"ph":"X","name":{},"cat":"{}",)", json_string(fmt::format("{} ({})", run, status)), status);
    fmt::format_to(out,
                   R"("ts":{:.3f},"dur":{:.3f},"pid":{},"tid":{},"args":{{"task":{},"repeat":{},"status":"{}","analysis":{}}}}})",
                   start, dur, t.pid, t.tid, task, repeat, status, last_analysis_json_);
  } else {
    Bucket& b = t.bucket;
    const auto window = std::uint64_t(t.cursor / window_us_);
    if (b.tasks > 0 && b.window != window) flush_bucket(t);
    if (b.tasks == 0) b.window = window, b.start = start;
    b.end = t.cursor;
    ++b.tasks;
    ++(ok ? b.ok : b.failed);
  }
  if (!ok && counts_as_death(status)) t.ended = t.cursor;
  if (!ok && counts_as_death(status))
    instant(t, status, t.cursor,
            fmt::format(R"("run":{},"task":{},"repeat":{},"message":{})", json_string(run), task, repeat,
                        json_string(result.error->message)));
}

void TraceWriter::interrupted(Clock::time_point now) {
  Track& host = track(host_pid_, host_pid_, "host");
  instant(host, "interrupted", micros(now), "");
}

bool TraceWriter::finish(bool complete) {
  if (closed_) return !failed_;
  // The run's slice spans every slice drawn: a failed task's seconds are the
  // host's, counted from when it was sent, which may be before the worker's
  // previous task ended (tasks are sent ahead), so its slice, drawn after that
  // one, can end after its record arrived.
  double end = micros(Clock::now());
  for (const auto& [key, t] : tracks_) end = std::max(end, t.cursor);
  for (auto& [key, t] : tracks_) {
    flush_bucket(t);
    if (t.pending_setup >= 0)
      replacement_setup(t, t.died >= 0 ? t.died : std::max(t.cursor, std::min(end, micros(last_poll_))));
  }
  Track& host = track(host_pid_, host_pid_, "host");
  slice(host, "run", "run", 0, end, fmt::format(R"("tasks":{},"failed":{})", tasks_, failed_tasks_));
  fmt::format_to(std::back_inserter(out_),
             "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{{\"tasks\":{},\"slices\":{},\"aggregated\":{},"
             "\"task_slice_limit\":{},\"aggregate_window_ms\":{},\"aggregated_slices\":{},\"failed_tasks\":{},"
             "\"deaths\":{},\"instants_dropped\":{},\"complete\":{}}}}}\n",
             tasks_, task_slices_, aggregate_slices_ > 0 ? "true" : "false", task_slice_limit_,
             std::chrono::milliseconds(kAggregateWindow).count(), aggregate_slices_, failed_tasks_, deaths_,
             instants_dropped_, complete ? "true" : "false");
  closed_ = true;
  write_out();
  failed_ = std::ferror(file_) != 0 || failed_;
  failed_ = std::fclose(file_) != 0 || failed_;
  file_ = nullptr;
  return !failed_;
}

}  // namespace mathpool::detail
