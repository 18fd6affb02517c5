#include "dispatch.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <limits>
#include <stdexcept>

#include <prefork/frame_codec.hpp>
#include <prefork/log.hpp>

namespace prefork {

bool call_handler(Handler& handler, const Request& request, std::string_view data, Reply& reply) {
  try {
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
    return true;
  } catch (const std::exception& e) {
    log_info("handler failed on a %s request from %s: %s", protocol_name(request.protocol).data(),
             request.peer.to_string().c_str(), e.what());
  } catch (...) {
    log_info("handler threw a non-standard exception on a %s request from %s",
             protocol_name(request.protocol).data(), request.peer.to_string().c_str());
  }
  return false;
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
  if (!reset) log_sys_error(call, error, "with %s", peer.to_string().c_str());
}

std::span<char> append_reply(Buffer& out, Protocol protocol, std::size_t size) {
  if (protocol != Protocol::framed) return {out.append(size), size};
  if (size > std::numeric_limits<std::uint32_t>::max())
    throw std::length_error("reply frame larger than 4 GiB");
  char* at = out.append(frame_header_size + size);
  write_frame_header(static_cast<std::uint32_t>(size), at);
  return {at + frame_header_size, size};
}

}  // namespace prefork
