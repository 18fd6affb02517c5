#include "blocking_connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>

#include <prefork/log.hpp>

#include "dispatch.hpp"
#include "stop_signal.hpp"
#include "worker.hpp"

namespace prefork {

namespace {

constexpr std::size_t read_size = 64 * 1024;
// Replies up to this size keep their buffer between requests; a bigger
// one is freed once sent.
constexpr std::size_t kept_output = 4 * 1024;

// What a connection waits for, which decides the stops it gives way to.
enum class Awaiting {
  // Nothing of a message received yet, and it has served one: any stop
  // ends it (an idle keep-alive connection).
  next_request,
  // Nothing received yet since it was accepted: a graceful stop leaves it
  // first_request_grace to come (stream_protocol.hpp says why).
  first_request,
  // The rest of a message: only a fast stop ends it.
  rest_of_message,
};

using Clock = std::chrono::steady_clock;

enum class Woken { input, stop, timed_out };

// Milliseconds for poll() until `until` (at least 1, rounded up); nullopt
// once it has passed.
std::optional<int> poll_timeout(Clock::time_point until) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
  if (left.count() <= 0) return std::nullopt;
  return static_cast<int>(std::min<long long>(left.count(), std::numeric_limits<int>::max()));
}

// Sleeps until the client sends, a stop is asked or `deadline` (the idle
// or read timeout) passes. What the client has already sent is always read
// first.
Woken wait_for_input(int fd, const BlockingContext& context, Awaiting awaiting,
                     std::optional<Clock::time_point> deadline) {
  const bool stops = awaiting != Awaiting::rest_of_message;
  pollfd fds[6] = {{fd, POLLIN, 0},
                   {context.fast_fds[0], POLLIN, 0},
                   {context.fast_fds[1], POLLIN, 0},
                   {stops ? context.stop_fds[0] : -1, POLLIN, 0},
                   {stops ? context.stop_fds[1] : -1, POLLIN, 0},
                   {context.reopen_fd, POLLIN, 0}};
  std::optional<Clock::time_point> grace_ends;  // set once a stop came
  for (;;) {
    int timeout = -1;
    if (grace_ends) {
      auto left = poll_timeout(*grace_ends);
      if (!left) return Woken::stop;  // no first request came
      timeout = *left;
    }
    if (deadline) {
      auto left = poll_timeout(*deadline);
      if (!left) return Woken::timed_out;
      timeout = timeout < 0 ? *left : std::min(timeout, *left);
    }
    int n = ::poll(fds, 6, timeout);
    if (n > 0 && fds[5].revents != 0) {
      StopSignal::on_reopen_readable(context.reopen_fd);
      if (n == 1) continue;
    }
    if (n > 0) {
      if ((fds[1].revents | fds[2].revents) != 0) return Woken::stop;
      if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) return Woken::input;
      if ((fds[3].revents | fds[4].revents) != 0) {
        // The worker's own stop (not a fork-per-connection child's): its
        // slot says so at once, though this connection may go on.
        if (fds[3].revents != 0) context.stream.stats.state(WorkerState::stopping);
        if (awaiting == Awaiting::next_request) return Woken::stop;
        // The eventfds stay readable: wait on the client alone now.
        fds[3].fd = fds[4].fd = -1;
        grace_ends = Clock::now() + first_request_grace;
      }
      continue;
    }
    if (n == 0) continue;  // the grace or the deadline is over: said above
    if (errno != EINTR) {
      log_sys_error("poll", errno);
      return Woken::stop;
    }
    StopSignal::reopen_log_if_asked();  // a one-thread worker's USR1
  }
}

// Once the reads have ended for `reason`, whether the handler may still
// write: yes after the client's half-close, a line over the limit or a
// stop (its last words, as a session's on_close); not after close(),
// abort() or a failure.
bool still_writable(CloseReason reason) noexcept {
  return reason == CloseReason::peer_closed || reason == CloseReason::limit_exceeded ||
         reason == CloseReason::worker_stopping || reason == CloseReason::idle_timeout ||
         reason == CloseReason::read_timeout;
}

// The connection's bytes in and out, and how it failed, for both ways of
// serving it.
class Socket {
 public:
  Socket(BlockingContext& context, int fd, const Address& peer, std::size_t listener, Buffer& in,
         Buffer& out)
      : context_(context), fd_(fd), peer_(peer), listener_(listener), in_(in), out_(out) {}

  // Reads more into `in`, giving way to the stops `awaiting` allows, and
  // to the idle timeout, or the read timeout counted from `started` (the
  // message's first byte) for the rest of a message. false: the
  // connection ended, `reason` says why.
  bool receive(Awaiting awaiting, std::optional<CloseReason>& reason,
               Clock::time_point started = {}) {
    const ConnectionTimeouts& timeouts = context_.stream.timeouts_for(listener_);
    const bool rest = awaiting == Awaiting::rest_of_message;
    std::optional<Clock::time_point> deadline;
    if (rest && timeouts.read.count() > 0)
      deadline = started + timeouts.read;
    else if (!rest && timeouts.idle.count() > 0)
      deadline = Clock::now() + timeouts.idle;
    // Waiting on the client is no hang of the worker's: the heartbeat
    // (--timeout) leaves it alone meanwhile, as it does a worker asleep in
    // accept(). A client too slow is the read and idle timeouts' business.
    // Once awake it works: it beats (at most once a second), so that a
    // worker busy with one long connection shows its progress.
    context_.stream.stats.waiting(true);
    const Woken woken = wait_giving_back(awaiting, deadline);
    context_.stream.stats.waiting(false);
    if (context_.stream.stats.beat()) trim_heap_if_grown();
    if (woken == Woken::timed_out) {
      reason = rest ? CloseReason::read_timeout : CloseReason::idle_timeout;
      return false;
    }
    if (woken == Woken::stop) {
      reason = CloseReason::worker_stopping;
      return false;
    }
    for (;;) {
      // Into the room `in` has, and what does not fit onto the stack, to be
      // appended: the buffer grows by what came, not by a read's worth (a
      // slowloris costs what it sent). At most one read beyond the room.
      char spill[read_size];
      const std::size_t room = in_.room();
      iovec parts[2] = {{in_.end(), room}, {spill, room < read_size ? read_size - room : 0}};
      ssize_t n = ::readv(fd_, parts, 2);
      if (n > 0) {
        const auto got = static_cast<std::size_t>(n);
        const std::size_t in_room = got < room ? got : room;
        in_.commit(in_room);
        in_.append({spill, got - in_room});
        context_.stream.stats.bytes_in(listener_, got);
        return true;
      }
      if (n == 0) {
        reason = CloseReason::peer_closed;
        return false;
      }
      if (errno == EINTR) {
        if (StopSignal::fast()) {
          reason = CloseReason::worker_stopping;
          return false;
        }
        continue;
      }
      connection_failed(context_.stream.stats, listener_, "recv", errno, peer_);
      reason = CloseReason::peer_reset;
      return false;
    }
  }

  // Sends all of `out`, without blocking in send(): a peer that takes
  // none of it for the write timeout, or a fast stop, ends the connection.
  // false: `reason` says why.
  bool send(Buffer& out, std::optional<CloseReason>& reason) {
    while (!out.empty()) {
      ssize_t n = ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        context_.stream.stats.bytes_out(listener_, static_cast<std::size_t>(n));
        out.consume(static_cast<std::size_t>(n));
        continue;
      }
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        reason = wait_for_output();
        if (!reason) continue;
        return false;
      }
      connection_failed(context_.stream.stats, listener_, "send", error, peer_);
      reason = CloseReason::peer_reset;
      return false;
    }
    return true;
  }

 private:
  // What a burst left is kept while the client keeps sending (large
  // messages back to back would otherwise be reallocated, their pages
  // faulted in again, for each) and given back once it has been quiet for
  // give_back_after: then the connection holds only the message under way
  // (none: no input memory) and a small output buffer.
  static constexpr std::chrono::milliseconds give_back_after{1000};
  std::size_t input_kept() const noexcept { return in_.empty() ? 0 : 4 * read_size; }

  Woken wait_giving_back(Awaiting awaiting, std::optional<Clock::time_point> deadline) {
    if (in_.shrinkable(input_kept()) || out_.shrinkable(kept_output)) {
      const auto quiet = Clock::now() + give_back_after;
      if (!deadline || quiet < *deadline) {
        const Woken woken = wait_for_input(fd_, context_, awaiting, quiet);
        if (woken != Woken::timed_out) return woken;
        in_.shrink(input_kept());
        out_.shrink(kept_output);
      }
    }
    return wait_for_input(fd_, context_, awaiting, deadline);
  }

  // Until the peer can take more (nullopt), the write timeout passes or a
  // fast stop comes.
  std::optional<CloseReason> wait_for_output() {
    const std::chrono::milliseconds limit = context_.stream.timeouts_for(listener_).write;
    const auto deadline = Clock::now() + limit;
    pollfd fds[3] = {
        {fd_, POLLOUT, 0}, {context_.fast_fds[0], POLLIN, 0}, {context_.fast_fds[1], POLLIN, 0}};
    for (;;) {
      int timeout = -1;
      if (limit.count() > 0) {
        auto left = poll_timeout(deadline);
        if (!left) return CloseReason::write_timeout;
        timeout = *left;
      }
      const int n = ::poll(fds, 3, timeout);
      if (n > 0) {
        if ((fds[1].revents | fds[2].revents) != 0) return CloseReason::worker_stopping;
        return std::nullopt;  // writable, or an error the next send() reports
      }
      if (n == 0) continue;  // the deadline: said above
      if (errno == EINTR) {
        if (StopSignal::fast()) return CloseReason::worker_stopping;
        continue;
      }
      log_sys_error("poll", errno);
      return CloseReason::peer_reset;
    }
  }

  BlockingContext& context_;
  int fd_;
  const Address& peer_;
  std::size_t listener_;
  Buffer& in_;
  Buffer& out_;
};

// Message by message, through the listener's codec and the session or
// handler.
void serve_messages(BlockingContext& context, int fd, const Address& peer, Protocol protocol,
                    std::size_t listener, ConnectionBuffers& buffers) {
  StreamProtocol stream(context.stream, peer, protocol, listener, buffers.out, buffers.timer);
  Socket socket(context, fd, peer, listener, buffers.in, buffers.out);
  stream.open();
  Clock::time_point started{};  // the first byte of the message in `in`
  const bool timed_reads = context.stream.timeouts_for(listener).read.count() > 0;
  while (!stream.ending()) {
    std::optional<CloseReason> ended;
    if (!socket.send(buffers.out, ended)) {
      stream.end(*ended);
      break;
    }
    // After the write (or the failure) that ends each request.
    buffers.timer.finish(context.stream.stats);
    const Awaiting awaiting = !buffers.in.empty() ? Awaiting::rest_of_message
                              : stream.served()   ? Awaiting::next_request
                                                  : Awaiting::first_request;
    if (!socket.receive(awaiting, ended, started)) {
      stream.end(*ended);
      break;
    }
    const bool began = awaiting != Awaiting::rest_of_message;
    const std::size_t consumed =
        stream.serve(buffers.in.view(), std::numeric_limits<std::size_t>::max());
    buffers.in.consume(consumed);
    // A message left unfinished: its read timeout runs from now if it
    // began with this read (or after a message this read finished).
    if (timed_reads && !buffers.in.empty() && (began || consumed != 0)) started = Clock::now();
  }
  std::optional<CloseReason> failed;
  if (stream.flush_first() && !socket.send(buffers.out, failed) &&
      failed == CloseReason::peer_reset)
    context.stream.stats.error(ErrorKind::peer_reset, listener);
  buffers.timer.finish(context.stream.stats);
  close_connection(fd, stream.reset());
}

// The whole connection to a ConnectionHandler: socketserver's
// StreamRequestHandler. A request is a turn: what the handler reads from
// the start of a read until it writes, timed to the end of that write.
class WholeConnection final : public Connection {
 public:
  WholeConnection(BlockingContext& context, int fd, const Address& peer, Protocol protocol,
                  std::size_t listener, ConnectionBuffers& buffers)
      : context_(context),
        request_{protocol, listener, peer, context.stream.worker_slot,
                 context.stream.connections.fetch_add(1, std::memory_order_relaxed) + 1},
        socket_(context, fd, peer, listener, buffers.in, out_),
        fd_(fd),
        in_(buffers.in),
        timer_(buffers.timer) {
    context_.stream.stats.connection_opened(listener);
  }

  void serve() {
    bool ok = call_guarded(request_, "handle(Connection&)", [&] { context_.whole->handle(*this); });
    if (!ok) {
      context_.stream.stats.error(ErrorKind::handler_exception, request_.listener);
      end(CloseReason::handler_failed);
    }
    end(CloseReason::handler_closed);
    timer_.finish(context_.stream.stats);
    // A failure resets the connection, as an abort does (connection.hpp).
    close_connection(fd_, resets(*reason_));
  }

  const Request& request() const noexcept override { return request_; }

  std::size_t read(std::span<char> into) override {
    drop_line();
    if (into.empty()) return 0;
    if (in_.empty() && !fill(true)) return 0;
    const std::size_t n = std::min(into.size(), in_.size());
    std::memcpy(into.data(), in_.data(), n);
    in_.consume(n);
    return n;
  }

  bool read_exactly(std::span<char> into) override {
    drop_line();
    bool idle = true;
    while (in_.size() < into.size()) {
      if (!fill(idle)) return false;
      idle = false;
    }
    if (!into.empty()) std::memcpy(into.data(), in_.data(), into.size());
    in_.consume(into.size());
    return true;
  }

  std::optional<std::string_view> read_line() override {
    drop_line();
    // The same lines, CRs and limit as a LineCodec listener's.
    static const LineCodec lines;
    for (bool idle = true;; idle = false) {
      if (!in_.empty()) {
        const Decoded line = lines.decode(in_.view(), context_.stream.max_message);
        if (line.status == Decoded::Status::too_large) return too_long();
        if (line.status == Decoded::Status::message) {
          line_used_ = line.consumed;
          return line.message;
        }
      }
      if (!fill(idle)) return std::nullopt;
    }
  }

  bool write(std::string_view bytes) override {
    if (reason_ && !still_writable(*reason_)) return false;
    turn_replied_ = turn_open_;
    served_ = served_ || turn_open_;
    out_.consume(out_.size());
    if (!bytes.empty()) std::memcpy(out_.append(bytes.size()), bytes.data(), bytes.size());
    std::optional<CloseReason> failed;
    if (socket_.send(out_, failed)) return true;
    end(*failed);
    return false;
  }

  void close() override { end(CloseReason::handler_closed); }
  void abort() override { end(CloseReason::handler_aborted); }
  std::optional<CloseReason> reason() const noexcept override { return reason_; }

 private:
  // Reads more; a read after a write ends the turn (the request) before.
  // `idle`: the handler asks for the start of something (a read call's
  // first fill), which any stop may refuse once a request was answered.
  bool fill(bool idle) {
    if (reason_) return false;
    if (turn_replied_) {
      timer_.finish(context_.stream.stats);
      turn_open_ = turn_replied_ = false;
    }
    std::optional<CloseReason> ended;
    const Awaiting awaiting = !idle     ? Awaiting::rest_of_message
                              : served_ ? Awaiting::next_request
                                        : Awaiting::first_request;
    if (!socket_.receive(awaiting, ended, started_)) {
      end(*ended);
      return false;
    }
    // What a read call's first fill got starts what it reads: the read
    // timeout of its further fills runs from here.
    if (idle && context_.stream.timeouts_for(request_.listener).read.count() > 0)
      started_ = Clock::now();
    if (!turn_open_) {
      timer_.start(context_.stream.stats, request_.listener);
      turn_open_ = true;
    }
    return true;
  }

  void drop_line() noexcept {
    in_.consume(line_used_);
    line_used_ = 0;
  }

  std::nullopt_t too_long() {
    context_.stream.stats.error(ErrorKind::oversized_frame, request_.listener);
    log_info("closing conn %llu from %s: a line over --max-message %zu bytes",
             static_cast<unsigned long long>(request_.connection),
             request_.peer.to_string().c_str(), context_.stream.max_message);
    end(CloseReason::limit_exceeded);
    return std::nullopt;
  }

  void end(CloseReason reason) {
    if (reason_) return;
    reason_ = reason;
    context_.stream.stats.connection_closed(request_.listener, reason);
  }

  BlockingContext& context_;
  Request request_;
  Socket socket_;
  int fd_;
  Buffer& in_;
  Buffer out_;
  RequestTimer& timer_;
  std::size_t line_used_ = 0;  // the line last returned, consumed by the next read
  bool turn_open_ = false, turn_replied_ = false;
  bool served_ = false;          // a turn was answered: the next may be refused by a stop
  Clock::time_point started_{};  // the current read call's first fill
  std::optional<CloseReason> reason_;
};

}  // namespace

void serve_blocking(BlockingContext& context, UniqueFd fd, const Address& peer, Protocol protocol,
                    std::size_t listener, ConnectionBuffers& buffers) {
  // Doubling stops at a message at the limit (and its framing) plus one
  // read: what `in` holds at most, and the replies to it (a send finishes
  // before the next read).
  const std::size_t message =
      context.stream.max_message + context.stream.handler.codec(listener, protocol).overhead();
  buffers.in.limit_growth(message + read_size);
  buffers.out.limit_growth(message + read_size);
  if (context.whole)
    WholeConnection(context, fd.release(), peer, protocol, listener, buffers).serve();
  else
    serve_messages(context, fd.release(), peer, protocol, listener, buffers);
  // Nothing of this client is kept for the next one (a blocking model's
  // thread or process waits for it with no input memory).
  buffers.in.release();
  buffers.out.consume(buffers.out.size());
  buffers.out.shrink(kept_output);
}

}  // namespace prefork
