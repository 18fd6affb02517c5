// The master -> worker hand-off, defined once. The master fills a
// WorkerParams (designated initializers) for each worker it starts; a forked
// worker reads it as it is, a spawned one from the environment it was
// given (to_environment() in the master, from_environment() in the worker).
// The descriptors cross an exec separately, as LISTEN_FDS (environment.hpp).
#pragma once

#include <prefork/core/credentials.hpp>
#include <prefork/log.hpp>
#include <prefork/models.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace prefork {

// What one TCP connection may take: --idle-timeout, --read-timeout,
// --write-timeout, resolved (0: off).
struct ConnectionTimeouts {
  std::chrono::milliseconds idle{}, read{}, write{};
  bool operator==(const ConnectionTimeouts&) const = default;
};

struct WorkerParams {
  unsigned slot = 0;
  std::uint64_t generation = 0;  // bumps each time the slot is refilled
  pid_t master_pid = 0;          // the worker stops when this is no longer its parent
  std::string stats_name;        // the scoreboard segment (and the flock file)
  Model model = Model::event;
  Accept accept = Accept::exclusive;  // resolved: never automatic
  unsigned threads = default_threads;
  std::size_t max_message = 1 << 20;  // the most a connection may buffer of one message
  unsigned max_connections = default_max_connections;  // --max-connections
  std::chrono::milliseconds graceful_timeout{10'000};
  // --idle-timeout, --read-timeout, --write-timeout (0: off).
  std::chrono::milliseconds idle_timeout{75'000};
  std::chrono::milliseconds read_timeout{60'000};
  std::chrono::milliseconds write_timeout{60'000};
  // After this many requests the worker asks to be recycled (Slot::
  // retire_requested); 0: never. The master has already added the jitter.
  std::uint64_t max_requests = 0;
  bool worker_stats = true;  // false: leave the slot's counters alone (--worker-stats off)
  LogSettings log{};         // --log-level, --log-format, --log-file
  // --user/--group: whom the worker becomes once its set-up is done; none:
  // it keeps the master's identity.
  std::optional<Credentials> run_as;
  // By listener index, the timeouts of every listener when one sets its
  // own (`HOST:PORT,idle-timeout=5`), the others' filled in from the
  // server's; empty when none does. (Last: the designated initializers
  // that leave it out stay warning-free.)
  std::vector<ConnectionTimeouts> listener_timeouts{};
  // --trace: the master's time 0 on CLOCK_MONOTONIC (prefork/core/trace.hpp);
  // none: off.
  std::optional<std::uint64_t> trace_origin_ns{};

  // "NAME=value" entries, PREFORK_* names.
  std::vector<std::string> to_environment() const;
  // The inverse; `lookup` is getenv by default. Throws std::runtime_error
  // naming a variable that is missing or malformed.
  using Lookup = std::function<const char*(const char*)>;
  static WorkerParams from_environment(const Lookup& lookup = {});
  // True when the environment carries a worker's hand-off.
  static bool in_environment(const Lookup& lookup = {});

  // Listener `listener`'s timeouts: its own, or the server's.
  ConnectionTimeouts timeouts_for(std::size_t listener) const noexcept {
    if (listener < listener_timeouts.size()) return listener_timeouts[listener];
    return {idle_timeout, read_timeout, write_timeout};
  }

  bool operator==(const WorkerParams&) const = default;
};

}  // namespace prefork
