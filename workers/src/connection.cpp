#include "connection.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <prefork/log.hpp>

#include "dispatch.hpp"

namespace prefork {

Connection::Connection(UniqueFd fd, const Address& peer, Protocol protocol, std::size_t listener,
                       ConnectionContext& context)
    : fd_(std::move(fd)),
      peer_(peer),
      context_(context),
      protocol_(context.stream, peer_, protocol, listener, out_, context.timer) {
  // Doubling stops at the bound (a message at the limit and one read), so a
  // message near the limit does not take twice its size.
  partial_.limit_growth(protocol_.max_buffered() + context.scratch_size);
  out_.limit_growth(high_watermark + protocol_.max_buffered());
}

// The session hears of an undecided end (the drain ran out of time) from
// ~StreamProtocol, right after.
Connection::~Connection() { close_connection(fd_.release(), protocol_.reset()); }

std::uint32_t Connection::interest() const noexcept {
  std::uint32_t events = 0;
  if (!peer_closed_ && !backlogged() && !protocol_.ending()) events |= EPOLLIN;
  if (!out_.empty()) events |= EPOLLOUT;
  return events;
}

Connection::Next Connection::open() {
  protocol_.open();
  return flush();
}

Connection::Next Connection::on_readable() {
  Next next = read_messages();
  // After the write (or the failure) that ends each request.
  context_.timer.finish(context_.stream.stats);
  return next;
}

Connection::Next Connection::on_writable() {
  Next next = flush();
  // Messages held back while the client was not reading can go on now.
  if (next == Next::keep && !backlogged() && !partial_.empty()) next = serve_held();
  context_.timer.finish(context_.stream.stats);
  return next;
}

Connection::Next Connection::on_stop(bool grace_over) {
  if (!protocol_.ending() && idle() && (protocol_.served() || grace_over))
    protocol_.end(CloseReason::worker_stopping);
  return protocol_.ending() && out_.empty() ? Next::close : Next::keep;
}

void Connection::expire(CloseReason reason) {
  protocol_.end(reason);
  if (protocol_.flush_first())
    send_buffered(fd_.get(), out_, context_.stream.stats, protocol_.request().listener, peer_);
}

Connection::Next Connection::serve_held() {
  const std::size_t consumed = protocol_.serve(partial_.view(), high_watermark);
  progress_ = progress_ || consumed != 0;
  used_ = used_ || consumed != 0;
  partial_.consume(consumed);
  return flush();
}

void Connection::give_back_if_unused() noexcept {
  // Kept while in use: a client sending large messages one after the other
  // would otherwise have its buffers reallocated (and their pages faulted
  // in again) for each.
  if (std::exchange(used_, false)) return;
  // No message under way: no input memory (the next read lands in the
  // scratch buffer); part of one: only that part. Small buffers stay, so
  // that a client pipelining small messages is not reallocated.
  if (partial_.empty())
    partial_.release();
  else
    partial_.shrink(4 * context_.scratch_size);
  if (out_.empty()) out_.shrink(kept_output);
}

Connection::Next Connection::read_messages() {
  if (partial_.empty()) {
    // The common case: whole messages straight from the scratch buffer;
    // only an unfinished one is kept.
    ssize_t n = ::recv(fd_.get(), context_.scratch, context_.scratch_size, 0);
    if (n <= 0) return after_read(n);
    context_.stream.stats.bytes_in(protocol_.request().listener, static_cast<std::size_t>(n));
    std::string_view input(context_.scratch, static_cast<std::size_t>(n));
    std::size_t consumed = protocol_.serve(input, high_watermark);
    progress_ = progress_ || consumed != 0;
    used_ = used_ || consumed != 0;
    if (!protocol_.ending()) partial_.append(input.substr(consumed));
    return flush();
  }
  // A message is under way: read into the room its buffer has, and what
  // does not fit into the scratch buffer, to be appended (the buffer grows
  // by what came, not by a read's worth: a slowloris costs what it sent).
  // At most one scratch-full beyond the room.
  const std::size_t room = partial_.room();
  iovec parts[2] = {
      {partial_.end(), room},
      {context_.scratch, room < context_.scratch_size ? context_.scratch_size - room : 0}};
  ssize_t n = ::readv(fd_.get(), parts, 2);
  if (n <= 0) return after_read(n);
  const auto got = static_cast<std::size_t>(n);
  context_.stream.stats.bytes_in(protocol_.request().listener, got);
  const std::size_t in_room = got < room ? got : room;
  partial_.commit(in_room);
  partial_.append({context_.scratch, got - in_room});
  return serve_held();
}

Connection::Next Connection::after_read(long n) {
  if (n == 0) {
    // The client will send no more; answer what it sent, then close.
    peer_closed_ = true;
    return flush();
  }
  int error = errno;
  if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR) return Next::keep;
  connection_failed(context_.stream.stats, protocol_.request().listener, "recv", error, peer_);
  protocol_.end(CloseReason::peer_reset);
  return Next::close;
}

Connection::Next Connection::flush() {
  if (!protocol_.flush_first()) return Next::close;  // reset, abort, failure: at once
  const std::size_t pending = out_.size();
  if (!send_buffered(fd_.get(), out_, context_.stream.stats, protocol_.request().listener, peer_)) {
    protocol_.end(CloseReason::peer_reset);
    return Next::close;
  }
  // Only what the peer took restarts the write timeout.
  progress_ = progress_ || out_.size() < pending;
  if (!out_.empty()) return Next::keep;        // the rest when EPOLLOUT says so
  if (protocol_.ending()) return Next::close;  // all written: the graceful end
  // A client that has finished sending still gets the answers to the whole
  // messages it sent, which a slow read may have held back.
  if (peer_closed_ && !protocol_.holds_message(partial_.view())) {
    protocol_.end(CloseReason::peer_closed);
    return flush();
  }
  return Next::keep;
}

}  // namespace prefork
