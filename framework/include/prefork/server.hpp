// Running a pre-fork server: the master creates the listeners, starts the
// workers (fork or spawn), supervises them, and stops them gracefully.
#pragma once

#include <prefork/handler.hpp>
#include <prefork/listener.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

enum class StartMode {
  fork,   // fork(): the child goes on in this program image
  spawn,  // a new program image (Boost.Process), listeners passed as LISTEN_FDS
};

// How a worker runs the handler: the server designs of Stevens' Unix Network
// Programming, ch. 30. The handler never knows which one runs it.
enum class Model {
  event,                  // one epoll loop per worker process (the default)
  iterative,              // one process, one connection at a time
  fork_per_connection,    // a new process per connection (ForkingTCPServer)
  thread_per_connection,  // a new thread per connection (ThreadingTCPServer)
  prefork,                // a pool of processes, each serving one connection at a time
  prethreaded,            // a pool of threads in one process
  hybrid,                 // processes x threads (Apache's worker MPM, gunicorn's gthread)
};

// How idle workers of a pool get the next connection.
enum class Accept {
  automatic,  // the model's own default
  shared,     // all block in accept() on the one socket, no lock
  lock,       // a mutex around accept (shared memory; a thread mutex in prethreaded)
  flock,      // flock(2) on a file around accept
  reuseport,  // one SO_REUSEPORT socket per worker: the kernel spreads connections
  exclusive,  // epoll with EPOLLEXCLUSIVE: one waiter woken per connection
  pass,       // the master accepts and passes descriptors (SCM_RIGHTS)
  main,       // prethreaded/hybrid: one thread accepts and queues
};

std::string_view model_name(Model model) noexcept;
std::string_view accept_name(Accept accept) noexcept;
std::optional<Model> model_from_name(std::string_view name) noexcept;
std::optional<Accept> accept_from_name(std::string_view name) noexcept;

struct ServerConfig {
  std::vector<ListenerSpec> listeners;
  unsigned workers = 0;  // 0: one per CPU
  StartMode start = StartMode::fork;
  std::string stats_name;  // scoreboard segment; empty: "prefork_<master pid>"
  std::size_t max_frame = 1 << 20;
  std::chrono::milliseconds graceful_timeout{10'000};
  int backlog = 1024;
  // spawn: the worker program; empty re-runs this executable in its worker
  // role with worker_args (by default this process's own arguments).
  std::string worker_exe;
  std::vector<std::string> worker_args;
  // A slot whose worker dies this many times in a row before serving for a
  // second makes the master give up. At least 1 (serve() returns exit_usage
  // for 0); any larger value is valid, the wait between tries stays 5 s.
  unsigned max_start_failures = 5;
  Model model = Model::event;
  Accept accept = Accept::automatic;
  unsigned threads = 0;  // prethreaded, hybrid: threads per process; 0: 4
  // The master serves GET /metrics (OpenMetrics) and GET /stats.json here.
  std::optional<Address> metrics;
  // false: workers leave their slots' counters alone (only to measure what
  // the scoreboard costs; prefork-top then shows zeros).
  bool worker_stats = true;
};

// The accept strategy `config` resolves to, and whether the pair is valid
// (e.g. `pass` with prethreaded is not): nullopt with `why` set when not.
std::optional<Accept> resolve_accept(const ServerConfig& config, std::string& why);

// Exit statuses of the master (and of prefork_main).
inline constexpr int exit_ok = 0;
inline constexpr int exit_setup_failed = 1;    // e.g. bind failed
inline constexpr int exit_usage = 2;           // bad command line
inline constexpr int exit_workers_failed = 3;  // workers keep dying at start
// A worker exiting with this status means "my set-up failed; do not
// respawn me" (gunicorn's boot error): the master stops and exits 3.
inline constexpr int worker_exit_boot_error = 3;

// For callers: runs the master until it is stopped; returns its exit status.
// Prints "listening <proto> <host>:<port>" on stdout once per listener.
int serve(const ServerConfig& config, Handler& handler);

// True in a process started by a spawn-mode master (the worker role).
bool started_as_worker();

// For a spawned worker: serves the inherited listeners with `handler` until
// told to stop; returns the worker's exit status.
int serve_as_worker(Handler& handler);

}  // namespace prefork
