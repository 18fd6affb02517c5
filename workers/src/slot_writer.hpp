// The worker's side of its scoreboard slot. Each slot has exactly one
// writer, so a relaxed load+store is enough (no locked read-modify-write on
// the hot path); readers see every value whole because each is one atomic.
#pragma once

#include <prefork/scoreboard.hpp>

namespace prefork {

class SlotWriter {
 public:
  explicit SlotWriter(Slot& slot) noexcept : slot_(&slot) {}

  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
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
  void connection_closed() noexcept {
    slot_->connections_active.store(slot_->connections_active.load(std::memory_order_relaxed) - 1,
                                    std::memory_order_relaxed);
  }
  void state(WorkerState state) noexcept { slot_->state.store(state, std::memory_order_release); }
  Slot& slot() noexcept { return *slot_; }

 private:
  Slot* slot_;
};

}  // namespace prefork
