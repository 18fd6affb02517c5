// SIGUSR2, the binary upgrade: nginx's, finished without a second signal and
// undone by itself when the new program fails.
//  1. The old master renames its pid file to PATH.oldbin and forks; the
//     child moves every listening socket (and the --metrics one) to
//     descriptors 3, 4, ... as systemd passes them (LISTEN_FDS), with the
//     write end of a pipe beside them, and executes the program path
//     recorded at start, with the same arguments, in the same directory.
//  2. The new master takes those sockets instead of binding (so no
//     connection is refused meanwhile), writes PATH, creates its scoreboard
//     under NAME.next and starts its workers.
//  3. Once every seat has a ready worker it renames its segment to NAME
//     (prefork-top NAME and /metrics follow), tells systemd MAINPID, and
//     writes one byte to the pipe.
//  4. On that byte the old master leaves NAME to the new segment, closes its
//     copies of the sockets, lets its workers finish their requests, and
//     exits 0.
// Should the new master exit first, or not be ready within --start-timeout
// (it is then sent SIGQUIT, SIGKILL later), the old master renames
// PATH.oldbin back and goes on serving: it closed nothing. A new master
// refuses SIGUSR2 while its old one lives: never more than one old
// generation.
#pragma once

#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/signal_pipe.hpp>
#include <prefork/unique_fd.hpp>

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "master_service.hpp"
#include "worker_plan.hpp"

namespace prefork {

class MetricsEndpoint;

// What a master needs to execute itself again, read at start: the program's
// path (argv[0] made absolute, or /proc/self/exe when it was found on PATH;
// not the running image, which an upgrade means to replace), its arguments
// (/proc/self/cmdline) and its working directory. nullopt, after logging
// why, when they cannot be read: SIGUSR2 is then refused.
struct ProgramImage {
  std::string path;
  std::vector<std::string> argv;
  std::string cwd;
  static std::optional<ProgramImage> of_this_process();
};

// What the upgrade does to processes and files, behind an interface so that
// its decisions (BinaryUpgrade) are unit-tested without them, as the
// supervisor's are (tests/unit/upgrade_test.cpp).
class UpgradeHost {
 public:
  using Clock = std::chrono::steady_clock;
  struct Launched {
    pid_t pid = -1;  // -1: not started (logged)
    UniqueFd ready;  // the read end of its pipe: one byte once it serves
  };
  virtual ~UpgradeHost() = default;
  virtual Clock::time_point now() = 0;
  virtual Launched launch() = 0;
  virtual void kill(pid_t pid, int signal) = 0;
  // While this master's own old master (it came from an upgrade) still
  // drains: its pid; else 0.
  virtual pid_t old_generation() = 0;
  // --pid-file: PATH to PATH.oldbin (false, logged, when it cannot), and back.
  virtual bool set_pid_file_aside() = 0;
  virtual void put_pid_file_back() = 0;
  // What a failed new master may have left: its scoreboard under NAME.next.
  virtual void clear_leftovers() = 0;
};

// The old master's side, a service of its loop: the pipe, the deadline, the
// new master's exit.
class BinaryUpgrade final : public MasterService {
 public:
  // `deadline`: how long the new master has to serve (0: 60 s).
  BinaryUpgrade(UpgradeHost& host, std::chrono::milliseconds deadline);
  BinaryUpgrade(const BinaryUpgrade&) = delete;
  BinaryUpgrade& operator=(const BinaryUpgrade&) = delete;

  // SIGUSR2. Refused (logged) while an upgrade is under way, once this
  // master has handed over, or while its own old generation lives.
  void start();
  bool under_way() const noexcept { return pid_ > 0; }
  // The new master's pid once, the turn it reported serving; 0 otherwise.
  // The master then hands over (Master::hand_over).
  pid_t take_handover() noexcept { return std::exchange(served_by_, 0); }

  void add_poll_fds(std::vector<pollfd>& fds) override;
  void serve(std::span<const pollfd> polled) override;
  std::optional<Clock::time_point> next_deadline() const override;
  // This master stops: a new master not yet serving is stopped too.
  void on_stop() override;
  bool on_child_exit(pid_t pid, int status) override;
  void close_in_child() noexcept override { ready_.reset(); }

 private:
  void quit_new_master();

  UpgradeHost& host_;
  std::chrono::milliseconds deadline_length_;
  pid_t pid_ = 0;   // the new master, until it serves or is reaped
  UniqueFd ready_;  // the read end of its pipe
  bool served_ = false;
  pid_t served_by_ = 0;
  bool quit_sent_ = false;
  Clock::time_point deadline_{};
};

// The real host: fork, then exec of the program recorded at start, with the
// listeners and the --metrics socket as LISTEN_FDS and the pipe beside them.
class ProcessUpgradeHost final : public UpgradeHost {
 public:
  struct Setup {
    std::optional<ProgramImage> program;
    std::string stats_name;  // the scoreboard's name, handed on
    std::string pid_file;    // empty: none
    int metrics_fd = -1;     // the --metrics listener, handed on too
    pid_t old_master = 0;    // this master's own old master, if it came from an upgrade
  };
  ProcessUpgradeHost(Setup setup, WorkerPlan& plan, SignalPipe& signals);

  Clock::time_point now() override { return Clock::now(); }
  Launched launch() override;
  void kill(pid_t pid, int signal) override;
  pid_t old_generation() override;
  bool set_pid_file_aside() override;
  void put_pid_file_back() override;
  void clear_leftovers() override;

 private:
  [[noreturn]] void exec_new_master(int ready_fd) noexcept;

  Setup setup_;
  WorkerPlan& plan_;
  SignalPipe& signals_;
};

// The new master's side: what its old master left in the environment.
class UpgradeArrival {
 public:
  // PREFORK_UPGRADE (unset here, so that no child sees it): nullopt when
  // this master was not started by an upgrade.
  static std::optional<UpgradeArrival> from_environment();

  const std::string& stats_name() const noexcept { return stats_name_; }
  pid_t old_master() const noexcept { return old_master_; }
  // The segment's name until this master serves.
  std::string interim_stats_name() const { return stats_name_ + ".next"; }
  // The pipe to the old master, out of the inherited descriptors; closed in
  // a forked worker.
  void take_pipe(WorkerPlan& plan);
  void close_in_child() noexcept { ready_.reset(); }
  // Once every seat is ready: the scoreboard takes the old master's name,
  // the old master hears the byte (systemd hears MAINPID= with READY=1 from
  // the Master right after). Throws
  // SystemError naming the failing call.
  void complete(Scoreboard& scoreboard, WorkerPlan& plan, MetricsEndpoint* metrics);

 private:
  std::string stats_name_;
  pid_t old_master_ = 0;
  UniqueFd ready_;
};

// The environment variable an old master sets for its new one:
// "<old master pid>:<scoreboard name>".
inline constexpr const char* upgrade_variable = "PREFORK_UPGRADE";
// The LISTEN_FDNAMES names of the descriptors crossing beside the listeners.
inline constexpr const char* upgrade_pipe_name = "upgrade";
inline constexpr const char* metrics_socket_name = "metrics";

}  // namespace prefork
