// A repeated event logged at most once per interval, with how many were
// not: a flood of the same error (accept4's EMFILE, 40 a second) is one line
// a second that says how many it stands for, as nginx logs it once and pauses.
// Any thread may call admit(); a race between two only decides which logs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>

namespace prefork {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimiter(std::chrono::milliseconds interval) noexcept : interval_(interval) {}

  // True when the event at `now` is to be logged; `suppressed` is then how
  // many were not since the last one logged.
  bool admit(Clock::time_point now, std::uint64_t& suppressed) noexcept {
    const std::int64_t at = now.time_since_epoch().count();
    std::int64_t due = next_.load(std::memory_order_relaxed);
    if (at < due || !next_.compare_exchange_strong(
                        due, at + std::chrono::duration_cast<Clock::duration>(interval_).count(),
                        std::memory_order_relaxed)) {
      suppressed_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
    return true;
  }

  // The end of every limited line: " (N more since the last such line)".
  struct More {
    char text[64];
  };
  // admit() now; the line's ending when it is to be logged:
  //   if (auto more = limiter.admit_now()) log_info("...%s", ..., more->text);
  std::optional<More> admit_now() noexcept {
    std::uint64_t suppressed = 0;
    if (!admit(Clock::now(), suppressed)) return std::nullopt;
    More more;
    std::snprintf(more.text, sizeof more.text, " (%llu more since the last such line)",
                  static_cast<unsigned long long>(suppressed));
    return more;
  }

 private:
  const std::chrono::milliseconds interval_;
  std::atomic<std::int64_t> next_{std::numeric_limits<std::int64_t>::min()};
  std::atomic<std::uint64_t> suppressed_{0};
};

}  // namespace prefork
