#include "master.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <prefork/core/trace.hpp>
#include <prefork/log.hpp>

#include "config_check.hpp"

namespace prefork {

namespace {

// How often the master refreshes its own figures in the scoreboard.
constexpr auto metrics_period = std::chrono::seconds(1);

bool is_fault(int number) {
  switch (number) {
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGTRAP:
    case SIGSYS:
    case SIGABRT:
      return true;
    default:
      return false;
  }
}

// The waitpid() status that waitid() describes in `info`.
int wait_status(const siginfo_t& info) {
  switch (info.si_code) {
    case CLD_EXITED:
      return (info.si_status & 0xff) << 8;
    case CLD_DUMPED:
      return info.si_status | 0x80;
    default:  // CLD_KILLED
      return info.si_status;
  }
}

// A reload replaces the workers, nothing else: what was set up once at
// start (the workers' program and identity, the listen queue, the metrics
// endpoint, the pid file) would be silently kept. The setting that differs.
const char* set_up_once(const ServerConfig& now, const ServerConfig& next) {
  auto address = [](const std::optional<Address>& a) { return a ? a->to_string() : ""; };
  if (next.start != now.start) return "start";
  if (next.worker_exe != now.worker_exe || next.worker_args != now.worker_args) return "worker-exe";
  if (next.backlog != now.backlog) return "backlog";
  if (address(next.metrics) != address(now.metrics)) return "metrics";
  if (next.user != now.user) return "user";
  if (next.group != now.group) return "group";
  if (next.pid_file != now.pid_file) return "pid-file";
  return nullptr;
}

}  // namespace

std::vector<int> master_signals() {
  std::vector<int> numbers;
  for (int number = 1; number < SIGRTMIN; ++number) {
    // KILL and STOP cannot be caught; CONT and the job-control stops keep
    // their meaning (a master stopped by ^Z resumes as it was), except TTIN
    // and TTOU, which resize the pool; 32 and 33 belong to the C library.
    if (number == SIGKILL || number == SIGSTOP || number == SIGCONT || number == SIGTSTP ||
        is_fault(number) || number == 32 || number == 33)
      continue;
    numbers.push_back(number);
  }
  for (int number = SIGRTMIN; number <= SIGRTMAX; ++number) numbers.push_back(number);
  return numbers;
}

Master::Master(const ServerConfig& config, WorkerPlan& plan, Scoreboard& scoreboard,
               WorkerStarter& starter, SignalPipe& signals, std::vector<MasterService*> services,
               BinaryUpgrade* upgrade, std::function<void()> on_ready)
    : config_(config),
      plan_(plan),
      scoreboard_(scoreboard),
      starter_(starter),
      signals_(signals),
      services_(std::move(services)),
      upgrade_(upgrade),
      on_ready_(std::move(on_ready)),
      supervisor_(plan.supervisor_settings(config), plan.slots(), *this),
      random_(std::random_device{}()) {
  scoreboard_.header().slots_in_use.store(plan.workers(), std::memory_order_release);
}

int Master::run() {
  const char* worker_s = plan_.workers() == 1 ? "" : "s";
  const char* connection_s = plan_.connection_cap() == 1 ? "" : "s";
  log_info(
      "starting %u worker%s (%s mode, model %s, accept %s, at most %u connection%s each, %llu in "
      "all)",
      plan_.workers(), worker_s, config_.start == StartMode::fork ? "fork" : "spawn",
      model_name(plan_.model()).data(), accept_name(plan_.accept()).data(), plan_.connection_cap(),
      connection_s, static_cast<unsigned long long>(plan_.connection_cap()) * plan_.workers());
  while (!supervisor_.finished()) {
    supervisor_.tick();
    check_ready();
    publish_metrics();
    if (supervisor_.finished()) break;
    wait_for_events();
    handle_signals();
    serve_services();
    if (upgrade_)
      if (pid_t new_master = upgrade_->take_handover()) hand_over(new_master);
  }
  trace("stopped: every worker reaped, exit status %d", supervisor_.exit_status());
  log_info("stopped (exit status %d)", supervisor_.exit_status());
  return supervisor_.exit_status();
}

// The first time every seat has a ready worker: the upgrade's hand-over (a
// new master), then systemd's READY=1; and READY=1 again after a reload.
void Master::check_ready() {
  if (reloading_ && !supervisor_.rolling() && !supervisor_.stopping()) {
    reloading_ = false;
    std::string status = "READY=1\nSTATUS=";
    status += supervisor_.roll_failed() ? "reload rolled back, serving with " : "reloaded: ";
    status += std::to_string(supervisor_.ready_workers());
    status += " workers";
    systemd::notify(status);
  }
  if (ready_.sent() || supervisor_.stopping() || supervisor_.ready_workers() < supervisor_.seats())
    return;
  if (on_ready_) on_ready_();
  ready_.check(supervisor_.ready_workers(), supervisor_.seats(), on_ready_ ? ::getpid() : 0);
  // What a person (or a script) waits for before sending work.
  const unsigned ready = supervisor_.ready_workers();
  log_info("ready: %u worker%s serving", ready, ready == 1 ? "" : "s");
}

// A binary upgrade's new master serves the same listeners and owns the
// scoreboard's name now: this generation finishes its requests and goes.
void Master::hand_over(pid_t new_master) {
  scoreboard_.disown_name();
  for (MasterService* service : services_) service->on_handed_over();
  supervisor_.stop(Supervisor::Stop::handover, exit_ok,
                   "upgraded: new master pid " + std::to_string(new_master) + " serves");
}

// Sleeps in poll() until a signal (the pipe), a service's descriptor, or the
// next deadline of the supervisor or a service.
void Master::wait_for_events() {
  auto wake = supervisor_.next_deadline();
  for (const MasterService* service : services_)
    if (auto deadline = service->next_deadline()) wake = std::min(wake, *deadline);
  poll_set_.assign(1, pollfd{signals_.fd(), POLLIN, 0});
  service_ends_.clear();
  for (MasterService* service : services_) {
    service->add_poll_fds(poll_set_);
    service_ends_.push_back(poll_set_.size());
  }
  const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
  if (::poll(poll_set_.data(), poll_set_.size(),
             static_cast<int>(std::clamp<long long>(timeout, 0, 60'000))) < 0) {
    if (errno != EINTR) log_sys_error("poll", errno);
    for (pollfd& entry : poll_set_) entry.revents = 0;
  }
}

void Master::serve_services() {
  std::size_t begin = 1;
  for (std::size_t i = 0; i < services_.size(); ++i) {
    const std::size_t end = service_ends_.size() > i ? service_ends_[i] : begin;
    services_[i]->serve(std::span<const pollfd>(poll_set_).subspan(begin, end - begin));
    begin = end;
  }
}

// The signal table (README "Signals"), after gunicorn's.
void Master::handle_signals() {
  // Most wake-ups under --accept pass are connections: skip the read then.
  if ((poll_set_.front().revents & POLLIN) == 0) return;
  while (int number = signals_.next()) {
    switch (number) {
      case SIGTERM:
        supervisor_.stop(Supervisor::Stop::graceful, exit_ok, "SIGTERM");
        break;
      case SIGINT:
      case SIGQUIT:
        supervisor_.stop(Supervisor::Stop::fast, exit_ok, number == SIGINT ? "SIGINT" : "SIGQUIT");
        break;
      case SIGHUP:
        reload();
        break;
      case SIGTTIN:
        supervisor_.resize(+1);
        break;
      case SIGTTOU:
        supervisor_.resize(-1);
        break;
      case SIGUSR1:  // logrotate's postrotate, as with nginx: the workers too
        reopen_log();
        supervisor_.signal_workers(SIGUSR1);
        break;
      case SIGUSR2:
        if (upgrade_ && !supervisor_.stopping())
          upgrade_->start();
        else
          log_info("SIGUSR2: %s; ignored", upgrade_ ? "stopping" : "no binary upgrade here");
        break;
      case SIGCHLD:  // the supervisor reaps on every turn
        break;
      default:
        log_info("%s: ignored", ::strsignal(number));
        break;
    }
  }
}

// HUP: the configuration is read again (when it came from a command line
// and a file), and the workers are replaced, a few at a time, each by one
// started and ready first; should the new ones fail to start, the old ones
// go on. A configuration that cannot be read or applied changes nothing.
void Master::reload() {
  if (supervisor_.stopping()) return;
  ServerConfig next = config_;
  if (config_.reload) {
    std::string error;
    std::optional<ServerConfig> loaded = config_.reload(error);
    if (loaded) {
      if (loaded->stats_name.empty()) loaded->stats_name = config_.stats_name;
      error = config_error(*loaded, nullptr);
      if (error.empty() && loaded->stats_name != config_.stats_name)
        error = "the scoreboard's name changes only with a restart";
      if (const char* setting = set_up_once(config_, *loaded); error.empty() && setting) {
        // An upgrade's new master takes over the listening sockets as they are.
        const std::string_view name = setting;
        error = setting;
        error += name == "backlog" || name == "metrics"
                     ? " changes only with a restart (an upgrade, USR2, keeps the sockets)"
                     : " changes only with a restart or an upgrade (USR2)";
      }
      if (error.empty()) error = plan_.reload_error(*loaded);
    }
    if (!error.empty()) {
      log_error("reload refused, the workers go on as they are: %s", error.c_str());
      return;
    }
    next = std::move(*loaded);
  }
  if (next.log != config_.log) configure_log(next.log);
  // Time 0 stays the master's start (the workers started from now on get it).
  if (next.trace != config_.trace) enable_trace(next.trace);
  // systemd (Type=notify-reload, or ExecReload with Type=notify) waits for
  // READY=1 again: sent when the roll is over (check_ready).
  systemd::notify_reloading();
  reloading_ = true;
  const std::uint64_t id = supervisor_.roll(plan_.supervisor_settings(next));
  plan_.add_config(id, next);
  config_ = std::move(next);
}

// The accept queue of each TCP listener, from TCP_INFO: on a listening
// socket Linux reports the queue length in tcpi_unacked and the backlog in
// tcpi_sacked. With reuseport each seat has its own queue: they are summed.
// The supervisor's counts go to the header on every turn.
void Master::publish_metrics() {
  Header& header = scoreboard_.header();
  const SupervisorCounts& counts = supervisor_.counts();
  scoreboard_.access([&header, &counts] {
    header.worker_restarts.store(counts.restarts, std::memory_order_relaxed);
    header.exits_crashed.store(counts.exits_crashed, std::memory_order_relaxed);
    header.exits_signaled.store(counts.exits_signaled, std::memory_order_relaxed);
    header.exits_recycled.store(counts.exits_recycled, std::memory_order_relaxed);
    header.exits_timed_out.store(counts.exits_timed_out, std::memory_order_relaxed);
    header.start_failures.store(counts.start_failures, std::memory_order_relaxed);
    header.generation.store(counts.generation, std::memory_order_relaxed);
  });

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

// "slot 0 pid 4242", or "pid 4300 (not a worker)": for the trace.
std::string Master::worker_name(pid_t pid) const {
  const std::optional<unsigned> slot = supervisor_.slot_of(pid);
  std::string text;
  if (slot) {
    text += "slot ";
    text += std::to_string(*slot);
    text += ' ';
  }
  text += "pid ";
  text += std::to_string(pid);
  if (!slot) text += " (not a worker)";
  return text;
}

double Master::random() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }

pid_t Master::start(const StartOrder& order) {
  Header& header = scoreboard_.header();
  Slot& entry = scoreboard_.slot(order.slot);
  scoreboard_.access([&header, &entry, &order] {
    if (header.slots_in_use.load(std::memory_order_relaxed) <= order.slot)
      header.slots_in_use.store(order.slot + 1, std::memory_order_release);
    entry.generation.store(order.generation);
    entry.state.store(WorkerState::starting);
  });
  const pid_t pid = starter_.start(order);
  if (pid < 0) return -1;
  scoreboard_.access([&entry, pid] { entry.pid.store(pid); });
  return pid;
}

// Before a worker is reaped (while its pid, and so its process group's id,
// cannot be reused), whatever it left in its group is killed: a stopped or
// crashed worker's children must not outlive it.
std::optional<ChildExit> Master::reap() {
  for (;;) {
    siginfo_t info{};
    if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      if (errno != ECHILD) log_sys_error("waitid", errno);
      return std::nullopt;
    }
    if (info.si_pid == 0) return std::nullopt;
    const pid_t pid = info.si_pid;
    if (trace_enabled())
      trace("exit: %s %s", worker_name(pid).c_str(), wait_status_text(wait_status(info)).c_str());
    if (::kill(-pid, SIGKILL) != 0 && errno != ESRCH && errno != EPERM)
      log_sys_error("kill", errno, "the process group of pid %d", pid);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      if (errno == EINTR) continue;
      log_sys_error("waitpid", errno, "pid %d", pid);
      break;
    }
    if (trace_enabled()) trace("reaped: %s", worker_name(pid).c_str());
    bool theirs = false;  // a service's child: the upgrade's new master
    for (MasterService* service : services_) theirs = theirs || service->on_child_exit(pid, status);
    if (!theirs) return ChildExit{.pid = pid, .status = status};
  }
}

void Master::kill(pid_t pid, int signal, bool group) {
  if (pid <= 0) return;
  if (trace_enabled())
    trace("signal: %s%s <- %s", worker_name(pid).c_str(), group ? " and its process group" : "",
          signal_name(signal).c_str());
  if (::kill(group ? -pid : pid, signal) != 0 && errno != ESRCH)
    log_sys_error("kill", errno, "%s %d with %s", group ? "group" : "worker pid", pid,
                  ::strsignal(signal));
}

WorkerView Master::observe(unsigned slot) {
  const Slot& entry = scoreboard_.slot(slot);
  WorkerView view{};  // a segment cut under this read: nothing seen this turn
  scoreboard_.access([&entry, &view] {
    const WorkerState state = entry.state.load(std::memory_order_acquire);
    view = WorkerView{
        .ready = state == WorkerState::ready || state == WorkerState::stopping,
        .heartbeat = entry.heartbeat_ns.load(std::memory_order_relaxed),
        .waiting = entry.waiting.load(std::memory_order_relaxed) > 0,
        .busy = entry.connections_active.load(std::memory_order_relaxed) > 0,
        .retire_requested = entry.retire_requested.load(std::memory_order_relaxed) != 0,
    };
  });
  return view;
}

// The state letter after the command's closing parenthesis in
// /proc/PID/stat: T (stopped) or t (stopped by a debugger).
bool Master::stopped(pid_t pid) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) log_sys_error("open", errno, "%s", path);  // ENOENT: already gone
    return false;
  }
  char text[512];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  const char* end = std::strrchr(text, ')');
  return end != nullptr && end[1] == ' ' && (end[2] == 'T' || end[2] == 't');
}

// Its counts fold into the totals before anything reuses the slot.
void Master::released(unsigned slot) {
  scoreboard_.retire(slot);
  for (MasterService* service : services_) service->on_slot_released(slot);
}

// Our copies of the listeners close, so that once the workers close theirs
// the kernel refuses new connections instead of queueing them for nobody.
void Master::close_listeners() {
  plan_.close_all();
  for (MasterService* service : services_) service->on_stop();
}

void Master::draining() {
  systemd::notify_stopping();
  for (MasterService* service : services_) service->on_drain();
}

}  // namespace prefork
