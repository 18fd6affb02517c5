#include "driver.hpp"

#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

#include <prefork/error.hpp>

#include "clock.hpp"
#include "datagram_connection.hpp"
#include "stream_connection.hpp"

namespace bench {

namespace {

constexpr std::size_t scratch_size = 64 * 1024;  // holds any datagram (65,507 bytes at most)
constexpr std::size_t events_per_wait = 256;
constexpr std::uint64_t max_wait_ns = 100 * ns_per_ms;        // how soon `stop` is seen
constexpr std::uint64_t connect_backoff_ns = 10 * ns_per_ms;  // a refused server is not hammered

// One relaxed store: the driver is the only writer.
void bump(std::atomic<std::uint64_t>& counter) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

}  // namespace

Driver::Driver(const Options& options, const Exchange& exchange, const DriverPlan& plan)
    : open_loop_(plan.rate > 0),
      new_connection_(options.new_connection),
      share_(plan.share),
      timeout_ns_(options.timeout_ms * ns_per_ms),
      interval_ns_(plan.rate > 0 ? 1e9 / plan.rate : 0),
      phase_ns_(plan.phase_ns),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      scratch_(new char[scratch_size]),
      context_{&options.address,
               &exchange,
               options.new_connection,
               options.new_connection && options.address.family() == AF_INET ? &source_sequence_
                                                                             : nullptr,
               epoll_.get(),
               scratch_.get(),
               scratch_size},
      slots_(plan.connections),
      idle_(plan.connections),
      cooling_(plan.connections),
      events_(events_per_wait) {
  if (!epoll_) throw prefork::SystemError("epoll_create1", errno);
  for (std::uint32_t id = 0; id < slots_.size(); ++id) {
    if (options.target == Target::udp)
      slots_[id].connection = std::make_unique<DatagramConnection>(context_, id);
    else
      slots_[id].connection =
          std::make_unique<StreamConnection>(context_, id, options.target == Target::framed);
    idle_.push(id);
  }
  result_.latency = std::make_unique<prefork::Histogram>();
}

void Driver::open_connections(std::uint64_t deadline, const std::atomic<bool>& stop) noexcept {
  if (new_connection_) return;
  for (auto& slot : slots_) slot.connection->open();
  for (std::uint64_t now = now_ns(); now < deadline && !stop.load(std::memory_order_relaxed);
       now = now_ns()) {
    if (std::none_of(slots_.begin(), slots_.end(),
                     [](const Slot& s) { return s.connection->connecting(); }))
      return;
    if (!wait_and_dispatch(std::min(deadline, now + max_wait_ns))) return;
  }
}

void Driver::run(const Phases& phases, const std::atomic<bool>& stop) noexcept {
  phases_ = phases;
  // The kernel may wake a thread up to 50 us late by default (timer slack),
  // which an open-loop schedule would add to every latency it measures.
  if (open_loop_) ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
  std::uint64_t now = now_ns();
  while (now < phases_.measure_end && !stop.load(std::memory_order_relaxed) &&
         !(share_done() && measured_in_flight_ == 0)) {
    expire(now);
    release_cooled(now);
    issue(now);
    if (!wait_and_dispatch(next_wakeup(now))) break;
    now = now_ns();
  }
  result_.in_flight_at_end = measured_in_flight_;
  if (!stop.load(std::memory_order_relaxed)) now = drain(stop);
  finish(now);
}

// Time is up: each request still in flight gets the rest of its --timeout
// to be answered (not recorded in the latencies) or to fail (counted): a
// request a starving server never answers must not vanish from the errors
// because the run ended before its timeout did.
std::uint64_t Driver::drain(const std::atomic<bool>& stop) noexcept {
  draining_ = true;
  std::uint64_t now = now_ns();
  while (measured_in_flight_ > 0 && !stop.load(std::memory_order_relaxed)) {
    expire(now);
    if (measured_in_flight_ == 0 || oldest_ == none) break;
    if (!wait_and_dispatch(std::min(slots_[oldest_].started + timeout_ns_, now + max_wait_ns)))
      break;
    now = now_ns();
  }
  return now;
}

std::uint64_t Driver::scheduled(std::uint64_t k) const noexcept {
  return phases_.start + phase_ns_ +
         static_cast<std::uint64_t>(static_cast<double>(k) * interval_ns_);
}

// The first k with scheduled(k) >= time.
std::uint64_t Driver::first_scheduled_at(std::uint64_t time) const noexcept {
  const std::uint64_t base = phases_.start + phase_ns_;
  if (time <= base) return 0;
  auto k = static_cast<std::uint64_t>(std::ceil(static_cast<double>(time - base) / interval_ns_));
  while (k > 0 && scheduled(k - 1) >= time) --k;  // rounding, either way
  while (scheduled(k) < time) ++k;
  return k;
}

bool Driver::share_done() const noexcept { return measured_issued_ >= share_; }

// Closed loop: every idle connection sends at once. Open loop: each request
// due by now goes on the next idle connection; when none is idle it waits,
// and that wait counts in its latency (no coordinated omission).
void Driver::issue(std::uint64_t now) noexcept {
  issued_until_ = now;
  // One pass over the connections idle now: one that fails at once waits for
  // the next turn of the loop instead of spinning here.
  for (std::size_t turns = idle_.size(); turns > 0 && !idle_.empty(); --turns) {
    // Closed loop: the clock is read per request, so that a request sent
    // after others in this pass is not charged for their sends.
    const std::uint64_t intended = open_loop_ ? scheduled(next_k_) : now_ns();
    if (open_loop_ && intended > now) return;
    const bool measured = intended >= phases_.measure_start;
    if (measured && share_done()) return;
    ++next_k_;
    start(idle_.pop(), now, intended, measured);
  }
}

void Driver::start(std::uint32_t id, std::uint64_t now, std::uint64_t intended,
                   bool measured) noexcept {
  Slot& slot = slots_[id];
  slot.started = now;
  slot.intended = intended;
  slot.measured = measured;
  slot.in_flight = true;
  link(id);
  if (measured) {
    slot.sent_measured = true;
    ++measured_issued_;
    ++measured_in_flight_;
  }
  if (Connection::Step step = slot.connection->begin(); step != Connection::Step::waiting)
    settle(id, step, now_ns());
}

void Driver::settle(std::uint32_t id, Connection::Step step, std::uint64_t now) noexcept {
  if (step == Connection::Step::done)
    succeeded(id, now);
  else
    failed(id, slots_[id].connection->failure(), now);
}

void Driver::succeeded(std::uint32_t id, std::uint64_t now) noexcept {
  Slot& slot = slots_[id];
  unlink(id);
  slot.answered = true;
  if (slot.measured) {
    --measured_in_flight_;
    if (now <= phases_.measure_end) {
      result_.latency->record(now - slot.intended);
      bump(completed_);
    }
  }
  idle_.push(id);
}

void Driver::failed(std::uint32_t id, const Failure& failure, std::uint64_t now) noexcept {
  Slot& slot = slots_[id];
  unlink(id);
  if (slot.measured) {
    --measured_in_flight_;
    if (now <= phases_.measure_end || draining_) {
      result_.errors.add(failure);
      bump(failed_);
    }
  }
  if (failure.kind == ErrorKind::connect_refused || failure.kind == ErrorKind::connect_failed) {
    slot.ready_at = now + connect_backoff_ns;
    cooling_.push(id);
  } else {
    idle_.push(id);
  }
}

// The timeout is the same for all, so the oldest request is the first due.
void Driver::expire(std::uint64_t now) noexcept {
  while (oldest_ != none && slots_[oldest_].started + timeout_ns_ <= now) {
    const std::uint32_t id = oldest_;
    slots_[id].connection->reset();
    failed(id, {ErrorKind::timeout, "no whole reply within --timeout", 0}, now);
  }
}

void Driver::release_cooled(std::uint64_t now) noexcept {
  while (!cooling_.empty() && slots_[cooling_.front()].ready_at <= now) idle_.push(cooling_.pop());
}

std::uint64_t Driver::next_wakeup(std::uint64_t now) const noexcept {
  std::uint64_t wake = std::min(phases_.measure_end, now + max_wait_ns);
  if (oldest_ != none) wake = std::min(wake, slots_[oldest_].started + timeout_ns_);
  if (!cooling_.empty()) wake = std::min(wake, slots_[cooling_.front()].ready_at);
  if (open_loop_ && !idle_.empty() && !share_done()) wake = std::min(wake, scheduled(next_k_));
  return wake;
}

// Waits until `until` at the latest (to the nanosecond: epoll_pwait2, so an
// open-loop schedule is not rounded to milliseconds) and hands each event to
// its connection. False when epoll itself failed.
bool Driver::wait_and_dispatch(std::uint64_t until) noexcept {
  const std::uint64_t now = now_ns();
  const std::uint64_t wait = until > now ? until - now : 0;
  const timespec timeout{static_cast<time_t>(wait / ns_per_s), static_cast<long>(wait % ns_per_s)};
  const int n = ::epoll_pwait2(epoll_.get(), events_.data(), static_cast<int>(events_.size()),
                               &timeout, nullptr);
  if (n < 0) {
    if (errno == EINTR) return true;
    result_.broken = true;
    result_.fatal = {ErrorKind::reset, "epoll_pwait2", errno};
    return false;
  }
  for (int i = 0; i < n; ++i) {
    const std::uint32_t id = events_[static_cast<std::size_t>(i)].data.u32;
    Slot& slot = slots_[id];
    const Connection::Step step =
        slot.connection->on_event(events_[static_cast<std::size_t>(i)].events);
    // Outside a request (opening, idle) a connection's steps concern no one.
    if (slot.in_flight && step != Connection::Step::waiting) settle(id, step, now_ns());
  }
  return true;
}

void Driver::link(std::uint32_t id) noexcept {
  Slot& slot = slots_[id];
  slot.prev = newest_;
  slot.next = none;
  (newest_ != none ? slots_[newest_].next : oldest_) = id;
  newest_ = id;
}

void Driver::unlink(std::uint32_t id) noexcept {
  Slot& slot = slots_[id];
  (slot.prev != none ? slots_[slot.prev].next : oldest_) = slot.next;
  (slot.next != none ? slots_[slot.next].prev : newest_) = slot.prev;
  slot.prev = slot.next = none;
  slot.in_flight = false;
}

void Driver::finish(std::uint64_t now) noexcept {
  result_.finished_ns = now;
  for (const Slot& slot : slots_)
    if (slot.sent_measured && !slot.answered) ++result_.starved_connections;
  if (!open_loop_) return;
  // Requests due within the measured time that never went out: the server
  // (or this client) could not keep to the schedule. Only those due by the
  // last time requests were handed out: one due as time ran out is not late.
  const std::uint64_t end = std::min(issued_until_, phases_.measure_end);
  const std::uint64_t from = std::max(next_k_, first_scheduled_at(phases_.measure_start));
  const std::uint64_t to = first_scheduled_at(end);
  std::uint64_t behind = to > from ? to - from : 0;
  behind = std::min(behind, share_ - std::min(share_, measured_issued_));
  result_.behind_schedule = behind;
}

}  // namespace bench
