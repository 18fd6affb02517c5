#include "connection.hpp"

#include "dispatch.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

#include <prefork/log.hpp>

namespace prefork {

Connection::Connection(UniqueFd fd, const Address& peer, Protocol protocol, std::size_t listener,
                       ConnectionContext& context) noexcept
    : fd_(std::move(fd)),
      peer_(peer),
      protocol_(protocol),
      listener_(listener),
      context_(context) {}

std::uint32_t Connection::interest() const noexcept {
  std::uint32_t events = 0;
  if (!peer_closed_ && !backlogged()) events |= EPOLLIN;
  if (!out_.empty()) events |= EPOLLOUT;
  return events;
}

Connection::Next Connection::on_readable() {
  Next next = protocol_ == Protocol::framed ? read_frames() : read_chunk();
  // After the write (or the failure) that ends each request.
  context_.timer.finish(context_.stats);
  return next;
}

Connection::Next Connection::on_writable() {
  Next next = write_held();
  context_.timer.finish(context_.stats);
  return next;
}

Connection::Next Connection::write_held() {
  if (flush() == Next::close) return Next::close;
  // Frames held back while the client was not reading can go on now.
  if (!backlogged() && !partial_.empty()) {
    std::size_t consumed = 0;
    Next next = serve_frames(partial_.view(), consumed);
    partial_.consume(consumed);
    if (next == Next::close) return next;
    return flush();
  }
  return Next::keep;
}

// Raw stream: as socketserver's StreamRequestHandler, each chunk read is
// one request. A stream has no message boundaries, so a chunk is whatever
// the kernel has when we read.
Connection::Next Connection::read_chunk() {
  ssize_t n = ::recv(fd_.get(), context_.scratch, context_.scratch_size, 0);
  if (n <= 0) return after_read(n);
  context_.stats.bytes_in(listener_, static_cast<std::size_t>(n));
  if (!call_handler({context_.scratch, static_cast<std::size_t>(n)})) return Next::close;
  return flush();
}

Connection::Next Connection::read_frames() {
  ssize_t n;
  std::size_t consumed = 0;
  Next next;
  if (partial_.empty()) {
    // The common case: whole frames straight from the scratch buffer;
    // only a trailing partial frame is kept.
    n = ::recv(fd_.get(), context_.scratch, context_.scratch_size, 0);
    if (n <= 0) return after_read(n);
    context_.stats.bytes_in(listener_, static_cast<std::size_t>(n));
    std::string_view input(context_.scratch, static_cast<std::size_t>(n));
    next = serve_frames(input, consumed);
    if (next == Next::keep && consumed < input.size()) {
      std::memcpy(partial_.append(input.size() - consumed), input.data() + consumed,
                  input.size() - consumed);
    }
  } else {
    // A frame is under way: read into its own buffer, at most what is still
    // missing of a large frame plus one more scratch-full.
    n = ::recv(fd_.get(), partial_.prepare(context_.scratch_size), context_.scratch_size, 0);
    if (n <= 0) return after_read(n);
    context_.stats.bytes_in(listener_, static_cast<std::size_t>(n));
    partial_.commit(static_cast<std::size_t>(n));
    next = serve_frames(partial_.view(), consumed);
    partial_.consume(consumed);
  }
  if (next == Next::close) return next;
  return flush();
}

Connection::Next Connection::after_read(long n) {
  if (n == 0) {
    // The client will send no more; answer what it sent, then close.
    peer_closed_ = true;
    return flush();
  }
  int error = errno;
  if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR) return Next::keep;
  connection_failed(context_.stats, listener_, "recv", error, peer_);
  return Next::close;
}

Connection::Next Connection::serve_frames(std::string_view input, std::size_t& consumed) {
  consumed = 0;
  while (!backlogged()) {
    auto frame = context_.decoder.next(input.substr(consumed));
    if (frame.status == FrameDecoder::Status::need_more) break;
    if (frame.status == FrameDecoder::Status::oversized) {
      context_.stats.error(ErrorKind::oversized_frame, listener_);
      log_info("closing connection from %s: frame of %u bytes exceeds --max-frame %zu",
               peer_.to_string().c_str(), read_frame_header(input.data() + consumed),
               context_.decoder.max_frame());
      return Next::close;
    }
    consumed += frame.consumed;
    if (!call_handler(frame.payload)) return Next::close;
  }
  return Next::keep;
}

bool Connection::call_handler(std::string_view data) {
  context_.timer.start(context_.stats, listener_);
  Request request{protocol_, listener_, peer_, context_.worker_slot};
  Reply reply(*this);
  if (prefork::call_handler(context_.handler, request, data, reply)) return true;
  context_.stats.error(ErrorKind::handler_exception, listener_);
  return false;
}

std::span<char> Connection::allocate(std::size_t size) {
  return append_reply(out_, protocol_, size);
}

Connection::Next Connection::flush() {
  if (!send_buffered(fd_.get(), out_, context_.stats, listener_, peer_)) return Next::close;
  if (!out_.empty()) return Next::keep;  // the rest when EPOLLOUT says so
  // A slow reader made the buffer grow; do not keep that memory.
  if (out_.capacity() > 4 * high_watermark) out_.release();
  // A client that has finished sending still gets the answers to the whole
  // frames it sent, which a slow read may have held back.
  if (peer_closed_ && !holds_whole_frame()) return Next::close;
  return Next::keep;
}

bool Connection::holds_whole_frame() const noexcept {
  return protocol_ == Protocol::framed &&
         context_.decoder.next(partial_.view()).status == FrameDecoder::Status::frame;
}

}  // namespace prefork
