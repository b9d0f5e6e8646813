#include "sweep.hpp"

#include <stdexcept>

namespace mathpool {

using detail::Bytes;

struct SweepAxis::Data {
  enum class Kind { list, range, product, rows } kind = Kind::list;
  std::vector<std::string> keys;
  Bytes encoded_keys;                   // each key as a MessagePack string (list, range, product)
  detail::EncodedValues values;         // list: one value each; rows: a row's values back to back
  detail::IntegerRange range;           // range
  std::vector<detail::ProductFactor> factors;  // product
  std::uint64_t size = 0;
};

const std::vector<std::string>& SweepAxis::keys() const noexcept { return data_->keys; }
std::uint64_t SweepAxis::size() const noexcept { return data_->size; }
bool SweepAxis::from_rows() const noexcept { return data_->kind == Data::Kind::rows; }

void SweepAxis::encode(std::uint64_t index, std::string& out) const {
  const Data& d = *data_;
  using Kind = Data::Kind;
  if (d.kind == Kind::rows) {
    // A row holds its values in key order; keys go in between.
    std::string_view row = d.values.at(index);
    const auto* p = reinterpret_cast<const std::uint8_t*>(row.data());
    std::size_t pos = 0;
    for (const std::string& key : d.keys) {
      detail::append_msgpack_string(out, key);
      const std::size_t n = detail::msgpack_check(p + pos, row.size() - pos, detail::kMaxValueDepth);
      out.append(row.substr(pos, n));
      pos += n;
    }
    return;
  }
  out += d.encoded_keys;
  switch (d.kind) {
    case Kind::list: out += d.values.at(index); break;
    case Kind::range: detail::append_msgpack_int(out, d.range.at(index)); break;
    case Kind::product: {
      detail::append_msgpack_array_header(out, static_cast<std::uint32_t>(d.factors.size()));
      // Mixed-radix digits of `index`, the last position fastest.
      std::uint64_t divisor = 1;
      thread_local std::vector<std::uint64_t> digits;  // no allocation per task
      digits.resize(d.factors.size());
      for (std::size_t i = d.factors.size(); i-- > 0;) {
        digits[i] = index / divisor % d.factors[i].size();
        divisor *= d.factors[i].size();
      }
      for (std::size_t i = 0; i < d.factors.size(); ++i) {
        const detail::ProductFactor& f = d.factors[i];
        if (f.range) detail::append_msgpack_int(out, f.range->at(digits[i]));
        else out += f.list.at(digits[i]);
      }
      break;
    }
    case Kind::rows: break;
  }
}

Value SweepAxis::value(std::uint64_t index, std::size_t key) const {
  Bytes map;
  detail::append_msgpack_map_header(map, static_cast<std::uint32_t>(data_->keys.size()));
  encode(index, map);
  return detail::msgpack_to_value(map).at(data_->keys.at(key));
}

std::uint64_t AnalysisEntry::parameter_sets() const noexcept {
  std::uint64_t n = 1;
  for (const SweepAxis& axis : sweep) n = detail::saturating_product(n, axis.size());
  return n;
}

std::uint64_t AnalysisEntry::task_count() const noexcept {
  return detail::saturating_product(parameter_sets(), std::uint64_t(repeat));
}

void AnalysisEntry::encode_params(std::uint64_t task, std::string& out) const {
  std::size_t keys = params.size();
  for (const SweepAxis& axis : sweep) keys += axis.keys().size();
  detail::append_msgpack_map_header(out, static_cast<std::uint32_t>(keys));
  for (const auto& [key, value] : params.items()) {
    detail::append_msgpack_string(out, key);
    detail::append_msgpack(out, value);
  }
  // Digits of `task` over the axes, the last axis fastest.
  std::uint64_t divisor = 1;
  thread_local std::vector<std::uint64_t> digits;  // no allocation per task
  digits.resize(sweep.size());
  for (std::size_t a = sweep.size(); a-- > 0;) {
    digits[a] = task / divisor % sweep[a].size();
    divisor *= sweep[a].size();
  }
  for (std::size_t a = 0; a < sweep.size(); ++a) sweep[a].encode(digits[a], out);
}

namespace detail {

void EncodedValues::add(const Value& value) {
  append_msgpack(data_, value);
  offsets_.push_back(data_.size());
}

void EncodedValues::add_encoded(std::string_view bytes) {
  data_.append(bytes);
  offsets_.push_back(data_.size());
}

IntegerRange make_range(std::int64_t start, std::int64_t stop, std::int64_t step) {
  if (step == 0) throw std::invalid_argument("the step of a range must not be 0");
  IntegerRange r{start, step, 0};
  // In unsigned arithmetic, so no span of 64-bit integers overflows.
  if (step > 0 && stop > start)
    r.count = (static_cast<std::uint64_t>(stop) - static_cast<std::uint64_t>(start) - 1) /
                  static_cast<std::uint64_t>(step) + 1;
  if (step < 0 && stop < start)
    r.count = (static_cast<std::uint64_t>(start) - static_cast<std::uint64_t>(stop) - 1) /
                  (0 - static_cast<std::uint64_t>(step)) + 1;
  return r;
}

std::uint64_t saturating_product(std::uint64_t a, std::uint64_t b) noexcept {
  if (a == 0 || b == 0) return 0;
  return a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

namespace {
std::shared_ptr<SweepAxis::Data> keyed(std::string key, SweepAxis::Data::Kind kind) {
  auto d = std::make_shared<SweepAxis::Data>();
  d->kind = kind;
  append_msgpack_string(d->encoded_keys, key);
  d->keys.push_back(std::move(key));
  return d;
}
}  // namespace

SweepAxis list_axis(std::string key, const std::vector<Value>& values) {
  auto d = keyed(std::move(key), SweepAxis::Data::Kind::list);
  for (const Value& v : values) d->values.add(v);
  d->size = d->values.size();
  return SweepAxis(std::move(d));
}

SweepAxis range_axis(std::string key, IntegerRange range) {
  auto d = keyed(std::move(key), SweepAxis::Data::Kind::range);
  d->range = range;
  d->size = range.count;
  return SweepAxis(std::move(d));
}

SweepAxis product_axis(std::string key, std::vector<ProductFactor> factors) {
  auto d = keyed(std::move(key), SweepAxis::Data::Kind::product);
  d->size = 1;
  for (const ProductFactor& f : factors) d->size = saturating_product(d->size, f.size());
  d->factors = std::move(factors);
  return SweepAxis(std::move(d));
}

SweepAxis rows_axis(std::vector<std::string> keys, const std::vector<std::vector<Value>>& rows) {
  auto d = std::make_shared<SweepAxis::Data>();
  d->kind = SweepAxis::Data::Kind::rows;
  d->keys = std::move(keys);
  for (const auto& row : rows) {
    Bytes encoded;
    for (const Value& v : row) append_msgpack(encoded, v);
    d->values.add_encoded(encoded);
  }
  d->size = d->values.size();
  return SweepAxis(std::move(d));
}

}  // namespace detail
}  // namespace mathpool
