// Fork as a protocol: prepare in the master, then the child drops what is
// the master's, arms its death signal, runs the worker, and _exit()s: it
// never unwinds back into the master's stack.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <prefork/log.hpp>

#include "signal_pipe.hpp"
#include "start_worker.hpp"
#include "worker.hpp"

namespace prefork {

namespace {

class ForkStarter final : public WorkerStarter {
 public:
  ForkStarter(const ServerConfig& config, WorkerPlan& plan, Scoreboard& scoreboard,
              Handler& handler, SignalPipe& signals, std::function<void()> in_child)
      : in_child_(std::move(in_child)),
        config_(config),
        plan_(plan),
        scoreboard_(scoreboard),
        handler_(handler),
        signals_(signals),
        master_pid_(::getpid()) {}

  pid_t start(unsigned slot, std::uint64_t generation) override {
    SignalPipe::Blocked blocked(signals_);
    pid_t pid = ::fork();
    if (pid < 0) {
      log_sys_error("fork", errno, "while starting worker %u", slot);
      return -1;
    }
    if (pid == 0) {
      signals_.abandon_in_child();
      blocked.restore();
      // Nothing may unwind from here into the master's stack.
      int status = 1;
      try {
        status = run_child(slot, generation);
      } catch (const std::exception& e) {
        log_info("worker failed: %s", e.what());
      } catch (...) {
        log_info("worker failed with a non-standard exception");
      }
      ::_exit(status);
    }
    return pid;
  }

 private:
  int run_child(unsigned slot, std::uint64_t generation) {
    static std::string role;
    role = "worker " + std::to_string(slot);
    set_log_role(role.c_str());
    plan_.keep_only(slot);
    if (in_child_) in_child_();
    // If the master dies, the kernel tells us with SIGTERM: a graceful stop.
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) log_sys_error("prctl(PR_SET_PDEATHSIG)", errno);
    if (::getppid() != master_pid_) return 0;  // it died before prctl
    WorkerSetup setup{plan_.listeners_for(slot),
                      scoreboard_.slot(slot),
                      handler_,
                      WorkerInfo{slot, generation, false},
                      config_.max_frame,
                      config_.graceful_timeout,
                      master_pid_,
                      plan_.model(),
                      plan_.accept(),
                      plan_.threads(),
                      plan_.worker_channel(slot),
                      plan_.accept_lock(),
                      plan_.lock_path(),
                      config_.worker_stats};
    return run_worker(setup);
  }

  std::function<void()> in_child_;
  const ServerConfig& config_;
  WorkerPlan& plan_;
  Scoreboard& scoreboard_;
  Handler& handler_;
  SignalPipe& signals_;
  pid_t master_pid_;
};

}  // namespace

std::unique_ptr<WorkerStarter> make_fork_starter(const ServerConfig& config, WorkerPlan& plan,
                                                 Scoreboard& scoreboard, Handler& handler,
                                                 SignalPipe& signals,
                                                 std::function<void()> in_child) {
  return std::make_unique<ForkStarter>(config, plan, scoreboard, handler, signals,
                                       std::move(in_child));
}

}  // namespace prefork
