// The worker's side of its scoreboard slot. In the process models each slot
// has exactly one writer, so a relaxed load+store is enough (no locked
// read-modify-write on the hot path). Models where several threads or
// per-connection children share a slot ask for `shared` writers and pay for
// an atomic add. Readers see every value whole: each is one atomic.
#pragma once

#include <prefork/scoreboard.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace prefork {

class SlotWriter {
 public:
  explicit SlotWriter(Slot& slot, bool shared = false) noexcept : slot_(&slot), shared_(shared) {}

  void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
    if (shared_)
      counter.fetch_add(n, std::memory_order_relaxed);
    else
      counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void request() noexcept { add(slot_->counters.requests, 1); }
  void bytes_in(std::uint64_t n) noexcept { add(slot_->counters.bytes_in, n); }
  void bytes_out(std::uint64_t n) noexcept { add(slot_->counters.bytes_out, n); }
  void error() noexcept { add(slot_->counters.errors, 1); }
  void connection_opened() noexcept {
    add(slot_->counters.connections_total, 1);
    add(slot_->connections_active, 1);
  }
  void connection_closed() noexcept { add(slot_->connections_active, ~std::uint64_t{0}); }
  void state(WorkerState state) noexcept { slot_->state.store(state, std::memory_order_release); }

  // Claims the slot for this process, as `starting`.
  void started(std::uint64_t generation) noexcept {
    const std::uint64_t now = realtime_ns();
    slot_->pid.store(::getpid(), std::memory_order_relaxed);
    slot_->started_ns.store(now, std::memory_order_relaxed);
    slot_->heartbeat_ns.store(now, std::memory_order_relaxed);
    slot_->generation.store(generation, std::memory_order_relaxed);
    state(WorkerState::starting);
  }

  // Writes the heartbeat at most once a second, from any thread; true when
  // this call wrote it.
  bool beat() noexcept {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t due = next_beat_.load(std::memory_order_relaxed);
    if (now < due ||
        !next_beat_.compare_exchange_strong(due, now + 1'000'000'000, std::memory_order_relaxed))
      return false;
    slot_->heartbeat_ns.store(realtime_ns(), std::memory_order_relaxed);
    return true;
  }
  Slot& slot() noexcept { return *slot_; }

 private:
  Slot* slot_;
  bool shared_;
  std::atomic<std::int64_t> next_beat_{0};  // steady clock, ns
};

}  // namespace prefork
