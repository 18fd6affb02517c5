// The handler API: what an embedder writes.
//
// As in Python's socketserver, the handler never knows how it is run: the
// same object serves in a forked worker, a spawned worker, or (later) a
// thread. One call per request: one frame, one datagram, or one chunk read
// from a raw stream. A reply is optional.
#pragma once

#include <prefork/address.hpp>
#include <prefork/listener.hpp>

#include <cstddef>
#include <cstring>
#include <span>
#include <string_view>

namespace prefork {

// Where a reply goes; implemented by the worker runtime per protocol.
class ReplySink {
 public:
  virtual std::span<char> allocate(std::size_t size) = 0;

 protected:
  ~ReplySink() = default;
};

// The answer to one request. Each allocate()/send() is one message: one frame
// on a framed listener, one datagram on UDP, plain bytes on a raw stream.
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

 private:
  ReplySink* sink_;
};

// What the handler is told about a request.
struct Request {
  Protocol protocol;
  std::size_t listener;  // index in the server's listener list
  const Address& peer;   // the client
  unsigned worker_slot;  // which worker is serving
};

// What a worker knows about itself, for per-worker set-up.
struct WorkerInfo {
  unsigned slot;
  unsigned long long generation;  // bumps each time the slot is refilled
  bool spawned;                   // a new program image (spawn) or a fork
};

class Handler {
 public:
  virtual ~Handler() = default;

  // To override: one request of any protocol. The default ignores it.
  virtual void handle(const Request& request, std::string_view data, Reply& reply);

  // May be overridden for one protocol; each default calls handle().
  virtual void handle_frame(const Request& request, std::string_view payload, Reply& reply);
  virtual void handle_datagram(const Request& request, std::string_view datagram, Reply& reply);
  virtual void handle_stream(const Request& request, std::string_view chunk, Reply& reply);

  // May be overridden: called in the worker process after fork or exec,
  // before it serves. Open per-worker resources (files, connections, RNG
  // seeds) here, never in a constructor that runs in the master.
  virtual void setup(const WorkerInfo& worker);
  // May be overridden: called once when the worker stops serving, also
  // after a graceful stop. Not called when the worker is killed.
  virtual void finish();
};

}  // namespace prefork
