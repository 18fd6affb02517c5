// A TCP client connection, framed or raw: connecting -> sending and
// receiving (a raw server may answer before the request is all sent) ->
// open and idle (keep-alive) or closed (--new-connection).
#pragma once

#include <cstddef>
#include <cstdint>

#include "connection.hpp"

namespace bench {

class StreamConnection final : public Connection {
 public:
  StreamConnection(const ConnectionContext& context, std::uint32_t id, bool framed) noexcept
      : Connection(context, id), framed_(framed) {}

  void open() noexcept override;
  Step begin() noexcept override;
  Step on_event(std::uint32_t events) noexcept override;

 private:
  Step start_connect() noexcept;
  bool bind_source() noexcept;
  Step connected(std::uint32_t events) noexcept;
  Step send_more() noexcept;
  Step receive() noexcept;
  // nullptr, or why these reply bytes are wrong.
  const char* consume(const char* data, std::size_t size) noexcept;
  bool reply_complete() const noexcept;
  Step finish() noexcept;
  void check_idle(std::uint32_t events) noexcept;

  bool framed_;
  std::size_t sent_ = 0;
  std::size_t header_have_ = 0;
  char header_[4] = {};
  std::size_t body_have_ = 0;
};

}  // namespace bench
