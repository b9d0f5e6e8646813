// json_check.hpp: whether bytes are one well-formed JSON object (RFC 8259,
// UTF-8 checked, nesting at most kMaxValueDepth + 3: a record's values may
// nest as deep as the protocol allows, inside the record and a binary value's
// {"bytes": ...}), with no whitespace outside strings, as a record line is written. The host checks each record a worker
// writes with it before the record reaches the output.
//
// Written here rather than taken from nlohmann::json::accept, which took
// 1.9 us for a 150-byte record (a whole record costs the host ~1 us today);
// this takes about 1 ns a byte (94 ns for an echo record's 84-byte tail, 435 ns
// for a degree-16 lfsr.cycles record's 448 bytes). Pure; thread-safe.
#pragma once

#include <string_view>

namespace mathpool::detail {

bool is_json_object(std::string_view bytes) noexcept;
// Whether `bytes` complete an object whose '{', and members each with its
// ',', came before (checked already): `"key":value` members separated by ','
// and the closing '}'. An object is "{" + members.
bool is_json_members(std::string_view bytes) noexcept;
// The same, and every top-level member is one a record has after its key
// (params, labels, status, result, error, worker, seconds, node), spelled as
// the writer spells it: a worker cannot name another task with a second "task".
bool is_record_tail(std::string_view bytes) noexcept;

}  // namespace mathpool::detail
