#include <prefork/codec.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

namespace prefork {

namespace {

// std::byteswap is C++23.
constexpr std::uint8_t byteswap(std::uint8_t v) noexcept { return v; }
constexpr std::uint16_t byteswap(std::uint16_t v) noexcept { return __builtin_bswap16(v); }
constexpr std::uint32_t byteswap(std::uint32_t v) noexcept { return __builtin_bswap32(v); }
constexpr std::uint64_t byteswap(std::uint64_t v) noexcept { return __builtin_bswap64(v); }

}  // namespace

void Codec::write_header(std::size_t, char*) const {}

// As recv(limit) would: a read longer than the limit is several messages
// (the fuzz target found the limit ignored).
Decoded RawCodec::decode(std::string_view input, std::size_t limit) const {
  if (limit == 0) return Decoded::too_large();
  const std::size_t size = std::min(input.size(), limit);
  return Decoded::whole(input.substr(0, size), size);
}

LengthPrefixCodec::LengthPrefixCodec(unsigned width, Endian endian)
    : width_(width), endian_(endian) {
  if (width != 1 && width != 2 && width != 4 && width != 8)
    throw std::invalid_argument("a length prefix is 1, 2, 4 or 8 bytes, not " +
                                std::to_string(width));
}

namespace {

// One load or store and a byte swap per header (the framed hot path), not a
// loop over its bytes.
template <typename Word>
Word from_wire(const char* at, bool big) noexcept {
  Word word;
  std::memcpy(&word, at, sizeof word);
  if constexpr (sizeof(Word) == 1) return word;
  if (big == (std::endian::native == std::endian::little)) word = byteswap(word);
  return word;
}

template <typename Word>
void to_wire(Word word, char* at, bool big) noexcept {
  if constexpr (sizeof(Word) > 1)
    if (big == (std::endian::native == std::endian::little)) word = byteswap(word);
  std::memcpy(at, &word, sizeof word);
}

}  // namespace

std::uint64_t LengthPrefixCodec::read_length(const char* header) const noexcept {
  const bool big = endian_ == Endian::big;
  switch (width_) {
    case 1:
      return from_wire<std::uint8_t>(header, big);
    case 2:
      return from_wire<std::uint16_t>(header, big);
    case 4:
      return from_wire<std::uint32_t>(header, big);
    default:
      return from_wire<std::uint64_t>(header, big);
  }
}

void LengthPrefixCodec::write_header(std::size_t size, char* header) const {
  if (width_ < 8 && size >> (8 * width_) != 0)
    throw std::length_error("a reply of " + std::to_string(size) + " bytes does not fit a " +
                            std::to_string(width_) + "-byte length prefix");
  const bool big = endian_ == Endian::big;
  switch (width_) {
    case 1:
      return to_wire(static_cast<std::uint8_t>(size), header, big);
    case 2:
      return to_wire(static_cast<std::uint16_t>(size), header, big);
    case 4:
      return to_wire(static_cast<std::uint32_t>(size), header, big);
    default:
      return to_wire(static_cast<std::uint64_t>(size), header, big);
  }
}

Decoded LengthPrefixCodec::decode(std::string_view input, std::size_t limit) const {
  if (input.size() < width_) return Decoded::need_more();
  const std::uint64_t length = read_length(input.data());
  // Refused from the header alone, before any of the payload is buffered.
  if (length > limit) return Decoded::too_large();
  if (input.size() - width_ < length) return Decoded::need_more();
  return Decoded::whole(input.substr(width_, length), width_ + length);
}

LineCodec::LineCodec(std::string ending) : ending_(std::move(ending)) {}

Decoded LineCodec::decode(std::string_view input, std::size_t limit) const {
  // No need to look past where the longest allowed line would end.
  const std::size_t window = limit < input.size() - 1 ? limit + 2 : input.size();
  const void* found = std::memchr(input.data(), '\n', window);
  if (found == nullptr)
    return input.size() - 1 > limit ? Decoded::too_large() : Decoded::need_more();
  const std::size_t end = static_cast<const char*>(found) - input.data();
  std::size_t length = end;
  if (length > 0 && input[length - 1] == '\r') --length;
  if (length > limit) return Decoded::too_large();
  return Decoded::whole(input.substr(0, length), end + 1);
}

}  // namespace prefork
