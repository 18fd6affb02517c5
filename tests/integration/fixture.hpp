// What every integration test shares: the start mode it runs in, where the
// programs are, and an upper_server that is started ready and always cleaned
// up (process killed and reaped, segment removed), with its stderr printed
// when the test fails.
#pragma once

#include "clients.hpp"
#include "server_process.hpp"

#include <prefork/models.hpp>

#include <boost/test/unit_test.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::test {

inline constexpr Milliseconds start_timeout = 15'000ms;
inline constexpr Milliseconds state_timeout = 10'000ms;
// Under ThreadSanitizer, how long a server has to stop when the test ends
// (its graceful timeout is 10 s; the sanitizer slows it down).
inline constexpr Milliseconds tsan_stop_timeout = 30'000ms;

// "fork" or "spawn": the argument after `--` on the test's command line
// (CTest registers every executable once per mode); "fork" when absent.
std::string start_mode();
bool spawn_mode();
// `--model X --accept Y` from `model=X accept=Y` after `--`: the serving
// model under test (the server's default when absent).
std::vector<std::string> model_arguments();
// The serving model under test: `model=X` after `--`, or the server's
// default (event) when absent. Throws on a name prefork does not know.
prefork::Model model_under_test();
// The models that run in one process (their scoreboard has one slot).
bool one_process_model();
// For spawn-only test cases: `* boost::unit_test::precondition(only_in_spawn_mode)`
// skips them, with a message, in fork mode.
boost::test_tools::assertion_result only_in_spawn_mode(boost::unit_test::test_unit_id);

// For assertions on ServerProcess::wait_exit(), whose nullopt Boost.Test
// cannot print: the status, or still_running (-1) after the timeout.
inline constexpr int still_running = -1;
inline int status_or_running(const std::optional<int>& status) {
  return status.value_or(still_running);
}

// build/bin/<name>, build/lib/<name>, <source>/<relative>.
std::string bin_path(const std::string& name);
std::string lib_path(const std::string& name);
std::string source_path(const std::string& relative);

// What UpperServer starts a program with: --start (the test's mode), --stats,
// --workers, --allow-root and the model under test, then `args`. For tests
// that start a server expected to fail.
std::vector<std::string> server_arguments(const std::string& stats, unsigned workers,
                                          std::vector<std::string> args);

// An upper_server in the test's start mode, ready to serve.
class UpperServer {
 public:
  struct Options {
    unsigned workers = 2;
    // false: wait for the `listening` lines only (e.g. workers that never
    // become ready).
    bool wait_for_workers = true;
    // Which of the example programs in build/bin.
    std::string program = "upper_server";
  };

  // For tests: `args` are the listeners and any other flags; --start, --stats
  // and --workers are put in front (so `-- worker args` may come last).
  // Waits for one `listening` line per --tcp/--framed/--udp flag and for
  // every worker to be ready. Throws with the server's output on failure.
  explicit UpperServer(std::vector<std::string> args);
  UpperServer(std::vector<std::string> args, Options options);
  // Prints the server's output and scoreboard if the test has failed.
  // Under ThreadSanitizer, first stops the server and fails the test if its
  // stderr holds a ThreadSanitizer report.
  ~UpperServer();

  ServerProcess& process() noexcept { return process_; }
  pid_t pid() const noexcept { return process_.pid(); }
  const std::string& stats_name() const noexcept { return shm_.name(); }

  // The listener of that protocol ("tcp", "framed", "udp") and family
  // (AF_INET: host without ':'; AF_INET6). Throws when there is none.
  const Endpoint& endpoint(std::string_view protocol, bool ipv6 = false) const;
  const std::vector<Endpoint>& endpoints() const noexcept { return endpoints_; }

  // The snapshot taken when every worker was ready.
  const ScoreboardSnapshot& ready_snapshot() const noexcept { return ready_; }
  ScoreboardSnapshot snapshot();
  // scoreboard_when() on this server; remembers the last snapshot for the
  // failure report.
  std::optional<ScoreboardSnapshot> when(
      const std::function<bool(const ScoreboardSnapshot&)>& predicate,
      Milliseconds timeout = state_timeout);

  // Waits until totals.requests reaches `expected` and returns the value
  // seen then, which the test compares with `expected`: more is as wrong as
  // less. Workers count a request when they call the handler, which may be
  // just after the client has its reply, hence the wait.
  std::uint64_t requests_when_at_least(std::uint64_t expected);

 private:
  // Reaps, last of all, the workers seen in the scoreboard: if the master
  // had to be SIGKILLed, they were orphaned to this process (a child
  // subreaper) and must not stay zombies.
  struct WorkerReaper {
    WorkerReaper();
    ~WorkerReaper();
    std::vector<pid_t> pids;
  };
  void remember_workers(const ScoreboardSnapshot& snapshot);

  // Destroyed in reverse order: the process is stopped first, then the
  // segment removed, then the orphans reaped.
  WorkerReaper reaper_;
  ShmGuard shm_;
  ServerProcess process_;
  std::vector<Endpoint> endpoints_;
  ScoreboardSnapshot ready_;
  ScoreboardSnapshot last_;
};

// True when the running test case has failed so far, or an exception is on
// its way out of it.
bool current_test_failing();

// The `listening metrics` line of a server started with --metrics, after
// its `listeners` listener lines.
Endpoint metrics_endpoint(UpperServer& server, std::size_t listeners);

// A directory of its own under /tmp, removed with what it holds.
class TempDir {
 public:
  TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();
  const std::string& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes file(name) whole, as an editor saves it (a new file renamed over
  // the old: a reader never sees half of it); its path.
  std::string write(const std::string& name, const std::string& text) const;
  // Writes an executable shell script; its path.
  std::string script(const std::string& name, const std::string& text) const;

 private:
  std::string path_;
};

// A short-lived program run to its end (at most state_timeout).
struct Finished {
  std::optional<int> status;
  std::string out, err;
  std::string description;
};
Finished run_to_end(const std::string& program, std::vector<std::string> args);

// How many times `part` occurs in `text`.
std::size_t count_of(std::string_view text, std::string_view part);

// A server's log (its stderr) reaches the test through a pipe, after the
// event it tells of: wait for a line, never read it once after the event.
// How many times `what` is in the log read so far:
std::size_t logged(const ServerProcess& server, std::string_view what);
inline std::size_t logged(UpperServer& server, std::string_view what) {
  return logged(server.process(), what);
}
// Waits until `what` has been logged `times` times (false after `timeout`).
bool logged_when(const ServerProcess& server, std::string_view what, std::size_t times = 1,
                 Milliseconds timeout = state_timeout);
inline bool logged_when(UpperServer& server, std::string_view what, std::size_t times = 1,
                        Milliseconds timeout = state_timeout) {
  return logged_when(server.process(), what, times, timeout);
}

}  // namespace prefork::test
