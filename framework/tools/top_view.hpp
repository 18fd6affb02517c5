// prefork-top's table: the header lines and one row per worker slot, as
// plain text. Rates and interval percentiles compare two refreshes; the
// terminal handling is elsewhere (top_terminal.hpp), so that the same lines
// serve the live view and the piped one.
#pragma once

#include <prefork/scoreboard.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace prefork_top {

// One refresh. The monotonic time, not the snapshot's wall-clock time,
// measures the interval, so a clock step never makes a rate jump.
struct Sample {
  prefork::ScoreboardSnapshot snap;
  std::uint64_t monotonic_ns = 0;
};

// A heartbeat older than this is marked: the worker is stuck or gone.
inline constexpr std::uint64_t heartbeat_late_ns = 3'000'000'000;

// The view of `now`, one line per string, without newlines. `before` is the
// previous refresh of the same scoreboard, or null on the first one (rates
// and interval percentiles are then shown as "-").
std::vector<std::string> render_table(std::string_view name, const Sample& now,
                                      const Sample* before);

// `lines` cut to `columns` display columns each and to at most `rows`
// lines, the last kept one saying how many were left out.
std::vector<std::string> fit(std::vector<std::string> lines, unsigned columns, unsigned rows);

// "1.5K", "3.0M": binary multiples, as top(1) shows memory.
std::string human_bytes(std::uint64_t bytes);

}  // namespace prefork_top
