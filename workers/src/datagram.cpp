#include "datagram.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <prefork/log.hpp>

namespace prefork {

DatagramService::DatagramService(int fd, std::size_t listener, Handler& handler, SlotWriter& stats,
                                 unsigned worker_slot) noexcept
    : fd_(fd), listener_(listener), handler_(handler), stats_(stats), worker_slot_(worker_slot) {}

void DatagramService::on_readable(char* buffer, std::size_t buffer_size, unsigned budget) {
  for (unsigned i = 0; i < budget; ++i) {
    iovec io{buffer, buffer_size};
    msghdr message{};
    message.msg_name = peer_.data();
    message.msg_namelen = Address::capacity();
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    ssize_t n = ::recvmsg(fd_, &message, 0);
    if (n < 0) {
      int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      if (error == EINTR) continue;
      stats_.error();
      log_sys_error("recvmsg", error, "on a udp listener");
      return;
    }
    *peer_.length_pointer() = message.msg_namelen;
    stats_.bytes_in(static_cast<std::size_t>(n));
    if (message.msg_flags & MSG_TRUNC) {
      // Never handle part of a datagram as if it were whole.
      stats_.error();
      log_info("dropped a datagram from %s larger than the %zu-byte buffer",
               peer_.to_string().c_str(), buffer_size);
      continue;
    }

    stats_.request();
    Request request{Protocol::datagram, listener_, peer_, worker_slot_};
    Reply reply(*this);
    try {
      handler_.handle_datagram(request, {buffer, static_cast<std::size_t>(n)}, reply);
      send_pending();
    } catch (const std::exception& e) {
      reply_pending_ = false;
      stats_.error();
      log_info("handler failed on a datagram from %s: %s", peer_.to_string().c_str(), e.what());
    } catch (...) {
      reply_pending_ = false;
      stats_.error();
      log_info("handler threw a non-standard exception on a datagram from %s",
               peer_.to_string().c_str());
    }
  }
}

std::span<char> DatagramService::allocate(std::size_t size) {
  send_pending();
  if (size > reply_capacity_) {
    reply_ = std::make_unique_for_overwrite<char[]>(size);
    reply_capacity_ = size;
  }
  reply_size_ = size;
  reply_pending_ = true;
  return {reply_.get(), size};
}

void DatagramService::send_pending() noexcept {
  if (!reply_pending_) return;
  reply_pending_ = false;
  // UDP promises no delivery: a full send buffer drops the reply, counted.
  ssize_t n = ::sendto(fd_, reply_.get(), reply_size_, MSG_DONTWAIT | MSG_NOSIGNAL, peer_.data(),
                       peer_.length());
  if (n < 0) {
    stats_.error();
    int error = errno;
    if (error != EAGAIN && error != EWOULDBLOCK)
      log_sys_error("sendto", error, "to %s", peer_.to_string().c_str());
    return;
  }
  stats_.bytes_out(static_cast<std::size_t>(n));
}

}  // namespace prefork
