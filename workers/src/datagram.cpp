#include "datagram.hpp"

#include "dispatch.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include <prefork/core/log_limiter.hpp>
#include <prefork/log.hpp>

namespace prefork {

DatagramService::DatagramService(int fd, std::size_t listener, Handler& handler, SlotWriter& stats,
                                 unsigned worker_slot, std::size_t max_message) noexcept
    : fd_(fd),
      listener_(listener),
      handler_(handler),
      stats_(stats),
      worker_slot_(worker_slot),
      max_message_(max_message) {}

void DatagramService::on_readable(char* buffer, std::size_t buffer_size, unsigned budget) {
  for (unsigned i = 0; i < budget; ++i) {
    std::size_t length = 0;
    Received received = receive(buffer, buffer_size, length);
    if (received == Received::none) return;
    if (received == Received::datagram) handle(buffer, length);
  }
}

DatagramService::Received DatagramService::receive(char* buffer, std::size_t buffer_size,
                                                   std::size_t& length) {
  const std::size_t limit = std::min(max_message_, buffer_size);
  for (;;) {
    iovec io{buffer, buffer_size};
    msghdr message{};
    message.msg_name = peer_.data();
    message.msg_namelen = Address::capacity();
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    // MSG_TRUNC: the datagram's real length, even when it did not fit.
    ssize_t n = ::recvmsg(fd_, &message, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) return Received::none;
      stats_.error(ErrorKind::other, listener_);
      log_sys_error("recvmsg", error, "on a udp listener");
      return Received::none;
    }
    *peer_.length_pointer() = message.msg_namelen;
    if (static_cast<std::size_t>(n) > limit) {
      // Never handle part of a datagram as if it were whole.
      stats_.bytes_in(listener_, static_cast<std::size_t>(n));
      stats_.error(ErrorKind::truncated_datagram, listener_);
      // Once a second at most: a client can send these as fast as it likes.
      static LogLimiter limiter(std::chrono::seconds(1));
      if (auto more = limiter.admit_now())
        log_info("dropped a %zd-byte datagram from %s: over the %zu-byte limit (--max-message)%s",
                 n, peer_.to_string().c_str(), limit, more->text);
      return Received::dropped;
    }
    length = static_cast<std::size_t>(n);
    return Received::datagram;
  }
}

void DatagramService::handle(const char* buffer, std::size_t length) {
  // Its bytes are counted with it: one update of the slot, not two.
  stats_.request(listener_, length);
  const std::uint64_t start = stats_.now();
  Request request{Protocol::datagram, listener_, peer_, worker_slot_};
  Reply reply(*this);
  const bool handled = call_handler(handler_, request, {buffer, length}, reply);
  const std::size_t sent = handled ? send_pending() : 0;
  reply_pending_ = false;
  stats_.replied(listener_, sent, stats_.now() - start);
  if (!handled) stats_.error(ErrorKind::handler_exception, listener_);
}

std::span<char> DatagramService::allocate(std::size_t size) {
  // A second reply: the first goes now, counted here.
  if (std::size_t sent = send_pending(); sent > 0) stats_.bytes_out(listener_, sent);
  if (size > reply_capacity_) {
    reply_ = std::make_unique_for_overwrite<char[]>(size);
    reply_capacity_ = size;
  }
  reply_size_ = size;
  reply_pending_ = true;
  return {reply_.get(), size};
}

std::size_t DatagramService::send_pending() noexcept {
  if (!reply_pending_) return 0;
  reply_pending_ = false;
  // UDP promises no delivery: a full send buffer drops the reply, counted.
  ssize_t n = ::sendto(fd_, reply_.get(), reply_size_, MSG_DONTWAIT | MSG_NOSIGNAL, peer_.data(),
                       peer_.length());
  if (n < 0) {
    int error = errno;
    stats_.error(ErrorKind::other, listener_);
    if (error != EAGAIN && error != EWOULDBLOCK)
      log_sys_error("sendto", error, "to %s", peer_.to_string().c_str());
    return 0;
  }
  return static_cast<std::size_t>(n);
}

}  // namespace prefork
