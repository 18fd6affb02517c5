#include <prefork/codec.hpp>

#include <cstring>
#include <stdexcept>

namespace prefork {

void Codec::write_header(std::size_t, char*) const {}

Decoded RawCodec::decode(std::string_view input, std::size_t) const {
  return Decoded::whole(input, input.size());
}

LengthPrefixCodec::LengthPrefixCodec(unsigned width, Endian endian)
    : width_(width), endian_(endian) {
  if (width != 1 && width != 2 && width != 4 && width != 8)
    throw std::invalid_argument("a length prefix is 1, 2, 4 or 8 bytes, not " +
                                std::to_string(width));
}

std::uint64_t LengthPrefixCodec::read_length(const char* header) const noexcept {
  std::uint64_t length = 0;
  for (unsigned i = 0; i < width_; ++i) {
    unsigned at = endian_ == Endian::big ? i : width_ - 1 - i;
    length = length << 8 | static_cast<unsigned char>(header[at]);
  }
  return length;
}

void LengthPrefixCodec::write_header(std::size_t size, char* header) const {
  if (width_ < 8 && size >> (8 * width_) != 0)
    throw std::length_error("a reply of " + std::to_string(size) + " bytes does not fit a " +
                            std::to_string(width_) + "-byte length prefix");
  for (unsigned i = 0; i < width_; ++i) {
    unsigned at = endian_ == Endian::big ? width_ - 1 - i : i;
    header[at] = static_cast<char>(size >> (8 * i));
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
