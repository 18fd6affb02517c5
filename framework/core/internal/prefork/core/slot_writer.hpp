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

#include <prefork/core/scoreboard_segment.hpp>

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

  void bytes_in(std::size_t index, std::uint64_t n) noexcept {
    update(index, [n](Counters& slot, ListenerCounters& listener) {
      add(slot.bytes_in, n);
      add(listener.bytes_in, n);
    });
  }
  void bytes_out(std::size_t index, std::uint64_t n) noexcept {
    update(index, [n](Counters& slot, ListenerCounters& listener) {
      add(slot.bytes_out, n);
      add(listener.bytes_out, n);
    });
  }
  // A request handed to the handler (with the bytes of its datagram, if it
  // is one): counted before its reply can reach the client, so a client
  // that has its reply never sees it uncounted (a worker may be killed
  // right after its write).
  void request(std::size_t index, std::uint64_t datagram_bytes = 0) noexcept {
    count_toward_retire();
    update(index, [datagram_bytes](Counters& slot, ListenerCounters& listener) {
      add(slot.requests, 1);
      add(listener.requests, 1);
      add(slot.bytes_in, datagram_bytes);
      add(listener.bytes_in, datagram_bytes);
    });
  }
  // Its handler + write time, once the write is done. Outside the sequence
  // lock: readers copy the histogram bucket by bucket. Shared writers still
  // serialise, as its buckets have a single writer.
  void latency(std::uint64_t nanoseconds) noexcept {
    if (!enabled_) return;
    const bool locked = shared_ && lock_writer();
    slot_->latency.record(nanoseconds);
    if (locked) unlock_writer();
  }
  // A datagram's reply written (`bytes` 0: none) and its request's time.
  void replied(std::size_t index, std::uint64_t bytes, std::uint64_t latency_ns) noexcept {
    if (bytes > 0) bytes_out(index, bytes);
    latency(latency_ns);
  }
  void error(ErrorKind kind, std::size_t index) noexcept {
    update(index, [kind](Counters& slot, ListenerCounters& listener) {
      add(slot.errors, 1);
      add(slot.error_kinds[static_cast<unsigned>(kind) % error_kind_count], 1);
      add(listener.errors, 1);
    });
  }
  void connection_opened(std::size_t index) noexcept;
  void connection_closed(std::size_t index, CloseReason reason) noexcept;

  void state(WorkerState state) noexcept { slot_->state.store(state, std::memory_order_release); }
  // Around a blocking wait for work (accept, recvmsg): see Slot::waiting.
  void waiting(bool asleep) noexcept {
    if (!marks_waits_) return;
    if (asleep)
      slot_->waiting.fetch_add(1, std::memory_order_relaxed);
    else
      slot_->waiting.fetch_sub(1, std::memory_order_relaxed);
  }
  // In a fork-per-connection child: its waits on its client are not its
  // worker's. Were they counted, a child killed while waiting would leave
  // the worker marked waiting (and so exempt from --timeout) for good.
  void leave_waits_to_the_worker() noexcept { marks_waits_ = false; }
  // Recycling (--max-requests): once `limit` requests have started, the
  // slot asks the master for a replacement (request_retire()) and goes on
  // serving. Counted whether the counters are enabled or not, across every
  // thread that shares this writer; 0 (the default): never.
  void retire_after(std::uint64_t limit) noexcept { retire_after_ = limit; }
  // One request toward that limit: request() counts it; a worker that
  // hands each connection to a child of its own counts it there instead
  // (and the child, which has a copy of this writer, sets no limit). The
  // whole cost when there is no limit: one compare.
  void count_toward_retire() noexcept {
    if (retire_after_ == 0) return;
    if (shared_) {
      if (served_.fetch_add(1, std::memory_order_relaxed) + 1 == retire_after_) request_retire();
    } else {
      const std::uint64_t served = served_.load(std::memory_order_relaxed) + 1;
      served_.store(served, std::memory_order_relaxed);
      if (served == retire_after_) request_retire();
    }
  }
  // Sets Slot::retire_requested and logs it; true for the call that set it.
  bool request_retire() noexcept;

  // Claims the slot for this process, as `starting` (not retiring).
  void started(std::uint64_t generation) noexcept;
  // Writes the heartbeat and RSS at most once a second, from any thread;
  // true when this call wrote them.
  bool beat() noexcept;

  Slot& slot() noexcept { return *slot_; }

 private:
  static void add(std::atomic<std::uint64_t>& counter, std::uint64_t n) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  // One update, as the writer of the slot's sequence lock. Inline: it is
  // the whole hot-path cost for a single writer (a few plain stores).
  template <class Change>
  void update(std::size_t index, Change change) noexcept {
    if (!enabled_) return;
    const bool locked = shared_ && lock_writer();
    std::uint64_t sequence = slot_->sequence.load(std::memory_order_relaxed);
    // A shared writer that died inside its update left the sequence odd;
    // its partial update stays, but readers see whole copies from now on.
    sequence += sequence & 1;
    slot_->sequence.store(sequence + 1, std::memory_order_relaxed);
    // A reader that sees any store below also sees the odd sequence.
    std::atomic_thread_fence(std::memory_order_release);
    change(slot_->counters,
           slot_->counters.listeners[index < scoreboard_max_listeners ? index : 0]);
    slot_->sequence.store(sequence + 2, std::memory_order_release);
    if (locked) unlock_writer();
  }
  bool lock_writer() noexcept;  // false: not locked (logged), go on without
  void unlock_writer() noexcept;

  Slot* slot_;
  bool shared_;
  bool enabled_;
  std::atomic<std::int64_t> next_beat_{0};  // steady clock, ns
  std::uint64_t retire_after_ = 0;
  bool marks_waits_ = true;
  std::atomic<std::uint64_t> served_{0};  // requests counted toward retire_after_
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
