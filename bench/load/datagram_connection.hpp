// A UDP client "connection": a connected datagram socket, one request
// datagram out and one reply datagram in. A lost datagram becomes the
// driver's timeout, after which the socket is replaced, so that a late
// reply cannot be taken for the next request's.
#pragma once

#include <cstdint>

#include "connection.hpp"

namespace bench {

class DatagramConnection final : public Connection {
 public:
  using Connection::Connection;

  void open() noexcept override;
  Step begin() noexcept override;
  Step on_event(std::uint32_t events) noexcept override;

 private:
  Step open_socket() noexcept;
};

}  // namespace bench
