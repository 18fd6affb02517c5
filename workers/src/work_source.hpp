// Where a blocking worker (process or thread) gets its next piece of work:
// an accepted connection or a received datagram, by the accept strategy.
//   shared, lock, flock, reuseport: accept() on the listeners (blocking when
//     the one listener is a blocking socket, else after poll()), inside the
//     gate when there is one;
//   exclusive: epoll_wait() with EPOLLEXCLUSIVE, then accept();
//   pass: a connection the master accepted, received over a Unix socket.
#pragma once

#include <prefork/listener.hpp>
#include <prefork/models.hpp>

#include <poll.h>

#include <memory>
#include <span>
#include <vector>

#include "accept_gate.hpp"
#include "datagram.hpp"
#include "stop_signal.hpp"

namespace prefork {

struct Work {
  enum class Kind { connection, datagram, stop } kind = Kind::stop;
  UniqueFd fd;  // connection
  Address peer;
  std::size_t listener = 0;
  // datagram: received into datagram_buffer(); handle with service->handle.
  DatagramService* service = nullptr;
  std::size_t length = 0;
};

class WorkSource {
 public:
  // `gate` may be null (no turn-taking); `channel` is used by pass only.
  WorkSource(std::span<Listener> listeners, Accept strategy, AcceptGate* gate, StopSignal& stop,
             Handler& handler, SlotWriter& stats, unsigned worker_slot, int channel,
             std::size_t max_message);
  WorkSource(const WorkSource&) = delete;
  WorkSource& operator=(const WorkSource&) = delete;
  ~WorkSource();

  // Blocks until there is work, or a stop (Kind::stop).
  Work next();
  // pass: tells the master this worker can take the next connection.
  void ready_for_more();

  char* datagram_buffer() noexcept { return buffer_.get(); }

 private:
  Work next_blocking_accept();
  Work next_polled();
  Work next_exclusive();
  Work next_passed();
  Work receive_passed(int flags = 0);
  Work take_queued();
  static void trace_stop_once();
  // Takes what listener `index` has, if anything is left when we get there.
  Work take(std::size_t index);

  std::span<Listener> listeners_;
  Accept strategy_;
  AcceptGate* gate_;
  StopSignal& stop_;
  SlotWriter& stats_;
  int channel_;
  std::vector<pollfd> poll_set_;     // stop fd, [channel], listeners
  std::vector<std::size_t> polled_;  // listener index of each poll_set_ entry
  int epoll_fd_ = -1;
  std::vector<std::unique_ptr<DatagramService>> datagrams_;
  static constexpr std::size_t buffer_size = 64 * 1024 + 1;
  std::unique_ptr<char[]> buffer_ = std::make_unique_for_overwrite<char[]>(buffer_size);
  std::size_t next_start_ = 0;  // round-robin over ready listeners
  // take_queued(): the listener it empties now, and how many it took.
  std::size_t queued_next_ = 0;
  unsigned queued_taken_ = 0;
};

}  // namespace prefork
