// The master's loop, after gunicorn's arbiter and nginx's master cycle: let
// the supervisor act, publish, wait for a signal, a service's descriptor or
// a deadline, handle the signals, serve the services. The decisions are the
// Supervisor's (supervisor.hpp); this class is its host: it starts, signals
// and reaps real processes and reads the real scoreboard.
#pragma once

#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/core/signal_pipe.hpp>
#include <prefork/server.hpp>

#include <sys/types.h>

#include <functional>
#include <random>
#include <vector>

#include "binary_upgrade.hpp"
#include "master_service.hpp"
#include "start_worker.hpp"
#include "supervisor.hpp"
#include "systemd_notify.hpp"
#include "worker_plan.hpp"

namespace prefork {

// The signals the master takes through its SignalPipe: those with a meaning
// (README "Signals") and every other catchable one that would otherwise end
// it, which it ignores. Faults (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT) keep
// their default: a bug must still crash and dump.
std::vector<int> master_signals();

class Master final : private SupervisorHost {
 public:
  // `services` (the dispatcher, the metrics endpoint, the upgrade) live as
  // long as run(). `upgrade`, one of them, takes SIGUSR2 (none: refused).
  // `on_ready`, a binary upgrade's new master's hand-over, runs once, when
  // every seat first has a ready worker; systemd then hears MAINPID= with
  // READY=1.
  Master(const ServerConfig& config, WorkerPlan& plan, Scoreboard& scoreboard,
         WorkerStarter& starter, SignalPipe& signals, std::vector<MasterService*> services,
         BinaryUpgrade* upgrade = nullptr, std::function<void()> on_ready = {});
  // Returns the master's exit status.
  int run();

 private:
  void wait_for_events();
  void handle_signals();
  void serve_services();
  void publish_metrics();
  void reload();
  void check_ready();
  void hand_over(pid_t new_master);
  std::string worker_name(pid_t pid) const;

  // SupervisorHost
  Clock::time_point now() override { return Clock::now(); }
  double random() override;
  pid_t start(const StartOrder& order) override;
  std::optional<ChildExit> reap() override;
  void kill(pid_t pid, int signal, bool group) override;
  WorkerView observe(unsigned slot) override;
  bool stopped(pid_t pid) override;
  void released(unsigned slot) override;
  void close_listeners() override;
  void draining() override;

  ServerConfig config_;  // the one serving: a reload replaces it
  WorkerPlan& plan_;
  Scoreboard& scoreboard_;
  WorkerStarter& starter_;
  SignalPipe& signals_;
  std::vector<MasterService*> services_;
  BinaryUpgrade* upgrade_;
  std::function<void()> on_ready_;
  systemd::ReadyNotifier ready_;
  bool reloading_ = false;  // systemd heard RELOADING=1, READY=1 follows the roll
  Supervisor supervisor_;
  std::vector<pollfd> poll_set_;
  std::vector<std::size_t> service_ends_;  // where each service's entries end
  std::mt19937_64 random_;
  Clock::time_point metrics_due_{};
};

}  // namespace prefork
