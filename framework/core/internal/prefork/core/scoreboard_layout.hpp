// The scoreboard's shared-memory layout (version 8): Header, then
// slot_count Slots, each starting on a page. All counters are 64-bit. Written by the master (the
// header) and the workers (their slots, through SlotWriter); readers go
// through ScoreboardReader (prefork/scoreboard.hpp).
#pragma once

#include <prefork/histogram.hpp>
#include <prefork/scoreboard.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace prefork {

inline constexpr std::uint64_t scoreboard_magic =
    0x4b524f4645525021ull;  // "!PREFORK" little-endian
// 4: connections closed by reason (Counters::closes).
// 5: Slot::retire_requested (recycling after --max-requests);
//    Header::exits_timed_out, start_failures, slots_in_use.
// 6: slots and the accept lock on pages of their own, so that a worker can
//    map the rest read-only (protect_for_worker).
// 7: close reasons idle_timeout (was timeout), read_timeout, write_timeout.
// 8: Slot::connections_max (the worker's --max-connections cap).
inline constexpr std::uint32_t scoreboard_version = 8;
// The page size the layout is built for (checked at run time).
inline constexpr std::size_t scoreboard_page = 4096;
// Per-listener counters have room for this many listeners.
inline constexpr unsigned scoreboard_max_listeners = 16;

// What one listener of one worker has seen.
struct ListenerCounters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> connections{0};  // accepted (TCP)
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
};

// The counters a worker adds to; the same shape for a slot and for the
// retired totals. Each slot-wide figure is the sum of its per-listener ones;
// `errors` is also the sum of `error_kinds`.
struct Counters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> error_kinds[error_kind_count]{};
  std::atomic<std::uint64_t> closes[close_reason_count]{};  // by CloseReason
  ListenerCounters listeners[scoreboard_max_listeners];
};

struct alignas(scoreboard_page) Slot {
  // Identity and gauges: each a single value, read without the lock.
  std::atomic<std::int32_t> pid{0};
  std::atomic<WorkerState> state{WorkerState::empty};
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::uint64_t> started_ns{0};    // CLOCK_REALTIME
  std::atomic<std::uint64_t> heartbeat_ns{0};  // CLOCK_REALTIME, about once a second
  std::atomic<std::uint64_t> rss_bytes{0};     // with the heartbeat
  std::atomic<std::uint64_t> connections_active{0};
  // The most connections the worker holds open (connection_cap(),
  // prefork/models.hpp), set as it starts: at it, it does not accept.
  std::atomic<std::uint64_t> connections_max{0};
  // Threads of the worker asleep in accept() or recvmsg() waiting for work
  // (Stevens' designs), or in a blocking model waiting on their client: the
  // kernel wakes them, so their heartbeat, written when they get work, is
  // not expected to move meanwhile (the master's --timeout spares them).
  std::atomic<std::uint32_t> waiting{0};
  // Set by a worker that has served its --max-requests: it goes on serving
  // until the master has a replacement ready and sends it SIGTERM, so the
  // pool's capacity never dips while it recycles.
  std::atomic<std::uint32_t> retire_requested{0};
  // Shared writers (threads, per-connection children) serialise on this
  // process-shared, robust pthread mutex; a single writer never touches it.
  alignas(64) unsigned char writer_lock[64];
  alignas(64) std::atomic<std::uint64_t> sequence{0};  // odd while `counters` change
  Counters counters;
  // Handler + write time of each request, in nanoseconds, recorded once its
  // reply is written (the request was counted when its handler started).
  // Outside the sequence lock, as a 264 KiB copy would rarely fit between
  // two requests: a reader's copy is consistent in itself (its count is the
  // sum of its buckets) and never holds more than `requests`.
  alignas(64) SharedHistogram latency;
};

// A listening socket as the master opened it, for readers' labels.
struct ListenerRecord {
  std::uint32_t protocol;                     // prefork::Protocol
  char name[60];                              // "tcp 127.0.0.1:8080", NUL-terminated
  std::atomic<std::uint32_t> queue_depth{0};  // connections waiting for accept (TCP)
  std::atomic<std::uint32_t> queue_limit{0};  // its backlog
};

// Page-aligned like Slot, so that the slots that follow it start on a page.
struct alignas(scoreboard_page) Header {
  std::uint64_t magic;  // written last, with release, once the rest is set
  std::uint32_t version;
  std::uint32_t slot_count;
  std::uint64_t segment_size;
  std::int32_t master_pid;
  std::uint32_t listener_count;
  std::uint64_t started_ns;
  std::atomic<std::uint64_t> sequence{0};  // odd while the master folds a slot in
  std::atomic<std::uint64_t> worker_restarts{0};
  // Why workers ended while the master was running (not at its stop).
  std::atomic<std::uint64_t> exits_crashed{0};       // a non-zero exit status
  std::atomic<std::uint64_t> exits_signaled{0};      // killed by a signal
  std::atomic<std::uint64_t> exits_recycled{0};      // exited cleanly (recycled)
  std::atomic<std::uint64_t> exits_timed_out{0};     // killed by the heartbeat (--timeout)
  std::atomic<std::uint64_t> start_failures{0};      // died or timed out before ready
  std::atomic<std::uint64_t> generation{0};          // the last generation started
  std::atomic<std::uint64_t> metrics_updated_ns{0};  // queue depths, CLOCK_REALTIME
  // Readers show slots [0, slots_in_use): every slot that ever held a worker
  // is below it. slot_count at creation; the master sets it to its pool and
  // raises it when TTIN or a replacement first uses a higher slot.
  std::atomic<std::uint32_t> slots_in_use{0};
  ListenerRecord listeners[scoreboard_max_listeners];
  Counters retired;  // everything counted by workers that have died
  alignas(64) SharedHistogram retired_latency;
  // Room for the accept mutex of `--accept lock`: a process-shared, robust
  // pthread mutex the master sets up (see workers/src/accept_gate.cpp).
  // Last, on a page of its own: the one part of the header workers write.
  alignas(scoreboard_page) unsigned char accept_lock[64];
};

}  // namespace prefork
