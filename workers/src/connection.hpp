// One accepted TCP connection in the event loop: reads without blocking,
// hands the bytes to its StreamProtocol, and writes the replies as the
// kernel takes them.
#pragma once

#include <prefork/core/slot_writer.hpp>
#include <prefork/handler.hpp>
#include <prefork/unique_fd.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "buffer.hpp"
#include "stream_protocol.hpp"

namespace prefork {

// What every connection of an event worker shares.
struct ConnectionContext {
  StreamContext& stream;
  RequestTimer timer;  // the requests of the read being served
  // Reads land here first; only the start of an unfinished message is
  // copied into the connection's own buffer, so an idle connection holds no
  // input memory, and one that sent a few bytes of a message holds about
  // that much (not a read's worth).
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
  const Request& request() const noexcept { return protocol_.request(); }

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

  // What it waits for, which decides the timeout that applies: the peer
  // to take pending replies (write), the rest of a message it started
  // (read), or its next message (idle).
  enum class Waiting : unsigned char { idle, read, write };
  Waiting waiting() const noexcept {
    return !out_.empty() ? Waiting::write : partial_.empty() ? Waiting::idle : Waiting::read;
  }
  // Whether a message was handled or replies were sent since the last
  // call: the timeout starts again.
  bool take_progress() noexcept { return std::exchange(progress_, false); }
  // Its timeout expired: the session's on_close(reason), a last try at
  // sending its last words, and the caller closes it.
  void expire(CloseReason reason);

  // Once a heartbeat: a connection that has handled no message since the
  // last call gives back what a burst left (its buffers are then at most what it has
  // of a message under way, and a small output buffer).
  void give_back_if_unused() noexcept;

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
  // Replies up to this size keep their buffer between requests (no
  // allocation per request); a bigger one is freed once sent.
  static constexpr std::size_t kept_output = 4 * 1024;

  UniqueFd fd_;
  Address peer_;
  ConnectionContext& context_;
  // The start of a message still being received: at most a message at the
  // limit plus one read (max_buffered() + scratch_size).
  Buffer partial_;
  // Replies not yet accepted by the kernel: reading stops above
  // high_watermark, so at most that plus the replies to one read.
  Buffer out_;
  StreamProtocol protocol_;
  bool peer_closed_ = false;
  bool progress_ = false;
  // A message handled since the last give_back_if_unused(): a trickle of
  // bytes does not count, so a slowloris keeps no buffer a big message grew.
  bool used_ = false;
};

}  // namespace prefork
