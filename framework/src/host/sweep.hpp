// sweep.hpp: the kinds of sweep axis behind mathpool::SweepAxis. Lists and
// CSV data are held encoded (about the size of their text); ranges and
// products are computed from their index and cost nothing per value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../common/msgpack_json.hpp"
#include "../common/protocol.hpp"
#include "mathpool/config.hpp"

namespace mathpool::detail {

// MessagePack values back to back, with where each begins.
class EncodedValues {
 public:
  void add(const Value& value);
  void add_encoded(std::string_view bytes);
  std::uint64_t size() const noexcept { return offsets_.size() - 1; }
  std::string_view at(std::uint64_t i) const noexcept {
    return std::string_view(data_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }

 private:
  Bytes data_;
  std::vector<std::uint64_t> offsets_{0};
};

// Python's range(start, stop, step): `count` integers from `start`.
struct IntegerRange {
  std::int64_t start = 0;
  std::int64_t step = 1;
  std::uint64_t count = 0;
  std::int64_t at(std::uint64_t i) const noexcept {
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(start) + i * static_cast<std::uint64_t>(step));
  }
};
// Throws std::invalid_argument for step 0.
IntegerRange make_range(std::int64_t start, std::int64_t stop, std::int64_t step);

// One position of a product: a list or a range.
struct ProductFactor {
  std::optional<IntegerRange> range;
  EncodedValues list;
  std::uint64_t size() const noexcept { return range ? range->count : list.size(); }
};

SweepAxis list_axis(std::string key, const std::vector<Value>& values);
SweepAxis range_axis(std::string key, IntegerRange range);
SweepAxis product_axis(std::string key, std::vector<ProductFactor> factors);
// Rows of a CSV with a header: `keys` are its columns, each row one value per key.
SweepAxis rows_axis(std::vector<std::string> keys, const std::vector<std::vector<Value>>& rows);

// Saturating product of task counts (UINT64_MAX means "too many to count").
std::uint64_t saturating_product(std::uint64_t a, std::uint64_t b) noexcept;

}  // namespace mathpool::detail
