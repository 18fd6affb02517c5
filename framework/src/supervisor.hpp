// The master's decisions, without processes: a state machine over the slot
// table. It is told what happened (a child exited, a signal, what the
// scoreboard shows, the time) and acts through a SupervisorHost (start a
// worker, signal one, reap, close the listeners). The real Master is a thin
// loop around it; the unit tests drive it with a fake host and a fake clock,
// as gunicorn's tests/test_arbiter.py patches fork and waitpid.
//
// The pool is a list of seats, each wanting one ready worker. A worker runs
// in a slot of the scoreboard; the table has room for the largest pool plus
// the workers being replaced (recycling and reloads start the replacement
// first, and stop the old worker only once the new one is ready).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <prefork/server.hpp>

namespace prefork {

struct SupervisorSettings {
  using Duration = std::chrono::milliseconds;
  unsigned workers = 1;      // the pool's size at start
  unsigned max_workers = 1;  // the most seats TTIN or the dynamic pool may reach
  unsigned max_recycling = 1;
  bool resizable = true;  // false with --accept reuseport: a seat owns its sockets
  PoolMode pool = PoolMode::fixed;
  unsigned min_spare = 1, max_spare = 3;
  unsigned spawn_rate = 8;  // dynamic: workers started per second at most
  Duration timeout{30'000};
  Duration start_timeout{30'000};
  Duration abort_grace{2'000};  // SIGABRT -> SIGKILL
  Duration graceful_timeout{10'000};
  Duration fast_grace{2'000};  // SIGQUIT -> SIGKILL
  Duration drain_delay{0};
  std::uint64_t max_requests = 0;
  std::uint64_t max_requests_jitter = 0;
  unsigned max_start_failures = 5;  // within restart_window, while no worker serves
  Duration restart_window{60'000};
  Duration first_backoff{100};
  Duration max_backoff{10'000};
};

// What the host must do to start one worker.
struct StartOrder {
  unsigned slot = 0;             // scoreboard slot
  unsigned seat = 0;             // the pool position (its sockets with reuseport)
  std::uint64_t generation = 0;  // of the slot
  std::uint64_t config = 0;      // which configuration (bumps on each reload)
  std::uint64_t max_requests = 0;
};

// What the scoreboard shows of one slot.
struct WorkerView {
  bool ready = false;             // reported ready (or later)
  std::uint64_t heartbeat = 0;    // any value that changes while it progresses
  bool waiting = false;           // asleep in accept()/recvmsg(): healthy unless stopped
  bool busy = false;              // a request or connection in hand
  bool retire_requested = false;  // served its --max-requests
};

struct ChildExit {
  pid_t pid = 0;
  int status = 0;  // as waitpid() gives it
};

class SupervisorHost {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~SupervisorHost() = default;
  virtual Clock::time_point now() = 0;
  virtual double random() = 0;  // in [0, 1): the jitter
  // Starts a worker; its pid, or -1 after logging why.
  virtual pid_t start(const StartOrder& order) = 0;
  // The next child that exited, without blocking.
  virtual std::optional<ChildExit> reap() = 0;
  // Signals a worker; `group`: its whole process group (its children too).
  virtual void kill(pid_t pid, int signal, bool group) = 0;
  virtual WorkerView observe(unsigned slot) = 0;
  // Whether a worker is stopped (SIGSTOP, a debugger): asleep waiting for
  // work is healthy, but not when stopped there. Asked at most twice per
  // --timeout for each waiting worker whose heartbeat stands still.
  virtual bool stopped(pid_t pid) = 0;
  // A worker's slot is free again (fold its counts into the totals).
  virtual void released(unsigned slot) = 0;
  // The stop begins: stop accepting (the master closes its listeners).
  virtual void close_listeners() = 0;
  // For /health: 503 from now on.
  virtual void draining() = 0;
};

// What the supervisor counted, for the scoreboard's header.
struct SupervisorCounts {
  std::uint64_t restarts = 0;  // workers started in place of another
  std::uint64_t exits_crashed = 0, exits_signaled = 0, exits_recycled = 0;
  std::uint64_t exits_timed_out = 0;  // killed by the heartbeat's --timeout
  std::uint64_t start_failures = 0;   // died or timed out before ready
  std::uint64_t generation = 0;       // the last slot generation started
};

class Supervisor {
 public:
  using Clock = SupervisorHost::Clock;
  // graceful: TERM, after --drain-delay (/health says draining first);
  // fast: INT/QUIT; handover: a binary upgrade's new master serves the same
  // listeners, so the old workers drain at once and /health never says so.
  enum class Stop { graceful, fast, handover };

  Supervisor(SupervisorSettings settings, unsigned slots, SupervisorHost& host);

  // --- Inputs ---
  // One turn: reap, watch, and start or stop what the pool needs.
  void tick();
  // TERM (graceful), INT/QUIT (fast), a finished upgrade (handover); asked
  // twice, the workers are killed.
  void stop(Stop how, int exit_status, const std::string& why);
  // TTIN/TTOU; false (logged) when the pool cannot change.
  bool resize(int delta);
  // HUP: every worker is replaced by one of the new configuration, at most
  // max_recycling at a time; should one fail to start, the roll goes back.
  // Returns the new configuration's number (StartOrder::config).
  std::uint64_t roll(const SupervisorSettings& settings);
  // Passes `signal` on to every worker that is ready or stopping gracefully
  // (USR1: reopen the log files, as nginx's master tells its workers), and
  // to each one still starting once it is ready; the number signalled now.
  unsigned signal_workers(int signal);

  // --- State ---
  bool finished() const noexcept;  // stopped and no worker left
  bool stopping() const noexcept { return phase_ != Phase::running; }
  int exit_status() const noexcept { return exit_status_; }
  // When tick() must run next at the latest.
  Clock::time_point next_deadline() const;
  // Whether the last roll failed (the previous configuration is back) and
  // which configuration is serving.
  std::uint64_t config() const noexcept { return config_; }
  bool roll_failed() const noexcept { return roll_failed_; }
  // A roll (HUP) is under way: not every seat runs the serving configuration.
  bool rolling() const noexcept { return rolling_; }
  unsigned seats() const noexcept { return static_cast<unsigned>(seats_.size()); }
  unsigned ready_workers() const noexcept;
  unsigned live_workers() const noexcept;
  // The slot of a worker's pid (nullopt: not a worker, e.g. an upgrade's new
  // master), until the supervisor hears of its exit.
  std::optional<unsigned> slot_of(pid_t pid) const noexcept;
  const SupervisorCounts& counts() const noexcept { return counts_; }
  const SupervisorSettings& settings() const noexcept { return settings_; }

 private:
  enum class Phase { running, draining, stopping };
  enum class State { empty, starting, ready, aborting, retiring };
  static constexpr int none = -1;

  struct Worker {  // one per slot
    State state = State::empty;
    pid_t pid = 0;
    int seat = none;  // none once it retires
    std::uint64_t generation = 0;
    std::uint64_t config = 0;
    Clock::time_point started{};
    Clock::time_point last_progress{};
    std::uint64_t last_beat = 0;
    Clock::time_point kill_at{};  // aborting, retiring: SIGKILL then
    bool killed = false;          // SIGKILL sent
    bool timed_out = false;       // by the heartbeat
    bool was_ready = false;       // reported ready once (its handlers are in place)
    int signal_when_ready = 0;    // a signal it was starting for (USR1): sent once ready
    bool busy = false;            // as last observed
    bool retire_requested = false;
  };
  struct Seat {
    int worker = none;       // the slot serving it (starting or ready)
    int replacement = none;  // the slot of its replacement, starting
    unsigned failures = 0;   // start failures in a row
    Clock::time_point due_at{};
  };

  void reap_workers();
  void on_exit(unsigned slot, int status);
  void on_start_failure(unsigned slot, int seat, int status, std::uint64_t config);
  void roll_back();
  void end_roll_if_done();
  void fit_seats(unsigned count);
  void watch_workers();
  void promote(unsigned slot);
  void replace_workers();
  void manage_dynamic_pool();
  void start_missing_workers();
  void escalate();
  bool start(int seat, bool replacement);
  void retire(unsigned slot, const char* why);
  void leave_seat(unsigned slot);
  void free_slot(unsigned slot);
  void begin_stopping();
  bool give_up_if_broken(const std::string& what);
  void drop_seat(std::size_t seat);
  std::string name(unsigned slot) const;
  unsigned in_flight_replacements() const;

  SupervisorSettings settings_;
  SupervisorSettings previous_settings_;
  SupervisorHost& host_;
  std::vector<Worker> workers_;
  std::vector<Seat> seats_;
  std::deque<Clock::time_point> start_failures_;  // within the window
  SupervisorCounts counts_;
  Phase phase_ = Phase::running;
  int exit_status_ = 0;
  Clock::time_point phase_deadline_{};  // draining: until; stopping: SIGKILL then
  Clock::time_point last_tick_{};
  Clock::time_point next_pool_check_{};
  Stop stop_how_ = Stop::graceful;
  std::string stop_why_;
  std::uint64_t config_ = 1;
  std::uint64_t last_config_ = 1;
  std::uint64_t previous_config_ = 1;
  bool rolling_ = false;
  bool roll_failed_ = false;
};

// A waitpid() status in words, for the log: "exited with status 3", "was
// killed by SIGKILL"; a negative one: "could not be started".
std::string describe_status(int status);

// The wait before restarting a seat whose workers failed to start `failures`
// times in a row: 0, then first_backoff doubling up to max_backoff, each
// times a jitter in [1/2, 1) so that failing seats do not retry in step.
std::chrono::milliseconds restart_delay(unsigned failures, const SupervisorSettings& settings,
                                        double jitter);

}  // namespace prefork
