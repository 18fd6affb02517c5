#include "master.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include <prefork/log.hpp>

#include "systemd_notify.hpp"

namespace prefork {

namespace {

// A worker that dies sooner than this after starting is failing to start.
constexpr auto early_death = std::chrono::seconds(1);
constexpr auto first_backoff = std::chrono::milliseconds(100);
constexpr auto max_backoff = std::chrono::seconds(5);
// How often the master refreshes its own figures in the scoreboard.
constexpr auto metrics_period = std::chrono::seconds(1);

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    return name ? std::string("was killed by SIG") + name
                : "was killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "changed state " + std::to_string(status);
}

}  // namespace

// Doubled step by step up to the cap: no shift by the count, which was
// undefined past 31 deaths (max_start_failures may be any positive number).
std::chrono::milliseconds restart_delay(unsigned early_deaths) {
  if (early_deaths == 0) return std::chrono::milliseconds(0);
  std::chrono::milliseconds delay = first_backoff;
  for (unsigned i = 1; i < early_deaths && delay < max_backoff; ++i) delay *= 2;
  return std::min<std::chrono::milliseconds>(delay, max_backoff);
}

Master::Master(const ServerConfig& config, WorkerPlan& plan, Scoreboard& scoreboard,
               WorkerStarter& starter, SignalPipe& signals, MetricsEndpoint* metrics)
    : config_(config),
      plan_(plan),
      metrics_(metrics),
      scoreboard_(scoreboard),
      starter_(starter),
      signals_(signals),
      workers_(plan.workers()) {
  if (plan.accept() == Accept::pass) dispatcher_.emplace(plan);
}

int Master::run() {
  log_info("starting %zu workers (%s mode, model %s, accept %s)", workers_.size(),
           config_.start == StartMode::fork ? "fork" : "spawn", model_name(plan_.model()).data(),
           accept_name(plan_.accept()).data());
  systemd::ReadyNotifier ready;  // sd_notify READY=1 once all workers are first ready
  while (!stopping_ || live_workers() > 0) {
    if (!stopping_) ready.check(scoreboard_);
    start_due_workers();
    publish_metrics();
    wait_for_events();
    handle_signals();
    reap_workers();
    dispatch_connections();
    serve_metrics();
    kill_lingering_workers();
  }
  log_info("stopped (exit status %d)", exit_status_);
  return exit_status_;
}

// Sleeps in poll() on the signal pipe until a signal arrives or the next
// deadline (a worker due to start, the end of the graceful timeout, the end
// of the dispatcher's pause after EMFILE).
void Master::wait_for_events() {
  auto now = Clock::now();
  auto wake = now + std::chrono::seconds(1);
  if (stopping_) wake = std::min(wake, kill_at_);
  for (const WorkerRecord& worker : workers_)
    if (worker.due && !stopping_) wake = std::min(wake, worker.due_at);
  if (metrics_)
    if (auto deadline = metrics_->next_deadline()) wake = std::min(wake, *deadline);
  if (dispatcher_ && !stopping_)
    if (auto deadline = dispatcher_->next_deadline()) wake = std::min(wake, *deadline);
  auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake - now).count();
  poll_set_.assign(1, pollfd{signals_.fd(), POLLIN, 0});
  if (dispatcher_ && !stopping_) dispatcher_->add_poll_fds(poll_set_);
  if (metrics_) metrics_->add_poll_fds(poll_set_);
  if (::poll(poll_set_.data(), poll_set_.size(), static_cast<int>(std::max<long>(timeout, 0))) <
          0 &&
      errno != EINTR) {
    log_sys_error("poll", errno);
    poll_set_.resize(1);
  }
}

void Master::dispatch_connections() {
  if (dispatcher_ && !stopping_) dispatcher_->dispatch(poll_set_);
}

// Scrapes are answered during a stop too: the drain is worth watching.
void Master::serve_metrics() {
  if (metrics_) metrics_->serve(poll_set_);
}

void Master::handle_signals() {
  // Most wake-ups under --accept pass are connections: skip the read then.
  if ((poll_set_.front().revents & POLLIN) == 0) return;
  while (int number = signals_.next()) {
    switch (number) {
      case SIGTERM:
      case SIGINT:
        if (stopping_ && Clock::now() < kill_at_) {
          // Asked twice: do not wait for the graceful timeout.
          log_info("received %s again: killing the workers now", ::strsignal(number));
          kill_at_ = Clock::now();
        } else {
          begin_stop(exit_status_, ::strsignal(number));
        }
        break;
      case SIGQUIT:
        begin_stop(exit_status_, "quit (fast stop)");
        kill_at_ = Clock::now();
        break;
      case SIGHUP:
        log_info("received SIGHUP: reload is not supported yet; ignored");
        break;
      case SIGCHLD:
        child_exited_ = true;
        break;
    }
  }
}

void Master::reap_workers() {
  if (!child_exited_) return;
  child_exited_ = false;
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0) return;
    if (pid < 0) {
      if (errno == EINTR) continue;
      if (errno != ECHILD) log_sys_error("waitpid", errno);
      return;
    }
    auto it = std::find_if(workers_.begin(), workers_.end(),
                           [pid](const WorkerRecord& w) { return w.pid == pid; });
    if (it != workers_.end()) on_worker_exit(static_cast<unsigned>(it - workers_.begin()), status);
  }
}

void Master::on_worker_exit(unsigned slot, int status) {
  WorkerRecord& worker = workers_[slot];
  const std::string what = describe_status(status);
  const bool served = scoreboard_.slot(slot).state.load() != WorkerState::starting &&
                      Clock::now() - worker.started >= early_death;
  const pid_t pid = worker.pid;
  worker.pid = 0;
  // Fold its counts into the totals before anything reuses the slot.
  scoreboard_.retire(slot);
  if (dispatcher_) dispatcher_->forget(slot);

  if (stopping_) {
    log_info("worker %u (pid %d) %s", slot, pid, what.c_str());
    return;
  }
  Header& header = scoreboard_.header();
  if (WIFSIGNALED(status))
    header.exits_signaled.fetch_add(1, std::memory_order_relaxed);
  else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    header.exits_recycled.fetch_add(1, std::memory_order_relaxed);
  else
    header.exits_crashed.fetch_add(1, std::memory_order_relaxed);
  if (WIFEXITED(status) && WEXITSTATUS(status) == worker_exit_boot_error) {
    log_info("worker %u (pid %d) failed to boot (exit status %d): not restarting it", slot, pid,
             worker_exit_boot_error);
    begin_stop(exit_workers_failed, "a worker failed to boot");
    return;
  }
  schedule_restart(slot, !served,
                   "worker " + std::to_string(slot) + " (pid " + std::to_string(pid) + ") " + what);
}

// Crash-loop protection: each early death doubles the wait before the next
// try; too many in a row and the master gives up instead of looping forever.
void Master::schedule_restart(unsigned slot, bool early, const std::string& why) {
  WorkerRecord& worker = workers_[slot];
  worker.early_deaths = early ? worker.early_deaths + 1 : 0;
  if (worker.early_deaths >= config_.max_start_failures) {
    log_info("%s; it died %u times in a row within %llds of starting: giving up", why.c_str(),
             worker.early_deaths, static_cast<long long>(early_death.count()));
    begin_stop(exit_workers_failed, "workers keep failing to start");
    return;
  }
  const auto delay = restart_delay(worker.early_deaths);
  log_info("%s; restarting it in %lld ms", why.c_str(), static_cast<long long>(delay.count()));
  worker.due = true;
  worker.due_at = Clock::now() + delay;
}

void Master::start_due_workers() {
  if (stopping_) return;
  auto now = Clock::now();
  for (unsigned slot = 0; slot < workers_.size(); ++slot)
    if (workers_[slot].due && workers_[slot].due_at <= now) start_worker(slot);
}

void Master::start_worker(unsigned slot) {
  WorkerRecord& worker = workers_[slot];
  worker.due = false;
  worker.generation += 1;
  if (worker.generation > 1) scoreboard_.header().worker_restarts.fetch_add(1);
  scoreboard_.header().generation.fetch_add(1, std::memory_order_relaxed);
  Slot& entry = scoreboard_.slot(slot);
  entry.generation.store(worker.generation);
  entry.state.store(WorkerState::starting);

  worker.started = Clock::now();
  pid_t pid = starter_.start(slot, worker.generation);
  if (pid < 0) {
    scoreboard_.retire(slot);
    schedule_restart(slot, true, "worker " + std::to_string(slot) + " could not be started");
    return;
  }
  worker.pid = pid;
  entry.pid.store(pid);
}

void Master::kill_lingering_workers() {
  if (!stopping_ || Clock::now() < kill_at_ || live_workers() == 0) return;
  log_info("graceful timeout: killing %u workers", live_workers());
  signal_workers(SIGKILL);
  kill_at_ = Clock::now() + std::chrono::seconds(1);
}

void Master::begin_stop(int exit_status, const char* why) {
  if (stopping_) return;
  stopping_ = true;
  systemd::notify_stopping();  // sd_notify STOPPING=1
  exit_status_ = exit_status;
  kill_at_ = Clock::now() + config_.graceful_timeout;
  log_info("stopping (%s): %u workers finish their requests, up to %lld ms", why, live_workers(),
           static_cast<long long>(config_.graceful_timeout.count()));
  // Close our copies of the listeners: once the workers close theirs the
  // kernel refuses new connections instead of queueing them for nobody.
  plan_.close_all();
  signal_workers(SIGTERM);
}

void Master::signal_workers(int number) {
  for (const WorkerRecord& worker : workers_)
    if (worker.pid > 0 && ::kill(worker.pid, number) != 0 && errno != ESRCH)
      log_sys_error("kill", errno, "worker pid %d", worker.pid);
}

// The accept queue of each TCP listener, from TCP_INFO: on a listening
// socket Linux reports the queue length in tcpi_unacked and the backlog in
// tcpi_sacked. With reuseport each slot has its own queue: they are summed.
void Master::publish_metrics() {
  const auto now = Clock::now();
  if (now < metrics_due_) return;
  metrics_due_ = now + metrics_period;
  const auto sets = plan_.listener_sets();
  if (sets.empty()) return;
  for (std::size_t i = 0; i < sets.front().size(); ++i) {
    if (sets.front()[i].protocol == Protocol::datagram) continue;
    std::uint32_t depth = 0, limit = 0;
    for (const std::vector<Listener>& set : sets) {
      tcp_info info{};
      socklen_t length = sizeof info;
      if (i >= set.size() ||
          ::getsockopt(set[i].fd.get(), IPPROTO_TCP, TCP_INFO, &info, &length) != 0)
        continue;
      depth += info.tcpi_unacked;
      limit += info.tcpi_sacked;
    }
    scoreboard_.publish_queue(static_cast<unsigned>(i), depth, limit);
  }
}

unsigned Master::live_workers() const {
  return static_cast<unsigned>(std::count_if(workers_.begin(), workers_.end(),
                                             [](const WorkerRecord& w) { return w.pid > 0; }));
}

}  // namespace prefork
