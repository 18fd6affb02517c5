#include <prefork/frame_codec.hpp>

namespace prefork {

void write_frame_header(std::uint32_t length, char* out) noexcept {
  out[0] = static_cast<char>(length >> 24);
  out[1] = static_cast<char>(length >> 16);
  out[2] = static_cast<char>(length >> 8);
  out[3] = static_cast<char>(length);
}

std::uint32_t read_frame_header(const char* in) noexcept {
  auto byte = [in](int i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])); };
  return byte(0) << 24 | byte(1) << 16 | byte(2) << 8 | byte(3);
}

std::string encode_frame(std::string_view payload) {
  std::string frame(frame_header_size + payload.size(), '\0');
  write_frame_header(static_cast<std::uint32_t>(payload.size()), frame.data());
  frame.replace(frame_header_size, payload.size(), payload);
  return frame;
}

}  // namespace prefork
