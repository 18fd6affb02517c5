// The scoreboard: a named shared-memory segment (Boost.Interprocess) with one
// slot per worker. Each slot has a single writer, its worker; the header is
// written by the master alone. Readers (prefork-top) attach read-only.
//
// Layout: Header, then slot_count Slots. Counters are 64-bit atomics. When a
// worker dies the master folds its counters into Header::retired under a
// sequence lock, so totals never lose what dead workers counted.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prefork {

inline constexpr std::uint64_t scoreboard_magic =
    0x4b524f4645525021ull;  // "!PREFORK" little-endian
inline constexpr std::uint32_t scoreboard_version = 2;

enum class WorkerState : std::uint32_t {
  empty = 0,     // no process in this slot
  starting = 1,  // forked or spawned, not serving yet
  ready = 2,     // serving
  stopping = 3,  // draining after a stop request
};
const char* worker_state_name(WorkerState state) noexcept;

// The counters a worker adds to; the same shape for a slot and for totals.
struct Counters {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> errors{0};
};

struct alignas(64) Slot {
  std::atomic<std::int32_t> pid{0};
  std::atomic<WorkerState> state{WorkerState::empty};
  std::atomic<std::uint64_t> generation{0};
  std::atomic<std::uint64_t> started_ns{0};    // CLOCK_REALTIME
  std::atomic<std::uint64_t> heartbeat_ns{0};  // CLOCK_REALTIME, about once a second
  std::atomic<std::uint64_t> connections_active{0};
  Counters counters;
};

// Aligned like Slot so that the slots that follow it start on a cache line.
struct alignas(64) Header {
  std::uint64_t magic;  // written last, with release, once the rest is set
  std::uint32_t version;
  std::uint32_t slot_count;
  std::uint64_t segment_size;
  std::int32_t master_pid;
  std::uint32_t reserved;
  std::uint64_t started_ns;
  std::atomic<std::uint64_t> sequence{0};  // odd while the master folds a slot in
  std::atomic<std::uint64_t> worker_restarts{0};
  Counters retired;  // everything counted by workers that have died
  // Room for the accept mutex of `--accept lock`: a process-shared, robust
  // pthread mutex the master sets up (see workers/src/accept_gate.cpp).
  alignas(64) unsigned char accept_lock[64];
};

// Plain copies, for readers.
struct CounterValues {
  std::uint64_t requests = 0, bytes_in = 0, bytes_out = 0, connections_total = 0, errors = 0;
};
struct SlotSnapshot {
  unsigned slot = 0;
  pid_t pid = 0;
  WorkerState state = WorkerState::empty;
  std::uint64_t generation = 0, started_ns = 0, heartbeat_ns = 0, connections_active = 0;
  CounterValues counters;
};
struct ScoreboardSnapshot {
  pid_t master_pid = 0;
  std::uint64_t started_ns = 0;
  std::uint64_t worker_restarts = 0;
  std::vector<SlotSnapshot> slots;
  CounterValues totals;  // retired + every slot
};

std::uint64_t realtime_ns() noexcept;

// True while `pid` runs: kill(pid, 0) alone also succeeds for a zombie (a
// master killed and not yet reaped by its parent), so /proc is asked too.
bool process_running(pid_t pid) noexcept;

// The master's segment: created at start, removed when destroyed.
class Scoreboard {
 public:
  // For the master. Replaces a stale segment whose master is dead; throws
  // std::runtime_error when a live master still owns the name.
  static Scoreboard create(const std::string& name, unsigned slot_count);

  Scoreboard(Scoreboard&&) noexcept;
  Scoreboard& operator=(Scoreboard&&) noexcept;
  ~Scoreboard();

  const std::string& name() const noexcept;
  Header& header() noexcept;
  Slot& slot(unsigned index) noexcept;
  unsigned slot_count() const noexcept;

  // After the slot's worker has been reaped: folds its counters into the
  // retired totals and clears the slot, atomically for readers.
  void retire(unsigned index) noexcept;

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

// A read-only view, for stats readers.
class ScoreboardReader {
 public:
  // Throws std::runtime_error with a clear message when the segment does not
  // exist or its magic, version or size does not match this build.
  static ScoreboardReader open(const std::string& name);
  ScoreboardReader(ScoreboardReader&&) noexcept;
  ~ScoreboardReader();

  // A consistent copy: retries while the master is folding a slot in.
  ScoreboardSnapshot snapshot() const;

  // True once the name no longer refers to the mapped segment: the master
  // removed it (it exits) or another master replaced it.
  bool unlinked() const;

 private:
  struct Impl;
  explicit ScoreboardReader(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prefork
