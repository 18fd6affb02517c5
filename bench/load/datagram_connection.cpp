#include "datagram_connection.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace bench {

void DatagramConnection::open() noexcept {
  if (state_ == State::closed) open_socket();
}

Connection::Step DatagramConnection::open_socket() noexcept {
  const prefork::Address& target = *context_.target;
  fd_.reset(::socket(target.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd_) return fail(ErrorKind::connect_failed, "socket", errno);
  if (!watch(EPOLLIN)) return fail(ErrorKind::connect_failed, "epoll_ctl", errno);
  // connect() on UDP only fixes the peer: send() and recv() need no address,
  // and the kernel drops datagrams from anyone else.
  if (::connect(fd_.get(), target.data(), target.length()) != 0)
    return fail(ErrorKind::connect_failed, "connect", errno);
  state_ = State::open;
  return Step::waiting;
}

Connection::Step DatagramConnection::begin() noexcept {
  in_request_ = true;
  if (state_ == State::closed && open_socket() == Step::failed) return Step::failed;
  const std::string& request = context_.exchange->request;
  for (;;) {
    if (::send(fd_.get(), request.data(), request.size(), 0) >= 0) return Step::waiting;
    const int error = errno;
    if (error == EINTR) continue;
    // ECONNREFUSED here is the ICMP "port unreachable" of an earlier datagram.
    return fail(error == ECONNREFUSED ? ErrorKind::connect_refused : ErrorKind::send_failed, "send",
                error);
  }
}

Connection::Step DatagramConnection::on_event(std::uint32_t) noexcept {
  if (state_ != State::open) return Step::waiting;
  const Exchange& exchange = *context_.exchange;
  for (;;) {
    // MSG_TRUNC: the datagram's real length, even when longer than the buffer.
    const ssize_t n = ::recv(fd_.get(), context_.scratch, context_.scratch_size, MSG_TRUNC);
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) return Step::waiting;
      return fail(error == ECONNREFUSED ? ErrorKind::connect_refused : ErrorKind::reset, "recv",
                  error);
    }
    if (!in_request_) continue;  // a duplicate between requests: dropped
    if (static_cast<std::size_t>(n) != exchange.reply_size)
      return fail(ErrorKind::bad_reply, "reply datagram of another length", 0);
    if (!exchange.expected.empty() &&
        std::memcmp(context_.scratch, exchange.expected.data(), exchange.reply_size) != 0)
      return fail(ErrorKind::bad_reply, "reply is not the upper-cased request", 0);
    in_request_ = false;
    return Step::done;  // not drained to EAGAIN: one datagram is one reply
  }
}

}  // namespace bench
