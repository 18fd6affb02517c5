#include "dispatch.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <prefork/core/log_limiter.hpp>
#include <prefork/log.hpp>

namespace prefork {

void log_handler_failure(const Request& request, const char* what, const char* message) noexcept {
  if (request.connection != 0)
    log_info("%s failed on conn %llu from %s: %s", what,
             static_cast<unsigned long long>(request.connection), request.peer.to_string().c_str(),
             message);
  else
    log_info("%s failed on a %s request from %s: %s", what, protocol_name(request.protocol).data(),
             request.peer.to_string().c_str(), message);
}

bool call_handler(Handler& handler, const Request& request, std::string_view data, Reply& reply) {
  return call_guarded(request, "handler", [&] {
    switch (request.protocol) {
      case Protocol::framed:
        handler.handle_frame(request, data, reply);
        break;
      case Protocol::stream:
        handler.handle_stream(request, data, reply);
        break;
      case Protocol::datagram:
        handler.handle_datagram(request, data, reply);
        break;
    }
  });
}

bool send_buffered(int fd, Buffer& out, SlotWriter& stats, std::size_t listener,
                   const Address& peer) {
  while (!out.empty()) {
    ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      stats.bytes_out(listener, static_cast<std::size_t>(n));
      out.consume(static_cast<std::size_t>(n));
      continue;
    }
    int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) return true;
    connection_failed(stats, listener, "send", error, peer);
    return false;
  }
  return true;
}

void connection_failed(SlotWriter& stats, std::size_t listener, const char* call, int error,
                       const Address& peer) {
  const bool reset = error == EPIPE || error == ECONNRESET;
  stats.error(reset ? ErrorKind::peer_reset : ErrorKind::other, listener);
  if (reset) return;
  // Once a second at most: a peer may cause these (ETIMEDOUT, EHOSTUNREACH...).
  static LogLimiter limiter(std::chrono::seconds(1));
  if (auto more = limiter.admit_now())
    log_sys_error(call, error, "with %s%s", peer.to_string().c_str(), more->text);
}

std::span<char> append_reply(Buffer& out, const Codec& codec, std::size_t size) {
  const std::size_t header = codec.header_size();
  const std::string_view trailer = codec.trailer();
  if (header == 0 && trailer.empty()) return {out.append(size), size};
  char* at = out.append(header + size + trailer.size());
  try {
    codec.write_header(size, at);
  } catch (...) {
    out.unappend(header + size + trailer.size());
    throw;
  }
  if (!trailer.empty()) std::memcpy(at + header + size, trailer.data(), trailer.size());
  return {at + header, size};
}

void close_connection(int fd, bool abort) noexcept {
  if (abort) {
    linger reset{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  } else {
    ::shutdown(fd, SHUT_WR);
    char discard[4096];
    for (int i = 0; i < 16 && ::recv(fd, discard, sizeof discard, MSG_DONTWAIT) > 0; ++i) {
    }
  }
  ::close(fd);
}

}  // namespace prefork
