#include "slot_writer.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "robust_mutex.hpp"

namespace prefork {

namespace {

// Resident set size from /proc/self/statm (its second field, in pages).
std::uint64_t resident_bytes() noexcept {
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[128];
  ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(text, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

// One update of the slot's counters, as the sequence lock's writer.
class SlotWriter::Section {
 public:
  explicit Section(SlotWriter& writer) noexcept : slot_(*writer.slot_), shared_(writer.shared_) {
    bool owner_died = false;
    if (shared_ && lock_robust_mutex(slot_.writer_lock, owner_died) != 0) shared_ = false;
    sequence_ = slot_.sequence.load(std::memory_order_relaxed);
    // A writer that died inside its section left the sequence odd; its
    // partial update stays, but readers see whole copies from now on.
    sequence_ += sequence_ & 1;
    slot_.sequence.store(sequence_ + 1, std::memory_order_relaxed);
    // A reader that sees any store below also sees the odd sequence.
    std::atomic_thread_fence(std::memory_order_release);
  }
  ~Section() {
    slot_.sequence.store(sequence_ + 2, std::memory_order_release);
    if (shared_) unlock_robust_mutex(slot_.writer_lock);
  }
  Section(const Section&) = delete;
  Section& operator=(const Section&) = delete;

 private:
  Slot& slot_;
  bool shared_;
  std::uint64_t sequence_ = 0;
};

std::uint64_t SlotWriter::monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void SlotWriter::bytes_in(std::size_t index, std::uint64_t n) noexcept {
  if (!enabled_) return;
  Section section(*this);
  add(slot_->counters.bytes_in, n);
  add(listener(index).bytes_in, n);
}

void SlotWriter::bytes_out(std::size_t index, std::uint64_t n) noexcept {
  if (!enabled_) return;
  Section section(*this);
  add(slot_->counters.bytes_out, n);
  add(listener(index).bytes_out, n);
}

void SlotWriter::request(std::size_t index) noexcept {
  if (!enabled_) return;
  Section section(*this);
  add(slot_->counters.requests, 1);
  add(listener(index).requests, 1);
}

// Outside the sequence lock: readers copy the histogram bucket by bucket.
// Shared writers still serialise, as its buckets have a single writer.
void SlotWriter::latency(std::uint64_t nanoseconds) noexcept {
  if (!enabled_) return;
  bool owner_died = false;
  const bool locked = shared_ && lock_robust_mutex(slot_->writer_lock, owner_died) == 0;
  slot_->latency.record(nanoseconds);
  if (locked) unlock_robust_mutex(slot_->writer_lock);
}

void SlotWriter::error(ErrorKind kind, std::size_t index) noexcept {
  if (!enabled_) return;
  Section section(*this);
  add(slot_->counters.errors, 1);
  add(slot_->counters.error_kinds[static_cast<unsigned>(kind) % error_kind_count], 1);
  add(listener(index).errors, 1);
}

void SlotWriter::connection_opened(std::size_t index) noexcept {
  if (!enabled_) return;
  {
    Section section(*this);
    add(slot_->counters.connections_total, 1);
    add(listener(index).connections, 1);
  }
  slot_->connections_active.fetch_add(1, std::memory_order_relaxed);
}

void SlotWriter::connection_closed() noexcept {
  if (!enabled_) return;
  slot_->connections_active.fetch_sub(1, std::memory_order_relaxed);
}

void SlotWriter::started(std::uint64_t generation) noexcept {
  const std::uint64_t now = realtime_ns();
  slot_->pid.store(::getpid(), std::memory_order_relaxed);
  slot_->started_ns.store(now, std::memory_order_relaxed);
  slot_->heartbeat_ns.store(now, std::memory_order_relaxed);
  slot_->rss_bytes.store(resident_bytes(), std::memory_order_relaxed);
  slot_->generation.store(generation, std::memory_order_relaxed);
  state(WorkerState::starting);
}

bool SlotWriter::beat() noexcept {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t due = next_beat_.load(std::memory_order_relaxed);
  if (now < due ||
      !next_beat_.compare_exchange_strong(due, now + 1'000'000'000, std::memory_order_relaxed))
    return false;
  slot_->heartbeat_ns.store(realtime_ns(), std::memory_order_relaxed);
  slot_->rss_bytes.store(resident_bytes(), std::memory_order_relaxed);
  return true;
}

}  // namespace prefork
