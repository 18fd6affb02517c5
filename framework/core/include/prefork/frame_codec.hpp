// The frame format of --framed listeners, for clients: a 4-byte unsigned
// big-endian length, then that many bytes. (Servers read it with
// LengthPrefixCodec, codec.hpp, which also does other widths and orders.)
//
// This is the usual cure for TCP's "sticky packets": a stream has no message
// boundaries, so the sender writes each message's length in front of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prefork {

inline constexpr std::size_t frame_header_size = 4;

void write_frame_header(std::uint32_t length, char* out) noexcept;
std::uint32_t read_frame_header(const char* in) noexcept;

// For clients and tests: header + payload in one string.
std::string encode_frame(std::string_view payload);

}  // namespace prefork
