// An entry's parameter sets: the product of its axes, walked from a task's
// index alone. Most sweeps are a plain mixed-radix number over the axes'
// sizes. A `words` axis whose length is an earlier axis's value changes its
// size with that axis (the "length axis"): then the tasks below each value
// of the length axis are counted by summing over its values (small axes).
#include <algorithm>

#include "sweep.hpp"

namespace mathpool {
namespace {

using detail::saturating_product;

// Whether some later axis takes its length from axis `a`.
bool is_length_axis(const std::vector<SweepAxis>& axes, std::size_t a) {
  for (std::size_t j = a + 1; j < axes.size(); ++j)
    if (axes[j].length_axis() == a) return true;
  return false;
}

struct Walker {
  const std::vector<SweepAxis>& axes;
  std::vector<std::uint64_t>& digits;  // the value index of each axis decided so far

  std::uint64_t size_of(std::size_t a) const {
    const auto by = axes[a].length_axis();
    return by ? axes[a].size_at(digits[*by]) : axes[a].size();
  }

  // The next length axis at or after `k`, or axes.size().
  std::size_t next_length_axis(std::size_t k) const {
    while (k < axes.size() && !is_length_axis(axes, k)) ++k;
    return k;
  }

  // Combinations of axes k.. given the digits of axes before k.
  std::uint64_t count_from(std::size_t k) const {
    const std::size_t i = next_length_axis(k);
    std::uint64_t n = 1;
    for (std::size_t a = k; a < i; ++a) n = saturating_product(n, size_of(a));
    if (i == axes.size() || n == 0) return n;
    std::uint64_t below = 0;
    for (std::uint64_t v = 0; v < axes[i].size(); ++v) {
      digits[i] = v;
      const std::uint64_t c = count_from(i + 1);
      below = c > UINT64_MAX - below ? UINT64_MAX : below + c;
    }
    return saturating_product(n, below);
  }

  // Sets the digits of axes k.. for combination `index` of them.
  void decode(std::uint64_t index, std::size_t k) const {
    const std::size_t i = next_length_axis(k);
    std::uint64_t inner = i == axes.size() ? 1 : count_from(i);
    std::uint64_t rest = index % inner, high = index / inner;
    for (std::size_t a = i; a-- > k;) {
      const std::uint64_t size = size_of(a);
      digits[a] = high % size;
      high /= size;
    }
    if (i == axes.size()) return;
    for (std::uint64_t v = 0; v < axes[i].size(); ++v) {
      digits[i] = v;
      const std::uint64_t c = count_from(i + 1);
      if (rest < c) return decode(rest, i + 1);
      rest -= c;
    }
  }
};

}  // namespace

int AnalysisEntry::line_of(const std::string& key) const {
  const auto at = lines.find(key);
  return at == lines.end() ? line : at->second;
}

std::uint64_t AnalysisEntry::parameter_sets() const noexcept {
  bool dependent = false;
  std::uint64_t n = 1;
  for (const SweepAxis& axis : sweep) {
    n = saturating_product(n, axis.size());
    dependent = dependent || axis.length_axis();
  }
  if (!dependent) return n;
  thread_local std::vector<std::uint64_t> digits;
  digits.assign(sweep.size(), 0);
  return Walker{sweep, digits}.count_from(0);
}

std::uint64_t AnalysisEntry::task_count() const noexcept {
  return saturating_product(parameter_sets(), std::uint64_t(repeat));
}

void AnalysisEntry::encode_params(std::uint64_t task, std::string& out) const {
  thread_local detail::Bytes labels;
  labels.clear();
  encode_task(task, out, labels);
}

void AnalysisEntry::encode_task(std::uint64_t task, std::string& out, std::string& label_map) const {
  std::size_t keys = params.size(), label_keys = 0;
  for (const SweepAxis& axis : sweep)
    for (std::size_t k = 0; k < axis.keys().size(); ++k) ++(axis.is_label(k) ? label_keys : keys);
  detail::append_msgpack_map_header(out, static_cast<std::uint32_t>(keys));
  if (label_keys) detail::append_msgpack_map_header(label_map, static_cast<std::uint32_t>(label_keys));
  for (const auto& [key, value] : params.items()) {
    detail::append_msgpack_string(out, key);
    detail::append_msgpack(out, value);
  }
  thread_local std::vector<std::uint64_t> digits;  // no allocation per task
  digits.assign(sweep.size(), 0);
  const bool dependent =
      std::any_of(sweep.begin(), sweep.end(), [](const SweepAxis& a) { return a.length_axis().has_value(); });
  if (dependent) {
    Walker{sweep, digits}.decode(task, 0);
  } else {
    // Digits of `task` over the axes, the last axis fastest.
    std::uint64_t divisor = 1;
    for (std::size_t a = sweep.size(); a-- > 0;) {
      digits[a] = task / divisor % sweep[a].size();
      divisor *= sweep[a].size();
    }
  }
  for (std::size_t a = 0; a < sweep.size(); ++a) {
    const auto by = sweep[a].length_axis();
    sweep[a].encode(digits[a], by ? digits[*by] : 0, out, label_map);
  }
}

}  // namespace mathpool
