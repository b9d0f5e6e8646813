// A long-lived host program: requests come now and then; each takes a pool
// from the process-wide registry for as long as it runs. Between bursts the
// pool parks (its workers exit, its zygote template stays), so the program
// costs no CPU while it waits, and the next request gets the pool back at once.
//
//   long_lived_example      (uses the plugins installed with the library)
//
// Exit status 0 when every answer is right and the pool was built once,
// parked while idle and reused.
#include <chrono>
#include <iostream>
#include <thread>

#include <mathpool/registry.hpp>

namespace {

// One request: how many of the 2^(degree-1) LFSRs of this degree over GF(2)
// with c0 = 1 are primitive.
long count_primitive(mathpool::PoolRegistry& registry, const mathpool::PoolOptions& options, int degree) {
  std::vector<mathpool::Value> registers;
  for (long bits = 0; bits < (1L << (degree - 1)); ++bits) {
    std::vector<int> coefficients{1};
    for (int i = 0; i < degree - 1; ++i) coefficients.push_back(int((bits >> i) & 1));
    registers.push_back({{"field", 2}, {"coefficients", coefficients}});
  }
  mathpool::PoolLease lease = registry.acquire(options);  // warm, or parked and restarted in the background
  long primitive = 0;
  for (const mathpool::TaskResult& r : lease->map("lfsr.polynomial", registers)) {
    if (!r.ok()) throw std::runtime_error(std::string(r.status()) + ": " + r.error->message);
    primitive += r.result.at("is_primitive").get<bool>();
  }
  return primitive;
}  // the lease goes back here: the pool's idle clock starts

const char* state_name(mathpool::RegisteredPoolState state) {
  switch (state) {
    case mathpool::RegisteredPoolState::starting: return "starting";
    case mathpool::RegisteredPoolState::leased: return "leased";
    case mathpool::RegisteredPoolState::idle: return "idle";
    case mathpool::RegisteredPoolState::parked: return "parked";
  }
  return "?";
}

void report(const mathpool::PoolRegistry& registry) {
  for (const auto& pool : registry.stats().pools) {
    int running = 0;
    for (const auto& w : pool.pool.workers) running += w.pid > 0;
    const auto setup = pool.pool.analyses.find("lfsr.polynomial");
    std::cout << "  pool " << state_name(pool.state) << ": " << running << " workers running, template pid "
              << pool.pool.template_pid << ", lfsr.polynomial set up "
              << (setup == pool.pool.analyses.end() ? 0 : setup->second.setups) << " time(s)\n";
  }
}

}  // namespace

int main() {
  try {
    mathpool::PoolRegistry& registry = mathpool::default_registry();
    registry.set_idle_timeout(std::chrono::milliseconds(300));  // default: 5 minutes

    mathpool::PoolOptions options;
    options.workers = 2;
    options.preload = std::vector<std::string>{"lfsr.polynomial"};  // set up only what this program serves

    // Primitive polynomials of degree n over GF(2): phi(2^n - 1) / n (OEIS A011260).
    const long expected[] = {0, 0, 0, 2, 2, 6, 6, 18, 16};
    bool right = true;
    for (int burst = 0; burst < 2; ++burst) {
      for (int degree : {4, 6, 8}) {
        const long found = count_primitive(registry, options, degree);
        std::cout << "degree " << degree << ": " << found << " primitive\n";
        right = right && found == expected[degree];
      }
      report(registry);
      std::cout << "waiting (idle)...\n";
      std::this_thread::sleep_for(std::chrono::seconds(1));  // past the idle timeout: the pool parks
      report(registry);
    }
    const mathpool::RegistryStats stats = registry.stats();
    std::cout << "pools built " << stats.created << ", reused " << stats.reused << ", parked " << stats.parked << '\n';
    return right && stats.created == 1 && stats.reused == 5 && stats.parked == 2 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "long_lived_example: " << e.what() << '\n';
    return 2;
  }
}
