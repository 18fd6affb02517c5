#include "supervisor.hpp"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include <algorithm>

#include <prefork/core/trace.hpp>
#include <prefork/exit_status.hpp>
#include <prefork/log.hpp>

namespace prefork {

namespace {

using std::chrono::milliseconds;

long long ms(milliseconds duration) { return static_cast<long long>(duration.count()); }
long long ms(SupervisorHost::Clock::duration duration) {
  return ms(std::chrono::duration_cast<milliseconds>(duration));
}

// How often the supervisor looks at the scoreboard when nothing is due: the
// heartbeat needs a few looks per --timeout; a starting worker is watched
// closely, since a replacement's readiness lets an old worker go.
constexpr milliseconds idle_tick{1000};
constexpr milliseconds starting_tick{50};
constexpr milliseconds min_tick{50};

}  // namespace

std::string describe_status(int status) {
  if (status < 0) return "could not be started";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::sigabbrev_np(WTERMSIG(status));
    std::string text = "was killed by ";
    if (name) {
      text += "SIG";
      text += name;
    } else {
      text += "signal " + std::to_string(WTERMSIG(status));
    }
    return text;
  }
  return "changed state " + std::to_string(status);
}

std::chrono::milliseconds restart_delay(unsigned failures, const SupervisorSettings& settings,
                                        double jitter) {
  if (failures == 0) return milliseconds(0);
  milliseconds delay = settings.first_backoff;
  // Doubled step by step: no shift by the count, undefined past 63 failures.
  for (unsigned i = 1; i < failures && delay < settings.max_backoff; ++i) delay *= 2;
  delay = std::min(delay, settings.max_backoff);
  return milliseconds(static_cast<milliseconds::rep>(static_cast<double>(delay.count()) *
                                                     (0.5 + std::clamp(jitter, 0.0, 1.0) / 2)));
}

Supervisor::Supervisor(SupervisorSettings settings, unsigned slots, SupervisorHost& host)
    : settings_(settings),
      previous_settings_(settings),
      host_(host),
      workers_(slots),
      seats_(std::max(1u, settings.workers)) {
  last_tick_ = host_.now();
  next_pool_check_ = last_tick_;
}

void Supervisor::tick() {
  const auto now = host_.now();
  // The master itself did not run for a while (SIGSTOP, a suspended VM):
  // nobody watched the workers, so their silence proves nothing. Each gets
  // a fresh window, judged by its own progress from now on.
  if (now - last_tick_ > std::max(settings_.timeout / 2, idle_tick * 2)) {
    log_info("the master was not running for %lld ms: watching the workers afresh",
             ms(now - last_tick_));
    for (Worker& worker : workers_) {
      worker.last_progress = now;
      if (worker.state == State::starting) worker.started = now;
    }
  }
  last_tick_ = now;
  reap_workers();
  watch_workers();
  if (phase_ == Phase::draining && now >= phase_deadline_) begin_stopping();
  if (phase_ == Phase::running) {
    replace_workers();
    manage_dynamic_pool();
    start_missing_workers();
  }
  escalate();
}

void Supervisor::reap_workers() {
  while (std::optional<ChildExit> exit = host_.reap()) {
    for (unsigned slot = 0; slot < workers_.size(); ++slot)
      if (workers_[slot].state != State::empty && workers_[slot].pid == exit->pid) {
        on_exit(slot, exit->status);
        break;
      }
  }
}

void Supervisor::on_exit(unsigned slot, int status) {
  Worker dead = workers_[slot];
  // It may have reported ready after the last look: a worker that served
  // must never count as failing to start.
  if (dead.state == State::starting && host_.observe(slot).ready) dead.state = State::ready;
  leave_seat(slot);
  free_slot(slot);
  const std::string what =
      name(slot) + " (pid " + std::to_string(dead.pid) + ") " + describe_status(status);
  if (phase_ == Phase::stopping) {
    log_info("%s", what.c_str());
    trace("not restarted: slot %u (stopping)", slot);
    return;
  }
  if (dead.state == State::starting) {
    on_start_failure(slot, dead.seat, status, dead.config);
    return;
  }
  if (dead.timed_out)
    counts_.exits_timed_out += 1;
  else if (WIFSIGNALED(status))
    counts_.exits_signaled += 1;
  else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    counts_.exits_recycled += 1;
  else
    counts_.exits_crashed += 1;
  if (dead.state == State::retiring) {
    log_info("%s (retired)", what.c_str());
    trace("not restarted: slot %u (retired)", slot);
    return;
  }
  // It served: a crash in a handler is not a broken configuration. Restart
  // at once, however often it happens.
  log_info("%s; restarting it", what.c_str());
  if (dead.seat != none) {
    seats_[static_cast<std::size_t>(dead.seat)].due_at = host_.now();
    trace("restart: slot %u, cause: died after it was ready, backoff 0 ms", slot);
  }
}

void Supervisor::on_start_failure(unsigned slot, int seat_index, int status, std::uint64_t config) {
  const auto now = host_.now();
  counts_.start_failures += 1;
  start_failures_.push_back(now);
  while (!start_failures_.empty() && now - start_failures_.front() > settings_.restart_window)
    start_failures_.pop_front();
  std::string what = name(slot) + " " + describe_status(status) + " before it was ready";

  if (rolling_ && config == config_ && config_ != previous_config_) {
    log_warning(
        "%s: the new configuration does not start; the workers of the previous one go on "
        "serving",
        what.c_str());
    trace("not restarted: slot %u (its new configuration fails: rolling back)", slot);
    roll_back();
    return;
  }
  if (seat_index == none || static_cast<std::size_t>(seat_index) >= seats_.size()) return;
  Seat& seat = seats_[static_cast<std::size_t>(seat_index)];
  seat.failures += 1;
  if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == worker_exit_boot_error &&
      ready_workers() == 0) {
    log_error("%s: its set-up failed (exit status %d) and no worker serves: giving up",
              what.c_str(), worker_exit_boot_error);
    trace("not restarted: slot %u (its set-up failed and no worker serves: giving up)", slot);
    stop(Stop::graceful, exit_workers_failed, "a worker failed to boot");
    return;
  }
  if (give_up_if_broken(what)) {
    trace("not restarted: slot %u (too many failed starts: giving up)", slot);
    return;
  }
  const milliseconds delay = restart_delay(seat.failures, settings_, host_.random());
  seat.due_at = now + delay;
  log_warning("%s; starting another in %lld ms", what.c_str(), ms(delay));
  trace("restart: slot %u, cause: failed start (%u in a row), backoff %lld ms", slot, seat.failures,
        ms(delay));
}

// A slot that keeps failing must not stop the slots that serve: the master
// gives up only when failures fill the budget and nothing serves at all.
bool Supervisor::give_up_if_broken(const std::string& what) {
  if (start_failures_.size() < settings_.max_start_failures || ready_workers() > 0) return false;
  log_error("%s; %zu workers failed to start within %lld s and none serves: giving up",
            what.c_str(), start_failures_.size(), ms(settings_.restart_window) / 1000);
  stop(Stop::graceful, exit_workers_failed, "workers keep failing to start");
  return true;
}

void Supervisor::watch_workers() {
  const auto now = host_.now();
  for (unsigned slot = 0; slot < workers_.size(); ++slot) {
    Worker& worker = workers_[slot];
    if (worker.state == State::empty) continue;
    const WorkerView view = host_.observe(slot);
    if (view.heartbeat != worker.last_beat) {
      worker.last_beat = view.heartbeat;
      worker.last_progress = now;
    } else if (view.waiting && settings_.timeout.count() > 0 &&
               now - worker.last_progress >= settings_.timeout / 2 && !host_.stopped(worker.pid)) {
      // Asleep waiting for work, not stopped there: progress. Looked at
      // twice per --timeout: a stopped worker is aborted between half a
      // --timeout and a whole one after it stopped.
      worker.last_progress = now;
    }
    worker.busy = view.busy;
    worker.retire_requested = view.retire_requested;
    switch (worker.state) {
      case State::starting:
        if (view.ready) {
          promote(slot);
        } else if (!worker.killed && settings_.start_timeout.count() > 0 &&
                   now - worker.started > settings_.start_timeout) {
          log_warning("%s (pid %d) not ready after %lld ms (--start-timeout): killing it",
                      name(slot).c_str(), worker.pid, ms(settings_.start_timeout));
          host_.kill(worker.pid, SIGKILL, true);
          worker.killed = true;
        }
        break;
      case State::ready:
        if (settings_.timeout.count() > 0 && now - worker.last_progress > settings_.timeout &&
            phase_ != Phase::stopping) {
          log_warning("%s (pid %d) silent for %lld ms (--timeout %lld ms): aborting it",
                      name(slot).c_str(), worker.pid, ms(now - worker.last_progress),
                      ms(settings_.timeout));
          host_.kill(worker.pid, SIGABRT, false);
          worker.state = State::aborting;
          worker.timed_out = true;
          worker.kill_at = now + settings_.abort_grace;
        }
        break;
      case State::aborting:
      case State::retiring:
        if (!worker.killed && now >= worker.kill_at) {
          host_.kill(worker.pid, SIGKILL, true);
          worker.killed = true;
        }
        break;
      case State::empty:
        break;
    }
  }
}

// A worker reported ready: its seat's start failures are forgiven, and the
// worker it replaces (if any) may go now that capacity is there.
void Supervisor::promote(unsigned slot) {
  Worker& worker = workers_[slot];
  worker.state = State::ready;
  worker.was_ready = true;
  if (worker.signal_when_ready != 0) {
    host_.kill(worker.pid, worker.signal_when_ready, false);
    worker.signal_when_ready = 0;
  }
  if (trace_enabled())
    trace("ready: slot %u pid %d (seen %.3f ms after its start)", slot, worker.pid,
          std::chrono::duration<double, std::milli>(host_.now() - worker.started).count());
  if (worker.seat == none) return;
  Seat& seat = seats_[static_cast<std::size_t>(worker.seat)];
  seat.failures = 0;
  if (seat.replacement == static_cast<int>(slot)) {
    const int old = seat.worker;
    seat.worker = static_cast<int>(slot);
    seat.replacement = none;
    if (old != none) retire(static_cast<unsigned>(old), "replaced");
  }
  end_roll_if_done();
}

// The roll is over once every seat has a worker of the serving configuration
// and no replacement is under way.
void Supervisor::end_roll_if_done() {
  if (!rolling_) return;
  for (const Seat& each : seats_)
    if (each.replacement != none || each.worker == none ||
        workers_[static_cast<std::size_t>(each.worker)].config != config_)
      return;
  rolling_ = false;
  log_info("reload %s: %zu workers run configuration #%llu", roll_failed_ ? "rolled back" : "done",
           seats_.size(), static_cast<unsigned long long>(config_));
}

// The roll goes back: the previous configuration serves again, and the
// workers of the failed one (started or starting) are replaced in turn.
void Supervisor::roll_back() {
  roll_failed_ = true;
  settings_ = previous_settings_;
  config_ = previous_config_;
  for (Seat& seat : seats_)
    if (seat.replacement != none) retire(static_cast<unsigned>(seat.replacement), "not needed");
  if (settings_.resizable && settings_.pool == PoolMode::fixed) fit_seats(settings_.workers);
  // When no new worker was promoted yet, every seat already has a worker
  // of the previous configuration: nothing else would end the roll.
  end_roll_if_done();
}

void Supervisor::fit_seats(unsigned count) {
  while (seats_.size() > count) drop_seat(seats_.size() - 1);
  seats_.resize(count);
}

// The worker in `slot` no longer fills (or is about to fill) its seat.
void Supervisor::leave_seat(unsigned slot) {
  Worker& worker = workers_[slot];
  if (worker.seat == none) return;
  Seat& seat = seats_[static_cast<std::size_t>(worker.seat)];
  if (seat.worker == static_cast<int>(slot)) seat.worker = none;
  if (seat.replacement == static_cast<int>(slot)) seat.replacement = none;
  worker.seat = none;
}

// The slot holds no worker any more; its generation counts on.
void Supervisor::free_slot(unsigned slot) {
  workers_[slot] = Worker{.generation = workers_[slot].generation};
  host_.released(slot);
}

void Supervisor::retire(unsigned slot, const char* why) {
  Worker& worker = workers_[slot];
  leave_seat(slot);
  worker.state = State::retiring;
  worker.kill_at = host_.now() + settings_.graceful_timeout;
  log_info("%s (pid %d) %s: stopping it gracefully", name(slot).c_str(), worker.pid, why);
  host_.kill(worker.pid, SIGTERM, false);
}

// Recycling (--max-requests) and reloads: start the replacement first; the
// old worker is stopped once the new one is ready (promote()).
void Supervisor::replace_workers() {
  const auto now = host_.now();
  for (std::size_t i = 0; i < seats_.size(); ++i) {
    Seat& seat = seats_[i];
    if (seat.replacement != none || seat.worker == none || seat.due_at > now) continue;
    const Worker& worker = workers_[static_cast<std::size_t>(seat.worker)];
    if (worker.state != State::ready) continue;
    if (worker.config == config_ && !worker.retire_requested) continue;
    if (in_flight_replacements() >= std::max(1u, settings_.max_recycling)) return;
    if (!start(static_cast<int>(i), true)) return;
  }
}

// Apache prefork's and PHP-FPM's dynamic pool: keep between min_spare and
// max_spare idle workers. Checked once a second: up to spawn_rate workers
// are added when too few are idle, one idle worker retires when too many.
void Supervisor::manage_dynamic_pool() {
  const auto now = host_.now();
  if (settings_.pool != PoolMode::dynamic || !settings_.resizable || now < next_pool_check_) return;
  next_pool_check_ = now + idle_tick;
  unsigned idle = 0, starting = 0;
  int idle_seat = none;
  for (std::size_t i = 0; i < seats_.size(); ++i) {
    const Seat& seat = seats_[i];
    if (seat.worker == none) {
      starting += 1;
      continue;
    }
    const Worker& worker = workers_[static_cast<std::size_t>(seat.worker)];
    if (worker.state == State::starting) starting += 1;
    if (worker.state == State::ready && !worker.busy && seat.replacement == none) {
      idle += 1;
      idle_seat = static_cast<int>(i);
    }
  }
  if (idle + starting < settings_.min_spare) {
    const unsigned room = settings_.max_workers > seats_.size()
                              ? settings_.max_workers - static_cast<unsigned>(seats_.size())
                              : 0;
    const unsigned add =
        std::min({settings_.min_spare - idle - starting, settings_.spawn_rate, room});
    if (add > 0) {
      log_info("%u idle workers, fewer than --min-spare %u: adding %u", idle, settings_.min_spare,
               add);
      seats_.resize(seats_.size() + add);
    }
  } else if (idle > settings_.max_spare && seats_.size() > 1 && idle_seat != none) {
    log_info("%u idle workers, more than --max-spare %u: retiring one", idle, settings_.max_spare);
    drop_seat(static_cast<std::size_t>(idle_seat));
  }
}

void Supervisor::start_missing_workers() {
  const auto now = host_.now();
  for (std::size_t i = 0; i < seats_.size(); ++i) {
    const Seat& seat = seats_[i];
    if (seat.worker == none && seat.replacement == none && seat.due_at <= now)
      if (!start(static_cast<int>(i), false)) return;
  }
}

bool Supervisor::start(int seat_index, bool replacement) {
  auto free = std::find_if(workers_.begin(), workers_.end(),
                           [](const Worker& w) { return w.state == State::empty; });
  if (free == workers_.end()) return false;  // all slots busy: the next tick
  const unsigned slot = static_cast<unsigned>(free - workers_.begin());
  Seat& seat = seats_[static_cast<std::size_t>(seat_index)];
  Worker& worker = *free;
  worker.generation += 1;
  counts_.generation += 1;
  if (worker.generation > 1 || counts_.generation > seats_.size()) counts_.restarts += 1;
  const auto now = host_.now();
  worker.state = State::starting;
  worker.seat = seat_index;
  worker.config = config_;
  worker.started = now;
  worker.last_progress = now;
  worker.last_beat = 0;
  worker.killed = worker.timed_out = worker.busy = worker.retire_requested = false;

  std::uint64_t max_requests = settings_.max_requests;
  if (max_requests > 0 && settings_.max_requests_jitter > 0)
    max_requests += static_cast<std::uint64_t>(
        host_.random() * static_cast<double>(settings_.max_requests_jitter + 1));
  const pid_t pid = host_.start(StartOrder{.slot = slot,
                                           .seat = static_cast<unsigned>(seat_index),
                                           .generation = worker.generation,
                                           .config = config_,
                                           .max_requests = max_requests});
  if (pid < 0) {
    free_slot(slot);
    on_start_failure(slot, seat_index, -1, config_);
    return phase_ == Phase::running;
  }
  worker.pid = pid;
  (replacement ? seat.replacement : seat.worker) = static_cast<int>(slot);
  return true;
}

void Supervisor::escalate() {
  if (phase_ != Phase::stopping || host_.now() < phase_deadline_) return;
  unsigned killed = 0;
  for (Worker& worker : workers_)
    if (worker.state != State::empty && !worker.killed) {
      host_.kill(worker.pid, SIGKILL, true);
      worker.killed = true;
      killed += 1;
    }
  if (killed > 0) log_info("stop timeout: killed %u workers", killed);
}

void Supervisor::stop(Stop how, int exit_status, const std::string& why) {
  const auto now = host_.now();
  if (phase_ == Phase::stopping) {
    if (now < phase_deadline_) {
      log_info("asked again (%s): killing the workers now", why.c_str());
      phase_deadline_ = now;
      escalate();
    }
    return;
  }
  if (phase_ == Phase::running) exit_status_ = exit_status;
  stop_how_ = how;
  stop_why_ = why;
  if (phase_ == Phase::running && how == Stop::graceful && settings_.drain_delay.count() > 0) {
    phase_ = Phase::draining;
    phase_deadline_ = now + settings_.drain_delay;
    host_.draining();
    log_info("draining (%s): /health answers 503 for %lld ms, then the listeners close",
             why.c_str(), ms(settings_.drain_delay));
    return;
  }
  begin_stopping();
}

void Supervisor::begin_stopping() {
  const bool fast = stop_how_ == Stop::fast;
  const auto now = host_.now();
  if (phase_ == Phase::running && stop_how_ != Stop::handover) host_.draining();
  phase_ = Phase::stopping;
  phase_deadline_ = now + (fast ? settings_.fast_grace : settings_.graceful_timeout);
  // Our copies of the listeners go first: once the workers close theirs,
  // the kernel refuses new connections instead of queueing them for nobody.
  host_.close_listeners();
  const unsigned live = live_workers();
  trace("stop: %s (%s), %u worker%s to signal", fast ? "fast" : "graceful", stop_why_.c_str(), live,
        live == 1 ? "" : "s");
  if (fast)
    log_info("stopping fast (%s): %u %s now", stop_why_.c_str(), live,
             live == 1 ? "worker closes its connections" : "workers close their connections");
  else
    log_info("stopping (%s): %u %s, up to %lld ms", stop_why_.c_str(), live,
             live == 1 ? "worker finishes its requests" : "workers finish their requests",
             ms(settings_.graceful_timeout));
  for (Worker& worker : workers_)
    if (worker.state != State::empty && !worker.killed)
      host_.kill(worker.pid, fast ? SIGQUIT : SIGTERM, false);
}

bool Supervisor::resize(int delta) {
  if (phase_ != Phase::running || delta == 0) return false;
  if (!settings_.resizable) {
    log_info("the pool cannot change size with --accept reuseport (each worker owns its sockets)");
    return false;
  }
  if (delta > 0) {
    if (seats_.size() >= settings_.max_workers) {
      log_info("already %zu workers, the most --max-workers allows", seats_.size());
      return false;
    }
    seats_.emplace_back();
    log_info("one worker more: %zu", seats_.size());
    return true;
  }
  if (seats_.size() <= 1) {
    log_info("one worker left: not removing it");
    return false;
  }
  drop_seat(seats_.size() - 1);
  log_info("one worker less: %zu", seats_.size());
  return true;
}

void Supervisor::drop_seat(std::size_t index) {
  const Seat seat = seats_[index];
  if (seat.replacement != none) retire(static_cast<unsigned>(seat.replacement), "not needed");
  if (seat.worker != none) retire(static_cast<unsigned>(seat.worker), "not needed");
  seats_.erase(seats_.begin() + static_cast<std::ptrdiff_t>(index));
  for (Worker& worker : workers_)
    if (worker.seat != none && static_cast<std::size_t>(worker.seat) > index) worker.seat -= 1;
}

std::uint64_t Supervisor::roll(const SupervisorSettings& settings) {
  if (phase_ != Phase::running) return config_;
  previous_settings_ = settings_;
  previous_config_ = config_;
  settings_ = settings;
  settings_.resizable = previous_settings_.resizable;
  const unsigned most =
      static_cast<unsigned>(workers_.size()) - std::max(1u, settings_.max_recycling);
  if (settings_.max_workers > most) settings_.max_workers = most;
  settings_.workers = std::clamp(settings_.workers, 1u, settings_.max_workers);
  // The scoreboard's slots were counted at start: more takes a restart.
  if (settings.workers > settings_.workers)
    log_warning(
        "workers = %u is more than this master has room for: %u (a restart or an upgrade, "
        "USR2, makes room)",
        settings.workers, settings_.workers);
  config_ = ++last_config_;
  rolling_ = true;
  roll_failed_ = false;
  if (settings_.resizable && settings_.pool == PoolMode::fixed) fit_seats(settings_.workers);
  log_info("reloading: %zu workers are replaced by configuration #%llu, %u at a time",
           seats_.size(), static_cast<unsigned long long>(config_),
           std::max(1u, settings_.max_recycling));
  return config_;
}

unsigned Supervisor::signal_workers(int signal) {
  unsigned signalled = 0;
  // Not one that never was ready: its handlers may not be installed, and
  // the default action of most signals is to die. One still starting gets
  // it once ready (a forked worker holds the log file its master had at the
  // fork); one retired while starting (a roll back) is going anyway.
  for (Worker& worker : workers_) {
    if (worker.killed) continue;
    if ((worker.state == State::ready || worker.state == State::retiring) && worker.was_ready) {
      host_.kill(worker.pid, signal, false);
      signalled += 1;
    } else if (worker.state == State::starting) {
      worker.signal_when_ready = signal;
    }
  }
  return signalled;
}

std::optional<unsigned> Supervisor::slot_of(pid_t pid) const noexcept {
  for (unsigned slot = 0; slot < workers_.size(); ++slot)
    if (workers_[slot].state != State::empty && workers_[slot].pid == pid) return slot;
  return std::nullopt;
}

bool Supervisor::finished() const noexcept {
  return phase_ == Phase::stopping && live_workers() == 0;
}

Supervisor::Clock::time_point Supervisor::next_deadline() const {
  auto tick = idle_tick;
  if (settings_.timeout.count() > 0) tick = std::min(tick, settings_.timeout / 4);
  auto wake = last_tick_ + std::max(tick, min_tick);
  if (phase_ != Phase::running) wake = std::min(wake, phase_deadline_);
  for (const Worker& worker : workers_) {
    if (worker.state == State::starting) wake = std::min(wake, last_tick_ + starting_tick);
    if ((worker.state == State::aborting || worker.state == State::retiring) && !worker.killed)
      wake = std::min(wake, worker.kill_at);
  }
  if (phase_ == Phase::running)
    for (const Seat& seat : seats_)
      if (seat.worker == none && seat.replacement == none) wake = std::min(wake, seat.due_at);
  return wake;
}

unsigned Supervisor::ready_workers() const noexcept {
  return static_cast<unsigned>(std::count_if(
      workers_.begin(), workers_.end(), [](const Worker& w) { return w.state == State::ready; }));
}

unsigned Supervisor::live_workers() const noexcept {
  return static_cast<unsigned>(std::count_if(
      workers_.begin(), workers_.end(), [](const Worker& w) { return w.state != State::empty; }));
}

unsigned Supervisor::in_flight_replacements() const {
  return static_cast<unsigned>(std::count_if(
      seats_.begin(), seats_.end(), [](const Seat& seat) { return seat.replacement != none; }));
}

std::string Supervisor::name(unsigned slot) const {
  std::string text = "worker ";
  text += std::to_string(slot);
  return text;
}

}  // namespace prefork
