// The blocking handler: socketserver's StreamRequestHandler. A
// ConnectionHandler takes a whole TCP connection and loops over it with
// blocking reads and writes, as the lesson's Python handlers loop over
// recv(); the worker's thread or process is its for as long as it runs.
//
//   class Echo final : public prefork::ConnectionHandler {
//     void handle(prefork::Connection& connection) override {
//       while (auto line = connection.read_line()) connection.write(*line + "\n");
//     }
//   };
//
// Only the blocking models run it (iterative, fork-per-connection,
// thread-per-connection, prefork, prethreaded, hybrid); serve() refuses it
// under --model event (exit 2). Datagrams still go to handle_datagram().
#pragma once

#include <prefork/handler.hpp>

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace prefork {

// One TCP connection, read and written with blocking calls. Every read
// returns early, with "the connection ended", when the peer closed or reset
// it, or when the worker stops while the connection waits idle between
// messages (a read already under way is finished first); reason() says
// which.
class Connection {
 public:
  // For handlers: who and where (Request::connection is its id).
  virtual const Request& request() const noexcept = 0;

  // Up to into.size() bytes, waiting for at least one; 0: the connection
  // ended. As socket.recv(n).
  virtual std::size_t read(std::span<char> into) = 0;
  // Exactly into.size() bytes; false when the connection ended first.
  virtual bool read_exactly(std::span<char> into) = 0;
  // One line without its LF or CRLF (valid until the next read); nullopt
  // when the connection ended first, or the line is longer than the
  // server's --max-message (then reason() is limit_exceeded). As
  // rfile.readline().
  virtual std::optional<std::string_view> read_line() = 0;
  // All of `bytes`; false when the connection failed. As sendall(). Still
  // works once a read returned "ended" (the client's half-close, a line
  // over the limit, a stop); not after close() or abort().
  virtual bool write(std::string_view bytes) = 0;

  // Ends the connection once what was written is sent (the default when
  // handle() returns); abort() resets it (RST) at once.
  virtual void close() = 0;
  virtual void abort() = 0;
  // Why the connection ended, once a read returned "ended".
  virtual std::optional<CloseReason> reason() const noexcept = 0;

 protected:
  ~Connection() = default;
};

class ConnectionHandler : public Handler {
 public:
  // To override: serve `connection` to its end. An exception is logged and
  // the connection reset (CloseReason::handler_failed).
  virtual void handle(Connection& connection) = 0;
  using Handler::handle;
};

// A function or lambda taking a Connection&, as a ConnectionHandler.
template <typename Function>
requires std::invocable<Function&, Connection&>
class ConnectionFunctionHandler final : public ConnectionHandler {
 public:
  explicit ConnectionFunctionHandler(Function function) : function_(std::move(function)) {}
  void handle(Connection& connection) override { function_(connection); }
  using ConnectionHandler::handle;

 private:
  Function function_;
};

}  // namespace prefork
