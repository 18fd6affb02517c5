// What every way of serving a request shares, whichever model runs it:
// calling the handler safely, and laying replies out in an output buffer.
#pragma once

#include <prefork/handler.hpp>

#include <span>
#include <string_view>

#include <prefork/core/slot_writer.hpp>
#include "buffer.hpp"

namespace prefork {

// Calls the handler method for the request's protocol. A handler that
// throws has failed that request: logged with the peer, false returned (the
// caller closes the connection or drops the datagram and counts an error).
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

// Room for one reply message of `size` bytes at the end of `out`: a frame
// (header written) on a framed connection, plain bytes on a raw stream.
std::span<char> append_reply(Buffer& out, Protocol protocol, std::size_t size);

}  // namespace prefork
