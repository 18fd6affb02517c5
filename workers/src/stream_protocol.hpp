// One TCP connection's protocol, whichever runtime drives its I/O (the
// event loop, or a blocking thread or process): the listener's codec cuts
// the bytes into messages, the session (if the handler opens one) or the
// handler gets each, the replies are laid out in the output buffer, and the
// connection's end is decided here, once, with its reason. The one request
// path of every model.
#pragma once

#include <prefork/codec.hpp>
#include <prefork/core/slot_writer.hpp>
#include <prefork/core/worker_params.hpp>
#include <prefork/handler.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "buffer.hpp"

namespace prefork {

// What the connections of one worker process share.
struct StreamContext {
  Handler& handler;
  SlotWriter& stats;
  std::size_t max_message;
  unsigned worker_slot;
  std::vector<ConnectionTimeouts> timeouts;   // by listener
  std::atomic<std::uint64_t> connections{0};  // numbers them: 1, 2, ...

  const ConnectionTimeouts& timeouts_for(std::size_t listener) const noexcept {
    return timeouts[listener];
  }
};

// Each listener's timeouts (its own, or the server's), by index.
inline std::vector<ConnectionTimeouts> listener_timeouts(const WorkerParams& params,
                                                         std::size_t listeners) {
  std::vector<ConnectionTimeouts> all;
  for (std::size_t i = 0; i < listeners; ++i) all.push_back(params.timeouts_for(i));
  return all;
}

// How long a stopping worker waits for the first request of a connection
// it has already accepted. Such a client has done nothing wrong: its
// connect() completed before the stop, and its request may be a scheduler
// tick behind (a rolling reload stops every old worker under full load).
// Closing it at once would lose that request although the server never
// stopped listening; nginx likewise closes only idle keep-alive connections
// on a graceful stop. Bounded, so that a client that connects and says
// nothing does not hold an old worker for the whole --graceful-timeout
// (which still bounds it when shorter): 3 s is far beyond any scheduling
// delay between connect() and the first write, and short enough not to slow
// a rolling reload down noticeably.
inline constexpr std::chrono::milliseconds first_request_grace{3000};

class StreamProtocol final : public ReplySink {
 public:
  // `out` and `timer` are the runtime's, which writes `out` to the socket.
  StreamProtocol(StreamContext& context, const Address& peer, Protocol protocol,
                 std::size_t listener, Buffer& out, RequestTimer& timer);
  ~StreamProtocol();
  StreamProtocol(const StreamProtocol&) = delete;
  StreamProtocol& operator=(const StreamProtocol&) = delete;

  const Request& request() const noexcept { return request_; }
  // Whether a message has been handled: an idle connection that has served
  // one may be closed by a stop; a fresh one waits for its first request
  // (first_request_grace).
  bool served() const noexcept { return served_; }

  // Right after accept: counts the connection, opens the session, on_open.
  void open();
  // Handles the whole messages at the front of `input` while the output
  // stays under `out_limit` and the connection is not ending; returns the
  // bytes consumed. Ends the connection (limit_exceeded) when `input` holds
  // more than max_buffered() with no message in it.
  std::size_t serve(std::string_view input, std::size_t out_limit);
  // Whether `input` starts with a whole message (due an answer after a
  // half-close).
  bool holds_message(std::string_view input) const;
  // The most input that may be buffered with no whole message in it: a
  // message at --max-message and its framing. One more is over the limit.
  std::size_t max_buffered() const noexcept;

  // Once set, no more messages are handled: the connection ends.
  std::optional<CloseReason> ending() const noexcept { return ending_; }
  // Whether the replies already laid out are still to be written before
  // the socket closes (not after a reset, an abort or a failure).
  bool flush_first() const noexcept;
  // Whether the socket is reset rather than closed (resets(), dispatch.hpp).
  bool reset() const noexcept;
  // The runtime's decision (the peer closed or reset, the worker stops):
  // the session's on_close, with its last words, and the count; once.
  void end(CloseReason reason);

  std::span<char> allocate(std::size_t size) override;
  void end(Ending how) override;

 private:
  bool handle(std::string_view message);

  StreamContext& context_;
  Request request_;
  const Codec& codec_;
  Buffer& out_;
  RequestTimer& timer_;
  std::unique_ptr<Session> session_;
  std::optional<CloseReason> ending_;
  std::optional<Ending> asked_;  // by the handler, during its call
  bool opened_ = false;
  bool served_ = false;
};

}  // namespace prefork
