#include "sweep.hpp"

#include <stdexcept>

#include "wire.hpp"

namespace mathpool {

using detail::Bytes;

struct SweepAxis::Data {
  enum class Kind { list, range, product, rows, words } kind = Kind::list;
  std::vector<std::string> keys;
  std::vector<bool> label;              // per key
  Bytes encoded_key;                    // the key as a MessagePack string (all but rows)
  detail::EncodedValues values;         // list: one value each; rows: one list per row
  detail::IntegerRange range;           // range
  std::vector<detail::ProductFactor> factors;  // product; words: the alphabet alone
  // words
  Bytes prefix, suffix;                 // encoded back to back
  std::uint64_t fixed = 0;              // prefix and suffix length together
  std::vector<std::uint64_t> lengths;   // one, or one per value of the length axis
  std::vector<std::uint64_t> sizes;     // words per length
  std::optional<std::size_t> length_axis;
  std::uint64_t size = 0;
};

namespace {

using Kind = SweepAxis::Data::Kind;

// Digits of `index` over `factors` in mixed radix, the last position fastest.
void append_digits(const std::vector<detail::ProductFactor>& factors, std::uint64_t index, std::size_t positions,
                   Bytes& out) {
  const detail::ProductFactor& only = factors.front();  // words: one alphabet for every position
  thread_local std::vector<std::uint64_t> digits;  // no allocation per task
  digits.resize(positions);
  std::uint64_t divisor = 1;
  for (std::size_t i = positions; i-- > 0;) {
    const detail::ProductFactor& f = factors.size() == 1 ? only : factors[i];
    digits[i] = index / divisor % f.size();
    divisor *= f.size();
  }
  for (std::size_t i = 0; i < positions; ++i) {
    const detail::ProductFactor& f = factors.size() == 1 ? only : factors[i];
    if (f.range) detail::append_msgpack_int(out, f.range->at(digits[i]));
    else out += f.list.at(digits[i]);
  }
}

// The bytes of a MessagePack array header at the start of `bytes`.
std::size_t array_header_size(std::string_view bytes) {
  const auto first = static_cast<std::uint8_t>(bytes[0]);
  return first == 0xdc ? 3 : first == 0xdd ? 5 : 1;
}

}  // namespace

const std::vector<std::string>& SweepAxis::keys() const noexcept { return data_->keys; }
bool SweepAxis::is_label(std::size_t key) const noexcept { return key < data_->label.size() && data_->label[key]; }
std::uint64_t SweepAxis::size() const noexcept { return data_->size; }
bool SweepAxis::from_rows() const noexcept { return data_->kind == Kind::rows; }
std::optional<std::size_t> SweepAxis::length_axis() const noexcept { return data_->length_axis; }
std::uint64_t SweepAxis::size_at(std::uint64_t length_index) const noexcept {
  if (data_->kind != Kind::words) return data_->size;
  return data_->sizes.at(data_->length_axis ? length_index : 0);
}

void SweepAxis::encode(std::uint64_t index, std::string& out) const { encode(index, 0, out, out); }

void SweepAxis::encode(std::uint64_t index, std::uint64_t length_index, std::string& params,
                       std::string& labels) const {
  const Data& d = *data_;
  if (d.kind == Kind::rows) {
    // A row is a list with a value per key; the keys go in between.
    const std::string_view row = d.values.at(index);
    const auto* p = reinterpret_cast<const std::uint8_t*>(row.data());
    std::size_t pos = array_header_size(row);
    for (std::size_t k = 0; k < d.keys.size(); ++k) {
      std::string& out = d.label[k] ? labels : params;
      detail::append_msgpack_string(out, d.keys[k]);
      const std::size_t n = detail::msgpack_check(p + pos, row.size() - pos, detail::kMaxValueDepth);
      out.append(row.substr(pos, n));
      pos += n;
    }
    return;
  }
  std::string& out = d.label[0] ? labels : params;
  out += d.encoded_key;
  switch (d.kind) {
    case Kind::list: out += d.values.at(index); break;
    case Kind::range: detail::append_msgpack_int(out, d.range.at(index)); break;
    case Kind::product:
      detail::append_msgpack_array_header(out, static_cast<std::uint32_t>(d.factors.size()));
      append_digits(d.factors, index, d.factors.size(), out);
      break;
    case Kind::words: {
      const std::uint64_t length = d.lengths.at(d.length_axis ? length_index : 0);
      detail::append_msgpack_array_header(out, static_cast<std::uint32_t>(length));
      out += d.prefix;
      append_digits(d.factors, index, std::size_t(length - d.fixed), out);
      out += d.suffix;
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

namespace detail {

void EncodedValues::add(const Value& value) {
  Bytes encoded;
  append_msgpack(encoded, value);
  add_encoded(encoded);
}

void EncodedValues::add_encoded(std::string_view one_value) {
  if (count_ % kStride == 0) marks_.push_back(data_.size());
  data_.append(one_value);
  ++count_;
}

std::string_view EncodedValues::at(std::uint64_t i) const {
  const auto* p = reinterpret_cast<const std::uint8_t*>(data_.data());
  std::size_t pos = marks_.at(i / kStride);
  for (std::uint64_t skip = i % kStride; skip > 0; --skip)
    pos += msgpack_check(p + pos, data_.size() - pos, kMaxValueDepth);
  return std::string_view(data_).substr(pos, msgpack_check(p + pos, data_.size() - pos, kMaxValueDepth));
}

EncodedValues EncodedValues::from_bytes(std::string_view bytes, std::uint64_t count) {
  EncodedValues v;
  v.data_.assign(bytes);
  const auto* p = reinterpret_cast<const std::uint8_t*>(v.data_.data());
  std::size_t pos = 0;
  for (; v.count_ < count; ++v.count_) {
    if (v.count_ % kStride == 0) v.marks_.push_back(pos);
    if (pos == v.data_.size()) throw ProtocolError("run entry: fewer values than counted");
    pos += msgpack_check(p + pos, v.data_.size() - pos, kMaxValueDepth);
  }
  if (pos != v.data_.size()) throw ProtocolError("run entry: more values than counted");
  return v;
}

namespace {

void write_values(const EncodedValues& v, WireWriter& out) {
  out.u64(v.size());
  out.bytes(v.bytes());
}
EncodedValues read_values(WireReader& in) {
  const std::uint64_t count = in.u64();
  return EncodedValues::from_bytes(in.bytes(), count);
}
void write_u64s(const std::vector<std::uint64_t>& v, WireWriter& out) {
  out.u64(v.size());
  for (std::uint64_t x : v) out.u64(x);
}
std::vector<std::uint64_t> read_u64s(WireReader& in) {
  std::vector<std::uint64_t> v(in.count(8));
  for (auto& x : v) x = in.u64();
  return v;
}
void write_range(const IntegerRange& r, WireWriter& out) {
  out.u64(std::uint64_t(r.start));
  out.u64(std::uint64_t(r.step));
  out.u64(r.count);
}
IntegerRange read_range(WireReader& in) {
  IntegerRange r;
  r.start = std::int64_t(in.u64());
  r.step = std::int64_t(in.u64());
  r.count = in.u64();
  return r;
}

}  // namespace

void write_axis(const SweepAxis& axis, WireWriter& out) {
  const SweepAxis::Data& d = *axis.data();
  out.u64(std::uint64_t(d.kind));
  out.u64(d.keys.size());
  for (std::size_t k = 0; k < d.keys.size(); ++k) {
    out.bytes(d.keys[k]);
    out.u64(k < d.label.size() && d.label[k]);
  }
  out.bytes(d.encoded_key);
  write_values(d.values, out);
  write_range(d.range, out);
  out.u64(d.factors.size());
  for (const ProductFactor& f : d.factors) {
    out.u64(f.range.has_value());
    if (f.range) write_range(*f.range, out);
    else write_values(f.list, out);
  }
  out.bytes(d.prefix);
  out.bytes(d.suffix);
  out.u64(d.fixed);
  write_u64s(d.lengths, out);
  write_u64s(d.sizes, out);
  out.u64(d.length_axis ? std::uint64_t(*d.length_axis) : UINT64_MAX);
  out.u64(d.size);
}

std::size_t axis_lengths(const SweepAxis& axis) noexcept {
  return axis.data()->kind == SweepAxis::Data::Kind::words ? axis.data()->lengths.size() : 1;
}

SweepAxis read_axis(WireReader& in) {
  auto d = std::make_shared<SweepAxis::Data>();
  const std::uint64_t kind = in.u64();
  if (kind > std::uint64_t(SweepAxis::Data::Kind::words)) throw ProtocolError("run entry: unknown kind of axis");
  d->kind = SweepAxis::Data::Kind(kind);
  for (std::uint64_t n = in.count(16); n > 0; --n) {
    d->keys.emplace_back(in.bytes());
    d->label.push_back(in.u64() != 0);
  }
  d->encoded_key.assign(in.bytes());
  d->values = read_values(in);
  d->range = read_range(in);
  for (std::uint64_t n = in.count(8); n > 0; --n) {
    ProductFactor f;
    if (in.u64()) f.range = read_range(in);
    else f.list = read_values(in);
    d->factors.push_back(std::move(f));
  }
  d->prefix.assign(in.bytes());
  d->suffix.assign(in.bytes());
  d->fixed = in.u64();
  d->lengths = read_u64s(in);
  d->sizes = read_u64s(in);
  const std::uint64_t by = in.u64();
  if (by != UINT64_MAX) d->length_axis = std::size_t(by);
  d->size = in.u64();
  // What encode() relies on: a key per value, a factor to draw from, the
  // lengths and sizes a words axis indexes.
  const bool words = d->kind == SweepAxis::Data::Kind::words, product = d->kind == SweepAxis::Data::Kind::product;
  if (d->keys.empty() || (d->kind != SweepAxis::Data::Kind::rows && d->keys.size() != 1) ||
      ((words || product) && d->factors.empty()) || (words && (d->lengths.empty() || d->lengths.size() != d->sizes.size())))
    throw ProtocolError("run entry: an axis that does not hold together");
  // Sizes as the axis's own parts give them (what indexes them relies on it).
  std::uint64_t size = 0;
  switch (d->kind) {
    case SweepAxis::Data::Kind::list:
    case SweepAxis::Data::Kind::rows: size = d->values.size(); break;
    case SweepAxis::Data::Kind::range: size = d->range.count; break;
    case SweepAxis::Data::Kind::product:
      size = 1;
      for (const ProductFactor& f : d->factors) size = saturating_product(size, f.size());
      break;
    case SweepAxis::Data::Kind::words:
      if (d->factors.size() != 1) throw ProtocolError("run entry: a words axis without one alphabet");
      for (std::size_t i = 0; i < d->lengths.size(); ++i) {
        constexpr std::uint64_t kMaxLength = 65536;  // as configs allow
        if (d->lengths[i] < d->fixed || d->lengths[i] > kMaxLength)
          throw ProtocolError("run entry: a words length out of range");
        std::uint64_t n = 1;
        for (std::uint64_t k = d->fixed; k < d->lengths[i] && n != UINT64_MAX; ++k)
          n = saturating_product(n, d->factors[0].size());
        if (n != d->sizes[i]) throw ProtocolError("run entry: a words axis of the wrong size");
      }
      size = d->sizes[0];
      break;
  }
  if (size != d->size || (d->kind == SweepAxis::Data::Kind::rows && d->label.size() != d->keys.size()))
    throw ProtocolError("run entry: an axis of the wrong size");
  return SweepAxis(std::move(d));
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
std::shared_ptr<SweepAxis::Data> keyed(std::string key, Kind kind, bool label) {
  auto d = std::make_shared<SweepAxis::Data>();
  d->kind = kind;
  append_msgpack_string(d->encoded_key, key);
  d->keys.push_back(std::move(key));
  d->label.push_back(label);
  return d;
}
}  // namespace

SweepAxis list_axis(std::string key, const std::vector<Value>& values, bool label) {
  EncodedValues encoded;
  for (const Value& v : values) encoded.add(v);
  return list_axis(std::move(key), std::move(encoded), label);
}

SweepAxis list_axis(std::string key, EncodedValues values, bool label) {
  auto d = keyed(std::move(key), Kind::list, label);
  d->values = std::move(values);
  d->size = d->values.size();
  return SweepAxis(std::move(d));
}

SweepAxis range_axis(std::string key, IntegerRange range, bool label) {
  auto d = keyed(std::move(key), Kind::range, label);
  d->range = range;
  d->size = range.count;
  return SweepAxis(std::move(d));
}

SweepAxis product_axis(std::string key, std::vector<ProductFactor> factors, bool label) {
  auto d = keyed(std::move(key), Kind::product, label);
  d->size = 1;
  for (const ProductFactor& f : factors) d->size = saturating_product(d->size, f.size());
  d->factors = std::move(factors);
  return SweepAxis(std::move(d));
}

SweepAxis rows_axis(std::vector<std::string> keys, std::vector<bool> labels, EncodedValues rows) {
  auto d = std::make_shared<SweepAxis::Data>();
  d->kind = Kind::rows;
  d->keys = std::move(keys);
  d->label = std::move(labels);
  d->label.resize(d->keys.size());
  d->values = std::move(rows);
  d->size = d->values.size();
  return SweepAxis(std::move(d));
}

SweepAxis words_axis(std::string key, Words words, bool label) {
  auto d = keyed(std::move(key), Kind::words, label);
  for (const Value& v : words.prefix) append_msgpack(d->prefix, v);
  for (const Value& v : words.suffix) append_msgpack(d->suffix, v);
  d->fixed = words.prefix.size() + words.suffix.size();
  d->lengths = std::move(words.lengths);
  d->length_axis = words.length_axis;
  for (std::uint64_t length : d->lengths) {
    if (length < d->fixed) throw std::invalid_argument("a length is shorter than the prefix and suffix");
    std::uint64_t n = 1;
    for (std::uint64_t i = d->fixed; i < length && n != UINT64_MAX; ++i) n = saturating_product(n, words.alphabet.size());
    d->sizes.push_back(n);
  }
  d->size = d->sizes.at(0);
  d->factors.push_back(std::move(words.alphabet));
  return SweepAxis(std::move(d));
}

}  // namespace detail
}  // namespace mathpool
