#include <cstdlib>
#include <mutex>

#include "mathpool/pool.hpp"
#include "pool_impl.hpp"

namespace mathpool {

std::string_view TaskResult::status() const noexcept {
  if (!error) return "ok";
  switch (error->kind) {
    case ErrorKind::timeout: return "timeout";
    case ErrorKind::crashed: return "crashed";
    case ErrorKind::memory: return "memory";
    default: return "error";
  }
}

Pool::Pool(PoolOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Pool::~Pool() = default;

std::future<TaskResult> Pool::submit(std::string analysis, Value params) {
  std::vector<TaskSpec> one;
  one.push_back({std::move(analysis), std::move(params)});
  return std::move(impl_->submit(std::move(one), false).front());
}

std::vector<std::future<TaskResult>> Pool::submit_all(std::vector<TaskSpec> tasks) {
  return impl_->submit(std::move(tasks), true);
}

std::vector<TaskResult> Pool::map(const std::string& analysis, std::vector<Value> params) {
  std::vector<TaskSpec> tasks;
  tasks.reserve(params.size());
  for (Value& p : params) tasks.push_back({analysis, std::move(p)});
  auto futures = submit_all(std::move(tasks));
  std::vector<TaskResult> results;
  results.reserve(futures.size());
  for (auto& f : futures) results.push_back(f.get());
  return results;
}

const Value& Pool::catalogue() const noexcept { return impl_->catalogue(); }

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
void Pool::terminate() { impl_->terminate(); }

namespace {
std::mutex default_pool_mutex;
std::unique_ptr<Pool>* default_pool_slot = nullptr;

void shut_down_default_pool() {
  std::lock_guard lock(default_pool_mutex);
  if (default_pool_slot) {
    default_pool_slot->reset();
    delete default_pool_slot;
    default_pool_slot = nullptr;
  }
}
}  // namespace

Pool& default_pool() {
  std::lock_guard lock(default_pool_mutex);
  if (!default_pool_slot) {
    default_pool_slot = new std::unique_ptr<Pool>(std::make_unique<Pool>());
    std::atexit(shut_down_default_pool);
  }
  return **default_pool_slot;
}

}  // namespace mathpool
