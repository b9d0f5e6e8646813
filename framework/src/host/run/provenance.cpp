#include "provenance.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include "hash_cache.hpp"
#include "pool_impl.hpp"
#include "record.hpp"

namespace mathpool::detail {
namespace fs = std::filesystem;

namespace {

std::string this_host() {
  char host[HOST_NAME_MAX + 1] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

// The CSV files a config reads (`csv:` anywhere), resolved as the config resolves them.
void find_csvs(const YAML::Node& node, const fs::path& folder, std::set<fs::path>& found) {
  if (node.IsMap()) {
    for (const auto& item : node) {
      if (item.first.IsScalar() && item.first.Scalar() == "csv" && item.second.IsScalar()) {
        const fs::path p(item.second.Scalar());
        found.insert(p.is_absolute() ? p : folder / p);
      }
      find_csvs(item.second, folder, found);
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) find_csvs(item, folder, found);
  }
}

Value file_entry(const fs::path& file) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(file, ec);
  return {{"path", (ec ? file : absolute).string()}, {"sha256", cached_sha256_file(file, hash_cache_dir())}};
}

}  // namespace

std::string sha256_fd(int fd) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    return "";
  }
  char buffer[1 << 16];
  bool ok = true;
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      ok = got == 0;
      break;
    }
    EVP_DigestUpdate(ctx, buffer, std::size_t(got));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, digest, &size) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return "";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string sha256_file(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string digest = sha256_fd(fd);
  ::close(fd);
  return digest;
}

std::string iso_utc(std::chrono::system_clock::time_point time) {
  const std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

fs::path provenance_path(const fs::path& output) { return fs::path(output.string() + ".meta.json"); }

Provenance::Provenance(const RunConfig& config, const RunOptions& options, fs::path output, Warn warn)
    : output_(std::move(output)), path_(provenance_path(output_)), warn_(std::move(warn)) {
  for (const AnalysisEntry& entry : config.analyses) used_.insert(entry.analysis);
  Value inputs = Value::array();
  try {
    std::set<fs::path> csvs;
    find_csvs(YAML::LoadFile(config.file.string()), config.file.parent_path(), csvs);
    for (const fs::path& csv : csvs) inputs.push_back(file_entry(csv));
  } catch (const std::exception&) {
    // A config given as text, not a file: no inputs to name.
  }
  Value fields = Value::array();
  for (const std::string& f : record_field_names()) {
    const bool kept = !config.output_fields || f == "run" || f == "task" || f == "repeat" || f == "status" ||
                      std::find(config.output_fields->begin(), config.output_fields->end(), f) !=
                          config.output_fields->end();
    if (kept) fields.push_back(f);
  }
  meta_ = {{"mathpool", std::string(version())},
           {"command", options.command_line},
           {"config", file_entry(config.file)},
           {"inputs", inputs},
           {"output", {{"path", output_.string()},
                       {"compression", output_.extension() == ".zst" ? Value("zstd") : Value()},
                       {"fields", fields}}},
           {"analyses", Value::array()},
           {"hosts", Value::array({this_host()})},
           {"resumed", options.resume},
           {"started", iso_utc(started_)}};
  if (!options.resume) return;
  std::ifstream in(path_);
  if (!in) return;  // a file from before provenance, or its meta file was removed
  previous_ = Value::parse(in, nullptr, false);
  if (previous_.is_discarded() || !previous_.is_object()) {
    warn_(fmt::format("{} is not a provenance file; it will be replaced", path_.string()));
    previous_ = Value();
    return;
  }
  const std::string before = previous_.contains("config") && previous_["config"].is_object()
                                 ? previous_["config"].value("sha256", "")
                                 : "";
  const std::string now = meta_["config"].value("sha256", "");
  if (!before.empty() && before != now)
    warn_(fmt::format("the config {} has changed since {} was started (its SHA-256 differs from the one in {}); "
                      "resuming anyway",
                      config.file.string(), output_.string(), path_.string()));
}

void Provenance::hash_plugins_ahead(std::vector<fs::path> plugins) {
  auto promises = std::make_shared<std::vector<std::promise<std::string>>>(plugins.size());
  std::map<std::string, std::shared_future<std::string>> hashes;
  for (std::size_t i = 0; i < plugins.size(); ++i) hashes[plugins[i].string()] = (*promises)[i].get_future().share();
  try {
    hashing_ = std::async(std::launch::async, [plugins = std::move(plugins), promises, cache = hash_cache_dir()] {
      for (std::size_t i = 0; i < plugins.size(); ++i) {
        try {
          (*promises)[i].set_value(cached_sha256_file(plugins[i], cache));
        } catch (...) {
          (*promises)[i].set_exception(std::current_exception());
        }
      }
    });
  } catch (const std::exception&) {
    return;  // no thread: pool_ready() hashes what it needs itself
  }
  plugin_hashes_ = std::move(hashes);
}

void Provenance::pool_ready(const Pool& pool) {
  std::set<std::string> seen;
  Value analyses = Value::array();
  std::map<std::string, std::string> plugin_hashes;
  for (const Value& a : pool.catalogue()) {
    const std::string name = a.value("name", "");
    if (!used_.count(name) || !seen.insert(name).second) continue;
    const std::string plugin = a.value("plugin", "");
    if (!plugin_hashes.count(plugin)) {
      const auto ahead = plugin_hashes_.find(plugin);
      try {
        plugin_hashes[plugin] =
            ahead != plugin_hashes_.end() ? ahead->second.get() : cached_sha256_file(plugin, hash_cache_dir());
      } catch (const std::exception&) {
        plugin_hashes[plugin] = sha256_file(plugin);  // (out of memory on the hashing thread)
      }
    }
    analyses.push_back({{"name", name}, {"version", a.value("version", "")}, {"plugin", plugin},
                        {"plugin_sha256", plugin_hashes[plugin]}});
  }
  meta_["analyses"] = analyses;
  const PoolStats stats = PoolAccess::counts(pool);
  if (!stats.nodes.empty()) {
    Value hosts = Value::array();
    std::set<std::string> seen;
    for (const NodeStats& n : stats.nodes)
      if (seen.insert(n.node).second) hosts.push_back(n.node);
    meta_["hosts"] = hosts;
  }
  if (previous_.is_null() || !previous_.contains("analyses") || !previous_["analyses"].is_array()) return;
  for (const Value& old : previous_["analyses"]) {
    if (!old.is_object()) continue;
    for (const Value& now : analyses) {
      if (now["name"] != old.value("name", "")) continue;
      if (now["version"] != old.value("version", ""))
        warn_(fmt::format("analysis {} is version {} now, but {} was started with version {}; resuming anyway",
                          now["name"].get<std::string>(), now["version"].get<std::string>(), output_.string(),
                          old.value("version", "?")));
      else if (now["plugin_sha256"] != old.value("plugin_sha256", ""))
        warn_(fmt::format("the plugin of analysis {} ({}) has changed since {} was started; resuming anyway",
                          now["name"].get<std::string>(), now["plugin"].get<std::string>(), output_.string()));
    }
  }
}

void Provenance::write(const RunSummary& summary, const std::string& state) {
  Value meta = meta_;
  meta["state"] = state;
  meta["ended"] = state == "running" ? Value() : Value(iso_utc(std::chrono::system_clock::now()));
  // Counts as JSON objects; `total` adds each into it too.
  const auto counts = [](const std::map<std::string, std::size_t>& by_status, Value* total) {
    Value c = Value::object();
    if (total && total->is_null()) *total = Value::object();
    for (const auto& [status, n] : by_status) {
      c[status] = n;
      if (total) (*total)[status] = total->value(status, std::size_t(0)) + n;
    }
    return c;
  };
  const auto runs = [&counts](const auto& by_run, Value* total) {
    Value r = Value::object();
    for (const auto& [run, by_status] : by_run) r[run] = counts(by_status, total ? &(*total)[run] : nullptr);
    return r;
  };
  // What the output holds at the end: the records it held before (--resume) and this run's.
  Value in_output = {{"by_status", Value::object()}, {"by_run", Value::object()}};
  counts(summary.skipped_by_status, &in_output["by_status"]);
  runs(summary.skipped_by_run, &in_output["by_run"]);
  meta["tasks"] = {{"planned", summary.planned},
                   {"already_in_output", summary.skipped},
                   {"ran", summary.ok + summary.failed},
                   {"by_status", counts(summary.by_status, &in_output["by_status"])},
                   {"by_run", runs(summary.by_run, &in_output["by_run"])},
                   {"in_output", in_output}};
  meta["seconds"] = summary.seconds;
  meta["workers"] = summary.workers;
  meta["restarts"] = summary.restarts;
  Value history = previous_.is_object() && previous_.contains("history") && previous_["history"].is_array()
                      ? previous_["history"]
                      : Value::array();
  if (previous_.is_object()) {
    Value earlier = previous_;
    earlier.erase("history");
    history.push_back(earlier);
  }
  meta["history"] = history;

  const fs::path temporary = path_.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << meta.dump(2) << '\n';
    if (!out.flush()) {
      warn_(fmt::format("cannot write the provenance file {}", path_.string()));
      return;
    }
  }
  std::error_code ec;
  fs::rename(temporary, path_, ec);
  if (ec) warn_(fmt::format("cannot write the provenance file {} ({})", path_.string(), ec.message()));
}

}  // namespace mathpool::detail
