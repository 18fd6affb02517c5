#include "worker.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include <prefork/core/signal_pipe.hpp>
#include <prefork/core/slot_writer.hpp>
#include <prefork/core/trace.hpp>
#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include "accept_failure.hpp"
#include "connection.hpp"
#include "datagram.hpp"
#include "timer_list.hpp"

namespace prefork {

namespace {

using Clock = std::chrono::steady_clock;

// What an epoll event points at; a connection's is also its timer.
struct Watch : TimerNode {
  enum class Kind { signal, acceptor, datagram, connection } kind = Kind::signal;
  std::size_t index = 0;  // the listener
  // Reset when the connection closes; the Watch itself lives until the end
  // of the epoll batch, which may still hold events pointing at it.
  std::unique_ptr<Connection> connection;
  // The timeout it is armed for (when armed()).
  Connection::Waiting waiting = Connection::Waiting::idle;
};

class EventRuntime final : public Runtime {
 public:
  explicit EventRuntime(const WorkerSetup& setup);
  int serve() override;

 private:
  void start_serving();
  void serve_event(const epoll_event& event);
  // false: the queue is empty (or accepting failed).
  bool accept_connections(std::size_t listener);
  void pause_accepting();
  void resume_accepting_if_due();
  // Watches the TCP listeners while the worker may accept: not draining,
  // not paused, below its --max-connections.
  void update_accepting();
  void watch_tcp_listeners(bool on);
  void serve_connection(Watch& watch, std::uint32_t events);
  void update_interest(Watch& watch);
  void close_connection(Watch& watch);
  // After a connection's events: re-arms its timer when what it waits for
  // changed or it made progress.
  void arm_timeout(Watch& watch);
  // The list of the connection's listener for what it waits for.
  TimerList& timers(std::size_t listener, Connection::Waiting waiting) noexcept;
  void expire_timeouts();
  // epoll_wait's timeout, shortened to the nearest connection deadline.
  int until_next_timeout(int timeout) const noexcept;
  void handle_signals();
  void begin_drain();
  void take_queued_work();
  void end_first_request_grace();
  void forget_closed();
  void beat_heartbeat();
  void add_watch(int fd, std::uint32_t events, Watch* watch);

  static constexpr std::size_t scratch_size = 64 * 1024;
  static constexpr unsigned accept_budget = 64;
  static constexpr unsigned datagram_budget = 64;

  const WorkerSetup& setup_;
  SlotWriter stats_;
  SignalPipe signals_;
  UniqueFd epoll_;
  // The largest UDP payload is 65,507 bytes (IPv4); 64 KiB + 1 can hold any
  // datagram and still notice MSG_TRUNC.
  std::unique_ptr<char[]> scratch_ = std::make_unique_for_overwrite<char[]>(scratch_size + 1);
  StreamContext stream_;
  ConnectionContext context_;
  Watch signal_watch_;
  std::unique_ptr<Watch[]> listener_watches_;
  std::vector<std::unique_ptr<DatagramService>> datagrams_;
  std::unordered_map<Watch*, std::unique_ptr<Watch>> connections_;
  std::vector<Watch*> closed_;  // freed after the batch that closed them
  bool draining_ = false;
  bool fast_stop_ = false;  // INT, QUIT: leave the loop at once
  // After EMFILE and the like: stop watching the listeners for a while.
  bool accept_paused_ = false;
  // At the cap the listeners leave the epoll set, so that the connections
  // wait in the kernel's backlog (another worker takes them) instead of
  // being accepted and closed.
  const std::size_t cap_;
  std::size_t open_ = 0;  // connections accepted and not yet closed
  bool tcp_watched_ = true;
  Clock::time_point accept_resume_at_{};
  Clock::time_point drain_deadline_{};
  // While draining: until then, a connection that has not sent its first
  // request is kept (first_request_grace).
  Clock::time_point first_request_deadline_{};
  bool first_request_grace_over_ = false;
  // The loop turn's time: read once after each epoll_wait, used by every
  // timer armed in that turn.
  Clock::time_point now_ = Clock::now();
  // A list holds one duration (timer_list.hpp): one set per listener,
  // whose timeouts may be its own.
  struct ListenerTimers {
    explicit ListenerTimers(const ConnectionTimeouts& timeouts) noexcept
        : idle(timeouts.idle), read(timeouts.read), write(timeouts.write) {}
    TimerList idle, read, write;
  };
  std::deque<ListenerTimers> timers_;
};

EventRuntime::EventRuntime(const WorkerSetup& setup)
    : setup_(setup),
      stats_(setup.slot, false, setup.params.worker_stats),
      signals_({SIGTERM, SIGINT, SIGQUIT, SIGUSR1}),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      stream_{.handler = setup.handler,
              .stats = stats_,
              .max_message = setup.params.max_message,
              .worker_slot = setup.info.slot,
              .timeouts = listener_timeouts(setup.params, setup.listeners.size())},
      context_{
          .stream = stream_, .timer = {}, .scratch = scratch_.get(), .scratch_size = scratch_size},
      cap_(connection_cap(setup.params.model, setup.params.accept, setup.params.max_connections,
                          setup.params.threads)) {
  if (!epoll_) throw SystemError("epoll_create1", errno);
  for (const ConnectionTimeouts& timeouts : stream_.timeouts) timers_.emplace_back(timeouts);
  stats_.retire_after(setup.params.max_requests);
  start_serving();
}

void EventRuntime::add_watch(int fd, std::uint32_t events, Watch* watch) {
  epoll_event event{};
  event.events = events;
  event.data.ptr = watch;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0)
    throw SystemError("epoll_ctl(ADD)", errno);
}

void EventRuntime::start_serving() {
  add_watch(signals_.fd(), EPOLLIN, &signal_watch_);
  listener_watches_ = std::make_unique<Watch[]>(setup_.listeners.size());
  datagrams_.resize(setup_.listeners.size());
  for (std::size_t i = 0; i < setup_.listeners.size(); ++i) {
    const Listener& listener = setup_.listeners[i];
    bool udp = listener.protocol == Protocol::datagram;
    // The loop must never block in accept or recv (systemd may hand us
    // blocking sockets).
    int flags = ::fcntl(listener.fd.get(), F_GETFL);
    if (flags < 0 ||
        ((flags & O_NONBLOCK) == 0 && ::fcntl(listener.fd.get(), F_SETFL, flags | O_NONBLOCK) != 0))
      throw SystemError("fcntl(O_NONBLOCK)", errno, listener.local.to_string());
    listener_watches_[i].kind = udp ? Watch::Kind::datagram : Watch::Kind::acceptor;
    listener_watches_[i].index = i;
    if (udp) {
      datagrams_[i] =
          std::make_unique<DatagramService>(listener.fd.get(), i, setup_.handler, stats_,
                                            setup_.info.slot, setup_.params.max_message);
    }
    // EPOLLEXCLUSIVE: a new connection or datagram wakes one worker, not all
    // of them (the thundering herd).
    add_watch(listener.fd.get(), EPOLLIN | EPOLLEXCLUSIVE, &listener_watches_[i]);
  }
}

int EventRuntime::serve() {
  beat_heartbeat();
  epoll_event events[64];
  while ((!draining_ || !connections_.empty()) && !fast_stop_) {
    int timeout = 1000;
    if (draining_) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(drain_deadline_ - Clock::now());
      if (left.count() <= 0) {
        log_info("graceful timeout: closing %zu unfinished connections", connections_.size());
        break;
      }
      timeout = static_cast<int>(std::min<long>(left.count(), timeout));
      if (!first_request_grace_over_) {
        auto grace =
            std::chrono::ceil<std::chrono::milliseconds>(first_request_deadline_ - Clock::now());
        if (grace.count() <= 0) {
          end_first_request_grace();
          continue;
        }
        timeout = static_cast<int>(std::min<long>(grace.count(), timeout));
      }
    }
    if (accept_paused_) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(accept_resume_at_ - Clock::now());
      timeout = static_cast<int>(std::clamp<long>(left.count(), 0, timeout));
    }
    int n = ::epoll_wait(epoll_.get(), events, 64, until_next_timeout(timeout));
    now_ = Clock::now();
    if (n < 0) {
      if (errno == EINTR) continue;
      log_sys_error("epoll_wait", errno);
      return 1;
    }
    for (int i = 0; i < n && !fast_stop_; ++i) serve_event(events[i]);
    forget_closed();
    if (!fast_stop_) expire_timeouts();
    resume_accepting_if_due();
    update_accepting();
    beat_heartbeat();
  }
  // A fast stop leaves here with connections open: destroying them closes
  // each (its session hears worker_stopping), whatever was in flight.
  if (fast_stop_ && !connections_.empty())
    log_info("fast stop: closing %zu connections", connections_.size());
  return 0;
}

void EventRuntime::serve_event(const epoll_event& event) {
  auto* watch = static_cast<Watch*>(event.data.ptr);
  switch (watch->kind) {
    case Watch::Kind::signal:
      handle_signals();
      break;
    case Watch::Kind::acceptor:
      if (!draining_) accept_connections(watch->index);
      break;
    case Watch::Kind::datagram:
      if (!draining_)
        datagrams_[watch->index]->on_readable(scratch_.get(), scratch_size + 1, datagram_budget);
      break;
    case Watch::Kind::connection:
      if (watch->connection) serve_connection(*watch, event.events);
      break;
  }
}

void EventRuntime::forget_closed() {
  for (Watch* watch : closed_) connections_.erase(watch);
  closed_.clear();
}

bool EventRuntime::accept_connections(std::size_t index) {
  const Listener& listener = setup_.listeners[index];
  for (unsigned i = 0; i < accept_budget; ++i) {
    if (open_ >= cap_) {
      // At the cap: what is queued stays queued (another worker, or this
      // one once a connection closes, takes it).
      watch_tcp_listeners(false);
      return false;
    }
    Address peer;
    *peer.length_pointer() = Address::capacity();
    int fd = ::accept4(listener.fd.get(), peer.data(), peer.length_pointer(),
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      switch (accept_failed(errno, listener, index, stats_)) {
        case AcceptFailure::next:
          continue;
        case AcceptFailure::exhausted:
          pause_accepting();
          return false;
        default:
          return false;
      }
    }
    // Requests and replies are whole messages: do not let Nagle hold a
    // reply's tail back waiting for an ACK.
    int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);

    auto watch = std::make_unique<Watch>();
    watch->kind = Watch::Kind::connection;
    watch->index = index;
    watch->connection =
        std::make_unique<Connection>(UniqueFd(fd), peer, listener.protocol, index, context_);
    try {
      add_watch(fd, EPOLLIN, watch.get());
    } catch (const SystemError& e) {
      stats_.error(ErrorKind::other, index);
      log_info("%s", e.what());
      continue;
    }
    watch->connection->registered = EPOLLIN;
    Watch* raw = watch.get();
    connections_.emplace(raw, std::move(watch));
    ++open_;
    if (raw->connection->open() == Connection::Next::close) {
      close_connection(*raw);
    } else {
      update_interest(*raw);
      if (raw->connection) arm_timeout(*raw);
    }
  }
  return true;
}

void EventRuntime::serve_connection(Watch& watch, std::uint32_t events) {
  Connection& connection = *watch.connection;
  Connection::Next next = Connection::Next::keep;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) next = connection.on_readable();
  if (next == Connection::Next::keep && (events & EPOLLOUT)) next = connection.on_writable();
  if (next == Connection::Next::keep && draining_)
    next = connection.on_stop(first_request_grace_over_);
  if (next == Connection::Next::close) {
    close_connection(watch);
  } else {
    update_interest(watch);
    if (watch.connection) arm_timeout(watch);
  }
}

TimerList& EventRuntime::timers(std::size_t listener, Connection::Waiting waiting) noexcept {
  ListenerTimers& set = timers_[listener];
  switch (waiting) {
    case Connection::Waiting::read:
      return set.read;
    case Connection::Waiting::write:
      return set.write;
    default:
      return set.idle;
  }
}

void EventRuntime::arm_timeout(Watch& watch) {
  Connection& connection = *watch.connection;
  const Connection::Waiting waiting = connection.waiting();
  const bool progress = connection.take_progress();
  TimerList& list = timers(connection.request().listener, waiting);
  if (watch.armed() && waiting == watch.waiting) {
    // A read timeout runs from the message's first byte however the rest
    // trickles in: only a finished message restarts it.
    if (!progress) return;
    // Lazy, as nginx's timers: a deadline that would move by less than
    // 1/16 of the timeout (at most 300 ms) stays, so that a busy
    // keep-alive connection is not relinked on every request.
    if (watch.deadline + list.slack() > now_ + list.duration()) return;
  }
  // A disabled timeout (0) leaves it disarmed; it is looked at again after
  // its next event.
  watch.waiting = waiting;
  list.arm(watch, now_);
}

int EventRuntime::until_next_timeout(int timeout) const noexcept {
  const TimerNode* nearest = nullptr;
  for (const ListenerTimers& set : timers_)
    for (const TimerList* list : {&set.idle, &set.read, &set.write}) {
      const TimerNode* first = list->first();
      if (first != nullptr && (nearest == nullptr || first->deadline < nearest->deadline))
        nearest = first;
    }
  if (nearest == nullptr) return timeout;
  // From the turn's time: at most the turn's work late, one clock read a
  // turn.
  auto left = std::chrono::ceil<std::chrono::milliseconds>(nearest->deadline - now_);
  return static_cast<int>(std::clamp<long>(left.count(), 0, timeout));
}

// Once per loop turn: the connections whose deadline has passed are
// closed, each told why (its session's on_close, the scoreboard).
void EventRuntime::expire_timeouts() {
  for (ListenerTimers& set : timers_)
    for (auto [list, reason] : {std::pair{&set.idle, CloseReason::idle_timeout},
                                {&set.read, CloseReason::read_timeout},
                                {&set.write, CloseReason::write_timeout}}) {
      while (TimerNode* node = list->pop_expired(now_)) {
        Watch& watch = static_cast<Watch&>(*node);
        if (!watch.connection) continue;
        log_debug("closing conn %llu from %s: %s",
                  static_cast<unsigned long long>(watch.connection->request().connection),
                  watch.connection->request().peer.to_string().c_str(),
                  close_reason_name(reason).data());
        watch.connection->expire(reason);
        close_connection(watch);
      }
    }
  if (!closed_.empty()) forget_closed();
}

void EventRuntime::pause_accepting() {
  if (accept_paused_) return;
  accept_paused_ = true;
  accept_resume_at_ = Clock::now() + accept_pause;
  watch_tcp_listeners(false);
  // accept_failed() has said so, at most once a second.
}

void EventRuntime::resume_accepting_if_due() {
  if (!accept_paused_ || draining_ || Clock::now() < accept_resume_at_) return;
  accept_paused_ = false;
}

void EventRuntime::update_accepting() {
  watch_tcp_listeners(!draining_ && !accept_paused_ && open_ < cap_);
}

void EventRuntime::watch_tcp_listeners(bool on) {
  if (on == tcp_watched_) return;
  tcp_watched_ = on;
  for (std::size_t i = 0; i < setup_.listeners.size(); ++i) {
    const Listener& listener = setup_.listeners[i];
    if (listener.protocol == Protocol::datagram) continue;
    if (on)
      add_watch(listener.fd.get(), EPOLLIN | EPOLLEXCLUSIVE, &listener_watches_[i]);
    else if (::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener.fd.get(), nullptr) != 0)
      log_sys_error("epoll_ctl(DEL)", errno, "%s", listener.local.to_string().c_str());
  }
}

void EventRuntime::update_interest(Watch& watch) {
  Connection& connection = *watch.connection;
  std::uint32_t wanted = connection.interest();
  if (wanted == connection.registered) return;
  epoll_event event{};
  event.events = wanted;
  event.data.ptr = &watch;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.fd(), &event) != 0) {
    log_sys_error("epoll_ctl(MOD)", errno);
    close_connection(watch);
    return;
  }
  connection.registered = wanted;
}

void EventRuntime::close_connection(Watch& watch) {
  watch.cancel();
  // Closing the descriptor removes it from epoll: no other process holds
  // this accepted socket.
  if (watch.connection) --open_;
  watch.connection.reset();
  closed_.push_back(&watch);
}

// What each signal means: worker_signals.hpp.
void EventRuntime::handle_signals() {
  while (int number = signals_.next()) {
    if (number == SIGUSR1) {
      reopen_log();
    } else if (number == SIGTERM) {
      if (!draining_) {
        log_info("received %s: finishing in-flight requests", ::strsignal(number));
        trace("stop: received %s, graceful", signal_name(number).c_str());
        begin_drain();
      }
    } else if (!fast_stop_) {
      log_info("received %s: stopping now", ::strsignal(number));
      trace("stop: received %s, fast", signal_name(number).c_str());
      stats_.state(WorkerState::stopping);
      fast_stop_ = true;
    }
  }
}

// Stop accepting; finish what was received; close each connection as soon
// as nothing of it is in flight, and has served a request: one accepted
// just before the stop gets its first request answered (within
// first_request_grace), or its client, whose connect() succeeded while
// the server kept listening, would see it closed unanswered.
void EventRuntime::begin_drain() {
  draining_ = true;
  drain_deadline_ = Clock::now() + setup_.params.graceful_timeout;
  first_request_deadline_ = Clock::now() + first_request_grace;
  stats_.state(WorkerState::stopping);
  for (const Listener& listener : setup_.listeners) {
    // The socket stays open in other processes, so epoll would keep it
    // registered after close(): remove it explicitly.
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener.fd.get(), nullptr);
  }
  tcp_watched_ = false;
  take_queued_work();
  std::vector<Watch*> open;
  for (auto& [watch, owner] : connections_)
    if (watch->connection) open.push_back(watch);
  // Requests already in the socket buffers are in flight too; a connection
  // held back by a slow reader is not read now (it is finished as usual).
  for (Watch* watch : open) serve_connection(*watch, watch->connection->interest() & EPOLLIN);
}

// What waits in the listeners' queues when the stop comes is served too.
// During a reload or a recycling the master (and the other workers) still
// hold every listener, so the next worker would take it anyway; but when
// the whole server stops, or with --accept reuseport where this worker's
// socket is its own, the last close() resets the queued connections and
// drops the queued datagrams, whose clients were never refused. Bounded:
// a client that keeps connecting cannot hold the drain (what comes after
// this pass is the same as a connection after the stop).
void EventRuntime::take_queued_work() {
  constexpr unsigned passes = 16;  // up to 16 x 64 connections per listener
  for (std::size_t i = 0; i < setup_.listeners.size(); ++i) {
    if (setup_.listeners[i].protocol == Protocol::datagram) {
      datagrams_[i]->on_readable(scratch_.get(), scratch_size + 1, passes * datagram_budget);
      continue;
    }
    if (accept_paused_) continue;  // out of descriptors: nothing to take them with
    for (unsigned pass = 0; pass < passes && accept_connections(i); ++pass) {
    }
  }
}

// The first requests' grace is over: a connection that has sent nothing
// since the stop is closed (worker_stopping).
void EventRuntime::end_first_request_grace() {
  first_request_grace_over_ = true;
  std::vector<Watch*> open;
  for (auto& [watch, owner] : connections_)
    if (watch->connection) open.push_back(watch);
  for (Watch* watch : open) serve_connection(*watch, 0);
  forget_closed();
}

void EventRuntime::beat_heartbeat() {
  if (!stats_.beat()) return;
  for (auto& [watch, owner] : connections_)
    if (watch->connection) watch->connection->give_back_if_unused();
  trim_heap_if_grown();
  // A listener's wakeup taken by a worker that reached its cap in that turn
  // is not passed on (EPOLLEXCLUSIVE; docs/NOTES.md): once a second, a
  // worker with room looks at its listeners itself, so such a connection
  // waits a second at most, not for the next arrival. One accept4() a
  // second per listener, EAGAIN when nothing is queued.
  for (std::size_t i = 0; i < setup_.listeners.size() && tcp_watched_; ++i)
    if (setup_.listeners[i].protocol != Protocol::datagram) accept_connections(i);
  if (!closed_.empty()) forget_closed();
  // PR_SET_PDEATHSIG covers most ways a master dies; this catches the rest
  // (e.g. the race between fork and prctl).
  if (!draining_ && ::getppid() != setup_.params.master_pid) {
    log_info("master %d is gone: stopping", static_cast<int>(setup_.params.master_pid));
    trace("stop: master %d is gone, graceful", static_cast<int>(setup_.params.master_pid));
    begin_drain();
  }
}

}  // namespace

std::unique_ptr<Runtime> make_event_runtime(const WorkerSetup& setup) {
  return std::make_unique<EventRuntime>(setup);
}

}  // namespace prefork
