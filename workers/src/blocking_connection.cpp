#include "blocking_connection.hpp"

#include "dispatch.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include <prefork/log.hpp>

namespace prefork {

namespace {
constexpr std::size_t read_size = 64 * 1024;
}

BlockingConnection::BlockingConnection(BlockingContext& context, UniqueFd fd, const Address& peer,
                                       Protocol protocol, std::size_t listener,
                                       ConnectionBuffers& buffers) noexcept
    : context_(context),
      fd_(std::move(fd)),
      peer_(peer),
      protocol_(protocol),
      listener_(listener),
      in_(buffers.in),
      out_(buffers.out),
      timer_(buffers.timer) {
  context_.stats.connection_opened(listener_);
}

BlockingConnection::~BlockingConnection() {
  context_.stats.connection_closed();
  in_.consume(in_.size());
  out_.consume(out_.size());
  // A big frame grew them: do not keep that memory for the next client.
  if (in_.capacity() > 4 * read_size) in_.release();
  if (out_.capacity() > 4 * read_size) out_.release();
}

void BlockingConnection::serve() {
  for (;;) {
    if (in_.empty() && !wait_for_request()) return;
    ssize_t n = ::recv(fd_.get(), in_.prepare(read_size), read_size, 0);
    if (n == 0) return;  // the client is done
    if (n < 0) {
      if (errno == EINTR) continue;
      connection_failed(context_.stats, listener_, "recv", errno, peer_);
      return;
    }
    in_.commit(static_cast<std::size_t>(n));
    context_.stats.bytes_in(listener_, static_cast<std::size_t>(n));
    bool keep = protocol_ == Protocol::framed ? serve_frames() : call_handler(in_.view());
    if (protocol_ != Protocol::framed) in_.consume(in_.size());
    keep = keep && send_replies();
    // After the write (or the failure) that ends each request.
    timer_.finish(context_.stats);
    if (!keep) return;
  }
}

// Sleeps until the client sends or a stop is asked; false: close now.
bool BlockingConnection::wait_for_request() {
  pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {context_.stop_fd, POLLIN, 0}};
  for (;;) {
    int n = ::poll(fds, 2, -1);
    if (n > 0) return (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
    if (errno != EINTR) {
      log_sys_error("poll", errno);
      return false;
    }
  }
}

bool BlockingConnection::serve_frames() {
  for (;;) {
    auto frame = context_.decoder.next(in_.view());
    if (frame.status == FrameDecoder::Status::need_more) return true;
    if (frame.status == FrameDecoder::Status::oversized) {
      context_.stats.error(ErrorKind::oversized_frame, listener_);
      log_info("closing connection from %s: frame of %u bytes exceeds --max-frame %zu",
               peer_.to_string().c_str(), read_frame_header(in_.data()),
               context_.decoder.max_frame());
      return false;
    }
    bool keep = call_handler(frame.payload);
    in_.consume(frame.consumed);
    if (!keep) return false;
  }
}

bool BlockingConnection::call_handler(std::string_view data) {
  timer_.start(context_.stats, listener_);
  Request request{protocol_, listener_, peer_, context_.worker_slot};
  Reply reply(*this);
  if (prefork::call_handler(context_.handler, request, data, reply)) return true;
  context_.stats.error(ErrorKind::handler_exception, listener_);
  return false;
}

std::span<char> BlockingConnection::allocate(std::size_t size) {
  return append_reply(out_, protocol_, size);
}

bool BlockingConnection::send_replies() {
  return send_buffered(fd_.get(), out_, context_.stats, listener_, peer_);
}

}  // namespace prefork
