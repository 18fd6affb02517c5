// One TCP connection served to its end with blocking I/O, by whichever
// process or thread the model gave it to: either message by message
// through its StreamProtocol (read, handle every whole message, write the
// replies, repeat), or handed whole to a ConnectionHandler. Between
// messages it also watches the stop eventfd, so an idle connection is
// closed on a graceful stop while one with a message half received is
// finished first.
#pragma once

#include <prefork/connection.hpp>
#include <prefork/core/slot_writer.hpp>
#include <prefork/unique_fd.hpp>

#include <array>

#include "buffer.hpp"
#include "stream_protocol.hpp"

namespace prefork {

// What a serving thread reuses from one connection to the next, so that a
// connection allocates nothing once they have grown.
struct ConnectionBuffers {
  Buffer in, out;
  RequestTimer timer;
};

// What the blocking models share within one process.
struct BlockingContext {
  StreamContext& stream;
  // Readable once a stop was asked: the worker's eventfd and, in a
  // fork-per-connection child, the child's own (else -1: poll skips it).
  // An idle connection closes on any stop.
  std::array<int, 2> stop_fds;
  // The same for a fast stop, which also ends a connection mid-message.
  std::array<int, 2> fast_fds;
  // A one-thread worker's USR1 (StopSignal::reopen_fd()); else -1.
  int reopen_fd;
  // The handler, when it takes whole connections (else null).
  ConnectionHandler* whole;
};

// Serves the connection on `fd` to its end; `buffers` are the caller's.
void serve_blocking(BlockingContext& context, UniqueFd fd, const Address& peer, Protocol protocol,
                    std::size_t listener, ConnectionBuffers& buffers);

}  // namespace prefork
