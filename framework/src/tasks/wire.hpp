// wire.hpp: a plain binary form for what the host sends a worker once (a run
// entry: its sweep with its data): little-endian u64s and length-prefixed
// bytes. Reading past the end, or a length past what is there, throws
// ProtocolError. Not thread-safe (one writer or reader per object).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "msgpack_json.hpp"

namespace mathpool::detail {

class WireWriter {
 public:
  explicit WireWriter(std::string& out) : out_(out) {}
  void u64(std::uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = char(v >> (8 * i));
    out_.append(b, 8);
  }
  void bytes(std::string_view v) {
    u64(v.size());
    out_.append(v);
  }

 private:
  std::string& out_;
};

class WireReader {
 public:
  explicit WireReader(std::string_view in) : in_(in) {}
  std::uint64_t u64() {
    need(8);
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return v;
  }
  std::string_view bytes() {
    const std::uint64_t n = u64();
    need(n);
    const std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  // A count of items each at least `min_bytes` long: refused when the rest cannot hold them.
  std::uint64_t count(std::size_t min_bytes = 1) {
    const std::uint64_t n = u64();
    if (min_bytes && n > (in_.size() - pos_) / min_bytes) throw ProtocolError("run entry: a count past its bytes");
    return n;
  }
  bool done() const noexcept { return pos_ == in_.size(); }

 private:
  void need(std::uint64_t n) const {
    if (n > in_.size() - pos_) throw ProtocolError("run entry: cut short");
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace mathpool::detail
