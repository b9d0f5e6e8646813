// msgpack_json.hpp: MessagePack bytes checked, decoded and written as record
// JSON without building a value tree; the one home of the record's JSON rules:
// integers beyond signed 64 bits (big integers too: MessagePack ext type
// kBigIntegerSubtype, mathpool/value.hpp) become decimal strings, NaN and infinities
// become "nan", "inf" and "-inf", invalid UTF-8 is replaced by U+FFFD.
//
// Stateless free functions; thread-safe.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "mathpool/value.hpp"

namespace mathpool::detail {

// Thrown when bytes are not what the protocol promises.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Byte buffers are std::string: cheap to move, small ones never allocate.
using Bytes = std::string;

// The size of the one MessagePack value at the start of [data, data+size);
// throws ProtocolError when it is truncated, malformed, has non-string map
// keys or nests deeper than `max_depth`. Never recurses past max_depth.
std::size_t msgpack_check(const std::uint8_t* data, std::size_t size, int max_depth);

// Checks, then decodes one MessagePack value that fills `bytes` exactly.
Value msgpack_to_value(std::string_view bytes);
// Appends the MessagePack encoding of `value`.
void append_msgpack(Bytes& out, const Value& value);

// Appends one checked MessagePack value as record JSON.
void append_msgpack_json(std::string& out, std::string_view msgpack);
// Appends `value` as record JSON (same rules).
void append_value_json(std::string& out, const Value& value);
// Appends a JSON string literal.
void append_json_string(std::string& out, std::string_view text);
// Appends a float: the shortest digits that read back as it, laid out as
// nlohmann's Value::dump() lays out its digits ("0.5", "12.0", "1.5e-05");
// NaN and infinities as the strings "nan", "inf", "-inf". (dump()'s grisu2
// gives longer digits for about 1 double in 200: records never use it.)
void append_json_float(std::string& out, double value);
// The same bytes for a duration in seconds, quicker when it is a whole
// number of nanoseconds divided by 1e9 (what the workers measure): the
// digits are then the nanoseconds', with no float-to-text search.
void append_json_seconds(std::string& out, double seconds);

// MessagePack encoders for the pieces the task generator assembles.
void append_msgpack_int(Bytes& out, std::int64_t value);
void append_msgpack_string(Bytes& out, std::string_view text);
void append_msgpack_array_header(Bytes& out, std::uint32_t count);
void append_msgpack_map_header(Bytes& out, std::uint32_t count);

}  // namespace mathpool::detail
