#include <cstdlib>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "mathpool/pool.hpp"
#include "default_pool_options.hpp"
#include "pool_impl.hpp"
#include "record_line.hpp"
#include "stream_core.hpp"

namespace mathpool {

std::string_view TaskResult::status() const noexcept {
  return detail::record_status(error ? &*error : nullptr);
}

Pool::Pool(PoolOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

std::unique_ptr<detail::LocalPool> detail::make_local_pool(PoolOptions options) {
  return std::make_unique<Pool::Impl>(std::move(options));
}

std::unique_ptr<Pool::Impl> pool_detail::adopt_local_pool(std::unique_ptr<detail::LocalPool> local) {
  // make_local_pool() makes every LocalPool there is.
  return std::unique_ptr<Pool::Impl>(static_cast<Pool::Impl*>(local.release()));
}
Pool::~Pool() = default;

std::future<TaskResult> Pool::submit(std::string analysis, Value params) {
  return impl_->submit(std::move(analysis), std::move(params));
}

std::vector<std::future<TaskResult>> Pool::submit_all(std::vector<TaskSpec> tasks) {
  std::vector<std::future<TaskResult>> futures;
  futures.reserve(tasks.size());
  std::vector<Impl::Task> batch(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    auto* completion = new detail::PromiseCompletion();
    futures.push_back(completion->future());
    batch[i].analysis = std::move(tasks[i].analysis);
    detail::append_msgpack(batch[i].params, tasks[i].params.is_null() ? Value::object() : tasks[i].params);
    batch[i].completion = completion;
  }
  impl_->enqueue(batch, true);
  return futures;
}

std::vector<TaskResult> Pool::map(const std::string& analysis, std::vector<Value> params) {
  std::vector<TaskResult> results;
  results.reserve(params.size());
  std::size_t next = 0;
  map_stream(
      analysis, [&]() -> std::optional<Value> { return next < params.size() ? std::optional(std::move(params[next++])) : std::nullopt; },
      [&](TaskResult&& result) { results.push_back(std::move(result)); }, std::max<std::size_t>(params.size(), 1));
  return results;
}

std::size_t Pool::map_stream(const std::string& analysis, const std::function<std::optional<Value>()>& source,
                             const std::function<void(TaskResult&&)>& sink, std::size_t window) {
  TaskStream stream(*this, window);
  std::size_t count = 0;
  while (std::optional<Value> params = source()) {
    if (stream.full()) sink(*stream.next());
    stream.push(analysis, *params);
    ++count;
  }
  while (auto result = stream.next()) sink(std::move(*result));
  return count;
}

const Value& Pool::catalogue() const noexcept { return impl_->catalogue(); }

std::vector<std::vector<ParamProblem>> Pool::check(const std::string& analysis, const std::vector<Value>& sets) {
  Value list = Value::array();
  for (const Value& set : sets) list.push_back(set);
  // On this machine's workers: under MPI, rank 0's (the router's timing is for tasks).
  TaskResult checked =
      impl_->submit_local(detail::kCheckAnalysis, Value{{"analysis", analysis}, {"sets", std::move(list)}}).get();
  if (!checked.ok()) throw Error(checked.error->kind, "checking parameters of " + analysis + ": " + checked.error->message);
  std::vector<std::vector<ParamProblem>> problems;
  for (const Value& found : checked.result.at("problems")) {
    auto& these = problems.emplace_back();
    for (const Value& p : found) these.push_back({p.value("param", ""), p.value("message", "")});
  }
  return problems;
}

const Value* Pool::find_analysis(std::string_view name) const noexcept {
  for (const Value& entry : impl_->catalogue())
    if (entry.value("name", "") == name) return &entry;
  return nullptr;
}

const std::vector<std::filesystem::path>& Pool::plugin_files() const noexcept {
  return impl_->plugin_files();
}
int Pool::size() const noexcept { return impl_->size(); }
PoolStats Pool::stats() const { return impl_->stats(); }
void Pool::cancel_pending(const TaskError& error) { impl_->cancel_pending(error); }
void Pool::shutdown() { impl_->shutdown(); }
void Pool::shutdown(std::chrono::milliseconds grace) { impl_->shutdown(grace); }
void Pool::terminate() { impl_->terminate(); }
void Pool::park() { impl_->park(); }
void Pool::unpark() { impl_->unpark(); }
bool Pool::serving() const noexcept { return impl_->serving(); }

namespace {

detail::Mutex default_pool_mutex;
Pool* default_pool_instance GUARDED_BY(default_pool_mutex) = nullptr;  // never deleted: late users must not crash
std::optional<PoolOptions> default_options GUARDED_BY(default_pool_mutex);
constexpr auto kDefaultPoolExitGrace = std::chrono::seconds(2);

void shut_down_default_pool() {
  detail::MutexLock lock(default_pool_mutex);
  if (default_pool_instance) default_pool_instance->shutdown(kDefaultPoolExitGrace);
}

PoolOptions options_from_environment() {
  PoolOptions options;
  if (const char* workers = std::getenv("MATHPOOL_WORKERS")) {
    char* end = nullptr;
    const long n = std::strtol(workers, &end, 10);
    if (end == workers || *end != '\0' || n < 1 || n > 4096)
      throw Error(ErrorKind::invalid_config,
                  fmt::format("MATHPOOL_WORKERS must be a number from 1 to 4096, got '{}'", workers));
    options.workers = int(n);
  }
  if (const char* start = std::getenv("MATHPOOL_START")) {
    if (std::string_view(start) == "spawn") options.start = StartMode::spawn;
    else if (std::string_view(start) == "zygote") options.start = StartMode::zygote;
    else throw Error(ErrorKind::invalid_config, fmt::format("MATHPOOL_START must be spawn or zygote, got '{}'", start));
  }
  return options;
}

}  // namespace

PoolOptions detail::default_pool_options() {
  {
    detail::MutexLock lock(default_pool_mutex);
    if (default_options) return *default_options;
  }
  return options_from_environment();
}

Pool& default_pool() {
  detail::MutexLock lock(default_pool_mutex);
  if (!default_pool_instance) {
    default_pool_instance = new Pool(default_options ? *default_options : options_from_environment());
    std::atexit(shut_down_default_pool);
  }
  return *default_pool_instance;
}

void set_default_pool_options(PoolOptions options) {
  detail::MutexLock lock(default_pool_mutex);
  if (default_pool_instance)
    throw Error(ErrorKind::misuse, "the default pool exists already; set its options before its first use");
  default_options = std::move(options);
}

}  // namespace mathpool
