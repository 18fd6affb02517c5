// One accepted TCP connection in a worker: reads requests (frames or raw
// chunks), calls the handler, and writes replies without blocking.
#pragma once

#include <prefork/frame_codec.hpp>
#include <prefork/handler.hpp>
#include <prefork/unique_fd.hpp>

#include <cstddef>
#include <cstdint>

#include <prefork/core/slot_writer.hpp>
#include "buffer.hpp"

namespace prefork {

// What every connection of a worker shares.
struct ConnectionContext {
  Handler& handler;
  SlotWriter& stats;
  RequestTimer timer;  // the requests of the read being served
  FrameDecoder decoder;
  unsigned worker_slot;
  // Reads land here first; only a partial frame is copied into the
  // connection's own buffer, so an idle connection holds no input memory.
  char* scratch;
  std::size_t scratch_size;
};

class Connection final : public ReplySink {
 public:
  Connection(UniqueFd fd, const Address& peer, Protocol protocol, std::size_t listener,
             ConnectionContext& context) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const noexcept { return fd_.get(); }

  enum class Next { keep, close };
  Next on_readable();
  Next on_writable();

  // The epoll events this connection wants now.
  std::uint32_t interest() const noexcept;
  // Nothing half-received, nothing unsent: may be closed on a graceful stop.
  bool idle() const noexcept { return partial_.empty() && out_.empty(); }

  // The events epoll has for it now; kept by the worker.
  std::uint32_t registered = 0;

  std::span<char> allocate(std::size_t size) override;

 private:
  Next serve_frames(std::string_view input, std::size_t& consumed);
  Next read_frames();
  Next write_held();
  Next read_chunk();
  Next after_read(long n);
  Next flush();
  bool call_handler(std::string_view data);
  bool holds_whole_frame() const noexcept;
  bool backlogged() const noexcept { return out_.size() > high_watermark; }

  // Stop reading from a client that does not read its replies.
  static constexpr std::size_t high_watermark = 1 << 20;

  UniqueFd fd_;
  Address peer_;
  Protocol protocol_;
  std::size_t listener_;
  ConnectionContext& context_;
  Buffer partial_;  // framed: the start of a frame still being received
  Buffer out_;      // replies not yet accepted by the kernel
  bool peer_closed_ = false;
};

}  // namespace prefork
