#include "clients.hpp"

#include <prefork/frame_codec.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace prefork::test {
namespace {

std::runtime_error sys_error(const std::string& what, int error) {
  return std::runtime_error(what + ": " + std::strerror(error));
}

// A numeric address, or an exception naming the text.
sockaddr_storage numeric_address(std::string host, std::uint16_t port, socklen_t& length) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  sockaddr_storage storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    throw std::invalid_argument("not a numeric IP address: " + host);
  }
  return storage;
}

std::string where(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos && host.front() != '[' ? "[" + host + "]" : host) +
         ":" + std::to_string(port);
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

}  // namespace

TcpClient TcpClient::connect(const std::string& host, std::uint16_t port, Milliseconds timeout) {
  socklen_t length = 0;
  sockaddr_storage address = numeric_address(host, port, length);
  UniqueFd fd(::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw sys_error("socket", errno);
  auto deadline = Clock::now() + timeout;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    if (errno != EINPROGRESS) throw sys_error("connect " + where(host, port), errno);
    pollfd p{fd.get(), POLLOUT, 0};
    int ready;
    do ready = ::poll(&p, 1, remaining_ms(deadline));
    while (ready < 0 && errno == EINTR);
    if (ready == 0) throw std::runtime_error("connect " + where(host, port) + ": timed out");
    int error = 0;
    socklen_t size = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) throw sys_error("connect " + where(host, port), error);
  }
  // Blocking again: the deadlines come from poll() and SO_SNDTIMEO.
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  TcpClient client(std::move(fd), timeout);
  client.set_timeout(timeout);
  return client;
}

TcpClient TcpClient::connect(const Endpoint& endpoint, Milliseconds timeout) {
  return connect(endpoint.host, endpoint.port, timeout);
}

void TcpClient::set_timeout(Milliseconds timeout) {
  timeout_ = timeout;
  // A blocking send to a server that stopped reading would otherwise hang.
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

bool TcpClient::wait_for(short events, Clock::time_point deadline) const {
  pollfd p{fd_.get(), events, 0};
  for (;;) {
    int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) throw sys_error("poll", errno);
  }
}

void TcpClient::send_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        throw std::runtime_error("send timed out with " + std::to_string(bytes.size()) +
                                 " bytes left");
      throw sys_error("send", errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
}

std::string TcpClient::recv_some(std::size_t max) {
  auto deadline = Clock::now() + timeout_;
  std::string data(max, '\0');
  for (;;) {
    if (!wait_for(POLLIN, deadline))
      throw std::runtime_error("recv timed out after " + std::to_string(timeout_.count()) + " ms");
    ssize_t got = ::recv(fd_.get(), data.data(), max, MSG_DONTWAIT);
    if (got >= 0) {
      data.resize(static_cast<std::size_t>(got));
      return data;
    }
    if (errno == ECONNRESET) return {};
    if (errno != EINTR && errno != EAGAIN) throw sys_error("recv", errno);
  }
}

std::string TcpClient::recv_exactly(std::size_t n) {
  auto deadline = Clock::now() + timeout_;
  std::string data(n, '\0');
  std::size_t have = 0;
  while (have < n) {
    if (!wait_for(POLLIN, deadline))
      throw std::runtime_error("recv timed out after " + std::to_string(timeout_.count()) +
                               " ms with " + std::to_string(have) + " of " + std::to_string(n) +
                               " bytes");
    ssize_t got = ::recv(fd_.get(), data.data() + have, n - have, MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno == ECONNRESET))
      throw std::runtime_error("connection closed by peer after " + std::to_string(have) + " of " +
                               std::to_string(n) + " bytes");
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw sys_error("recv", errno);
    }
    have += static_cast<std::size_t>(got);
  }
  return data;
}

void TcpClient::send_frame(std::string_view payload) { send_all(encode_frame(payload)); }

std::string TcpClient::recv_line() {
  for (;;) {
    if (auto end = lines_.find('\n'); end != std::string::npos) {
      std::string line = lines_.substr(0, end);
      lines_.erase(0, end + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    std::string more = recv_some();
    if (more.empty())
      throw std::runtime_error("the server closed before a whole line: '" + lines_ + "'");
    lines_ += more;
  }
}

std::string TcpClient::recv_frame() {
  std::string header = recv_exactly(frame_header_size);
  return recv_exactly(read_frame_header(header.data()));
}

bool TcpClient::closed_by_peer(Milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char byte;
  for (;;) {
    if (!wait_for(POLLIN, deadline)) return false;
    ssize_t got = ::recv(fd_.get(), &byte, 1, MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno == ECONNRESET)) return true;
    if (got > 0) throw std::runtime_error("expected the peer to close, but it sent data");
    if (errno != EINTR && errno != EAGAIN) throw sys_error("recv", errno);
  }
}

Transcript TcpClient::read_to_end() {
  Transcript transcript{std::exchange(lines_, {}), End::still_open};
  const auto deadline = Clock::now() + timeout_;
  char buffer[4096];
  for (;;) {
    if (!wait_for(POLLIN, deadline)) return transcript;
    const ssize_t got = ::recv(fd_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (got > 0) {
      transcript.bytes.append(buffer, static_cast<std::size_t>(got));
    } else if (got == 0) {
      transcript.end = End::orderly;
      return transcript;
    } else if (errno == ECONNRESET) {
      transcript.end = End::reset;
      return transcript;
    } else if (errno != EINTR && errno != EAGAIN) {
      throw sys_error("recv", errno);
    }
  }
}

TcpClient::Flood TcpClient::send_without_reading(std::string_view bytes, Milliseconds quiet,
                                                 Milliseconds within) {
  std::size_t offset = 0;
  const auto deadline = Clock::now() + within;
  while (Clock::now() < deadline) {
    ssize_t n =
        ::send(fd(), bytes.data() + offset, bytes.size() - offset, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      offset = (offset + static_cast<std::size_t>(n)) % bytes.size();
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Flood::closed;
    pollfd room{fd(), POLLOUT, 0};
    if (::poll(&room, 1, static_cast<int>(quiet.count())) == 0) return Flood::pushed_back;
  }
  return Flood::never_pushed_back;
}

void TcpClient::shutdown_write() {
  if (::shutdown(fd_.get(), SHUT_WR) != 0) throw sys_error("shutdown", errno);
}

UdpClient UdpClient::connect(const std::string& host, std::uint16_t port) {
  socklen_t length = 0;
  sockaddr_storage address = numeric_address(host, port, length);
  UniqueFd fd(::socket(address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) throw sys_error("socket", errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0)
    throw sys_error("connect udp " + where(host, port), errno);
  return UdpClient(std::move(fd));
}

UdpClient UdpClient::connect(const Endpoint& endpoint) {
  return connect(endpoint.host, endpoint.port);
}

void UdpClient::send(std::string_view datagram) {
  ssize_t sent;
  do sent = ::send(fd_.get(), datagram.data(), datagram.size(), MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) throw sys_error("send udp", errno);
  if (static_cast<std::size_t>(sent) != datagram.size())
    throw std::runtime_error("send udp: short datagram");
}

std::optional<std::string> UdpClient::recv(Milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string data(65536, '\0');
  for (;;) {
    pollfd p{fd_.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready == 0) return std::nullopt;
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw sys_error("poll", errno);
    }
    ssize_t got = ::recv(fd_.get(), data.data(), data.size(), MSG_DONTWAIT);
    if (got >= 0) {
      data.resize(static_cast<std::size_t>(got));
      return data;
    }
    // ECONNREFUSED: an ICMP "port unreachable" from an earlier datagram.
    if (errno != EINTR && errno != EAGAIN) throw sys_error("recv udp", errno);
  }
}

std::string UdpClient::request(std::string_view datagram, Milliseconds timeout) {
  send(datagram);
  auto reply = recv(timeout);
  if (!reply)
    throw std::runtime_error("no UDP reply within " + std::to_string(timeout.count()) + " ms");
  return *reply;
}

std::ostream& operator<<(std::ostream& out, End end) {
  switch (end) {
    case End::orderly:
      return out << "orderly close (EOF)";
    case End::reset:
      return out << "reset (ECONNRESET)";
    case End::still_open:
      return out << "still open";
  }
  return out;
}

std::string ascii_upper(std::string_view text) {
  std::string upper(text);
  for (char& c : upper)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return upper;
}

std::string http(const Endpoint& endpoint, const std::string& request) {
  TcpClient client = TcpClient::connect(endpoint);
  client.send_all(request);
  std::string response;
  for (std::string part; !(part = client.recv_some()).empty();) response += part;
  return response;
}

std::string body_of(const std::string& response) {
  const std::size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

}  // namespace prefork::test
