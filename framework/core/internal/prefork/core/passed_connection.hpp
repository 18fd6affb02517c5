// The message that carries a connection from the master to a worker under
// --accept pass, beside the descriptor itself (SCM_RIGHTS): which listener
// accepted it and the peer's address, so the worker needs no getpeername().
// Both ends of the protocol are here: the master sends, a worker receives.
#pragma once

#include <prefork/address.hpp>
#include <prefork/unique_fd.hpp>

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>

namespace prefork {

struct PassedConnection {
  std::uint32_t listener;
  socklen_t peer_length;
  sockaddr_storage peer;
};

// Sends `fd` with `passed` on `channel`; the sendmsg() result (-1: errno).
ssize_t send_passed(int channel, int fd, const PassedConnection& passed) noexcept;

struct Received {
  ssize_t result = -1;  // recvmsg(): 0 the master closed the channel, -1 errno
  UniqueFd fd;          // the connection, when one came
  PassedConnection passed{};
  // A whole message with a descriptor and a peer address that fits.
  bool well_formed() const noexcept {
    return fd && result == static_cast<ssize_t>(sizeof passed) &&
           passed.peer_length <= sizeof passed.peer;
  }
  Address peer() const noexcept {
    return Address(reinterpret_cast<const sockaddr*>(&passed.peer), passed.peer_length);
  }
};

// Receives one message from `channel` (recvmsg `flags`, plus MSG_CMSG_CLOEXEC).
Received receive_passed(int channel, int flags = 0) noexcept;

}  // namespace prefork
