// Big integers in Values (mathpool/value.hpp).
#include <charconv>
#include <stdexcept>

#include "mathpool/value.hpp"

namespace mathpool {

Value big_integer(std::string_view decimal) {
  std::string_view digits = decimal;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
    throw std::invalid_argument("big_integer: '" + std::string(decimal.substr(0, 40)) +
                                (decimal.size() > 40 ? "...'" : "'") + " is not a decimal integer");
  const auto first = digits.find_first_not_of('0');
  digits = first == std::string_view::npos ? std::string_view("0") : digits.substr(first);
  if (digits == "0") return Value(std::int64_t{0});
  const std::string text = (negative ? "-" : "") + std::string(digits);
  std::int64_t small = 0;
  if (auto r = std::from_chars(text.data(), text.data() + text.size(), small);
      r.ec == std::errc() && r.ptr == text.data() + text.size())
    return Value(small);
  std::uint64_t big = 0;
  if (!negative) {
    if (auto r = std::from_chars(text.data(), text.data() + text.size(), big);
        r.ec == std::errc() && r.ptr == text.data() + text.size())
      return Value(big);
  }
  return Value::binary(Value::binary_t::container_type(text.begin(), text.end()), kBigIntegerSubtype);
}

bool is_big_integer(const Value& value) noexcept {
  return value.is_binary() && value.get_binary().has_subtype() &&
         value.get_binary().subtype() == kBigIntegerSubtype;
}

std::string big_integer_text(const Value& value) {
  if (is_big_integer(value)) {
    const auto& bytes = value.get_binary();
    return std::string(bytes.begin(), bytes.end());
  }
  if (value.is_number_unsigned()) return std::to_string(value.get<std::uint64_t>());
  if (value.is_number_integer()) return std::to_string(value.get<std::int64_t>());
  throw std::invalid_argument("big_integer_text: not an integer: " + value.dump().substr(0, 60));
}

}  // namespace mathpool
