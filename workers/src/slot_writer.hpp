// The worker's side of its scoreboard slot. In the process models each slot
// has exactly one writer, so a relaxed load+store is enough (no locked
// read-modify-write on the hot path). Models where several threads or
// per-connection children share a slot ask for `shared` writers and pay for
// an atomic add. Readers see every value whole: each is one atomic.
#pragma once

#include <prefork/scoreboard.hpp>

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
  Slot& slot() noexcept { return *slot_; }

 private:
  Slot* slot_;
  bool shared_;
};

}  // namespace prefork
