// The message that carries a connection from the master to a worker under
// --accept pass, beside the descriptor itself (SCM_RIGHTS): which listener
// accepted it and the peer's address, so the worker needs no getpeername().
#pragma once

#include <sys/socket.h>

#include <cstdint>

namespace prefork {

struct PassedConnection {
  std::uint32_t listener;
  socklen_t peer_length;
  sockaddr_storage peer;
};

}  // namespace prefork
