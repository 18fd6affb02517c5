// One load thread: its own epoll instance and its share of the connections,
// the request schedule (closed or open loop), per-request timeouts, and the
// latency histogram. Nothing on its hot path allocates, locks or throws.
#pragma once

#include <sys/epoll.h>

#include <prefork/address.hpp>
#include <prefork/histogram.hpp>
#include <prefork/unique_fd.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "connection.hpp"
#include "errors.hpp"
#include "exchange.hpp"
#include "options.hpp"

namespace bench {

// The times of a run, the same for every thread, fixed once all are ready.
struct Phases {
  std::uint64_t start;          // load begins: the warm-up
  std::uint64_t measure_start;  // recording begins
  std::uint64_t measure_end;    // --duration (or the hard cap) is up
};

inline constexpr std::uint64_t no_limit = ~std::uint64_t{0};

// This thread's part of the load.
struct DriverPlan {
  unsigned connections = 1;
  std::uint64_t share = no_limit;  // measured requests to issue (--requests)
  double rate = 0;                 // requests/s; 0 = closed loop
  std::uint64_t phase_ns = 0;      // offset of this thread's schedule, to interleave threads
};

struct DriverResult {
  std::unique_ptr<prefork::Histogram> latency;  // ns, from the intended send to the whole reply
  ErrorCounts errors;
  std::uint64_t finished_ns = 0;
  std::uint64_t in_flight_at_end = 0;  // measured requests still in flight when time was up
  std::uint64_t behind_schedule = 0;   // open loop: due before the end, never sent
  // Connections that sent measured requests and never had one answered in
  // the whole run: starved (a server that accepts and never serves them).
  std::uint64_t starved_connections = 0;
  bool broken = false;  // epoll failed: the loop stopped early
  Failure fatal;        // its call and errno (the kind is unused)
};

class Driver {
 public:
  // Set-up: throws prefork::SystemError.
  Driver(const Options& options, const Exchange& exchange, const DriverPlan& plan);
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  // Before the start: opens keep-alive connections, so the measured requests
  // do not pay for connecting. Waits until all are open or have failed, at
  // most until `deadline`.
  void open_connections(std::uint64_t deadline, const std::atomic<bool>& stop) noexcept;
  // The load loop; returns at measure_end, when its share of --requests is
  // done, or soon after `stop` is set.
  void run(const Phases& phases, const std::atomic<bool>& stop) noexcept;

  // Live counts of measured requests, for the progress line (any thread).
  std::uint64_t completed() const noexcept { return completed_.load(std::memory_order_relaxed); }
  std::uint64_t failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  // After run() has returned.
  DriverResult& result() noexcept { return result_; }

 private:
  static constexpr std::uint32_t none = ~std::uint32_t{0};

  // A FIFO of connection ids, allocated once: idle connections take turns,
  // so every connection (and every server worker behind it) gets traffic.
  class Queue {
   public:
    explicit Queue(std::size_t capacity) : ids_(capacity) {}
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }
    std::uint32_t front() const noexcept { return ids_[head_]; }
    void push(std::uint32_t id) noexcept { ids_[(head_ + size_++) % ids_.size()] = id; }
    std::uint32_t pop() noexcept {
      const std::uint32_t id = ids_[head_];
      head_ = (head_ + 1) % ids_.size();
      --size_;
      return id;
    }

   private:
    std::vector<std::uint32_t> ids_;
    std::size_t head_ = 0, size_ = 0;
  };

  struct Slot {
    std::unique_ptr<Connection> connection;
    std::uint64_t started = 0;               // actual send: the timeout counts from here
    std::uint64_t intended = 0;              // the latency counts from here
    std::uint64_t ready_at = 0;              // after a failed connect: not before
    std::uint32_t prev = none, next = none;  // the in-flight list, oldest first
    bool in_flight = false;
    bool measured = false;
    bool sent_measured = false;  // for starved_connections
    bool answered = false;
  };

  std::uint64_t scheduled(std::uint64_t k) const noexcept;
  std::uint64_t first_scheduled_at(std::uint64_t time) const noexcept;
  bool share_done() const noexcept;
  void issue(std::uint64_t now) noexcept;
  void start(std::uint32_t id, std::uint64_t now, std::uint64_t intended, bool measured) noexcept;
  void settle(std::uint32_t id, Connection::Step step, std::uint64_t now) noexcept;
  void succeeded(std::uint32_t id, std::uint64_t now) noexcept;
  void failed(std::uint32_t id, const Failure& failure, std::uint64_t now) noexcept;
  void expire(std::uint64_t now) noexcept;
  void release_cooled(std::uint64_t now) noexcept;
  std::uint64_t next_wakeup(std::uint64_t now) const noexcept;
  bool wait_and_dispatch(std::uint64_t until) noexcept;
  void link(std::uint32_t id) noexcept;
  void unlink(std::uint32_t id) noexcept;
  std::uint64_t drain(const std::atomic<bool>& stop) noexcept;
  void finish(std::uint64_t now) noexcept;

  const bool open_loop_;
  const bool new_connection_;
  const std::uint64_t share_;
  const std::uint64_t timeout_ns_;
  const double interval_ns_;  // open loop: between two scheduled requests
  const std::uint64_t phase_ns_;

  prefork::UniqueFd epoll_;
  std::uint32_t source_sequence_ = 0;  // see StreamConnection::bind_source()
  std::unique_ptr<char[]> scratch_;
  ConnectionContext context_;
  std::vector<Slot> slots_;
  Queue idle_;
  Queue cooling_;  // after a failed connect; one delay for all, so FIFO is time order
  std::uint32_t oldest_ = none, newest_ = none;
  std::vector<epoll_event> events_;

  Phases phases_{};
  bool draining_ = false;           // after measure_end: settling what is in flight
  std::uint64_t next_k_ = 0;        // open loop: the next scheduled request
  std::uint64_t issued_until_ = 0;  // when issue() last ran
  std::uint64_t measured_issued_ = 0;
  std::uint64_t measured_in_flight_ = 0;
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> failed_{0};
  DriverResult result_;
};

}  // namespace bench
