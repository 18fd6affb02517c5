#include "stream_connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <prefork/frame_codec.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace bench {

namespace {
constexpr std::uint32_t readable = EPOLLIN | EPOLLERR | EPOLLHUP;
}

void StreamConnection::open() noexcept {
  if (state_ == State::closed) start_connect();
}

Connection::Step StreamConnection::begin() noexcept {
  in_request_ = true;
  sent_ = header_have_ = body_have_ = 0;
  if (state_ == State::closed && start_connect() == Step::failed) return Step::failed;
  if (state_ == State::connecting) return Step::waiting;
  return send_more();
}

Connection::Step StreamConnection::on_event(std::uint32_t events) noexcept {
  if (state_ == State::connecting) return connected(events);
  if (state_ != State::open) return Step::waiting;
  if (!in_request_) {
    check_idle(events);
    return Step::waiting;
  }
  // Read first: a reset shows there, and a raw server's early reply must be
  // drained or both sides could block on full buffers.
  if (events & readable) {
    if (Step step = receive(); step != Step::waiting) return step;
  }
  if (sent_ < context_.exchange->request.size() && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
    return send_more();
  return Step::waiting;
}

Connection::Step StreamConnection::start_connect() noexcept {
  const prefork::Address& target = *context_.target;
  fd_.reset(::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_) return fail(ErrorKind::connect_failed, "socket", errno);
  const int one = 1;
  if (::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
    return fail(ErrorKind::connect_failed, "setsockopt TCP_NODELAY", errno);
  if (context_.source_sequence != nullptr && !bind_source())
    return fail(ErrorKind::connect_failed, "bind", errno);
  if (!watch(EPOLLIN | EPOLLOUT)) return fail(ErrorKind::connect_failed, "epoll_ctl", errno);
  if (::connect(fd_.get(), target.data(), target.length()) == 0) {
    state_ = State::open;
    return Step::waiting;
  }
  const int error = errno;
  if (error == EINPROGRESS) {
    state_ = State::connecting;
    return Step::waiting;
  }
  return fail(error == ECONNREFUSED ? ErrorKind::connect_refused : ErrorKind::connect_failed,
              "connect", error);
}

// A connection per request leaves one TIME_WAIT socket per request on this
// side. With one source address they all share the tuple (127.0.0.1, server
// address, port), and connect() scans past them for a free ephemeral port:
// that search was 40% of the client's CPU. Loopback accepts any 127/8
// source, so each connect takes the next address in 127.1.0.0/16 and the
// first port tried is almost always free. IP_BIND_ADDRESS_NO_PORT leaves the
// port to connect(), which picks it for the whole 4-tuple.
bool StreamConnection::bind_source() noexcept {
  const int one = 1;
  if (::setsockopt(fd_.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0)
    return false;
  const std::uint32_t n = (*context_.source_sequence)++ % 65534 + 1;  // 127.1.0.1 to 127.1.255.254
  sockaddr_in source{};
  source.sin_family = AF_INET;
  source.sin_addr.s_addr = htonl(0x7F010000u | n);
  return ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&source), sizeof source) == 0;
}

Connection::Step StreamConnection::connected(std::uint32_t events) noexcept {
  if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return Step::waiting;
  int error = 0;
  socklen_t length = sizeof error;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  if (error != 0)
    return fail(error == ECONNREFUSED ? ErrorKind::connect_refused : ErrorKind::connect_failed,
                "connect", error);
  if (!(events & EPOLLOUT)) return Step::waiting;
  state_ = State::open;
  return in_request_ ? send_more() : Step::waiting;
}

Connection::Step StreamConnection::send_more() noexcept {
  const std::string& request = context_.exchange->request;
  while (sent_ < request.size()) {
    const ssize_t n =
        ::send(fd_.get(), request.data() + sent_, request.size() - sent_, MSG_NOSIGNAL);
    if (n >= 0) {
      sent_ += static_cast<std::size_t>(n);
      continue;
    }
    const int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) return Step::waiting;  // EPOLLOUT will come
    return fail(error == ECONNRESET || error == EPIPE ? ErrorKind::reset : ErrorKind::send_failed,
                "send", error);
  }
  return reply_complete() ? finish() : Step::waiting;
}

Connection::Step StreamConnection::receive() noexcept {
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), context_.scratch, context_.scratch_size, 0);
    if (n > 0) {
      if (const char* why = consume(context_.scratch, static_cast<std::size_t>(n)))
        return fail(ErrorKind::bad_reply, why, 0);
      if (reply_complete())
        return sent_ == context_.exchange->request.size() ? finish() : Step::waiting;
      // A short read emptied the socket: more data will be a new edge, so
      // the usual EAGAIN read is saved.
      if (static_cast<std::size_t>(n) < context_.scratch_size) return Step::waiting;
      continue;
    }
    if (n == 0) return fail(ErrorKind::closed_early, "recv: end of stream before the reply", 0);
    const int error = errno;
    if (error == EINTR) continue;
    if (error == EAGAIN || error == EWOULDBLOCK) return Step::waiting;
    return fail(ErrorKind::reset, "recv", error);
  }
}

const char* StreamConnection::consume(const char* data, std::size_t size) noexcept {
  const Exchange& exchange = *context_.exchange;
  if (framed_ && header_have_ < sizeof header_) {
    const std::size_t take = std::min(sizeof header_ - header_have_, size);
    std::memcpy(header_ + header_have_, data, take);
    header_have_ += take;
    data += take;
    size -= take;
    if (header_have_ < sizeof header_) return nullptr;
    if (prefork::read_frame_header(header_) != exchange.reply_size)
      return "reply frame of another length";
  }
  if (size > exchange.reply_size - body_have_) return "more reply bytes than asked for";
  if (!exchange.expected.empty() &&
      std::memcmp(data, exchange.expected.data() + body_have_, size) != 0)
    return "reply is not the upper-cased request";
  body_have_ += size;
  return nullptr;
}

bool StreamConnection::reply_complete() const noexcept {
  return (!framed_ || header_have_ == sizeof header_) &&
         body_have_ == context_.exchange->reply_size;
}

Connection::Step StreamConnection::finish() noexcept {
  in_request_ = false;
  if (context_.new_connection) reset();  // Stevens' client: the client closes
  return Step::done;
}

// An event between requests: a stale edge for bytes already read, or the
// server closing (or writing to) an idle connection. Only the latter two
// close it; the next request then reconnects.
void StreamConnection::check_idle(std::uint32_t events) noexcept {
  if (!(events & readable)) return;
  const ssize_t n = ::recv(fd_.get(), context_.scratch, context_.scratch_size, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  reset();
}

}  // namespace bench
