// The one clock of the load generator: CLOCK_MONOTONIC in nanoseconds.
#pragma once

#include <time.h>

#include <cstdint>

namespace bench {

inline std::uint64_t now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

inline constexpr std::uint64_t ns_per_ms = 1'000'000;
inline constexpr std::uint64_t ns_per_s = 1'000'000'000;

}  // namespace bench
