// _mathpool: the compiled half of the Python module `mathpool` (the other
// half, mathpool/__init__.py, defines the exceptions and the context
// managers). Built on the public host API (mathpool/*.hpp) and two host
// details: pool_options_from_map() and the catalogue's JSON (docs/python.md).
//
// Threads: Python calls run on the caller's thread and release the GIL
// while they wait. A pool's futures are completed by one completer thread;
// each map/imap has a pump thread that drives its TaskStream (push and take
// on one thread, as TaskStream wants), so the caller's thread only converts
// values and can poll for Ctrl-C. Neither kind of thread touches a Python
// object without the GIL.
#define PY_SSIZE_T_CLEAN  // "s#" formats take Py_ssize_t lengths
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalogue_json.hpp"
#include "pool_options_map.hpp"
#include "convert.hpp"
#include "mathpool/config.hpp"
#include "mathpool/pool.hpp"
#include "mathpool/registry.hpp"
#include "mathpool/run.hpp"

namespace py = pybind11;
using namespace std::chrono_literals;

namespace mathpool::python {
namespace {

// Set once by mathpool/__init__.py (_setup); never freed (they outlive the
// interpreter's teardown of this module).
PyObject* g_error = nullptr;        // mathpool.Error
PyObject* g_task_error = nullptr;   // mathpool._task_error(kind, message, task) -> TaskError subclass
PyObject* g_future = nullptr;       // concurrent.futures.Future

constexpr auto kPoll = 50ms;  // how often a waiting call looks for Ctrl-C

// This process's id, kept current across fork() (an atfork handler), so the
// check that a pool belongs to this process costs no system call.
pid_t g_pid = getpid();
pid_t current_pid() noexcept { return g_pid; }

[[noreturn]] void raise() { throw py::error_already_set(); }

// Raises mathpool.Error(message, kind).
[[noreturn]] void raise_error(std::string_view kind, const std::string& message) {
  if (!g_error) throw std::runtime_error(message);
  PyObject* exc = PyObject_CallFunction(g_error, "s#s#", message.data(), Py_ssize_t(message.size()), kind.data(),
                                        Py_ssize_t(kind.size()));
  if (!exc) raise();
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
  Py_DECREF(exc);
  raise();
}

// A task's failure as a TaskError subclass instance (new reference).
PyObject* task_error(const TaskResult& r, py::dict task) {
  task["worker"] = r.worker;
  task["attempts"] = r.attempts;
  task["seconds"] = r.seconds;
  task["status"] = std::string(r.status());
  if (!r.node.empty()) task["node"] = r.node;
  const std::string kind(to_string(r.error->kind));
  PyObject* exc = PyObject_CallFunction(g_task_error, "s#s#O", kind.data(), Py_ssize_t(kind.size()),
                                        r.error->message.data(), Py_ssize_t(r.error->message.size()), task.ptr());
  if (!exc) raise();
  return exc;
}

// ---- pools -----------------------------------------------------------------

// Completes the concurrent.futures.Future of each submit() from its
// std::future, on one thread per pool.
class Completer {
 public:
  Completer() : thread_([this] { loop(); }) {}
  Completer(const Completer&) = delete;
  Completer& operator=(const Completer&) = delete;

  // Takes one reference to `future` and to `task`. Caller holds the GIL.
  void add(std::future<TaskResult> result, PyObject* future, PyObject* task) {
    Py_INCREF(future);
    Py_INCREF(task);
    {
      std::lock_guard lock(mutex_);
      incoming_.push_back({std::move(result), future, task});
    }
    wake_.notify_one();
  }

  // Finishes every future added (they must all complete), then ends the
  // thread. Call without the GIL: the thread takes it to set results.
  void finish() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  std::thread& thread() { return thread_; }

 private:
  struct Item {
    std::future<TaskResult> result;
    PyObject* future;
    PyObject* task;
  };

  static bool ready(const Item& item) { return item.result.wait_for(0s) == std::future_status::ready; }

  void loop() {
    std::deque<Item> active;
    std::vector<Item> done;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        if (active.empty()) wake_.wait(lock, [&] { return stop_ || !incoming_.empty(); });
        for (Item& item : incoming_) active.push_back(std::move(item));
        incoming_.clear();
        if (active.empty() && stop_) return;
      }
      while (!active.empty() && ready(active.front())) {
        done.push_back(std::move(active.front()));
        active.pop_front();
      }
      if (done.empty() && !active.empty()) {
        active.front().result.wait_for(2ms);
        // Results may come out of order: look at every one.
        std::deque<Item> waiting;
        for (Item& item : active) {
          if (ready(item)) done.push_back(std::move(item));
          else waiting.push_back(std::move(item));
        }
        active.swap(waiting);
      }
      if (!done.empty()) {
        if (Py_IsInitialized() && !_Py_IsFinalizing()) {
          py::gil_scoped_acquire gil;
          for (Item& item : done) complete(item);
        }
        done.clear();
      }
    }
  }

  // With the GIL.
  static void complete(Item& item) {
    py::object future = py::reinterpret_steal<py::object>(item.future);
    py::dict task = py::reinterpret_steal<py::dict>(item.task);
    try {
      if (!future.attr("set_running_or_notify_cancel")().cast<bool>()) return;  // cancelled
      TaskResult r = item.result.get();
      if (r.ok()) {
        future.attr("set_result")(py::reinterpret_steal<py::object>(from_value(r.result)));
      } else {
        future.attr("set_exception")(py::reinterpret_steal<py::object>(task_error(r, task)));
      }
    } catch (py::error_already_set& e) {
      try {
        future.attr("set_exception")(e.value());
      } catch (py::error_already_set&) {
        PyErr_Clear();
      }
    } catch (const std::exception& e) {
      PyErr_Clear();
      try {
        future.attr("set_exception")(py::reinterpret_steal<py::object>(PyObject_CallFunction(
            g_error, "ss", e.what(), "crashed")));
      } catch (py::error_already_set&) {
        PyErr_Clear();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Item> incoming_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members above exist
};

class ImapState;

// One pool as Python sees it: owned, or leased from the default registry.
class PyPool {
 public:
  PyPool(py::handle options, bool leased) {
    const PoolOptions o = detail::pool_options_from_map(to_value(options.ptr(), "pool option"));
    py::gil_scoped_release nogil;
    if (leased) {
      auto lease = std::make_shared<PoolLease>(default_registry().acquire(o));
      pool_ = std::shared_ptr<Pool>(lease, &lease->pool());  // the lease lives as long as the pool is used
      leased_ = true;
    } else {
      pool_ = std::make_shared<Pool>(o);
    }
  }

  PyPool(const PyPool&) = delete;
  PyPool& operator=(const PyPool&) = delete;

  ~PyPool() {
    if (current_pid() != owner_) {
      // A forked child's copy: the threads are the parent's. Leave every
      // object as it is (the C++ pool's own copy would do nothing anyway).
      (void)new std::shared_ptr<Pool>(std::move(pool_));
      (void)completer_.release();
      for (auto& t : orphans_) (void)new std::thread(std::move(t));
      return;
    }
    try {
      close(std::nullopt);
    } catch (...) {
      PyErr_Clear();
    }
    for (auto& t : orphans_)
      if (t.joinable()) t.detach();
  }

  // Raises mathpool.Error unless this process may use the pool.
  void check_usable() const {
    if (current_pid() != owner_)
      raise_error("crashed", "this pool belongs to process " + std::to_string(owner_) +
                                 "; a forked child must create a pool of its own");
    if (!pool_) raise_error("crashed", "the pool is shut down");
  }

  Pool& pool() {
    check_usable();
    return *pool_;
  }
  // For threads that use the pool past a close() (a pump draining its tasks).
  std::shared_ptr<Pool> shared() {
    check_usable();
    return pool_;
  }

  py::object submit(const std::string& analysis, py::handle params) {
    Pool& p = pool();
    Value v = params_to_value(params.ptr());
    py::object future = py::reinterpret_steal<py::object>(PyObject_CallNoArgs(g_future));
    if (!future) raise();
    py::dict task;
    task["analysis"] = analysis;
    task["params"] = params;
    task["index"] = py::none();
    std::future<TaskResult> result = p.submit(analysis, std::move(v));
    if (!completer_) completer_ = std::make_unique<Completer>();
    completer_->add(std::move(result), future.ptr(), task.ptr());
    return future;
  }

  py::dict stats() {
    PoolStats s;
    {
      Pool& p = pool();
      py::gil_scoped_release nogil;
      s = p.stats();
    }
    py::dict d;
    d["uptime_seconds"] = s.uptime_seconds;
    d["batches"] = s.batches;
    d["tasks_submitted"] = s.tasks_submitted;
    d["tasks_ok"] = s.tasks_ok;
    d["tasks_failed"] = s.tasks_failed;
    d["queued"] = s.queued;
    d["in_flight"] = s.in_flight;
    py::list workers;
    for (const WorkerStats& w : s.workers) {
      py::dict x;
      x["slot"] = w.slot;
      x["pid"] = w.pid;
      x["tasks"] = w.tasks;
      x["tasks_total"] = w.tasks_total;
      x["setup_seconds"] = w.setup_seconds;
      x["restarts"] = w.restarts;
      x["restart_reasons"] = w.restart_reasons;
      x["rss_bytes"] = w.rss_bytes;
      x["pss_bytes"] = w.pss_bytes;
      x["task_setup_seconds"] = w.task_setup_seconds;
      workers.append(x);
    }
    d["workers"] = workers;
    py::dict analyses;
    for (const auto& [name, a] : s.analyses) {
      py::dict x;
      x["tasks_ok"] = a.tasks_ok;
      x["tasks_failed"] = a.tasks_failed;
      x["seconds"] = a.seconds;
      x["setups"] = a.setups;
      x["setup_seconds"] = a.setup_seconds;
      analyses[py::str(name)] = x;
    }
    d["analyses"] = analyses;
    d["template_pid"] = s.template_pid;
    d["template_setup_seconds"] = s.template_setup_seconds;
    d["template_rss_bytes"] = s.template_rss_bytes;
    d["template_pss_bytes"] = s.template_pss_bytes;
    d["parked"] = s.parked;
    py::list nodes;
    for (const NodeStats& n : s.nodes) {
      py::dict x;
      x["rank"] = n.rank;
      x["node"] = n.node;
      x["workers"] = n.workers;
      x["holding"] = n.holding;
      x["tasks_done"] = n.tasks_done;
      nodes.append(x);
    }
    d["nodes"] = nodes;
    return d;
  }

  py::object catalogue() { return py::reinterpret_steal<py::object>(from_value(pool().catalogue())); }
  int size() { return pool().size(); }
  bool serving() const { return pool_ && current_pid() == owner_ && pool_->serving(); }
  bool leased() const { return leased_; }

  // Waits for submitted tasks (at most `grace` seconds when given, then
  // stops them) and ends the pool's threads; a leased pool goes back to the
  // registry instead. Idempotent.
  void close(std::optional<double> grace) {
    if (current_pid() != owner_) check_usable();
    if (!pool_) return;
    py::gil_scoped_release nogil;
    if (!leased_) {
      if (grace) pool_->shutdown(std::chrono::milliseconds(std::int64_t(std::max(0.0, *grace) * 1000)));
      else pool_->shutdown();
    }
    if (completer_) completer_->finish();  // a leased pool's futures complete first
    join_orphans();
    completer_.reset();
    pool_.reset();  // a pump still running holds the pool (or the lease) until it ends
  }

  // A map/imap's pump thread that still drains its tasks: joined at close.
  // After close() nobody would join it: it holds the pool itself, touches
  // no Python object, and ends when its tasks are done.
  void adopt(std::thread thread) {
    std::lock_guard lock(orphans_mutex_);
    if (pool_) orphans_.push_back(std::move(thread));
    else thread.detach();
  }

 private:
  void join_orphans() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(orphans_mutex_);
      threads.swap(orphans_);
    }
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }

  const pid_t owner_ = current_pid();
  std::shared_ptr<Pool> pool_;  // owned, or the registry's (holding the lease)
  bool leased_ = false;
  std::unique_ptr<Completer> completer_;
  std::mutex orphans_mutex_;
  std::vector<std::thread> orphans_;
};

// ---- map and imap ----------------------------------------------------------

// What the caller's thread and the pump thread share.
struct Channel {
  std::mutex mutex;
  std::condition_variable to_pump, to_caller;
  std::deque<Value> inbox;        // parameters for the pump to push
  std::deque<TaskResult> outbox;  // results, in order
  bool source_done = false;       // no more parameters will come
  std::atomic<bool> stop{false};  // push nothing more; drain and end
  bool pump_done = false;
  bool caller_waiting = false;
  std::string error;  // what ended the pump early, if anything
};

void pump(std::shared_ptr<Pool> pool, std::unique_ptr<TaskStream> stream, std::string analysis,
          std::shared_ptr<Channel> ch) {
  try {
    std::deque<Value> local;
    for (;;) {
      if (local.empty()) {
        std::unique_lock lock(ch->mutex);
        if (ch->stop) break;
        if (ch->inbox.empty() && stream->in_flight() == 0) {
          if (ch->source_done) break;
          ch->to_pump.wait(lock, [&] { return ch->stop || ch->source_done || !ch->inbox.empty(); });
          if (ch->stop) break;
        }
        local.swap(ch->inbox);
      }
      while (!local.empty() && !stream->full() && !ch->stop) {
        stream->push(analysis, local.front());
        local.pop_front();
      }
      if (stream->in_flight() == 0) continue;
      std::optional<TaskResult> r = stream->next();
      std::lock_guard lock(ch->mutex);
      ch->outbox.push_back(std::move(*r));
      if (ch->caller_waiting) ch->to_caller.notify_one();
      if (ch->stop) break;
    }
    stream.reset();  // waits for the tasks still in flight, drops their results
  } catch (const std::exception& e) {
    std::lock_guard lock(ch->mutex);
    ch->error = e.what();
  }
  std::lock_guard lock(ch->mutex);
  ch->pump_done = true;
  ch->to_caller.notify_all();
  (void)pool;  // released after the stream: the pool outlives it
}

// The lazy, in-order iterator of imap (map collects one).
class ImapIter {
 public:
  ImapIter(py::object pool_object, std::string analysis, py::handle iterable, std::size_t window,
           std::size_t chunksize, bool return_errors)
      : pool_object_(std::move(pool_object)),
        pool_(pool_object_.cast<PyPool&>()),
        analysis_(std::move(analysis)),
        return_errors_(return_errors),
        chunk_(chunksize ? chunksize : 256) {
    source_ = py::reinterpret_steal<py::object>(PyObject_GetIter(iterable.ptr()));
    if (!source_) raise();
    std::shared_ptr<Pool> p = pool_.shared();
    auto stream = std::make_unique<TaskStream>(*p, window);
    limit_ = stream->window() + stream->window() / 2 + chunk_;
    channel_ = std::make_shared<Channel>();
    pump_ = std::thread(pump, std::move(p), std::move(stream), analysis_, channel_);
  }

  ImapIter(const ImapIter&) = delete;
  ImapIter& operator=(const ImapIter&) = delete;

  ~ImapIter() {
    if (current_pid() != owner_) {
      (void)new std::thread(std::move(pump_));
      (void)new std::shared_ptr<Channel>(channel_);
      return;
    }
    close();
  }

  py::object next() {
    for (;;) {
      if (finished_) throw py::stop_iteration();
      pool_.check_usable();
      if (can_feed()) feed();
      if (pending_.empty()) {
        if (source_error_) {
          finish();
          py::object e = std::move(source_error_);
          PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(e.ptr())), e.ptr());
          raise();
        }
        if (exhausted_) {
          finish();
          throw py::stop_iteration();
        }
        continue;
      }
      if (pending_.front().failure) {  // parameters that could not be converted
        Pending p = std::move(pending_.front());
        pending_.pop_front();
        return fail(std::move(p.failure));
      }
      if (ready_.empty()) {
        std::lock_guard lock(channel_->mutex);
        ready_.swap(channel_->outbox);
      }
      if (!ready_.empty()) {
        TaskResult r = std::move(ready_.front());
        ready_.pop_front();
        Pending p = std::move(pending_.front());
        pending_.pop_front();
        --sent_;
        if (r.ok()) return py::reinterpret_steal<py::object>(from_value(r.result));
        py::dict task;
        task["analysis"] = analysis_;
        task["params"] = p.params;
        task["index"] = p.index;
        return fail(py::reinterpret_steal<py::object>(task_error(r, task)));
      }
      if (can_feed()) continue;
      wait();
    }
  }

  // Stops dispatching: tasks in flight finish in the background (their
  // results are dropped). Idempotent.
  void close() {
    if (finished_ && !pump_.joinable()) return;
    finished_ = true;
    {
      std::lock_guard lock(channel_->mutex);
      channel_->stop = true;
    }
    channel_->to_pump.notify_one();
    exhausted_ = true;
    release_pump();
    pending_.clear();
    ready_.clear();
    source_ = py::object();
  }

  // Ctrl-C (or another signal's exception): the pool's queued tasks are
  // cancelled, this iterator ends, and the exception stays set.
  void interrupt() {
    py::error_already_set signal;  // takes the pending exception
    try {
      {
        std::lock_guard lock(channel_->mutex);
        channel_->stop = true;  // first, so the pump pushes nothing after the cancel
      }
      channel_->to_pump.notify_one();
      if (pool_.serving()) {
        py::gil_scoped_release nogil;
        pool_.pool().cancel_pending({ErrorKind::crashed, "interrupted"});
      }
      {
        // Tasks the workers hold already finish first; wait a little for them.
        py::gil_scoped_release nogil;
        std::unique_lock lock(channel_->mutex);
        channel_->to_caller.wait_for(lock, 2s, [&] { return channel_->pump_done; });
      }
      close();
    } catch (...) {
    }
    throw signal;
  }

 private:
  struct Pending {
    py::object params;
    std::size_t index = 0;
    py::object failure;  // set when the parameters never became a task
  };

  bool can_feed() const { return !exhausted_ && sent_ + chunk_ <= limit_; }

  // Converts up to one chunk of parameters and hands them to the pump.
  void feed() {
    std::deque<Value> batch;
    for (std::size_t n = 0; n < chunk_; ++n) {
      PyObject* item = PyIter_Next(source_.ptr());
      if (!item) {
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) interrupt();
        exhausted_ = true;
        if (PyErr_Occurred()) source_error_ = py::error_already_set().value();
        break;
      }
      py::object params = py::reinterpret_steal<py::object>(item);
      try {
        batch.push_back(params_to_value(params.ptr()));
      } catch (py::error_already_set& e) {
        pending_.push_back({std::move(params), next_index_++, e.value()});
        continue;
      }
      pending_.push_back({std::move(params), next_index_++, py::object()});
      ++sent_;
    }
    {
      std::lock_guard lock(channel_->mutex);
      for (Value& v : batch) channel_->inbox.push_back(std::move(v));
      if (exhausted_) channel_->source_done = true;
    }
    channel_->to_pump.notify_one();
  }

  // Waits (without the GIL) for the next result, looking for Ctrl-C.
  void wait() {
    bool pump_ended = false;
    std::string error;
    {
      py::gil_scoped_release nogil;
      std::unique_lock lock(channel_->mutex);
      channel_->caller_waiting = true;
      channel_->to_caller.wait_for(lock, kPoll, [&] { return !channel_->outbox.empty() || channel_->pump_done; });
      channel_->caller_waiting = false;
      pump_ended = channel_->pump_done && channel_->outbox.empty();
      error = channel_->error;
    }
    if (PyErr_CheckSignals() != 0) interrupt();
    if (pump_ended) {
      finish();
      raise_error("crashed", error.empty() ? "the pool stopped before the tasks were done" : error);
    }
  }

  py::object fail(py::object exception) {
    if (return_errors_) return exception;
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
    raise();
  }

  void finish() {
    finished_ = true;
    release_pump();
    source_ = py::object();
  }

  void release_pump() {
    if (!pump_.joinable()) return;
    bool done;
    {
      std::lock_guard lock(channel_->mutex);
      done = channel_->pump_done;
    }
    if (done) {
      py::gil_scoped_release nogil;
      pump_.join();
    } else {
      pool_.adopt(std::move(pump_));  // still draining: joined when the pool closes
    }
  }

  const pid_t owner_ = current_pid();
  py::object pool_object_;  // keeps the pool alive while this iterator lives
  PyPool& pool_;
  std::string analysis_;
  bool return_errors_;
  std::size_t chunk_;
  std::size_t limit_ = 0;  // tasks sent and not yet returned, at most
  std::size_t sent_ = 0;
  py::object source_;
  py::object source_error_;
  bool exhausted_ = false;
  bool finished_ = false;
  std::size_t next_index_ = 0;
  std::deque<Pending> pending_;
  std::deque<TaskResult> ready_;
  std::shared_ptr<Channel> channel_;
  std::thread pump_;
};

py::list map_list(py::object pool, const std::string& analysis, py::handle iterable, std::size_t window,
                  std::size_t chunksize, bool return_errors) {
  ImapIter it(std::move(pool), analysis, iterable, window, chunksize, return_errors);
  py::list out;
  for (;;) {
    try {
      out.append(it.next());
    } catch (py::stop_iteration&) {
      return out;
    } catch (...) {
      it.close();  // the first failure in order: stop dispatching the rest
      throw;
    }
  }
}

// ---- catalogue and runs ----------------------------------------------------

// A one-worker pool that only reports what the plugins provide (as the command's).
Pool catalogue_pool(py::handle options) {
  PoolOptions o = detail::pool_options_from_map(to_value(options.ptr(), "option"));
  o.workers = 1;
  o.preload = std::vector<std::string>{};
  py::gil_scoped_release nogil;
  return Pool(o);
}

py::object list_plugins(py::handle options) {
  Pool pool = catalogue_pool(options);
  return py::reinterpret_steal<py::object>(from_value(detail::plugins_json(pool.catalogue())));
}

py::object describe_analysis(const std::string& name, py::handle options) {
  Pool pool = catalogue_pool(options);
  const Value* a = pool.find_analysis(name);
  if (!a) raise_error("invalid_config", "unknown analysis '" + name + "'; `mathpool plugins` lists them");
  return py::reinterpret_steal<py::object>(from_value(detail::analysis_json(*a)));
}

py::dict summary_dict(const RunSummary& s, const RunConfig& config) {
  py::dict d;
  d["planned"] = s.planned;
  d["skipped"] = s.skipped;
  d["ok"] = s.ok;
  d["failed"] = s.failed;
  d["interrupted"] = s.interrupted;
  d["by_status"] = s.by_status;
  py::dict runs;
  for (const auto& [name, counts] : s.by_run) runs[py::str(name)] = counts;
  d["by_run"] = runs;
  d["skipped_by_status"] = s.skipped_by_status;
  py::dict skipped_runs;
  for (const auto& [name, counts] : s.skipped_by_run) skipped_runs[py::str(name)] = counts;
  d["skipped_by_run"] = skipped_runs;
  py::list failures;
  for (const TaskFailure& f : s.failures) {
    py::dict x;
    x["run"] = f.run;
    x["task"] = f.task;
    x["repeat"] = f.repeat;
    x["kind"] = f.kind;
    x["message"] = f.message;
    failures.append(x);
  }
  d["failures"] = failures;
  d["seconds"] = s.seconds;
  d["workers"] = s.workers;
  d["restarts"] = s.restarts;
  d["hosts"] = s.hosts;
  d["output"] = config.output ? py::object(py::str(config.output->string())) : py::none();
  d["provenance"] = s.provenance ? py::object(py::str(s.provenance->string())) : py::none();
  return d;
}

py::dict run_file(const std::string& config_file, std::optional<std::string> output, std::optional<int> workers,
             bool resume, bool force, bool quiet, std::vector<std::string> command_line, py::handle options,
             std::optional<std::string> trace_file) {
  RunConfig config = load_config(config_file);
  if (output) {
    config.output.reset();
    if (*output != "-") config.output = *output;
  }
  if (workers) {
    if (*workers < 1) raise_error("invalid_config", "workers must be at least 1, got " + std::to_string(*workers));
    config.pool.workers = *workers;
  }
  const PoolOptions extra = detail::pool_options_from_map(to_value(options.ptr(), "option"));
  for (const auto& p : extra.plugin_paths) config.pool.plugin_paths.push_back(p);
  if (extra.allow_insecure_plugins) config.pool.allow_insecure_plugins = true;

  RunOptions o;
  if (trace_file) o.trace = *trace_file;
  o.resume = resume;
  o.force = force;
  o.command_line = std::move(command_line);
  // Ctrl-C: polled on this thread (the run's), at most every 50 ms.
  bool interrupted = false;
  auto last = std::chrono::steady_clock::now();
  PyObject *type = nullptr, *value = nullptr, *trace = nullptr;
  o.interrupted = [&] {
    if (interrupted) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now - last < kPoll) return false;
    last = now;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Fetch(&type, &value, &trace);
      interrupted = true;
    }
    return interrupted;
  };
  o.warn = [](const std::string& message) {
    py::gil_scoped_acquire gil;
    if (PyErr_WarnEx(PyExc_RuntimeWarning, ("mathpool: " + message).c_str(), 1) < 0) PyErr_Clear();
  };
  RunSummary summary;
  {
    py::gil_scoped_release nogil;
    summary = run_config(config, o);
  }
  if (!quiet) {
    py::module_::import("sys").attr("stderr").attr("write")(format_summary(summary));
  }
  if (type) {  // the records so far are kept; resume=True runs the rest
    PyErr_Restore(type, value, trace);
    raise();
  }
  return summary_dict(summary, config);
}

}  // namespace
}  // namespace mathpool::python

PYBIND11_MODULE(_mathpool, m) {
  using namespace mathpool;
  using namespace mathpool::python;
  m.doc() = "The compiled half of mathpool (see the mathpool package and docs/python.md).";
  pthread_atfork(nullptr, nullptr, [] { g_pid = getpid(); });

  m.def("_setup", [](py::object error, py::object task_error, py::object future) {
    g_error = error.release().ptr();
    g_task_error = task_error.release().ptr();
    g_future = future.release().ptr();
  });

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mathpool::Error& e) {
      try {
        raise_error(to_string(e.kind()), e.what());
      } catch (py::error_already_set& set) {
        set.restore();
      }
    }
  });

  py::class_<PyPool>(m, "Pool", "A pool of worker processes (use mathpool.Pool).")
      .def(py::init<py::handle, bool>(), py::arg("options"), py::arg("leased") = false)
      .def("submit", &PyPool::submit, py::arg("analysis"), py::arg("params") = py::none(),
           "Queues one task; returns a concurrent.futures.Future of its result.")
      .def(
          "_imap",
          [](py::object self, const std::string& analysis, py::handle iterable, std::size_t window,
             std::size_t chunksize, bool return_errors) {
            return new ImapIter(std::move(self), analysis, iterable, window, chunksize, return_errors);
          },
          py::return_value_policy::take_ownership)
      .def("_map",
           [](py::object self, const std::string& analysis, py::handle iterable, std::size_t window,
              std::size_t chunksize, bool return_errors) {
             return map_list(std::move(self), analysis, iterable, window, chunksize, return_errors);
           })
      .def("stats", &PyPool::stats, "The pool's statistics as a dict (mathpool::PoolStats).")
      .def("analyses", &PyPool::catalogue, "The analyses the workers loaded (name, version, params, ...).")
      .def_property_readonly("size", &PyPool::size, "The number of workers.")
      .def_property_readonly("serving", &PyPool::serving, "Whether the pool takes tasks.")
      .def_property_readonly("leased", &PyPool::leased, "Whether the pool is leased from the registry.")
      .def("_close", &PyPool::close, py::arg("grace") = py::none());

  py::class_<ImapIter>(m, "ImapIterator", "Results of Pool.imap, in order.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &ImapIter::next)
      .def("close", &ImapIter::close, "Stops dispatching the remaining tasks.");

  m.def("_plugins", &list_plugins, py::arg("options"));
  m.def("_describe", &describe_analysis, py::arg("name"), py::arg("options"));
  m.def("_run", &run_file, py::arg("config"), py::arg("output"), py::arg("workers"), py::arg("resume"),
        py::arg("force"), py::arg("quiet"), py::arg("command_line"), py::arg("options"), py::arg("trace") = py::none());
  m.def("version", [] { return std::string(mathpool::version()); });
}
