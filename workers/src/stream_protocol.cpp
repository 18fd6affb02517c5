#include "stream_protocol.hpp"

#include <prefork/core/log_limiter.hpp>

#include <prefork/log.hpp>

#include "dispatch.hpp"

namespace prefork {

namespace {

// Where replies go when the connection cannot carry them any more.
class Discard final : public ReplySink {
 public:
  std::span<char> allocate(std::size_t size) override {
    if (room_.size() < size) room_.resize(size);
    return {room_.data(), size};
  }
  void end(Ending) override {}

 private:
  std::string room_;
};

bool graceful(CloseReason reason) noexcept {
  return reason != CloseReason::peer_reset && !resets(reason);
}

}  // namespace

StreamProtocol::StreamProtocol(StreamContext& context, const Address& peer, Protocol protocol,
                               std::size_t listener, Buffer& out, RequestTimer& timer)
    : context_(context),
      request_{protocol, listener, peer, context.worker_slot,
               context.connections.fetch_add(1, std::memory_order_relaxed) + 1},
      codec_(context.handler.codec(listener, protocol)),
      out_(out),
      timer_(timer) {}

StreamProtocol::~StreamProtocol() {
  // A connection torn down without a decision (the drain ran out of time):
  // the session still hears of it, as socketserver's finish() always runs.
  if (opened_ && !ending_) end(CloseReason::worker_stopping);
}

void StreamProtocol::open() {
  opened_ = true;
  context_.stats.connection_opened(request_.listener);
  Reply reply(*this);
  bool ok = call_guarded(request_, "open_session", [&] {
    session_ = context_.handler.open_session(request_);
    if (session_) session_->on_open(reply);
  });
  if (!ok) {
    context_.stats.error(ErrorKind::handler_exception, request_.listener);
    end(CloseReason::handler_failed);
  } else if (asked_) {
    end(*asked_ == Ending::abort ? CloseReason::handler_aborted : CloseReason::handler_closed);
  }
}

std::size_t StreamProtocol::serve(std::string_view input, std::size_t out_limit) {
  std::size_t consumed = 0;
  while (!ending_ && consumed < input.size() && out_.size() <= out_limit) {
    const std::string_view rest = input.substr(consumed);
    const Decoded decoded = codec_.decode(rest, context_.max_message);
    if (decoded.status == Decoded::Status::message) {
      consumed += decoded.consumed;
      if (!handle(decoded.message)) break;
      continue;
    }
    if (decoded.status == Decoded::Status::too_large || rest.size() > max_buffered()) {
      context_.stats.error(ErrorKind::oversized_frame, request_.listener);
      // Counted every time, logged once a second: a client can send these
      // as fast as it connects.
      static LogLimiter limiter(std::chrono::seconds(1));
      if (auto more = limiter.admit_now())
        log_info("closing conn %llu from %s: a message over --max-message %zu bytes%s",
                 static_cast<unsigned long long>(request_.connection),
                 request_.peer.to_string().c_str(), context_.max_message, more->text);
      end(CloseReason::limit_exceeded);
    }
    break;
  }
  return consumed;
}

bool StreamProtocol::holds_message(std::string_view input) const {
  return !input.empty() &&
         codec_.decode(input, context_.max_message).status == Decoded::Status::message;
}

std::size_t StreamProtocol::max_buffered() const noexcept {
  return context_.max_message + codec_.overhead();
}

bool StreamProtocol::handle(std::string_view message) {
  served_ = true;
  timer_.start(context_.stats, request_.listener);
  Reply reply(*this);
  bool ok =
      session_ ? call_guarded(request_, "on_message", [&] { session_->on_message(message, reply); })
               : call_handler(context_.handler, request_, message, reply);
  if (!ok) {
    context_.stats.error(ErrorKind::handler_exception, request_.listener);
    end(CloseReason::handler_failed);
    return false;
  }
  if (asked_) {
    end(*asked_ == Ending::abort ? CloseReason::handler_aborted : CloseReason::handler_closed);
    return false;
  }
  return true;
}

bool StreamProtocol::flush_first() const noexcept { return !ending_ || graceful(*ending_); }

bool StreamProtocol::reset() const noexcept { return ending_ && resets(*ending_); }

void StreamProtocol::end(CloseReason reason) {
  if (ending_) return;
  ending_ = reason;
  if (!graceful(reason)) out_.consume(out_.size());
  if (session_) {
    Discard discard;
    Reply reply = graceful(reason) ? Reply(*this) : Reply(discard);
    if (!call_guarded(request_, "on_close", [&] { session_->on_close(reason, reply); }))
      context_.stats.error(ErrorKind::handler_exception, request_.listener);
    session_.reset();
  }
  context_.stats.connection_closed(request_.listener, reason);
}

std::span<char> StreamProtocol::allocate(std::size_t size) {
  return append_reply(out_, codec_, size);
}

void StreamProtocol::end(Ending how) {
  // An abort wins over a close asked in the same call.
  if (!asked_ || how == Ending::abort) asked_ = how;
}

}  // namespace prefork
