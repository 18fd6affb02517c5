// The handler API: what an embedder writes.
//
// As in Python's socketserver, the handler never knows how it is run: the
// same code serves in a forked worker, a spawned worker, a thread. Three
// ways to write it, from the simplest:
//
//   1. A Handler subclass, or a plain function or lambda
//      (void(const Request&, std::string_view, Reply&)) given to serve() or
//      prefork_main(): one call per message, datagram or chunk.
//   2. A Handler whose open_session() returns a Session: one object per TCP
//      connection (socketserver's handler instance), with on_open,
//      on_message and on_close(reason). Messages are cut by the listener's
//      codec (codec.hpp), which the handler may choose.
//   3. A ConnectionHandler (connection.hpp): handle(Connection&) takes the
//      whole connection and loops over it with blocking reads and writes,
//      as socketserver's StreamRequestHandler; blocking models only.
//
// Concurrency, model by model (see the README's table):
//   - The Handler object: one per worker process (set up after the fork or
//     exec, never shared between processes). In event, iterative, prefork
//     and fork-per-connection only one thread calls it. In
//     thread-per-connection, prethreaded and hybrid, handle() and
//     open_session() run concurrently on the one object from several
//     threads: guard what they share.
//   - A Session: only ever called from one thread at a time, in every
//     model; it needs no lock of its own.
//   - setup() and finish(): once per worker process, in the worker, not
//     around each request (unlike socketserver's per-request setup()).
//   - State lives per process: what one worker changes, the others never
//     see (shared memory would have to be set up explicitly).
#pragma once

#include <prefork/address.hpp>
#include <prefork/close_reason.hpp>
#include <prefork/codec.hpp>
#include <prefork/listener.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace prefork {

// Where a reply goes; implemented by the worker runtime per protocol.
class ReplySink {
 public:
  virtual std::span<char> allocate(std::size_t size) = 0;
  enum class Ending { close, abort };
  virtual void end(Ending how) = 0;

 protected:
  ~ReplySink() = default;
};

// The answer to one message. Each allocate()/send() is one message, framed
// by the listener's codec: a frame, a line, a datagram, or plain bytes.
// Sending nothing is a valid answer.
class Reply {
 public:
  explicit Reply(ReplySink& sink) noexcept : sink_(&sink) {}

  // For handlers: room for one message of exactly `size` bytes, written in
  // place (no copy); valid until the next allocate()/send() or the return.
  std::span<char> allocate(std::size_t size) { return sink_->allocate(size); }

  void send(std::string_view bytes) {
    auto room = allocate(bytes.size());
    if (!bytes.empty()) std::memcpy(room.data(), bytes.data(), bytes.size());
  }

  // For handlers: close the connection once the replies sent so far are
  // written (HTTP/1.0, QUIT). Messages already received after this one are
  // not handled. No effect on a datagram.
  void close() { sink_->end(ReplySink::Ending::close); }
  // For handlers: reset the connection now (RST), dropping unsent replies:
  // a protocol error. No effect on a datagram.
  void abort() { sink_->end(ReplySink::Ending::abort); }

 private:
  ReplySink* sink_;
};

// What the handler is told about a request, or a session about its
// connection.
struct Request {
  Protocol protocol;
  std::size_t listener;  // index in the server's listener list
  const Address& peer;   // the client
  unsigned worker_slot;  // which worker is serving
  // The connection, numbered 1, 2, ... in this worker process (with the
  // worker's slot and generation, unique for the master's life); stable for
  // as long as the connection lives and named in the worker's log lines.
  // 0 for a datagram.
  std::uint64_t connection = 0;
};

// What a worker knows about itself, for per-worker set-up.
struct WorkerInfo {
  unsigned slot;
  unsigned long long generation;  // bumps each time the slot is refilled
  bool spawned;                   // a new program image (spawn) or a fork
};

// One TCP connection's own object, made by Handler::open_session() when the
// connection is accepted and destroyed when it ends. Called by one thread at
// a time in every model.
class Session {
 public:
  virtual ~Session() = default;

  // May be overridden: the connection is open; a greeting may be sent.
  virtual void on_open(Reply& reply);
  // To override: one whole message of this connection, cut by its codec.
  // An exception is logged, counted, and the connection reset
  // (CloseReason::handler_failed); the worker goes on.
  virtual void on_message(std::string_view message, Reply& reply) = 0;
  // May be overridden: the connection ends, and why; no call follows.
  // Last words sent here are written first where the connection can still
  // carry them (not after a reset, an abort or a failure).
  virtual void on_close(CloseReason reason, Reply& reply);
};

class Handler {
 public:
  virtual ~Handler() = default;

  // To override: one request of any protocol. The default ignores it.
  virtual void handle(const Request& request, std::string_view data, Reply& reply);

  // May be overridden for one protocol; each default calls handle().
  virtual void handle_frame(const Request& request, std::string_view payload, Reply& reply);
  virtual void handle_datagram(const Request& request, std::string_view datagram, Reply& reply);
  // A message of any other stream listener (a chunk, a line, ...).
  virtual void handle_stream(const Request& request, std::string_view chunk, Reply& reply);

  // May be overridden: a Session for a new TCP connection, which then gets
  // its messages instead of handle(). The default makes none.
  virtual std::unique_ptr<Session> open_session(const Request& connection);

  // May be overridden: how the bytes of a TCP listener are cut into
  // messages. The default: a 4-byte big-endian length prefix on framed
  // listeners, raw chunks on the others. The codec must outlive the worker.
  virtual const Codec& codec(std::size_t listener, Protocol protocol);

  // May be overridden: called in the worker process after fork or exec,
  // before it serves. Open per-worker resources (files, connections, RNG
  // seeds) here, never in a constructor that runs in the master.
  virtual void setup(const WorkerInfo& worker);
  // May be overridden: called once when the worker stops serving, also
  // after a graceful stop. Not called when the worker is killed.
  virtual void finish();
};

// A plain function or lambda as the handler: serve(config, function) and
// prefork_main(argc, argv, function, defaults) wrap it in this.
template <typename Function>
requires std::invocable<Function&, const Request&, std::string_view, Reply&>
class FunctionHandler final : public Handler {
 public:
  explicit FunctionHandler(Function function) : function_(std::move(function)) {}
  void handle(const Request& request, std::string_view data, Reply& reply) override {
    function_(request, data, reply);
  }

 private:
  Function function_;
};

}  // namespace prefork
