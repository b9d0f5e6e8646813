// sweep.hpp: the kinds of sweep axis behind mathpool::SweepAxis. Lists and
// CSV data are held encoded (about the size of their text); ranges and
// products are computed from their index and cost nothing per value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "msgpack_json.hpp"
#include "protocol.hpp"
#include "mathpool/config.hpp"

namespace mathpool::detail {

// MessagePack values back to back. Only every kStride-th start is kept
// (a value is found by skipping at most kStride - 1 others), so the index
// costs half a byte per value at most, not eight.
class EncodedValues {
 public:
  void add(const Value& value);
  void add_encoded(std::string_view one_value);  // exactly one MessagePack value
  // Room for `bytes` of encodings, so a large CSV is not copied as it grows.
  void reserve(std::size_t bytes) { data_.reserve(bytes); }
  std::uint64_t size() const noexcept { return count_; }
  std::string_view at(std::uint64_t i) const;
  // The values back to back, and values read back from them (each checked:
  // throws ProtocolError when `bytes` are not `count` MessagePack values).
  std::string_view bytes() const noexcept { return data_; }
  static EncodedValues from_bytes(std::string_view bytes, std::uint64_t count);

 private:
  static constexpr std::uint64_t kStride = 16;
  Bytes data_;
  std::vector<std::uint64_t> marks_;  // where values 0, kStride, 2 kStride... begin
  std::uint64_t count_ = 0;
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

// `labels` says, for each key, whether it is a label rather than a parameter.
SweepAxis list_axis(std::string key, const std::vector<Value>& values, bool label = false);
SweepAxis list_axis(std::string key, EncodedValues values, bool label = false);
SweepAxis range_axis(std::string key, IntegerRange range, bool label = false);
SweepAxis product_axis(std::string key, std::vector<ProductFactor> factors, bool label = false);
// Rows of a CSV with a header: `keys` are its columns; each row is one
// MessagePack list with a value per key.
SweepAxis rows_axis(std::vector<std::string> keys, std::vector<bool> labels, EncodedValues rows);

// {words: {alphabet, length, prefix, suffix}}: lists of a length from
// `lengths` (one length, or one per value of the axis `length_axis` names),
// each `prefix`, then free positions over `alphabet` (last fastest), then
// `suffix`. Every length must be at least the prefix's and suffix's together.
struct Words {
  ProductFactor alphabet;
  std::vector<Value> prefix, suffix;
  std::vector<std::uint64_t> lengths;
  std::optional<std::size_t> length_axis;
};
SweepAxis words_axis(std::string key, Words words, bool label = false);

class WireWriter;
class WireReader;
// An axis's wire form (wire.hpp), sent to each worker once per run entry.
void write_axis(const SweepAxis& axis, WireWriter& out);
// Throws ProtocolError on bytes that are not an axis's wire form.
SweepAxis read_axis(WireReader& in);
// A words axis's lengths (one, or one per value of its length axis); 1 for other kinds.
std::size_t axis_lengths(const SweepAxis& axis) noexcept;

// Saturating product of task counts (UINT64_MAX means "too many to count").
std::uint64_t saturating_product(std::uint64_t a, std::uint64_t b) noexcept;

}  // namespace mathpool::detail
