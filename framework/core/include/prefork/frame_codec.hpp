// The frame format: a 4-byte unsigned big-endian length, then that many bytes.
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

// Finds whole frames in bytes received so far. Stateless: the caller keeps
// the unconsumed tail and calls again when more bytes arrive.
class FrameDecoder {
 public:
  enum class Status { frame, need_more, oversized };

  struct Result {
    Status status;
    std::string_view payload;  // valid for Status::frame
    std::size_t consumed;      // bytes to drop from the front of the input
  };

  explicit FrameDecoder(std::size_t max_frame) noexcept : max_frame_(max_frame) {}

  // The first frame in `input`. oversized as soon as a header announces more
  // than max_frame bytes, before any of the payload arrives.
  Result next(std::string_view input) const noexcept;

  std::size_t max_frame() const noexcept { return max_frame_; }

 private:
  std::size_t max_frame_;
};

}  // namespace prefork
