// A whole decimal number and nothing else: the one rule for every number
// prefork reads from text (flags, the environment, pid files, ids).
#pragma once

#include <charconv>
#include <concepts>
#include <optional>
#include <string_view>

namespace prefork {

// `text` as a T when it is all digits (a leading '-' for signed T) and fits;
// nullopt when it is empty, has anything else in it, or overflows.
template <std::integral T>
std::optional<T> parse_decimal(std::string_view text) noexcept {
  T value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace prefork
