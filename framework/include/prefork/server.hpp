// Running a pre-fork server: the master creates the listeners, starts the
// workers (fork or spawn), supervises them, and stops them gracefully.
#pragma once

#include <prefork/connection.hpp>
#include <prefork/exit_status.hpp>
#include <prefork/handler.hpp>
#include <prefork/listener.hpp>
#include <prefork/log.hpp>
#include <prefork/models.hpp>
#include <prefork/worker.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

enum class StartMode {
  fork,   // fork(): the child goes on in this program image
  spawn,  // a new program image (Boost.Process), listeners passed as LISTEN_FDS
};

// How the pool's size is chosen (see README "Supervision").
enum class PoolMode {
  fixed,    // `workers`, changed only by SIGTTIN/SIGTTOU
  dynamic,  // between min_spare and max_spare idle workers, at most max_workers
};

struct ServerConfig {
  std::vector<ListenerSpec> listeners;
  unsigned workers = 0;  // 0: one per CPU
  StartMode start = StartMode::fork;
  std::string stats_name;  // scoreboard segment; empty: "prefork_<master pid>"
  // The most one received message may hold (a frame's payload, a line); a
  // connection sending more is closed (CloseReason::limit_exceeded).
  std::size_t max_message = 1 << 20;
  std::chrono::milliseconds graceful_timeout{10'000};
  // A TCP connection is closed when it waits this long (0: never): for its
  // next message (idle), for the rest of a message it started (read), or
  // for its peer to take some of its pending replies (write). nginx's values.
  std::chrono::milliseconds idle_timeout{75'000};
  std::chrono::milliseconds read_timeout{60'000};
  std::chrono::milliseconds write_timeout{60'000};
  int backlog = 1024;
  // The most TCP connections one worker process holds open: at it the
  // worker stops accepting until one closes (the rest wait in the backlog,
  // for another worker). The pooled blocking models are bounded by their
  // pool too (connection_cap(), prefork/models.hpp). At least 1.
  unsigned max_connections = default_max_connections;
  // spawn: the worker program; empty re-runs this executable in its worker
  // role with worker_args (by default this process's own arguments).
  std::string worker_exe;
  std::vector<std::string> worker_args;
  // --- Supervision (README "Signals" and "Supervision") ---
  // Workers that fail to start (die, or miss start_timeout, before they are
  // ready) this many times within restart_window while no worker serves
  // make the master give up (exit_workers_failed). While some worker
  // serves, a failing seat only backs off (100 ms doubling to 10 s). At
  // least 1 (serve() returns exit_usage for 0).
  unsigned max_start_failures = 5;
  std::chrono::milliseconds restart_window{60'000};
  // The heartbeat: a worker silent this long (no progress, and not asleep
  // waiting for work) is aborted (SIGABRT), killed 2 s later if still
  // there, and replaced. 0: never.
  std::chrono::milliseconds timeout{30'000};
  // A worker not ready this long after its start is killed and counted as
  // a failed start. 0: no deadline. Also how long a binary upgrade's new
  // master has to be ready before it is stopped (0 there: 60 s).
  std::chrono::milliseconds start_timeout{30'000};
  // Recycling: a worker is replaced after max_requests requests plus a
  // random 0..max_requests_jitter (0: never); at most max_recycling workers
  // are replaced at once (also in a reload), each by a worker started and
  // ready before the old one stops.
  std::uint64_t max_requests = 0;
  std::uint64_t max_requests_jitter = 0;
  unsigned max_recycling = 1;
  // The pool: `workers` at start; TTIN/TTOU add or remove one, up to
  // max_workers (0: twice `workers`). Dynamic: min_spare..max_spare idle
  // workers, at most spawn_rate started per second.
  PoolMode pool = PoolMode::fixed;
  unsigned max_workers = 0;
  unsigned min_spare = 1;
  unsigned max_spare = 3;
  unsigned spawn_rate = 8;
  // On SIGTERM, GET /health answers 503 for this long before the listeners
  // close, so that a load balancer in front stops sending first.
  std::chrono::milliseconds drain_delay{0};
  Model model = Model::event;
  Accept accept = Accept::automatic;
  unsigned threads = 0;  // prethreaded, hybrid: threads per process; 0: default_threads
  // The master serves GET /metrics (OpenMetrics) and GET /stats.json here.
  std::optional<Address> metrics;
  // false: workers leave their slots' counters alone (only to measure what
  // the scoreboard costs; prefork-top then shows zeros).
  bool worker_stats = true;
  // Where and how the master and the workers log (--log-level, --log-format,
  // --log-file); serve() applies it, the workers inherit it.
  LogSettings log{};
  // --trace: one log line (level info) per lifecycle event of the master
  // and the workers, timed in ms since the master's start (README "The log").
  bool trace = false;
  // Set by parse_command_line() (and so by prefork_main()) when a
  // configuration can be re-read (HUP): the new configuration, or nullopt
  // with the reason in `error` (one line, e.g. "prefork.toml:7: unknown key
  // 'wokers'"). It re-reads the same command line and the same --config
  // file, the flags still overriding the file; nothing is printed. Empty
  // for a configuration made by hand.
  std::function<std::optional<ServerConfig>(std::string& error)> reload{};

  // ---- Running as a system service (issue 9: privileges, pid file) -------
  // The master binds as whoever starts it and keeps that identity (a reload
  // or a binary upgrade may bind a privileged port again, as nginx's master
  // does); each worker drops to `user` (its groups too) and/or `group` once
  // set up, before any handler code runs. Names or numbers; both need a
  // master running as root.
  std::string user;
  std::string group;
  // A master running as root without `user` refuses to start its workers
  // as root (exit_usage) unless this is set.
  bool allow_root = false;
  // The master's pid, written atomically once the listeners are open and
  // removed at exit; serve() refuses (exit_setup_failed) when it names a
  // running master. Empty: none.
  std::string pid_file;
  // ---- end of the system-service block ------------------------------------
};

// For callers: runs the master until it is stopped; returns its exit status.
// Prints "listening <proto> <host>:<port>" on stdout once per listener. An
// invalid configuration (a model/accept pair that does not go together, a
// ConnectionHandler under a model that is not blocking) is exit_usage.
int serve(const ServerConfig& config, Handler& handler);

// The same with a plain function or lambda as the worker's code, as
// Python's Process(target=f): one taking (const Request&, std::string_view,
// Reply&) is called per message; one taking (Connection&) gets each whole
// connection (blocking models only).
template <typename Function>
requires std::invocable<Function&, const Request&, std::string_view, Reply&>
int serve(const ServerConfig& config, Function function) {
  FunctionHandler<Function> handler(std::move(function));
  return serve(config, static_cast<Handler&>(handler));
}
template <typename Function>
requires std::invocable<Function&, Connection&>
int serve(const ServerConfig& config, Function function) {
  ConnectionFunctionHandler<Function> handler(std::move(function));
  return serve(config, static_cast<Handler&>(handler));
}

}  // namespace prefork
