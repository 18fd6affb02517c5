// Why a TCP connection ended: told to the session (Session::on_close) and
// counted in the scoreboard (prefork_connections_closed_total{reason}).
#pragma once

#include <cstdint>
#include <string_view>

namespace prefork {

enum class CloseReason : std::uint8_t {
  peer_closed = 0,      // the client closed its side (end of stream)
  peer_reset = 1,       // the client reset the connection, or a send or receive failed
  idle_timeout = 2,     // no message began within --idle-timeout
  handler_closed = 3,   // the handler asked for it (Reply::close): replies flushed first
  handler_aborted = 4,  // the handler reset it (Reply::abort): replies dropped
  handler_failed = 5,   // the handler threw
  worker_stopping = 6,  // the worker stops: idle, or its drain ran out of time
  limit_exceeded = 7,   // a message over the connection's maximum (--max-message)
  read_timeout = 8,     // a message begun was not all received within --read-timeout
  write_timeout = 9,    // the peer took none of the pending replies for --write-timeout
};
inline constexpr unsigned close_reason_count = 10;

// "peer_closed", "handler_closed", ...: the scoreboard's label values.
std::string_view close_reason_name(CloseReason reason) noexcept;

}  // namespace prefork
