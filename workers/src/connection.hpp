// One accepted TCP connection in the event loop: reads without blocking,
// hands the bytes to its StreamProtocol, and writes the replies as the
// kernel takes them.
#pragma once

#include <prefork/core/slot_writer.hpp>
#include <prefork/handler.hpp>
#include <prefork/unique_fd.hpp>

#include <cstddef>
#include <cstdint>

#include "buffer.hpp"
#include "stream_protocol.hpp"

namespace prefork {

// What every connection of an event worker shares.
struct ConnectionContext {
  StreamContext& stream;
  RequestTimer timer;  // the requests of the read being served
  // Reads land here first; only the start of an unfinished message is
  // copied into the connection's own buffer, so an idle connection holds no
  // input memory.
  char* scratch;
  std::size_t scratch_size;
};

class Connection {
 public:
  Connection(UniqueFd fd, const Address& peer, Protocol protocol, std::size_t listener,
             ConnectionContext& context);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const noexcept { return fd_.get(); }

  enum class Next { keep, close };
  // Right after accept: the session's on_open (which may already end it).
  Next open();
  Next on_readable();
  Next on_writable();
  // The worker stops: an idle connection that has served a request ends
  // now (worker_stopping); one that has not, only once `grace_over` (its
  // first request may still be on its way: first_request_grace).
  Next on_stop(bool grace_over);

  // The epoll events this connection wants now.
  std::uint32_t interest() const noexcept;

  // The events epoll has for it now; kept by the worker.
  std::uint32_t registered = 0;

 private:
  Next read_messages();
  Next after_read(long n);
  Next serve_held();
  Next flush();
  bool idle() const noexcept { return partial_.empty() && out_.empty(); }
  bool backlogged() const noexcept { return out_.size() > high_watermark; }

  // Stop reading from a client that does not read its replies.
  static constexpr std::size_t high_watermark = 1 << 20;

  UniqueFd fd_;
  Address peer_;
  ConnectionContext& context_;
  Buffer partial_;  // the start of a message still being received
  Buffer out_;      // replies not yet accepted by the kernel
  StreamProtocol protocol_;
  bool peer_closed_ = false;
};

}  // namespace prefork
