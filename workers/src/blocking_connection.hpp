// One TCP connection served to its end with blocking I/O, by whichever
// process or thread the model gave it to: read, handle every whole request,
// write the replies, repeat. Between requests it also watches the stop
// eventfd, so an idle connection is closed on a graceful stop while one
// with a request half received is finished first.
#pragma once

#include <prefork/frame_codec.hpp>
#include <prefork/handler.hpp>
#include <prefork/unique_fd.hpp>

#include <prefork/core/slot_writer.hpp>
#include "buffer.hpp"

namespace prefork {

// What a serving thread reuses from one connection to the next, so that a
// connection allocates nothing once they have grown.
struct ConnectionBuffers {
  Buffer in, out;
  RequestTimer timer;
};

// What the blocking models share within one process.
struct BlockingContext {
  Handler& handler;
  SlotWriter& stats;
  FrameDecoder decoder;
  unsigned worker_slot;
  int stop_fd;
};

class BlockingConnection final : public ReplySink {
 public:
  // `buffers` are the caller's, reused across connections.
  BlockingConnection(BlockingContext& context, UniqueFd fd, const Address& peer, Protocol protocol,
                     std::size_t listener, ConnectionBuffers& buffers) noexcept;
  ~BlockingConnection();

  void serve();

  std::span<char> allocate(std::size_t size) override;

 private:
  bool wait_for_request();
  bool serve_frames();
  bool call_handler(std::string_view data);
  bool send_replies();

  BlockingContext& context_;
  UniqueFd fd_;
  Address peer_;
  Protocol protocol_;
  std::size_t listener_;
  Buffer& in_;
  Buffer& out_;
  RequestTimer& timer_;
};

}  // namespace prefork
