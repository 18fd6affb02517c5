// Blocking test clients in which every operation has a deadline: a test that
// talks to a misbehaving server fails with a message, it never hangs.
//
// Failures throw std::runtime_error naming what was expected; Boost.Test
// reports an exception as a failed test case with that message.
#pragma once

#include "server_process.hpp"

#include <prefork/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace prefork::test {

inline constexpr Milliseconds default_io_timeout = 5000ms;

// How the server ended a connection, as the client sees it.
enum class End { orderly, reset, still_open };
std::ostream& operator<<(std::ostream& out, End end);

// What a connection received until its end.
struct Transcript {
  std::string bytes;
  End end = End::still_open;
};

// A TCP connection, raw or framed.
class TcpClient {
 public:
  // For callers: connects to a numeric IPv4 or IPv6 host ("127.0.0.1",
  // "::1" or "[::1]"). `timeout` bounds the connect and, later, each
  // send/receive call. TCP_NODELAY is set so that small writes leave as
  // separate segments (the split-frame tests rely on it).
  static TcpClient connect(const std::string& host, std::uint16_t port,
                           Milliseconds timeout = default_io_timeout);
  static TcpClient connect(const Endpoint& endpoint, Milliseconds timeout = default_io_timeout);

  int fd() const noexcept { return fd_.get(); }
  void set_timeout(Milliseconds timeout);

  // Raw bytes. send_all never raises SIGPIPE (a closed peer is an exception).
  void send_all(std::string_view bytes);
  // Exactly n bytes; throws on timeout or when the peer closes first.
  std::string recv_exactly(std::size_t n);
  // What is there (1 .. max bytes); "" when the peer closed; throws on timeout.
  std::string recv_some(std::size_t max = 65536);

  // One line, without its LF (or CRLF); throws on timeout or when the peer
  // closes first. Bytes after the line are kept for the next recv_line
  // (only): do not mix it with the other receives on one connection.
  std::string recv_line();

  // Frames, with prefork's codec: a 4-byte big-endian length, then the payload.
  void send_frame(std::string_view payload);
  std::string recv_frame();
  std::string request_frame(std::string_view payload) {
    send_frame(payload);
    return recv_frame();
  }

  // True when the peer closes the connection (EOF or reset) within
  // `timeout`; false when it is still open then. Throws if data arrives
  // instead: a close was expected, not an answer.
  bool closed_by_peer(Milliseconds timeout = default_io_timeout);
  // Everything the peer sends (after what recv_line kept) until it closes
  // (EOF: orderly; ECONNRESET: reset) or the connection's timeout passes
  // (still_open). The timeout bounds the whole read, not each call.
  Transcript read_to_end();

  // A client that never reads: sends `bytes` again and again, without
  // blocking, until the peer closes (closed), takes nothing more for
  // `quiet` (pushed_back: its buffers and ours are full), or `within` ends
  // (never_pushed_back).
  enum class Flood { closed, pushed_back, never_pushed_back };
  Flood send_without_reading(std::string_view bytes, Milliseconds quiet, Milliseconds within);

  void shutdown_write();
  void close() { fd_.reset(); }

 private:
  TcpClient(UniqueFd fd, Milliseconds timeout) : fd_(std::move(fd)), timeout_(timeout) {}
  // Waits for `events` until the deadline of one call; false on timeout.
  bool wait_for(short events, Clock::time_point deadline) const;

  UniqueFd fd_;
  Milliseconds timeout_;
  std::string lines_;  // received after the last line returned
};

// A connected UDP socket: it only receives from the server it sends to.
class UdpClient {
 public:
  static UdpClient connect(const std::string& host, std::uint16_t port);
  static UdpClient connect(const Endpoint& endpoint);

  void send(std::string_view datagram);
  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> recv(Milliseconds timeout = default_io_timeout);
  // send + recv; throws when no answer comes in time.
  std::string request(std::string_view datagram, Milliseconds timeout = default_io_timeout);

 private:
  explicit UdpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// "hello" -> "HELLO", ASCII only, as upper_server does it.
std::string ascii_upper(std::string_view text);

// One HTTP request on a connection of its own (the metrics endpoint's):
// the whole response, read until the server closes.
std::string http(const Endpoint& endpoint, const std::string& request);
// What follows the response's head; "" without one.
std::string body_of(const std::string& response);

}  // namespace prefork::test
