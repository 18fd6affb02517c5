// Fork as a protocol: prepare in the master, then the child drops what is
// the master's, arms its death signal, runs the worker, and _exit()s: it
// never unwinds back into the master's stack.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <prefork/log.hpp>

#include <prefork/core/signal_pipe.hpp>
#include <prefork/core/trace.hpp>
#include <prefork/workers/runtime.hpp>

#include "start_worker.hpp"

namespace prefork {

namespace {

class ForkStarter final : public WorkerStarter {
 public:
  ForkStarter(WorkerPlan& plan, Scoreboard& scoreboard, Handler& handler, SignalPipe& signals,
              std::function<void()> in_child)
      : in_child_(std::move(in_child)),
        plan_(plan),
        scoreboard_(scoreboard),
        handler_(handler),
        signals_(signals),
        master_pid_(::getpid()) {}

  pid_t start(const StartOrder& order) override {
    SignalPipe::Blocked blocked(signals_);
    pid_t pid = ::fork();
    if (pid < 0) {
      log_sys_error("fork", errno, "while starting worker %u", order.slot);
      return -1;
    }
    if (pid == 0) {
      // Both sides set the group, so that it exists whichever runs first.
      ::setpgid(0, 0);
      signals_.abandon_in_child();
      blocked.restore();
      // Nothing may unwind from here into the master's stack.
      int status = 1;
      try {
        status = run_child(order);
      } catch (const std::exception& e) {
        log_error("worker failed: %s", e.what());
      } catch (...) {
        log_error("worker failed with a non-standard exception");
      }
      ::_exit(status);
    }
    if (::setpgid(pid, pid) != 0 && errno != EACCES && errno != ESRCH)
      log_sys_error("setpgid", errno, "worker %u (pid %d)", order.slot, pid);
    trace("fork: slot %u gen %llu -> pid %d", order.slot,
          static_cast<unsigned long long>(order.generation), pid);
    return pid;
  }

 private:
  int run_child(const StartOrder& order) {
    set_log_worker(order.slot, order.generation);
    plan_.keep_only(order.slot, order.seat);
    scoreboard_.protect_for_worker(order.slot);
    if (in_child_) in_child_();
    // If the master dies, the kernel tells us with SIGTERM: a graceful stop.
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) log_sys_error("prctl(PR_SET_PDEATHSIG)", errno);
    if (::getppid() != master_pid_) return 0;  // it died before prctl
    return run_worker(plan_.params_for(order),
                      WorkerResources{.listeners = plan_.listeners_for(order.seat),
                                      .slot = scoreboard_.slot(order.slot),
                                      .header = scoreboard_.header(),
                                      .channel = plan_.worker_channel(order.slot)},
                      handler_);
  }

  std::function<void()> in_child_;
  WorkerPlan& plan_;
  Scoreboard& scoreboard_;
  Handler& handler_;
  SignalPipe& signals_;
  pid_t master_pid_;
};

}  // namespace

std::unique_ptr<WorkerStarter> make_fork_starter(WorkerPlan& plan, Scoreboard& scoreboard,
                                                 Handler& handler, SignalPipe& signals,
                                                 std::function<void()> in_child) {
  return std::make_unique<ForkStarter>(plan, scoreboard, handler, signals, std::move(in_child));
}

}  // namespace prefork
