#include <prefork/address.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

#include <prefork/core/decimal.hpp>
#include <prefork/error.hpp>

namespace prefork {

namespace {
[[noreturn]] void bad(std::string_view text, std::string_view why) {
  throw std::invalid_argument("bad address '" + std::string(text) + "': " + std::string(why) +
                              " (expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:0)");
}
}  // namespace

Address::Address(const sockaddr* address, socklen_t length) {
  if (length > sizeof storage_) length = sizeof storage_;
  std::memcpy(&storage_, address, length);
  length_ = length;
}

Address Address::parse(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) bad(text, "no port");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);

  auto port = parse_decimal<unsigned>(port_text);
  if (!port || *port > 65535) bad(text, "port must be a number from 0 to 65535");

  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    bad(text, "write IPv6 addresses in brackets");
  }
  if (host.empty()) bad(text, "no host");
  if (host == "*") host = "0.0.0.0";

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* results = nullptr;
  std::string host_string(host);
  std::string port_string(port_text);
  int status = ::getaddrinfo(host_string.c_str(), port_string.c_str(), &hints, &results);
  if (status != 0) bad(text, ::gai_strerror(status));
  Address address(results->ai_addr, results->ai_addrlen);
  ::freeaddrinfo(results);
  return address;
}

Address Address::of_socket(int fd) {
  Address address;
  address.length_ = capacity();
  if (::getsockname(fd, address.data(), &address.length_) != 0)
    throw SystemError("getsockname", errno);
  return address;
}

std::uint16_t Address::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string Address::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, host,
                sizeof host);
    return std::string(host) + ':' + std::to_string(port());
  }
  if (family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, host,
                sizeof host);
    return '[' + std::string(host) + "]:" + std::to_string(port());
  }
  return "(unknown address family " + std::to_string(family()) + ")";
}

}  // namespace prefork
