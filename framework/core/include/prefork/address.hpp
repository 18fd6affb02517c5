// Socket addresses written as HOST:PORT.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace prefork {

// An IPv4 or IPv6 socket address.
class Address {
 public:
  // For callers: "127.0.0.1:8080", "[::1]:0", "localhost:9000", "*:80"
  // (any IPv4 address). Port 0 asks the kernel for a free port.
  // Throws std::invalid_argument with a message naming the text.
  static Address parse(std::string_view host_port);
  // From a socket's own address (getsockname).
  static Address of_socket(int fd);

  Address() = default;
  Address(const sockaddr* address, socklen_t length);

  int family() const noexcept { return storage_.ss_family; }
  std::uint16_t port() const noexcept;
  // "127.0.0.1:8080" or "[::1]:8080".
  std::string to_string() const;

  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t length() const noexcept { return length_; }
  // For recvfrom/accept, which write the length back.
  socklen_t* length_pointer() noexcept { return &length_; }
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace prefork
