// One client connection as a state machine driven by epoll events. The
// driver owns the connections, decides when each request starts, and keeps
// the time; a connection only moves bytes and says when its reply is whole.
#pragma once

#include <sys/epoll.h>

#include <prefork/address.hpp>
#include <prefork/unique_fd.hpp>

#include <cstddef>
#include <cstdint>

#include "errors.hpp"
#include "exchange.hpp"

namespace bench {

// What the connections of one driver thread share.
struct ConnectionContext {
  const prefork::Address* target;
  const Exchange* exchange;
  bool new_connection;  // TCP: close after every reply, connect for every request
  // IPv4 --new-connection: the next source address in 127.1.0.0/16, see
  // StreamConnection::start_connect(); null otherwise.
  std::uint32_t* source_sequence;
  int epoll_fd;
  char* scratch;  // every reply is read here: no per-connection buffer
  std::size_t scratch_size;
};

class Connection {
 public:
  enum class Step {
    waiting,  // for more events
    done,     // the reply is whole and correct
    failed,   // see failure(); the socket is closed, the next begin() reopens it
  };

  // For the driver.
  explicit Connection(const ConnectionContext& context, std::uint32_t id) noexcept
      : context_(context), id_(id) {}
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Opens the socket ahead of the first request, so that it does not pay for
  // the connect. Failures are quiet: the first request reconnects.
  virtual void open() noexcept = 0;
  // Starts one request, connecting first when there is no socket.
  virtual Step begin() noexcept = 0;
  // An epoll event for this socket (its data.u32 is id()). Events outside a
  // request (the server closing an idle connection) are handled quietly.
  virtual Step on_event(std::uint32_t events) noexcept = 0;
  // True while a connect started by open() is under way.
  bool connecting() const noexcept { return state_ == State::connecting; }
  // Abandons the request (timeout): closes the socket.
  void reset() noexcept {
    fd_.reset();
    state_ = State::closed;
    in_request_ = false;
  }
  const Failure& failure() const noexcept { return failure_; }
  std::uint32_t id() const noexcept { return id_; }

 protected:
  enum class State { closed, connecting, open };

  // Records the failure and closes the socket.
  Step fail(ErrorKind kind, const char* what, int error) noexcept {
    failure_ = {kind, what, error};
    reset();
    return Step::failed;
  }
  // Adds the socket to the driver's epoll, edge-triggered: one registration
  // for the socket's whole life, no epoll_ctl per request.
  bool watch(std::uint32_t events) noexcept {
    epoll_event event{};
    event.events = events | EPOLLET;
    event.data.u32 = id_;
    return ::epoll_ctl(context_.epoll_fd, EPOLL_CTL_ADD, fd_.get(), &event) == 0;
  }

  const ConnectionContext& context_;
  prefork::UniqueFd fd_;
  State state_ = State::closed;
  bool in_request_ = false;

 private:
  std::uint32_t id_;
  Failure failure_;
};

}  // namespace bench
