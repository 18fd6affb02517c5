// A whole run: starts the driver threads, lines them up, shows progress,
// measures the client's own CPU over the measured time, and merges what
// the threads recorded.
#pragma once

#include <prefork/histogram.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

#include "errors.hpp"
#include "exchange.hpp"
#include "options.hpp"

namespace bench {

struct RunResult {
  std::unique_ptr<prefork::Histogram> latency;  // ns
  ErrorCounts errors;
  std::uint64_t requests = 0;                    // measured requests answered correctly
  double duration_s = 0;                         // measured time
  double user_s = 0, sys_s = 0, cpu_wall_s = 0;  // getrusage over the measured time
  std::uint64_t in_flight_at_end = 0;            // answered or failed (counted) in the drain after
  std::uint64_t behind_schedule = 0;
  std::uint64_t starved_connections = 0;  // sent measured requests, never one answered
  bool interrupted = false;
  bool broken = false;  // a thread's epoll failed; see fatal
  Failure fatal;
};

// Runs the load until its limits or `interrupt` (set by a signal handler).
// Throws on set-up failure (prefork::SystemError names the call).
RunResult run_load(const Options& options, const Exchange& exchange,
                   const std::atomic<bool>& interrupt);

}  // namespace bench
