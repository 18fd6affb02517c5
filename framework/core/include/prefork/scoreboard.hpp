// The scoreboard, as its readers see it: a named shared-memory segment
// (Boost.Interprocess) with one slot per worker, which the master and the
// workers write (their side is private: framework/core/internal) and
// readers such as prefork-top and the master's /metrics only read.
//
// Consistency: a slot's counters change inside its sequence lock, so a
// reader's copy is never torn: per-listener counts always sum to the slot's
// totals. When a worker dies the master folds its counters and histogram
// into the retired totals, so totals never go backwards across worker
// replacement.
#pragma once

#include <prefork/close_reason.hpp>
#include <prefork/histogram.hpp>
#include <prefork/listener.hpp>

#include <sys/types.h>
#include <time.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prefork {

enum class WorkerState : std::uint32_t {
  empty = 0,     // no process in this slot
  starting = 1,  // forked or spawned, not serving yet
  ready = 2,     // serving
  stopping = 3,  // draining after a stop request
};
const char* worker_state_name(WorkerState state) noexcept;

// Why a request or connection failed; each error is counted under one kind.
enum class ErrorKind : std::uint32_t {
  oversized_frame = 0,     // a frame over --max-frame: its connection is closed
  truncated_datagram = 1,  // a datagram larger than the receive buffer, dropped
  peer_reset = 2,          // ECONNRESET/EPIPE from the client
  handler_exception = 3,   // the handler threw
  other = 4,               // any other failed call (logged with its errno)
};
inline constexpr unsigned error_kind_count = 5;
const char* error_kind_name(ErrorKind kind) noexcept;

// Plain copies, for readers.
struct ListenerValues {
  std::uint64_t requests = 0, errors = 0, connections = 0, bytes_in = 0, bytes_out = 0;
};
struct CounterValues {
  std::uint64_t requests = 0, bytes_in = 0, bytes_out = 0, connections_total = 0, errors = 0;
  std::array<std::uint64_t, error_kind_count> error_kinds{};
  std::array<std::uint64_t, close_reason_count> closes{};  // connections, by CloseReason
  std::vector<ListenerValues> listeners;                   // Header::listener_count entries

  CounterValues& operator+=(const CounterValues& other);
};
struct ListenerInfo {
  Protocol protocol = Protocol::stream;
  std::string name;
  std::uint32_t queue_depth = 0, queue_limit = 0;
};
struct SlotSnapshot {
  unsigned slot = 0;
  pid_t pid = 0;
  WorkerState state = WorkerState::empty;
  std::uint64_t generation = 0, started_ns = 0, heartbeat_ns = 0, rss_bytes = 0,
                connections_active = 0;
  std::uint64_t connections_max = 0;  // the worker's cap (Slot::connections_max)
  std::uint32_t waiting = 0;          // see Slot::waiting
  CounterValues counters;
  std::shared_ptr<const Histogram> latency;  // never null; empty if Latencies::skipped
  // The slot stayed mid-update for the whole snapshot (its writer stopped
  // or died inside an update): `counters` are the last whole copy this
  // reader took of the same worker, or zero.
  bool stale = false;
};
// The slot's worker holds as many connections as its cap: it accepts no
// more until one closes (--max-connections).
inline bool at_connection_cap(const SlotSnapshot& slot) noexcept {
  return slot.pid != 0 && slot.connections_max != 0 &&
         slot.connections_active >= slot.connections_max;
}

struct ScoreboardSnapshot {
  pid_t master_pid = 0;
  std::uint64_t started_ns = 0;  // the master's, CLOCK_REALTIME
  std::uint64_t taken_ns = 0;    // when this copy was taken, CLOCK_REALTIME
  std::uint64_t generation = 0;
  std::uint64_t worker_restarts = 0;
  std::uint64_t exits_crashed = 0, exits_signaled = 0, exits_recycled = 0;
  std::uint64_t exits_timed_out = 0;  // killed by the heartbeat (--timeout)
  std::uint64_t start_failures = 0;   // workers that died or timed out before ready
  std::uint64_t metrics_updated_ns = 0;
  std::vector<ListenerInfo> listeners;
  // The slots in use so far (Header::slots_in_use): the table has room for
  // more (TTIN, workers being replaced) that readers need not show.
  std::vector<SlotSnapshot> slots;
  CounterValues retired;  // workers that have died
  std::shared_ptr<const Histogram> retired_latency;
  CounterValues totals;                      // retired + every slot
  std::shared_ptr<const Histogram> latency;  // retired + every slot
  // What the reader found wrong with the segment (a header field changed
  // since it was opened, a count out of bounds, a sequence left odd), or
  // empty. Whatever was out of bounds was clamped or left out: the copy is
  // safe to show, but not to trust.
  std::string corrupt;
};

// The clocks of the scoreboard, in nanoseconds: times of day (realtime),
// and durations (monotonic; inline: workers read it twice per request).
std::uint64_t realtime_ns() noexcept;
inline std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// True while `pid` runs: kill(pid, 0) alone also succeeds for a zombie (a
// master killed and not yet reaped by its parent), so /proc is asked too.
bool process_running(pid_t pid) noexcept;

// A read-only view, for stats readers. One per thread: snapshot() reuses
// the reader's buffers.
class ScoreboardReader {
 public:
  // Throws std::runtime_error with a clear message when the segment does not
  // exist or its magic, version or size does not match this build.
  static ScoreboardReader open(const std::string& name);
  ScoreboardReader(ScoreboardReader&&) noexcept;
  ~ScoreboardReader();

  // Whether a snapshot copies the latency histograms (264 KiB a slot, a
  // few hundred microseconds in all) or leaves them empty, for a poller
  // that only wants the workers' states and counters.
  enum class Latencies { copied, skipped };

  // How long a snapshot waits for a sequence left odd: `bounded` retries
  // (yielding, then sleeping) for up to a second for the header and 50 ms
  // for a slot; `none` only spins a few times, for the master's own
  // /metrics, which must never stall supervision on a stuck sequence.
  enum class Wait { bounded, none };

  // A consistent copy: retries while the master is folding a slot in or a
  // worker is updating its slot (see SlotSnapshot::stale). Never trusts the
  // segment's own counts beyond what open() checked: a header scribbled
  // over is reported in ScoreboardSnapshot::corrupt, not followed. So is a
  // segment truncated under the reader (by anyone of the master's user),
  // with nothing else: no SIGBUS (prefork/core/bus_guard.hpp).
  ScoreboardSnapshot snapshot(Latencies latencies = Latencies::copied,
                              Wait wait = Wait::bounded) const;

  // True once the name no longer refers to the mapped segment: the master
  // removed it (it exits) or another master replaced it.
  bool unlinked() const;

 private:
  struct Impl;
  explicit ScoreboardReader(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefork
