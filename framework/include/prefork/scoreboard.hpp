// The scoreboard: a named shared-memory segment (Boost.Interprocess) with one
// slot per worker. Each slot's counters have one writer, its worker (or, in
// the thread and per-connection-child models, the worker's threads and
// children, which take the slot's writer lock); the header is written by the
// master alone. Readers (prefork-top, the master's /metrics) attach
// read-only and never write.
//
// Consistency: a slot's counters change inside its sequence lock (the
// sequence is odd while an update is under way), so a reader's copy is
// never torn: per-listener counts always sum to the slot's totals. When a
// worker dies the master folds its counters and histogram into
// Header::retired under the header's sequence lock, so totals never go
// backwards across worker replacement.
//
// Layout (version 3): Header, then slot_count Slots. All counters are 64-bit.
#pragma once

#include <prefork/histogram.hpp>
#include <prefork/listener.hpp>

#include <sys/types.h>
#include <time.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace prefork {

inline constexpr std::uint64_t scoreboard_magic =
    0x4b524f4645525021ull;  // "!PREFORK" little-endian
inline constexpr std::uint32_t scoreboard_version = 3;
// Per-listener counters have room for this many listeners.
inline constexpr unsigned scoreboard_max_listeners = 16;

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
  ListenerCounters listeners[scoreboard_max_listeners];
};

struct alignas(64) Slot {
  // Identity and gauges: each a single value, read without the lock.
  std::atomic<std::int32_t> pid{0};
  std::atomic<WorkerState> state{WorkerState::empty};
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::uint64_t> started_ns{0};    // CLOCK_REALTIME
  std::atomic<std::uint64_t> heartbeat_ns{0};  // CLOCK_REALTIME, about once a second
  std::atomic<std::uint64_t> rss_bytes{0};     // with the heartbeat
  std::atomic<std::uint64_t> connections_active{0};
  // Threads of the worker asleep in accept() or recvmsg() waiting for work
  // (Stevens' designs): the kernel wakes them, so their heartbeat, written
  // when they get work, is not expected to move meanwhile.
  std::atomic<std::uint32_t> waiting{0};
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

// Aligned like Slot so that the slots that follow it start on a cache line.
struct alignas(64) Header {
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
  std::atomic<std::uint64_t> generation{0};          // the last generation started
  std::atomic<std::uint64_t> metrics_updated_ns{0};  // queue depths, CLOCK_REALTIME
  ListenerRecord listeners[scoreboard_max_listeners];
  Counters retired;  // everything counted by workers that have died
  // Room for the accept mutex of `--accept lock`: a process-shared, robust
  // pthread mutex the master sets up (see workers/src/accept_gate.cpp).
  alignas(64) unsigned char accept_lock[64];
  alignas(64) SharedHistogram retired_latency;
};

// Plain copies, for readers.
struct ListenerValues {
  std::uint64_t requests = 0, errors = 0, connections = 0, bytes_in = 0, bytes_out = 0;
};
struct CounterValues {
  std::uint64_t requests = 0, bytes_in = 0, bytes_out = 0, connections_total = 0, errors = 0;
  std::array<std::uint64_t, error_kind_count> error_kinds{};
  std::vector<ListenerValues> listeners;  // Header::listener_count entries

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
  std::uint32_t waiting = 0;  // see Slot::waiting
  CounterValues counters;
  std::shared_ptr<const Histogram> latency;  // never null; empty if Latencies::skipped
  // The slot stayed mid-update for the whole snapshot (its writer stopped
  // or died inside an update): `counters` are the last whole copy this
  // reader took of the same worker, or zero.
  bool stale = false;
};
struct ScoreboardSnapshot {
  pid_t master_pid = 0;
  std::uint64_t started_ns = 0;  // the master's, CLOCK_REALTIME
  std::uint64_t taken_ns = 0;    // when this copy was taken, CLOCK_REALTIME
  std::uint64_t generation = 0;
  std::uint64_t worker_restarts = 0;
  std::uint64_t exits_crashed = 0, exits_signaled = 0, exits_recycled = 0;
  std::uint64_t metrics_updated_ns = 0;
  std::vector<ListenerInfo> listeners;
  std::vector<SlotSnapshot> slots;
  CounterValues retired;  // workers that have died
  std::shared_ptr<const Histogram> retired_latency;
  CounterValues totals;                      // retired + every slot
  std::shared_ptr<const Histogram> latency;  // retired + every slot
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

// The master's segment: created at start, removed when destroyed.
class Scoreboard {
 public:
  // For the master. Replaces a stale segment whose master is dead; throws
  // std::runtime_error when a live master still owns the name, or when there
  // are more than scoreboard_max_listeners listeners.
  static Scoreboard create(const std::string& name, unsigned slot_count,
                           std::span<const Listener> listeners = {});

  Scoreboard(Scoreboard&&) noexcept;
  Scoreboard& operator=(Scoreboard&&) noexcept;
  ~Scoreboard();

  const std::string& name() const noexcept;
  Header& header() noexcept;
  Slot& slot(unsigned index) noexcept;
  unsigned slot_count() const noexcept;

  // After the slot's worker has been reaped: folds its counters and
  // histogram into the retired totals and clears the slot, atomically for
  // readers.
  void retire(unsigned index) noexcept;
  // The master's periodic figures: each listener's accept queue.
  void publish_queue(unsigned listener, std::uint32_t depth, std::uint32_t limit) noexcept;

 private:
  struct Impl;
  explicit Scoreboard(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

// A spawned worker's read-write view of its own slot.
class SlotAttachment {
 public:
  // Throws std::runtime_error when the segment is missing or mismatched.
  static SlotAttachment open(const std::string& name, unsigned slot);
  SlotAttachment(SlotAttachment&&) noexcept;
  ~SlotAttachment();
  Slot& slot() noexcept;
  Header& header() noexcept;

 private:
  struct Impl;
  explicit SlotAttachment(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

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

  // A consistent copy: retries while the master is folding a slot in or a
  // worker is updating its slot (see SlotSnapshot::stale).
  ScoreboardSnapshot snapshot(Latencies latencies = Latencies::copied) const;

  // True once the name no longer refers to the mapped segment: the master
  // removed it (it exits) or another master replaced it.
  bool unlinked() const;

 private:
  struct Impl;
  explicit ScoreboardReader(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefork
