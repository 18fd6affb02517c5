// The server models (Stevens' Unix Network Programming, ch. 30) and the
// accept strategies of their pools, with one table of their facts that every
// part of prefork reads: the master's plan, the worker runtime, --help and
// bench/models (through `--list-models`).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace prefork {

// How a worker runs the handler. The handler never knows which one runs it.
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

// What is true of a model, whatever else is configured.
struct ModelFacts {
  Model model;
  std::string_view name;     // on the command line: "fork-per-connection"
  std::string_view summary;  // one line, for --help and reports
  // N worker processes (--workers); otherwise exactly one.
  bool pool;
  // Several threads or child processes of one worker write its scoreboard
  // slot (they take the slot's writer lock).
  bool shared_writers;
  // Serves each connection with blocking I/O in one thread or process at a
  // time: a ConnectionHandler (handle(Connection&)) may run under it.
  bool blocking;
  // Runs a pool of threads per process (--threads).
  bool threads;
  Accept default_accept;
  std::span<const Accept> accepts;  // the strategies it can take
};

// Threads per process of the threaded pools when --threads is not given.
inline constexpr unsigned default_threads = 4;

// --max-connections when not given: as nginx's worker_connections (512 in
// its binary, 768 in Debian's nginx.conf), rounded up to the soft open-files
// limit most shells give, which the master raises to the hard one anyway.
inline constexpr unsigned default_max_connections = 1024;

// The most connections one worker process of `model` holds open at once
// with --max-connections `max_connections` and --threads `threads`:
// event, thread- and fork-per-connection stop accepting at the flag's cap;
// iterative and prefork serve one at a time; prethreaded --accept main and
// hybrid accept only for an idle pool thread, and no more than the cap;
// prethreaded --accept lock is its --threads (the threads accept themselves).
unsigned connection_cap(Model model, Accept accept, unsigned max_connections,
                        unsigned threads) noexcept;

// For callers: every model, in the order of the enum.
std::span<const ModelFacts> all_model_facts() noexcept;
const ModelFacts& facts(Model model) noexcept;

std::string_view model_name(Model model) noexcept;
std::string_view accept_name(Accept accept) noexcept;
std::optional<Model> model_from_name(std::string_view name) noexcept;
std::optional<Accept> accept_from_name(std::string_view name) noexcept;

// The strategy `accept` resolves to under `model` (automatic: the model's
// default), or nullopt with `why` set when the pair does not go together.
std::optional<Accept> resolve_accept(Model model, Accept accept, std::string& why);

// One line per model ("prefork  shared lock ... (default shared)"), for
// --help and `--list-models`.
std::string describe_models();

}  // namespace prefork
