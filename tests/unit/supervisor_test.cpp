// The supervisor without processes: a fake host scripts the exits, the
// scoreboard's views and the clock, and records what the supervisor did
// (as gunicorn's tests/test_arbiter.py patches fork and waitpid). Each case
// is a sequence of inputs and the actions expected of it.
#define BOOST_TEST_MODULE supervisor
#include <boost/test/unit_test.hpp>

#include <prefork/exit_status.hpp>
#include <prefork/server.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <deque>
#include <map>
#include <set>
#include <vector>

#include "master.hpp"
#include "server_process.hpp"
#include "supervisor.hpp"

using namespace std::chrono_literals;
using prefork::ChildExit;
using prefork::StartOrder;
using prefork::Supervisor;
using prefork::SupervisorSettings;
using prefork::WorkerView;

namespace {

int exited(int code) { return (code & 0xff) << 8; }  // as waitpid() reports exit(code)
int killed_by(int number) { return number & 0x7f; }  // as waitpid() reports a signal death

struct Kill {
  pid_t pid;
  int signal;
  bool group;
  bool operator==(const Kill&) const = default;
};

class FakeHost final : public prefork::SupervisorHost {
 public:
  Clock::time_point clock{std::chrono::hours(1)};
  double jitter = 0.5;
  bool refuse_starts = false;
  pid_t next_pid = 100;
  std::vector<StartOrder> starts;
  std::vector<Kill> kills;
  std::deque<ChildExit> exits;
  std::map<unsigned, WorkerView> views;
  std::map<pid_t, unsigned> slot_of;
  std::vector<unsigned> releases;
  std::set<pid_t> stopped_pids;  // SIGSTOPped, as /proc would show
  int stopped_asked = 0;
  int closes = 0;
  int drains = 0;

  Clock::time_point now() override { return clock; }
  double random() override { return jitter; }
  pid_t start(const StartOrder& order) override {
    if (refuse_starts) return -1;
    starts.push_back(order);
    const pid_t pid = next_pid++;
    slot_of[pid] = order.slot;
    views[order.slot] = WorkerView{};
    return pid;
  }
  std::optional<ChildExit> reap() override {
    if (exits.empty()) return std::nullopt;
    ChildExit exit = exits.front();
    exits.pop_front();
    return exit;
  }
  void kill(pid_t pid, int signal, bool group) override { kills.push_back({pid, signal, group}); }
  WorkerView observe(unsigned slot) override { return views[slot]; }
  bool stopped(pid_t pid) override {
    stopped_asked += 1;
    return stopped_pids.contains(pid);
  }
  void released(unsigned slot) override { releases.push_back(slot); }
  void close_listeners() override { closes += 1; }
  void draining() override { drains += 1; }

  // Script helpers.
  pid_t pid_of_start(std::size_t index) const { return 100 + static_cast<pid_t>(index); }
  void ready(pid_t pid) {
    WorkerView& view = views[slot_of.at(pid)];
    view.ready = true;
    view.heartbeat += 1;
  }
  void beat_all() {
    for (auto& [slot, view] : views) view.heartbeat += 1;
  }
  void die(pid_t pid, int status) { exits.push_back({pid, status}); }
  void advance(std::chrono::milliseconds step) { clock += step; }
  std::vector<Kill> kills_of(pid_t pid) const {
    std::vector<Kill> out;
    for (const Kill& kill : kills)
      if (kill.pid == pid) out.push_back(kill);
    return out;
  }
};

SupervisorSettings settings(unsigned workers) {
  SupervisorSettings s;
  s.workers = workers;
  s.max_workers = 2 * workers;
  return s;
}

// Starts the pool and makes every worker ready.
void start_ready(Supervisor& supervisor, FakeHost& host) {
  supervisor.tick();
  for (const StartOrder& order : host.starts)
    host.ready(100 + static_cast<pid_t>(&order - &host.starts[0]));
  supervisor.tick();
}

}  // namespace

BOOST_AUTO_TEST_CASE(restart_delay_doubles_with_jitter_up_to_the_cap) {
  SupervisorSettings s;  // 100 ms doubling to 10 s
  BOOST_TEST(prefork::restart_delay(0, s, 0.0).count() == 0);
  BOOST_TEST(prefork::restart_delay(1, s, 0.0).count() == 50);   // jitter: half ...
  BOOST_TEST(prefork::restart_delay(1, s, 1.0).count() == 100);  // ... to whole
  BOOST_TEST(prefork::restart_delay(2, s, 1.0).count() == 200);
  BOOST_TEST(prefork::restart_delay(3, s, 1.0).count() == 400);
  BOOST_TEST(prefork::restart_delay(8, s, 1.0).count() == 10'000);
  auto previous = prefork::restart_delay(0, s, 0.5);
  for (unsigned failures = 1; failures <= 200; ++failures) {
    const auto delay = prefork::restart_delay(failures, s, 0.5);
    BOOST_TEST(delay >= previous, "after " << failures);
    BOOST_TEST(delay.count() <= 10'000);
    previous = delay;
  }
  for (unsigned failures : {1000u, UINT_MAX / 2, UINT_MAX})
    BOOST_TEST(prefork::restart_delay(failures, s, 1.0).count() == 10'000);
}

BOOST_AUTO_TEST_CASE(starts_one_worker_per_seat_in_free_slots) {
  FakeHost host;
  Supervisor supervisor(settings(3), 7, host);
  supervisor.tick();
  BOOST_TEST_REQUIRE(host.starts.size() == 3u);
  for (unsigned i = 0; i < 3; ++i) {
    BOOST_TEST(host.starts[i].slot == i);
    BOOST_TEST(host.starts[i].seat == i);
    BOOST_TEST(host.starts[i].generation == 1u);
    BOOST_TEST(host.starts[i].config == 1u);
  }
  supervisor.tick();  // nothing more while they start
  BOOST_TEST(host.starts.size() == 3u);
}

// The crash-loop guard's old defect: a worker that was ready and serving
// counted as failing to start if it died soon. One that served is restarted
// at once, however often it dies.
BOOST_AUTO_TEST_CASE(a_worker_that_served_is_restarted_at_once_however_often_it_dies) {
  FakeHost host;
  Supervisor supervisor(settings(4), 8, host);
  start_ready(supervisor, host);
  for (int round = 0; round < 50; ++round) {
    const pid_t victim = host.pid_of_start(host.starts.size() - 1);
    host.advance(300ms);
    host.beat_all();
    host.die(victim, killed_by(SIGKILL));
    const std::size_t before = host.starts.size();
    supervisor.tick();
    BOOST_TEST_REQUIRE(host.starts.size() == before + 1, "round " << round);
    host.ready(host.pid_of_start(host.starts.size() - 1));
    supervisor.tick();
  }
  BOOST_TEST(!supervisor.stopping());
  BOOST_TEST(supervisor.counts().exits_signaled == 50u);
  BOOST_TEST(supervisor.counts().start_failures == 0u);
  BOOST_TEST(supervisor.counts().restarts == 50u);
}

// Ready in the scoreboard, dead before the supervisor looked again: it
// served, so it is no failed start.
BOOST_AUTO_TEST_CASE(a_worker_ready_but_not_yet_seen_counts_as_served) {
  FakeHost host;
  Supervisor supervisor(settings(1), 2, host);
  supervisor.tick();
  host.ready(100);
  host.die(100, killed_by(SIGKILL));
  supervisor.tick();
  BOOST_TEST(supervisor.counts().start_failures == 0u);
  BOOST_TEST(supervisor.counts().exits_signaled == 1u);
  BOOST_TEST(host.starts.size() == 2u);  // at once
}

// A seat whose workers keep failing to start backs off (doubling, with
// jitter, capped) but never stops the seats that serve.
BOOST_AUTO_TEST_CASE(a_failing_seat_backs_off_and_never_stops_the_healthy_ones) {
  FakeHost host;
  host.jitter = 1.0;
  Supervisor supervisor(settings(2), 4, host);
  supervisor.tick();
  host.ready(host.pid_of_start(0));  // seat 0 serves; seat 1 never comes up
  std::vector<long long> waits;
  for (int failure = 0; failure < 20; ++failure) {
    const pid_t failing = host.pid_of_start(host.starts.size() - 1);
    BOOST_TEST_REQUIRE(host.starts.back().seat == 1u);
    host.die(failing, exited(1));
    supervisor.tick();
    // Advance until the next start, measuring the wait.
    const std::size_t before = host.starts.size();
    long long waited = 0;
    while (host.starts.size() == before && waited < 60'000) {
      host.advance(10ms);
      host.beat_all();
      waited += 10;
      supervisor.tick();
    }
    BOOST_TEST_REQUIRE(host.starts.size() == before + 1, "no restart after failure " << failure);
    waits.push_back(waited);
  }
  BOOST_TEST(!supervisor.stopping());
  BOOST_TEST(waits[0] >= 100);
  BOOST_TEST(waits[1] >= 200);
  BOOST_TEST(waits[2] >= 400);
  BOOST_TEST(waits.back() <= 10'010);
  BOOST_TEST(waits.back() >= 10'000);
  BOOST_TEST(supervisor.counts().start_failures == 20u);
  BOOST_TEST(host.kills_of(host.pid_of_start(0)).empty());
}

BOOST_AUTO_TEST_CASE(gives_up_when_the_budget_is_spent_and_nothing_serves) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.max_start_failures = 5;
  Supervisor supervisor(s, 4, host);
  supervisor.tick();
  for (int i = 0; i < 20 && !supervisor.stopping(); ++i) {
    for (std::size_t started = 0; started < host.starts.size(); ++started)
      if (std::none_of(host.exits.begin(), host.exits.end(),
                       [&](const ChildExit& e) { return e.pid == host.pid_of_start(started); }))
        host.die(host.pid_of_start(started), exited(1));
    host.exits.erase(
        std::unique(host.exits.begin(), host.exits.end(),
                    [](const ChildExit& a, const ChildExit& b) { return a.pid == b.pid; }),
        host.exits.end());
    supervisor.tick();
    host.advance(2s);
    supervisor.tick();
  }
  BOOST_TEST(supervisor.stopping());
  BOOST_TEST(supervisor.exit_status() == prefork::exit_workers_failed);
  BOOST_TEST(supervisor.counts().start_failures >= 5u);
}

BOOST_AUTO_TEST_CASE(a_boot_error_with_no_worker_serving_stops_at_once) {
  FakeHost host;
  Supervisor supervisor(settings(2), 4, host);
  supervisor.tick();
  host.die(host.pid_of_start(0), exited(prefork::worker_exit_boot_error));
  supervisor.tick();
  BOOST_TEST(supervisor.stopping());
  BOOST_TEST(supervisor.exit_status() == prefork::exit_workers_failed);
  BOOST_TEST(host.closes == 1);
  BOOST_TEST((host.kills_of(host.pid_of_start(1)) == std::vector<Kill>{{101, SIGTERM, false}}));
}

BOOST_AUTO_TEST_CASE(a_worker_never_ready_is_killed_at_the_start_timeout) {
  FakeHost host;
  SupervisorSettings s = settings(1);
  s.start_timeout = 3s;
  Supervisor supervisor(s, 2, host);
  supervisor.tick();
  host.advance(2900ms);
  supervisor.tick();
  BOOST_TEST(host.kills.empty());
  host.advance(200ms);
  supervisor.tick();
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGKILL, true}}));
  host.die(100, killed_by(SIGKILL));
  supervisor.tick();
  BOOST_TEST(supervisor.counts().start_failures == 1u);
}

BOOST_AUTO_TEST_CASE(a_silent_worker_is_aborted_then_killed_and_replaced) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.timeout = 2s;
  Supervisor supervisor(s, 4, host);
  start_ready(supervisor, host);
  host.views[1].waiting = true;            // worker 101 sleeps in accept(): healthy
  for (int step = 0; step < 25; ++step) {  // 100 is silent
    host.advance(100ms);
    supervisor.tick();
  }
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGABRT, false}}));
  host.advance(s.abort_grace);
  supervisor.tick();
  BOOST_TEST(
      (host.kills_of(100) == std::vector<Kill>{{100, SIGABRT, false}, {100, SIGKILL, true}}));
  host.die(100, killed_by(SIGKILL));
  supervisor.tick();
  BOOST_TEST(host.starts.size() == 3u);  // replaced at once
  BOOST_TEST(supervisor.counts().exits_timed_out == 1u);
  BOOST_TEST(host.kills_of(101).empty());
}

// Asleep in accept() is healthy, but not when stopped there (SIGSTOP): its
// clients wait for nothing. Whether it is stopped is asked twice per
// --timeout, not at every look.
BOOST_AUTO_TEST_CASE(a_worker_stopped_while_waiting_is_aborted_and_asked_about_rarely) {
  FakeHost host;
  SupervisorSettings s = settings(1);
  s.timeout = 2s;
  Supervisor supervisor(s, 2, host);
  start_ready(supervisor, host);
  host.views[0].waiting = true;
  for (int step = 0; step < 100; ++step) {  // 10 s asleep in accept()
    host.advance(100ms);
    supervisor.tick();
  }
  BOOST_TEST(host.kills.empty());
  BOOST_TEST(host.stopped_asked >= 5);
  BOOST_TEST(host.stopped_asked <= 11);  // once a second, not 100 times
  host.stopped_pids.insert(100);
  int steps = 0;
  while (host.kills.empty() && steps < 100) {
    host.advance(100ms);
    supervisor.tick();
    steps += 1;
  }
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGABRT, false}}));
  BOOST_TEST(steps <= 30, "aborted " << steps * 100 << " ms after it stopped");
}

BOOST_AUTO_TEST_CASE(a_worker_whose_heartbeat_moves_is_never_aborted) {
  FakeHost host;
  SupervisorSettings s = settings(1);
  s.timeout = 2s;
  Supervisor supervisor(s, 2, host);
  start_ready(supervisor, host);
  for (int step = 0; step < 100; ++step) {
    host.advance(500ms);
    host.beat_all();
    supervisor.tick();
  }
  BOOST_TEST(host.kills.empty());
}

// The master was stopped (SIGSTOP 4 s) while its workers went on: its clock
// jumped, theirs did not stop. No worker is judged on the jump.
BOOST_AUTO_TEST_CASE(a_paused_master_does_not_kill_healthy_workers) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.timeout = 2s;
  Supervisor supervisor(s, 4, host);
  start_ready(supervisor, host);
  host.advance(4s);  // nothing observed meanwhile
  supervisor.tick();
  BOOST_TEST(host.kills.empty());
  host.beat_all();  // they beat after the pause: still healthy
  host.advance(500ms);
  supervisor.tick();
  BOOST_TEST(host.kills.empty());
  // A worker truly silent from then on is still caught.
  for (int step = 0; step < 30; ++step) {
    host.advance(100ms);
    host.views[1].heartbeat += 1;
    supervisor.tick();
  }
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGABRT, false}}));
}

// --max-requests: the replacement starts first; the old worker is stopped
// only once it is ready; at most max_recycling at a time.
BOOST_AUTO_TEST_CASE(recycling_starts_the_replacement_before_stopping_the_old_worker) {
  FakeHost host;
  SupervisorSettings s = settings(3);
  s.max_recycling = 1;
  Supervisor supervisor(s, 7, host);
  start_ready(supervisor, host);
  for (unsigned slot = 0; slot < 3; ++slot) host.views[slot].retire_requested = true;
  supervisor.tick();
  BOOST_TEST_REQUIRE(host.starts.size() == 4u);  // one replacement only
  const StartOrder first = host.starts[3];
  BOOST_TEST(first.seat == 0u);
  BOOST_TEST(first.slot == 3u);  // a free slot, not the old one
  BOOST_TEST(host.kills.empty());
  host.advance(100ms);
  supervisor.tick();
  BOOST_TEST(host.kills.empty());  // not ready yet: the old one serves on
  host.ready(103);
  supervisor.tick();
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGTERM, false}}));
  BOOST_TEST(host.starts.size() == 5u);  // the next one now
  BOOST_TEST(host.starts[4].seat == 1u);
  host.die(100, exited(0));
  supervisor.tick();
  BOOST_TEST(supervisor.counts().exits_recycled == 1u);
  BOOST_TEST(host.starts.size() == 5u);  // the retired worker is not restarted
}

BOOST_AUTO_TEST_CASE(max_requests_gets_its_jitter) {
  for (double jitter : {0.0, 0.5, 0.999}) {
    FakeHost host;
    host.jitter = jitter;
    SupervisorSettings s = settings(1);
    s.max_requests = 1000;
    s.max_requests_jitter = 50;
    Supervisor supervisor(s, 2, host);
    supervisor.tick();
    BOOST_TEST(host.starts.at(0).max_requests >= 1000u);
    BOOST_TEST(host.starts.at(0).max_requests <= 1050u);
  }
  FakeHost host;
  host.jitter = 0.999;
  Supervisor supervisor(settings(1), 2, host);  // no --max-requests: no limit
  supervisor.tick();
  BOOST_TEST(host.starts.at(0).max_requests == 0u);
}

BOOST_AUTO_TEST_CASE(graceful_stop_terms_then_kills_at_the_timeout) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.graceful_timeout = 5s;
  Supervisor supervisor(s, 4, host);
  start_ready(supervisor, host);
  supervisor.stop(Supervisor::Stop::graceful, prefork::exit_ok, "SIGTERM");
  BOOST_TEST(host.closes == 1);
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGTERM, false}, {101, SIGTERM, false}}));
  host.die(100, exited(0));
  supervisor.tick();
  BOOST_TEST(host.starts.size() == 2u);  // nothing restarts during a stop
  BOOST_TEST(!supervisor.finished());
  host.advance(5s);
  supervisor.tick();
  BOOST_TEST((host.kills.back() == Kill{101, SIGKILL, true}));
  host.die(101, killed_by(SIGKILL));
  supervisor.tick();
  BOOST_TEST(supervisor.finished());
  BOOST_TEST(supervisor.exit_status() == prefork::exit_ok);
}

BOOST_AUTO_TEST_CASE(a_second_stop_kills_at_once) {
  FakeHost host;
  Supervisor supervisor(settings(1), 2, host);
  start_ready(supervisor, host);
  supervisor.stop(Supervisor::Stop::graceful, prefork::exit_ok, "SIGTERM");
  supervisor.stop(Supervisor::Stop::graceful, prefork::exit_ok, "SIGTERM");
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGTERM, false}, {100, SIGKILL, true}}));
}

BOOST_AUTO_TEST_CASE(fast_stop_quits_then_kills_after_the_fast_grace) {
  FakeHost host;
  Supervisor supervisor(settings(2), 4, host);
  start_ready(supervisor, host);
  supervisor.stop(Supervisor::Stop::fast, prefork::exit_ok, "SIGINT");
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGQUIT, false}, {101, SIGQUIT, false}}));
  host.advance(supervisor.settings().fast_grace);
  supervisor.tick();
  BOOST_TEST(host.kills.size() == 4u);
  BOOST_TEST((host.kills[2] == Kill{100, SIGKILL, true}));
}

BOOST_AUTO_TEST_CASE(drain_delay_reports_draining_before_closing_the_listeners) {
  FakeHost host;
  SupervisorSettings s = settings(1);
  s.drain_delay = 3s;
  Supervisor supervisor(s, 2, host);
  start_ready(supervisor, host);
  supervisor.stop(Supervisor::Stop::graceful, prefork::exit_ok, "SIGTERM");
  BOOST_TEST(host.drains == 1);
  BOOST_TEST(host.closes == 0);
  BOOST_TEST(host.kills.empty());
  host.advance(2s);
  host.beat_all();
  supervisor.tick();
  BOOST_TEST(host.closes == 0);
  host.advance(1s);
  supervisor.tick();
  BOOST_TEST(host.closes == 1);
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGTERM, false}}));
}

// The upgrade's last step on the old master: the new master serves the
// same listeners, so no drain delay and no "draining" for /health; the
// workers finish their requests and nothing replaces them.
BOOST_AUTO_TEST_CASE(a_handover_stops_at_once_without_draining_and_exits_0) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.drain_delay = 3s;
  Supervisor supervisor(s, 3, host);
  start_ready(supervisor, host);
  supervisor.stop(Supervisor::Stop::handover, prefork::exit_ok, "upgraded");
  BOOST_TEST(host.drains == 0);
  BOOST_TEST(host.closes == 1);
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGTERM, false}, {101, SIGTERM, false}}));
  host.die(100, exited(0));
  supervisor.tick();
  BOOST_TEST(host.starts.size() == 2u);  // not replaced
  BOOST_TEST(!supervisor.finished());
  host.die(101, exited(0));
  supervisor.tick();
  BOOST_TEST(supervisor.finished());
  BOOST_TEST(supervisor.exit_status() == prefork::exit_ok);
}

BOOST_AUTO_TEST_CASE(ttin_and_ttou_resize_the_pool_within_bounds) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.max_workers = 3;
  Supervisor supervisor(s, 4, host);
  start_ready(supervisor, host);
  BOOST_TEST(supervisor.resize(+1));
  supervisor.tick();
  BOOST_TEST(host.starts.size() == 3u);
  BOOST_TEST(!supervisor.resize(+1));  // at --max-workers
  host.ready(102);
  supervisor.tick();
  BOOST_TEST(supervisor.resize(-1));
  BOOST_TEST((host.kills == std::vector<Kill>{{102, SIGTERM, false}}));
  BOOST_TEST(supervisor.resize(-1));
  BOOST_TEST(!supervisor.resize(-1));  // one left
  BOOST_TEST(supervisor.seats() == 1u);
  host.die(102, exited(0));
  host.die(101, exited(0));
  supervisor.tick();
  BOOST_TEST(host.starts.size() == 3u);  // retired, not replaced

  FakeHost fixed_host;
  SupervisorSettings reuseport = settings(2);
  reuseport.resizable = false;
  Supervisor fixed(reuseport, 4, fixed_host);
  BOOST_TEST(!fixed.resize(+1));
  BOOST_TEST(!fixed.resize(-1));
}

BOOST_AUTO_TEST_CASE(the_dynamic_pool_keeps_its_spare_workers) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.pool = prefork::PoolMode::dynamic;
  s.min_spare = 2;
  s.max_spare = 3;
  s.max_workers = 10;
  s.spawn_rate = 2;
  Supervisor supervisor(s, 12, host);
  start_ready(supervisor, host);
  // Both busy: fewer than 2 idle, so up to spawn_rate are added each second.
  host.views[0].busy = host.views[1].busy = true;
  host.advance(1s);
  host.beat_all();
  supervisor.tick();
  BOOST_TEST(supervisor.seats() == 4u);
  BOOST_TEST(host.starts.size() == 4u);
  host.ready(102);
  host.ready(103);
  // Everyone idle: 4 > max_spare 3: one retires per second, down to 3 idle.
  host.views[0].busy = host.views[1].busy = false;
  host.advance(1s);
  host.beat_all();
  supervisor.tick();
  BOOST_TEST(supervisor.seats() == 3u);
  BOOST_TEST(host.kills.size() == 1u);
  BOOST_TEST(host.kills[0].signal == SIGTERM);
  host.advance(1s);
  host.beat_all();
  supervisor.tick();
  BOOST_TEST(supervisor.seats() == 3u);
}

// HUP: each worker is replaced by one of the new configuration, started and
// ready before the old one stops.
BOOST_AUTO_TEST_CASE(a_reload_rolls_every_worker_one_at_a_time) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  Supervisor supervisor(s, 5, host);
  start_ready(supervisor, host);
  const std::uint64_t id = supervisor.roll(s);
  BOOST_TEST(id == 2u);
  supervisor.tick();
  BOOST_TEST_REQUIRE(host.starts.size() == 3u);
  BOOST_TEST(host.starts[2].config == 2u);
  BOOST_TEST(host.kills.empty());
  host.ready(102);
  supervisor.tick();
  BOOST_TEST((host.kills == std::vector<Kill>{{100, SIGTERM, false}}));
  BOOST_TEST_REQUIRE(host.starts.size() == 4u);
  BOOST_TEST(host.starts[3].config == 2u);
  host.ready(103);
  supervisor.tick();
  BOOST_TEST((host.kills.back() == Kill{101, SIGTERM, false}));
  host.die(100, exited(0));
  host.die(101, exited(0));
  supervisor.tick();
  BOOST_TEST(host.starts.size() == 4u);
  BOOST_TEST(!supervisor.roll_failed());
  BOOST_TEST(supervisor.config() == 2u);
}

// A new configuration whose first worker fails to start: the roll goes back,
// and the old workers are never stopped.
BOOST_AUTO_TEST_CASE(a_reload_that_fails_to_start_leaves_the_old_workers_serving) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  Supervisor supervisor(s, 5, host);
  start_ready(supervisor, host);
  supervisor.roll(s);
  supervisor.tick();
  BOOST_TEST_REQUIRE(host.starts.size() == 3u);
  host.die(102, exited(1));
  supervisor.tick();
  BOOST_TEST(supervisor.roll_failed());
  BOOST_TEST(supervisor.config() == 1u);
  BOOST_TEST(host.kills.empty());
  // Over (the master tells systemd READY=1 again): nothing is left to roll.
  BOOST_TEST(!supervisor.rolling());
  for (int i = 0; i < 10; ++i) {
    host.advance(1s);
    host.beat_all();
    supervisor.tick();
  }
  BOOST_TEST(host.starts.size() == 3u);  // nothing more to replace
  BOOST_TEST(host.kills.empty());
  BOOST_TEST(!supervisor.stopping());
}

BOOST_AUTO_TEST_CASE(a_start_that_fails_outright_backs_off) {
  FakeHost host;
  host.refuse_starts = true;
  Supervisor supervisor(settings(1), 2, host);
  supervisor.tick();
  BOOST_TEST(supervisor.counts().start_failures == 1u);
  host.refuse_starts = false;
  supervisor.tick();
  BOOST_TEST(host.starts.empty());  // backing off
  host.advance(1s);
  supervisor.tick();
  BOOST_TEST(host.starts.size() == 1u);
}

// USR1 (logrotate's postrotate) reaches the workers too, as nginx's master
// tells its own: every ready or retiring worker at once; one still starting
// once it is ready (before, its handlers may not be installed: USR1 would
// kill it).
BOOST_AUTO_TEST_CASE(usr1_is_passed_on_to_the_ready_and_retiring_workers) {
  FakeHost host;
  Supervisor supervisor(settings(2), 5, host);
  start_ready(supervisor, host);
  const pid_t first = host.pid_of_start(0), second = host.pid_of_start(1);
  BOOST_TEST_REQUIRE(supervisor.resize(-1));  // `second` retires, gracefully
  BOOST_TEST_REQUIRE(supervisor.resize(+1));  // a third starts
  supervisor.tick();
  BOOST_TEST_REQUIRE(host.starts.size() == 3u);
  const pid_t starting = host.pid_of_start(2);
  host.kills.clear();
  BOOST_TEST(supervisor.signal_workers(SIGUSR1) == 2u);
  BOOST_TEST((host.kills_of(first) == std::vector<Kill>{{first, SIGUSR1, false}}));
  BOOST_TEST((host.kills_of(second) == std::vector<Kill>{{second, SIGUSR1, false}}));
  BOOST_TEST(host.kills_of(starting).empty());
  // The one starting gets it once ready: it may hold the file its master
  // had before the rotation.
  host.ready(starting);
  supervisor.tick();
  BOOST_TEST((host.kills_of(starting) == std::vector<Kill>{{starting, SIGUSR1, false}}));
}

// A reload rolled back retires the new workers still starting: never ready,
// they get no USR1 either (its default action would kill them).
BOOST_AUTO_TEST_CASE(usr1_spares_a_worker_retired_before_it_was_ready) {
  FakeHost host;
  SupervisorSettings s = settings(2);
  s.max_recycling = 2;
  Supervisor supervisor(s, 6, host);
  start_ready(supervisor, host);
  supervisor.roll(s);
  supervisor.tick();
  BOOST_TEST_REQUIRE(host.starts.size() == 4u);  // 102 and 103, both starting
  host.die(102, exited(1));
  supervisor.tick();
  BOOST_TEST_REQUIRE(supervisor.roll_failed());
  BOOST_TEST_REQUIRE((host.kills_of(103) == std::vector<Kill>{{103, SIGTERM, false}}));
  host.kills.clear();
  BOOST_TEST(supervisor.signal_workers(SIGUSR1) == 2u);
  BOOST_TEST(host.kills_of(103).empty());
}

// The master's signal table: every catchable signal that would end it is
// taken (with a meaning, or ignored); the faults keep their default.
BOOST_AUTO_TEST_CASE(the_master_takes_every_catchable_signal_but_the_faults) {
  const std::vector<int> taken = prefork::master_signals();
  auto has = [&](int number) {
    return std::find(taken.begin(), taken.end(), number) != taken.end();
  };
  for (int number : {SIGTERM, SIGINT,  SIGQUIT,  SIGHUP,    SIGUSR1,   SIGUSR2, SIGTTIN, SIGTTOU,
                     SIGCHLD, SIGALRM, SIGWINCH, SIGURG,    SIGVTALRM, SIGPROF, SIGIO,   SIGPWR,
                     SIGXCPU, SIGXFSZ, SIGPIPE,  SIGSTKFLT, SIGRTMIN,  SIGRTMAX})
    BOOST_TEST(has(number), ::strsignal(number));
  for (int number : {SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT})
    BOOST_TEST(!has(number), ::strsignal(number));
}

namespace {

struct Quiet final : prefork::Handler {};

// serve(config) in a child process; its exit status, or -1 if it ran on
// past the timeout (then it is stopped and reaped).
int serve_in_child(const prefork::ServerConfig& config) {
  using namespace prefork::test;
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  BOOST_TEST_REQUIRE(child >= 0, "fork failed");
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    Quiet handler;
    ::_exit(prefork::serve(config, handler));
  }
  int status = 0;
  const bool done =
      wait_until([&] { return ::waitpid(child, &status, WNOHANG) == child; }, 10'000ms);
  if (!done) {
    ::kill(child, SIGTERM);
    if (!wait_until([&] { return ::waitpid(child, &status, WNOHANG) == child; }, 10'000ms)) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
    }
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

// 0 would make the master give up at the first failed start: serve()
// refuses it as a usage error, before it binds or starts anything.
BOOST_AUTO_TEST_CASE(serve_refuses_zero_max_start_failures) {
  using namespace prefork::test;
  prefork::ServerConfig config;
  config.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")}};
  config.workers = 1;
  config.stats_name = unique_stats_name();
  ShmGuard shm(config.stats_name);
  config.max_start_failures = 0;
  BOOST_TEST(serve_in_child(config) == prefork::exit_usage);
  BOOST_TEST(!shm_exists(config.stats_name));
}
