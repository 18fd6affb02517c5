// The master's supervision loop, after gunicorn's arbiter and nginx's
// master cycle: wait for a signal or a deadline, handle the signals, reap
// the dead, start what is missing; on a stop, drain and escalate.
#pragma once

#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/listener.hpp>
#include <prefork/server.hpp>

#include <sys/types.h>

#include <chrono>
#include <vector>

#include <optional>

#include <prefork/core/signal_pipe.hpp>
#include "dispatcher.hpp"
#include "metrics_endpoint.hpp"
#include "start_worker.hpp"
#include "worker_plan.hpp"

namespace prefork {

// How long the master waits before restarting a slot whose worker died
// `early_deaths` times in a row before serving: 0, then 100 ms doubling up
// to 5 s.
std::chrono::milliseconds restart_delay(unsigned early_deaths);

class Master {
 public:
  Master(const ServerConfig& config, WorkerPlan& plan, Scoreboard& scoreboard,
         WorkerStarter& starter, SignalPipe& signals, MetricsEndpoint* metrics = nullptr);
  // Returns the master's exit status.
  int run();

 private:
  using Clock = std::chrono::steady_clock;

  // One entry per scoreboard slot.
  struct WorkerRecord {
    pid_t pid = 0;
    std::uint64_t generation = 0;
    Clock::time_point started{};
    unsigned early_deaths = 0;  // in a row, each before serving for a second
    bool due = true;            // to be started at `due_at`
    Clock::time_point due_at{};
  };

  void wait_for_events();
  void handle_signals();
  void dispatch_connections();
  void serve_metrics();
  void reap_workers();
  void start_due_workers();
  void kill_lingering_workers();
  void publish_metrics();

  void start_worker(unsigned slot);
  void on_worker_exit(unsigned slot, int status);
  void schedule_restart(unsigned slot, bool early, const std::string& why);
  void begin_stop(int exit_status, const char* why);
  void signal_workers(int number);
  unsigned live_workers() const;

  const ServerConfig& config_;
  WorkerPlan& plan_;
  std::optional<Dispatcher> dispatcher_;  // --accept pass only
  MetricsEndpoint* metrics_;              // --metrics only
  std::vector<pollfd> poll_set_;
  Scoreboard& scoreboard_;
  WorkerStarter& starter_;
  SignalPipe& signals_;
  std::vector<WorkerRecord> workers_;
  bool stopping_ = false;
  bool child_exited_ = false;  // a SIGCHLD came: reap
  int exit_status_ = exit_ok;
  Clock::time_point kill_at_{};
  Clock::time_point metrics_due_{};
};

}  // namespace prefork
