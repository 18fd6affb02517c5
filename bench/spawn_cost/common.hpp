// spawn-cost's shared pieces: the clock, summaries of samples, JSON text, and
// the stop flag that SIGINT/SIGTERM raise so every loop can end cleanly.
#pragma once

#include <time.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace spawn_cost {

// CLOCK_MONOTONIC is one clock for every process on the machine, so a child's
// own stamp can be compared with the time its parent noted before the call.
inline std::int64_t now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Nearest-rank percentiles of samples, in microseconds.
struct Summary {
  std::size_t n = 0;
  double median = 0, p90 = 0, p99 = 0, min = 0, max = 0;
};
Summary summarize(std::vector<std::int64_t> samples_ns);

// {"n":..,"median":..,"p90":..,"p99":..,"min":..,"max":..}
std::string summary_json(const Summary& summary);
std::string json_string(std::string_view text);

// "  123.4  ..." columns: median p90 p99 min max.
std::string summary_columns(const Summary& summary);

// SIGINT, SIGTERM and SIGHUP only raise a flag; long loops poll it and throw
// Interrupted, so destructors kill and reap what this program started.
void install_stop_handlers();
bool stop_requested() noexcept;
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted by a signal") {}
};
inline void check_stop() {
  if (stop_requested()) throw Interrupted();
}

// Sleeps about `ns` (the caller sets a small timer slack for precision).
void sleep_ns(std::int64_t ns) noexcept;

std::vector<std::string_view> split_commas(std::string_view text);

}  // namespace spawn_cost
