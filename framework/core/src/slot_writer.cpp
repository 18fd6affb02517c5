#include <prefork/core/slot_writer.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <prefork/core/robust_mutex.hpp>
#include <prefork/log.hpp>

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

bool SlotWriter::lock_writer() noexcept {
  bool owner_died = false;
  return lock_robust_mutex(slot_->writer_lock, owner_died) == 0;
}

void SlotWriter::unlock_writer() noexcept { unlock_robust_mutex(slot_->writer_lock); }

void SlotWriter::connection_opened(std::size_t index) noexcept {
  if (!enabled_) return;
  update(index, [](Counters& slot, ListenerCounters& listener) {
    add(slot.connections_total, 1);
    add(listener.connections, 1);
  });
  slot_->connections_active.fetch_add(1, std::memory_order_relaxed);
}

void SlotWriter::connection_closed(std::size_t index, CloseReason reason) noexcept {
  if (!enabled_) return;
  update(index, [reason](Counters& slot, ListenerCounters&) {
    add(slot.closes[static_cast<unsigned>(reason) % close_reason_count], 1);
  });
  slot_->connections_active.fetch_sub(1, std::memory_order_relaxed);
}

void SlotWriter::started(std::uint64_t generation) noexcept {
  const std::uint64_t now = realtime_ns();
  slot_->pid.store(::getpid(), std::memory_order_relaxed);
  slot_->started_ns.store(now, std::memory_order_relaxed);
  slot_->heartbeat_ns.store(now, std::memory_order_relaxed);
  slot_->rss_bytes.store(resident_bytes(), std::memory_order_relaxed);
  slot_->generation.store(generation, std::memory_order_relaxed);
  slot_->retire_requested.store(0, std::memory_order_relaxed);
  state(WorkerState::starting);
}

bool SlotWriter::request_retire() noexcept {
  if (slot_->retire_requested.exchange(1, std::memory_order_relaxed) != 0) return false;
  if (retire_after_ != 0)
    log_info("served %llu requests (--max-requests): asking the master for a replacement",
             static_cast<unsigned long long>(retire_after_));
  else
    log_info("asking the master for a replacement");
  return true;
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
