// Starting the real programs from a test, and watching them from outside.
//
// A ServerProcess is a child started with fork+exec that dies with the test:
// PR_SET_PDEATHSIG(SIGTERM) in the child, SIGKILL and reap in the destructor.
// A background thread drains its stdout and stderr, so a chatty server never
// blocks on a full pipe and the text is there for diagnostics.
#pragma once

#include <prefork/scoreboard.hpp>

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace prefork::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Milliseconds = std::chrono::milliseconds;

// One parsed "listening <protocol> <host>:<port>" line.
struct Endpoint {
  std::string protocol;  // "tcp", "framed", "udp"
  std::string host;      // "127.0.0.1" or "::1" (without brackets)
  std::uint16_t port = 0;

  // "127.0.0.1:8080" or "[::1]:8080", as the server prints it.
  std::string host_port() const;
};

// Parses one stdout line; nullopt when it is not a `listening` line.
std::optional<Endpoint> parse_listening_line(const std::string& line);

class ServerProcess {
 public:
  struct Options {
    // false: stderr goes to the test's own stderr instead of being captured.
    bool capture_stderr = true;
    // Extra "NAME=value" entries; the child also gets the test's environment,
    // less any LISTEN_* variables (they would confuse a prefork program).
    std::vector<std::string> extra_environment;
    // The destructor first asks politely (SIGTERM, so that a server reaps
    // its own workers) and waits this long before SIGKILL. 0: SIGKILL at once.
    Milliseconds stop_timeout = 5'000ms;
  };

  // For callers: starts `program` (a path, or a name looked up in PATH) with
  // `args`. Throws std::runtime_error when fork or exec fails.
  //
  // PR_SET_PDEATHSIG fires when the *thread* that forked exits, so create
  // ServerProcess objects from the test's main thread.
  ServerProcess(std::string program, std::vector<std::string> args);
  ServerProcess(std::string program, std::vector<std::string> args, Options options);
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // Stops the process if it still runs (SIGTERM, then SIGKILL after
  // Options::stop_timeout), reaps it, joins the reader thread.
  ~ServerProcess();

  pid_t pid() const noexcept { return pid_; }
  const std::string& program() const noexcept { return program_; }

  // Waits for `count` `listening` lines (counting those already seen).
  // Throws std::runtime_error, with the process's stderr, on timeout or when
  // the process exits first.
  std::vector<Endpoint> wait_for_listening(std::size_t count, Milliseconds timeout);

  // The next stdout line not yet taken (`listening` lines included);
  // nullopt on timeout or end of output.
  std::optional<std::string> next_line(Milliseconds timeout);

  // Sends `sig` to the process (only while it has not been reaped).
  void signal(int sig);

  // Waits for the process to end and reaps it, then (for at most 2 s) for
  // its output to be read to the end. The exit status, or 128 + signal
  // number when a signal ended it (as a shell reports it); nullopt when it
  // still runs after `timeout`. Calling it again returns the same.
  std::optional<int> wait_exit(Milliseconds timeout);
  // True until the process has been reaped by wait_exit() (a zombie counts
  // as running: call wait_exit to collect it).
  bool running() const noexcept { return !exit_status_; }

  // Everything read so far. stdout_text() waits until the output is closed
  // (normally: the process exited) or the timeout passes.
  std::string stderr_text() const;
  std::string stdout_text(Milliseconds wait_for_eof = 0ms) const;

  // "program args...; exit status / running; stderr: ..." for failure messages.
  std::string describe() const;

 private:
  void read_output();

  std::string program_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int wake_read_fd_ = -1;  // the destructor writes to wake_write_fd_ to stop the reader
  int wake_write_fd_ = -1;
  std::optional<int> exit_status_;
  Milliseconds stop_timeout_;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::string stdout_all_;
  std::string stdout_partial_;
  std::vector<std::string> lines_;
  std::size_t lines_taken_ = 0;
  std::string stderr_all_;
  bool output_closed_ = false;
  std::thread reader_;
};

// Makes this process the reaper of its orphaned descendants
// (PR_SET_CHILD_SUBREAPER): the workers of a master that was killed become
// its children, and wait_exited() reaps them. Without it they end as zombies
// of init, and some container inits never reap.
void become_child_subreaper();

// Waits until `pid` has stopped running: reaps it when it is a child of ours
// (see become_child_subreaper), otherwise waits until it is gone or a zombie
// of someone else. False if it still runs after `timeout`.
bool wait_exited(pid_t pid, Milliseconds timeout);

// "prefork_test_<pid>_<n>": unique per test process and per call.
std::string unique_stats_name();

// Removes a shared-memory segment name on construction (a stale one from a
// crashed run) and on destruction, so a test never leaves one behind.
class ShmGuard {
 public:
  explicit ShmGuard(std::string name);
  ShmGuard(const ShmGuard&) = delete;
  ShmGuard& operator=(const ShmGuard&) = delete;
  ~ShmGuard();
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
};

// Where a POSIX shared-memory segment of that name lives on Linux.
std::string shm_path(const std::string& name);
bool shm_exists(const std::string& name);

// Polls `predicate` every few milliseconds until it is true (returns true) or
// `timeout` has passed (returns false). Synchronisation by condition, never
// by a fixed sleep.
bool wait_until(const std::function<bool()>& predicate, Milliseconds timeout,
                Milliseconds interval = 5ms);

// Opens the scoreboard `name` (retrying while it does not exist yet) and
// takes snapshots until `predicate` holds; returns that snapshot, or nullopt
// on timeout. `last`, when given, receives the last snapshot taken (for
// failure messages).
std::optional<ScoreboardSnapshot> scoreboard_when(
    const std::string& name, const std::function<bool(const ScoreboardSnapshot&)>& predicate,
    Milliseconds timeout, ScoreboardSnapshot* last = nullptr);

// Common predicates and views of a snapshot.
bool all_workers_ready(const ScoreboardSnapshot& snapshot);
std::vector<pid_t> worker_pids(const ScoreboardSnapshot& snapshot);
// One line per slot, for failure messages.
std::string describe(const ScoreboardSnapshot& snapshot);
// The totals' connections ended for `reason`, ended for any reason, and
// errors of `kind`.
std::uint64_t closes(const ScoreboardSnapshot& snapshot, CloseReason reason);
std::uint64_t all_closes(const ScoreboardSnapshot& snapshot);
std::uint64_t errors(const ScoreboardSnapshot& snapshot, ErrorKind kind);

// /proc views of other processes.
bool process_alive(pid_t pid);  // exists in /proc and is not a zombie
bool is_zombie(pid_t pid);      // /proc/<pid>/stat state Z
// Gone from /proc, or a zombie: either way it has stopped running.
bool process_exited(pid_t pid);
std::optional<pid_t> parent_of(pid_t pid);
std::vector<pid_t> children_of(pid_t pid);
// /proc/<pid>/environ as "NAME=value" entries (the environment it was
// exec'd with); empty when unreadable.
std::vector<std::string> environment_of(pid_t pid);
// The target of /proc/<pid>/exe; empty when unreadable.
std::string executable_of(pid_t pid);

}  // namespace prefork::test
