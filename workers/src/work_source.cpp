#include "work_source.hpp"

#include "accept_failure.hpp"

#include <prefork/core/passed_connection.hpp>
#include <prefork/core/trace.hpp>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <prefork/error.hpp>
#include <prefork/log.hpp>

namespace prefork {

namespace {

// How long a worker that waits in poll() or epoll_wait() sleeps before it
// beats its heartbeat. Those sleeping in accept() or recvmsg() themselves
// (Stevens' designs) beat when they get work, and say they are waiting.
constexpr int idle_wait_ms = 1000;

// Marks the slot as waiting for work for as long as it lives. The heartbeat
// is fresh when the wait starts: the models beat after each piece of work.
class Waiting {
 public:
  explicit Waiting(SlotWriter& stats) noexcept : stats_(stats) { stats_.waiting(true); }
  ~Waiting() { stats_.waiting(false); }
  Waiting(const Waiting&) = delete;
  Waiting& operator=(const Waiting&) = delete;

 private:
  SlotWriter& stats_;
};

bool is_blocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) == 0;
}

// The gate's critical section; leaves on every path.
class Turn {
 public:
  explicit Turn(AcceptGate* gate) : gate_(gate), held_(gate == nullptr || gate->enter()) {}
  ~Turn() {
    if (gate_ != nullptr && held_) gate_->leave();
  }
  bool held() const noexcept { return held_; }

 private:
  AcceptGate* gate_;
  bool held_;
};

}  // namespace

WorkSource::WorkSource(std::span<Listener> listeners, Accept strategy, AcceptGate* gate,
                       StopSignal& stop, Handler& handler, SlotWriter& stats, unsigned worker_slot,
                       int channel, std::size_t max_message)
    : listeners_(listeners),
      strategy_(strategy),
      gate_(gate),
      stop_(stop),
      stats_(stats),
      channel_(channel) {
  datagrams_.resize(listeners.size());
  poll_set_.push_back({stop.fd(), POLLIN, 0});
  polled_.push_back(0);
  if (strategy == Accept::pass) {
    poll_set_.push_back({channel, POLLIN, 0});
    polled_.push_back(0);
  }
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const Listener& listener = listeners[i];
    if (listener.protocol == Protocol::datagram)
      datagrams_[i] = std::make_unique<DatagramService>(listener.fd.get(), i, handler, stats,
                                                        worker_slot, max_message);
    // With pass, the master accepts TCP; the workers still read UDP.
    if (strategy == Accept::pass && listener.protocol != Protocol::datagram) continue;
    poll_set_.push_back({listener.fd.get(), POLLIN, 0});
    polled_.push_back(i);
  }
  if (strategy == Accept::exclusive) {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw SystemError("epoll_create1", errno);
    for (std::size_t k = 0; k < poll_set_.size(); ++k) {
      epoll_event event{};
      // The stop fd wakes everyone; a listener wakes one waiter.
      event.events = k == 0 ? EPOLLIN : EPOLLIN | EPOLLEXCLUSIVE;
      event.data.u64 = k;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, poll_set_[k].fd, &event) != 0)
        throw SystemError("epoll_ctl(ADD)", errno);
    }
  }
  if (strategy == Accept::pass) {
    if (poll_set_.size() == 2) {
      // No UDP to watch: receive_passed() may block (our own end of the pair).
      int flags = ::fcntl(channel, F_GETFL);
      if (flags < 0 || ::fcntl(channel, F_SETFL, flags & ~O_NONBLOCK) != 0)
        throw SystemError("fcntl", errno, "the channel from the master");
    }
    ready_for_more();
  }
}

// --trace: the first thread of the process that sees the stop says so.
void WorkSource::trace_stop_once() {
  static std::atomic<bool> traced{false};
  if (!trace_enabled() || traced.exchange(true)) return;
  const int number = StopSignal::signal_number();
  const char* how = StopSignal::fast() ? "fast" : "graceful";
  if (number != 0)
    trace("stop: received %s, %s", signal_name(number).c_str(), how);
  else
    trace("stop: asked from inside the worker, %s", how);
}

WorkSource::~WorkSource() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

Work WorkSource::next() {
  for (;;) {
    // USR1, between pieces of work (it interrupts the wait for them).
    StopSignal::reopen_log_if_asked();
    // pass: what the master already accepted and sent is in flight: serve
    // it before stopping (it would be reset when the master exits).
    if (stop_.requested()) {
      // As the event model's: the slot says so while the drain runs.
      stats_.state(WorkerState::stopping);
      trace_stop_once();
      if (strategy_ == Accept::pass)
        if (Work work = receive_passed(MSG_DONTWAIT); work.kind != Work::Kind::stop) return work;
      return take_queued();
    }
    Work work;
    if (strategy_ == Accept::pass)
      work = next_passed();
    else if (strategy_ == Accept::exclusive)
      work = next_exclusive();
    else if (listeners_.size() == 1 && is_blocking(listeners_[0].fd.get()))
      work = next_blocking_accept();
    else
      work = next_polled();
    if (work.kind != Work::Kind::stop) return work;
    if (stop_.requested()) {
      trace_stop_once();
      return work;
    }
    // Nothing this time (lost the race, interrupted, or a waiting period
    // over): an idle worker still shows it is alive, then tries again.
    stats_.beat();
  }
}

// Stevens' pre-forked server: sleep in accept() itself (or on the lock
// before it), marked as waiting in the slot while asleep.
Work WorkSource::next_blocking_accept() {
  Waiting asleep(stats_);
  Turn turn(gate_);
  if (!turn.held() || stop_.requested()) return {};
  return take(0);
}

Work WorkSource::next_polled() {
  Turn turn(gate_);
  if (!turn.held() || stop_.requested()) return {};
  if (const int n = ::poll(poll_set_.data(), poll_set_.size(), idle_wait_ms); n <= 0) {
    if (n < 0 && errno != EINTR) log_sys_error("poll", errno);
    return {};
  }
  if (poll_set_[0].revents != 0) return {};  // stop
  const std::size_t count = poll_set_.size() - 1;
  for (std::size_t k = 0; k < count; ++k) {
    std::size_t at = 1 + (next_start_ + k) % count;
    if (poll_set_[at].revents == 0) continue;
    next_start_ = (next_start_ + k + 1) % count;
    Work work = take(polled_[at]);
    if (work.kind != Work::Kind::stop) return work;
  }
  return {};
}

Work WorkSource::next_exclusive() {
  epoll_event event{};
  int n = ::epoll_wait(epoll_fd_, &event, 1, idle_wait_ms);
  if (n <= 0) {
    if (n < 0 && errno != EINTR) log_sys_error("epoll_wait", errno);
    return {};
  }
  if (event.data.u64 == 0) return {};  // stop
  return take(polled_[event.data.u64]);
}

Work WorkSource::next_passed() {
  // Only the channel to wait on: sleep in recvmsg() itself, as a worker of
  // the other strategies sleeps in accept() (a stop interrupts it).
  if (poll_set_.size() == 2) {
    Waiting asleep(stats_);
    return receive_passed();
  }
  if (const int n = ::poll(poll_set_.data(), poll_set_.size(), idle_wait_ms); n <= 0) {
    if (n < 0 && errno != EINTR) log_sys_error("poll", errno);
    return {};
  }
  if (poll_set_[0].revents != 0) return {};
  for (std::size_t k = 2; k < poll_set_.size(); ++k)  // UDP first: it cannot wait
    if (poll_set_[k].revents != 0) {
      Work work = take(polled_[k]);
      if (work.kind != Work::Kind::stop) return work;
    }
  if (poll_set_[1].revents == 0) return {};
  return receive_passed();
}

// After a stop: what waits in the listeners' queues, while any (and at most
// queued_limit pieces). During a reload the master and the other workers
// still hold every listener, but when the whole server stops (or with
// reuseport, where the socket is this worker's), the last close() resets
// the queued connections and drops the queued datagrams. A blocking
// listener is left alone: accept() could sleep on it when another holder
// takes the last connection (datagrams are received with MSG_DONTWAIT).
Work WorkSource::take_queued() {
  constexpr unsigned queued_limit = 1024;
  while (queued_taken_ < queued_limit && queued_next_ < listeners_.size()) {
    const std::size_t index = queued_next_;
    const Listener& listener = listeners_[index];
    const bool takes = listener.protocol == Protocol::datagram ||
                       (strategy_ != Accept::pass && !is_blocking(listener.fd.get()));
    Work work = takes ? take(index) : Work{};
    if (work.kind == Work::Kind::stop) {
      ++queued_next_;  // this one is empty now
      continue;
    }
    ++queued_taken_;
    return work;
  }
  return {};
}

Work WorkSource::receive_passed(int flags) {
  Received received = prefork::receive_passed(channel_, flags);
  if (received.result <= 0) {
    if (received.result == 0) {
      log_info("the master closed the channel: stopping");
      stop_.request();
    } else if (errno != EINTR && errno != EAGAIN) {
      log_sys_error("recvmsg", errno, "on the channel from the master");
    }
    return {};
  }
  if (!received.well_formed() || received.passed.listener >= listeners_.size()) {
    log_info("the master sent a malformed connection message");
    return {};
  }
  Work work;
  work.fd = std::move(received.fd);
  work.kind = Work::Kind::connection;
  work.listener = received.passed.listener;
  work.peer = received.peer();
  return work;
}

Work WorkSource::take(std::size_t index) {
  const Listener& listener = listeners_[index];
  Work work;
  if (listener.protocol == Protocol::datagram) {
    std::size_t length = 0;
    if (datagrams_[index]->receive(buffer_.get(), buffer_size, length) !=
        DatagramService::Received::datagram)
      return {};
    work.kind = Work::Kind::datagram;
    work.service = datagrams_[index].get();
    work.length = length;
    work.listener = index;
    return work;
  }
  *work.peer.length_pointer() = Address::capacity();
  // Accepted sockets are blocking whatever the listener is: the models
  // that get them serve with blocking I/O.
  int fd = ::accept4(listener.fd.get(), work.peer.data(), work.peer.length_pointer(), SOCK_CLOEXEC);
  if (fd < 0) {
    if (accept_failed(errno, listener, index, stats_) == AcceptFailure::exhausted) {
      // Wait (or for a stop) instead of spinning on the queued connection.
      pollfd stop{stop_.fd(), POLLIN, 0};
      ::poll(&stop, 1, static_cast<int>(accept_pause.count()));
    }
    return {};
  }
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  work.kind = Work::Kind::connection;
  work.fd.reset(fd);
  work.listener = index;
  return work;
}

void WorkSource::ready_for_more() {
  if (strategy_ != Accept::pass) return;
  char ready = 'r';
  if (::send(channel_, &ready, 1, MSG_NOSIGNAL) < 0 && errno != EINTR)
    log_sys_error("send", errno, "on the channel to the master");
}

}  // namespace prefork
