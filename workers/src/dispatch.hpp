// What every way of serving a request shares, whichever model runs it:
// calling the embedder's code safely, sending buffered replies, counting a
// failed connection, and laying replies out in an output buffer.
#pragma once

#include <prefork/codec.hpp>
#include <prefork/core/slot_writer.hpp>
#include <prefork/handler.hpp>

#include <exception>
#include <span>
#include <string_view>

#include "buffer.hpp"

namespace prefork {

// Logs that the embedder's `what` (handle, on_message, ...) threw on a
// request or connection of `request`'s peer.
void log_handler_failure(const Request& request, const char* what, const char* message) noexcept;

// Runs `call`, a call into the embedder's code. An exception fails it:
// logged with the peer and connection, and false returned (the caller
// closes the connection or drops the datagram, and counts an error).
template <typename Call>
bool call_guarded(const Request& request, const char* what, Call&& call) noexcept {
  try {
    call();
    return true;
  } catch (const std::exception& e) {
    log_handler_failure(request, what, e.what());
  } catch (...) {
    log_handler_failure(request, what, "a non-standard exception");
  }
  return false;
}

// Calls the handler method for the request's protocol (guarded).
bool call_handler(Handler& handler, const Request& request, std::string_view data, Reply& reply);

// Sends what `out` holds, counting the bytes. True when it is all sent or,
// on a non-blocking socket, when the kernel took what it could (the rest
// stays in `out`); false when the connection failed: counted, and logged
// unless the peer simply went away.
bool send_buffered(int fd, Buffer& out, SlotWriter& stats, std::size_t listener,
                   const Address& peer);

// A recv or send on a connection failed with `error`: counts it (a peer
// that reset or went away is peer_reset, anything else `other`) and logs
// it, naming `call`, unless the peer simply went away.
void connection_failed(SlotWriter& stats, std::size_t listener, const char* call, int error,
                       const Address& peer);

// Room for one reply message of `size` bytes at the end of `out`, framed
// by `codec` (its header written, its trailer after the room).
std::span<char> append_reply(Buffer& out, const Codec& codec, std::size_t size);

// Whether a connection that ends for `reason` is reset rather than closed:
// the handler aborted it, or failed (its protocol state is unknown: the
// peer must not take the end for an orderly one).
constexpr bool resets(CloseReason reason) noexcept {
  return reason == CloseReason::handler_aborted || reason == CloseReason::handler_failed;
}

// Ends a TCP connection: after a graceful ending, what the peer still
// sends is read and dropped first (without waiting), so that close() does
// not answer unread bytes with a reset that could destroy our last replies
// in the peer's receive queue; `abort` resets it on purpose (SO_LINGER 0).
void close_connection(int fd, bool abort) noexcept;

}  // namespace prefork
