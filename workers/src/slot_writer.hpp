// The worker's side of its scoreboard slot: the one place the hot path
// touches shared memory.
//
// Every update is a short section of the slot's sequence lock: the sequence
// goes odd, the counters change, it goes even again; readers retry when they
// see it odd or changed. In the process models each slot has exactly one
// writer, so the section is plain loads and stores (no locked instruction).
// Models where several threads or per-connection children share a slot ask
// for `shared` writers, which take the slot's robust writer mutex around
// the section instead of making each counter an atomic add.
#pragma once

#include <prefork/scoreboard.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace prefork {

class SlotWriter {
 public:
  // `enabled` false leaves the counters alone (the scoreboard-off side of
  // the overhead benchmark); identity, state and heartbeat are still kept.
  explicit SlotWriter(Slot& slot, bool shared = false, bool enabled = true) noexcept
      : slot_(&slot), shared_(shared), enabled_(enabled) {}

  // For the timing of requests: a monotonic clock in nanoseconds, or 0 when
  // counting is off (so that the off side reads no clock either).
  std::uint64_t now() const noexcept { return enabled_ ? monotonic_ns() : 0; }

  void bytes_in(std::size_t listener, std::uint64_t n) noexcept;
  void bytes_out(std::size_t listener, std::uint64_t n) noexcept;
  // A request handed to the handler: counted before its reply can reach
  // the client, so a client that has its reply never sees it uncounted
  // (a worker may be killed right after its write).
  void request(std::size_t listener) noexcept;
  // Its handler + write time, once the write is done.
  void latency(std::uint64_t nanoseconds) noexcept;
  void error(ErrorKind kind, std::size_t listener) noexcept;
  void connection_opened(std::size_t listener) noexcept;
  void connection_closed() noexcept;

  void state(WorkerState state) noexcept { slot_->state.store(state, std::memory_order_release); }
  // Claims the slot for this process, as `starting`.
  void started(std::uint64_t generation) noexcept;
  // Writes the heartbeat and RSS at most once a second, from any thread;
  // true when this call wrote them.
  bool beat() noexcept;

  Slot& slot() noexcept { return *slot_; }

 private:
  class Section;
  static std::uint64_t monotonic_ns() noexcept;
  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  ListenerCounters& listener(std::size_t index) noexcept {
    return slot_->counters.listeners[index < scoreboard_max_listeners ? index : 0];
  }

  Slot* slot_;
  bool shared_;
  bool enabled_;
  std::atomic<std::int64_t> next_beat_{0};  // steady clock, ns
};

// Counts and times the requests answered in one go (one read, one write):
// each from the start of its handler to the end of the write that carries
// its reply. One per serving thread; reuses its memory.
class RequestTimer {
 public:
  void start(SlotWriter& writer, std::size_t listener) {
    writer.request(listener);
    starts_.push_back(writer.now());
  }
  // After the write (or the failure) that ends them.
  void finish(SlotWriter& writer) noexcept {
    if (starts_.empty()) return;
    const std::uint64_t end = writer.now();
    for (std::uint64_t start : starts_) writer.latency(end - start);
    starts_.clear();
  }

 private:
  std::vector<std::uint64_t> starts_;
};

}  // namespace prefork
