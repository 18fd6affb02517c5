// The master's supervision (framework/src/supervisor.cpp, unit-tested on a
// fake host) on real processes, in the start mode under test: what each
// signal to the master does (README "Signals and exit statuses"), the pool's
// size (SIGTTIN/SIGTTOU, --pool dynamic), recycling (--max-requests) without
// a dip in capacity, /health and --drain-delay, --start-timeout, and the
// process-group kill that takes a worker's own children with it.
#define BOOST_TEST_MODULE integration_master
#include <boost/test/unit_test.hpp>

#include "files.hpp"
#include "fixture.hpp"

#include <prefork/frame_codec.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace prefork::test;
namespace utf = boost::unit_test;

namespace {

// ---- Views of the scoreboard and the log ----

std::vector<pid_t> sorted(std::vector<pid_t> pids) {
  std::sort(pids.begin(), pids.end());
  return pids;
}

// The workers that serve: reported ready (not starting, not stopping).
std::vector<pid_t> ready_pids(const prefork::ScoreboardSnapshot& snapshot) {
  std::vector<pid_t> pids;
  for (const auto& slot : snapshot.slots)
    if (slot.pid > 0 && slot.state == prefork::WorkerState::ready) pids.push_back(slot.pid);
  return sorted(pids);
}

// The slots holding a worker, whatever its state.
std::size_t live_slots(const prefork::ScoreboardSnapshot& snapshot) {
  return static_cast<std::size_t>(
      std::count_if(snapshot.slots.begin(), snapshot.slots.end(),
                    [](const auto& slot) { return slot.state != prefork::WorkerState::empty; }));
}

bool contains(const std::vector<pid_t>& pids, pid_t pid) {
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

// One framed request on a connection of its own: the answer.
std::string ask(UpperServer& server, std::string_view payload) {
  auto client = TcpClient::connect(server.endpoint("framed"));
  return client.request_frame(payload);
}

std::string signal_name(int number) { return ::strsignal(number); }

// A connection whose worker has read half a frame (10 bytes announced, 5
// sent): a request in flight.
TcpClient connection_with_half_a_frame(UpperServer& server) {
  auto client = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST_REQUIRE(client.request_frame("warm") == "WARM");
  const std::uint64_t half_read =
      server.snapshot().totals.bytes_in + prefork::frame_header_size + 5;
  char header[prefork::frame_header_size];
  prefork::write_frame_header(10, header);
  std::string bytes(header, sizeof header);
  bytes += "hello";
  client.send_all(bytes);
  BOOST_TEST_REQUIRE(server
                         .when([&](const prefork::ScoreboardSnapshot& s) {
                           return s.totals.bytes_in >= half_read;
                         })
                         .has_value());
  return client;
}

// ---- The metrics endpoint ----

// GET `path` over HTTP/1.0: the whole response.
std::string http_get(const Endpoint& endpoint, const std::string& path) {
  std::string request = "GET ";
  request += path;
  request += " HTTP/1.0\r\n\r\n";
  return http(endpoint, request);
}

// The status code of GET `path`; 0 when the endpoint does not answer.
int http_status(const Endpoint& endpoint, const std::string& path) {
  try {
    const std::string response = http_get(endpoint, path);
    // "HTTP/1.1 200 OK"
    if (response.size() < 12) return 0;
    return std::stoi(response.substr(9, 3));
  } catch (const std::exception&) {
    return 0;
  }
}

// ---- Worker programs for spawn mode, written by the test ----

// The pids written one per line into `path` (empty when it does not exist).
std::vector<pid_t> pids_in(const std::string& path) {
  std::vector<pid_t> pids;
  std::ifstream in(path);
  for (long pid; in >> pid;) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

bool is_sleep(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string command;
  std::getline(in, command, '\0');
  return command.find("sleep") != std::string::npos;
}

// The `sleep` processes the worker scripts started, listed in a file: a
// failed test kills what is left of them by pid (and reaps those orphaned
// to this process, a child subreaper).
struct SleepersGuard {
  std::string list;
  ~SleepersGuard() {
    for (pid_t pid : pids_in(list)) {
      if (process_alive(pid) && is_sleep(pid)) ::kill(pid, SIGKILL);
      wait_exited(pid, 2'000ms);
    }
  }
};

// ---- Watching capacity while a load runs ----

// Takes scoreboard snapshots in a thread of its own until stopped: how many,
// how many showed no ready worker (the first of them described), which
// worker pids it saw. Boost.Test is not thread-safe: the test asserts on
// the counts once the watch has stopped.
class CapacityWatch {
 public:
  explicit CapacityWatch(std::string stats) : thread_([this, stats] { run(stats); }) {}
  CapacityWatch(const CapacityWatch&) = delete;
  CapacityWatch& operator=(const CapacityWatch&) = delete;
  ~CapacityWatch() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t recycled() const { return recycled_.load(); }

  // After stop():
  std::uint64_t observations = 0;
  std::uint64_t without_ready = 0;
  std::string first_dip;
  std::string error;
  std::vector<pid_t> pids_seen;

 private:
  void run(const std::string& stats) {
    try {
      const auto reader = prefork::ScoreboardReader::open(stats);
      while (!stop_) {
        const auto s = reader.snapshot(prefork::ScoreboardReader::Latencies::skipped);
        ++observations;
        recycled_ = s.exits_recycled;
        // A snapshot reads one slot after the other: a reader descheduled
        // between two may see the new worker still starting and then the old
        // one already stopping. A real dip lasts (the replacement takes
        // 300 ms to be ready): a second look sees it too.
        if (ready_pids(s).empty()) {
          const auto again = reader.snapshot(prefork::ScoreboardReader::Latencies::skipped);
          if (ready_pids(again).empty() && without_ready++ == 0) first_dip = describe(again);
        }
        for (pid_t pid : worker_pids(s))
          if (!contains(pids_seen, pid)) pids_seen.push_back(pid);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> recycled_{0};
  std::thread thread_;
};

// The catchable signals README "Signals" says the master ignores, with a
// log line: all but the stops, the reload, the pool's, the log's, the
// upgrade's (USR2: tested by the binary upgrade's own tests), CHLD, PIPE
// (ignored without a line) and the job-control ones.
std::vector<int> ignored_signals() {
  std::vector<int> numbers = {SIGALRM, SIGWINCH, SIGURG,  SIGVTALRM, SIGPROF,
                              SIGIO,   SIGPWR,   SIGXCPU, SIGXFSZ,   SIGSTKFLT};
  for (int number = SIGRTMIN; number <= SIGRTMAX; ++number) numbers.push_back(number);
  return numbers;
}

}  // namespace

// ---- 1. Each signal to the master ----

// HUP rolls the workers; USR1, CHLD and every ignored signal leave the
// master and the same workers serving; TERM then stops it gracefully (a
// request in flight is answered), exit 0.
BOOST_AUTO_TEST_CASE(every_signal_but_the_stops_leaves_the_master_serving) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  std::vector<pid_t> workers = ready_pids(server.ready_snapshot());
  BOOST_TEST_REQUIRE(workers.size() == 2u);

  auto check_serving = [&](const std::string& after) {
    BOOST_TEST_CONTEXT("after " << after) {
      BOOST_TEST_REQUIRE(process_alive(server.pid()), "the master died");
      const auto now = server.snapshot();
      BOOST_TEST_REQUIRE(ready_pids(now) == workers, boost::test_tools::per_element());
      BOOST_TEST_REQUIRE(live_slots(now) == workers.size());
      for (pid_t worker : workers) BOOST_TEST_REQUIRE(process_alive(worker));
      BOOST_TEST_REQUIRE(ask(server, "still") == "STILL");
    }
  };

  // HUP: a reload replaces every worker by a new one, ready before the old
  // one stops.
  server.process().signal(SIGHUP);
  const std::vector<pid_t> old = workers;
  auto rolled = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const auto ready = ready_pids(s);
    return ready.size() == 2u && live_slots(s) == 2u && !contains(ready, old[0]) &&
           !contains(ready, old[1]);
  });
  BOOST_TEST_REQUIRE(rolled.has_value(), "the workers were not replaced after SIGHUP");
  BOOST_TEST(logged_when(server, "reload done", 1));
  for (pid_t worker : old)
    BOOST_TEST(wait_exited(worker, state_timeout), "worker " << worker << " outlived the reload");
  BOOST_TEST(rolled->exits_crashed + rolled->exits_signaled == 0u);
  workers = ready_pids(*rolled);
  check_serving("SIGHUP");

  // USR1 reopens the log (stderr here: the master says so).
  const std::string reopening = "master: reopening log files";
  const std::size_t reopened = logged(server, reopening);
  server.process().signal(SIGUSR1);
  BOOST_TEST_REQUIRE(logged_when(server, reopening, reopened + 1), "no reopen after SIGUSR1");
  check_serving("SIGUSR1");

  // CHLD only wakes the loop, and PIPE is ignored outright (SIG_IGN: a
  // master logging each EPIPE on its log's own broken pipe would loop):
  // neither says anything. A logged signal sent after each tells when the
  // master has taken it (pending signals are delivered in order).
  for (int silent : {SIGCHLD, SIGPIPE}) {
    const std::string marker = "master: " + signal_name(SIGWINCH) + ": ignored";
    const std::size_t before = logged(server, marker);
    server.process().signal(silent);
    server.process().signal(SIGWINCH);
    BOOST_TEST_REQUIRE(logged_when(server, marker, before + 1), "no `" << marker << "`");
    BOOST_TEST(logged(server, "master: " + signal_name(silent)) == 0u);
    check_serving(signal_name(silent));
  }

  // The rest: one log line each, and nothing else. A signal the master did
  // not catch would kill it (every one of these terminates by default,
  // except WINCH, URG and CHLD), before or after its log line.
  for (int number : ignored_signals()) {
    const std::string line = "master: " + signal_name(number) + ": ignored";
    const std::size_t before = logged(server, line);
    server.process().signal(number);
    BOOST_TEST_REQUIRE(logged_when(server, line, before + 1),
                       "no `" << line << "` (signal " << number << ")");
    check_serving(signal_name(number));
  }

  // TERM: a graceful stop; the request in flight is finished.
  auto in_flight = connection_with_half_a_frame(server);
  server.process().signal(SIGTERM);
  BOOST_TEST(logged_when(server, "master: stopping (SIGTERM)", 1));
  in_flight.send_all("world");
  BOOST_TEST(in_flight.recv_frame() == "HELLOWORLD");
  BOOST_TEST(status_or_running(server.process().wait_exit(state_timeout)) == 0);
  for (pid_t worker : workers)
    BOOST_TEST(wait_exited(worker, state_timeout), "worker " << worker << " outlived its master");
  BOOST_TEST(!shm_exists(server.stats_name()), "segment left behind");
}

// USR1 to the master alone (logrotate's postrotate: `kill -USR1 MASTER`)
// reopens the --log-file in the master and in every worker: after the file
// was moved away, each says so in a new file at the same path.
BOOST_AUTO_TEST_CASE(usr1_to_the_master_reopens_the_log_file_in_the_workers_too) {
  TempDir dir;
  const std::string log = dir.file("server.log");
  UpperServer server({"--framed", "127.0.0.1:0", "--log-file", log});
  const std::vector<pid_t> workers = ready_pids(server.ready_snapshot());
  BOOST_TEST_REQUIRE(workers.size() == 2u);
  BOOST_TEST_REQUIRE(std::rename(log.c_str(), dir.file("server.log.1").c_str()) == 0);

  server.process().signal(SIGUSR1);
  auto reopened_in = [&](const std::string& role) {
    return file_text(log).find(role + ": reopened the log file " + log) != std::string::npos;
  };
  BOOST_TEST(wait_until([&] { return reopened_in("master"); }, state_timeout), file_text(log));
  for (unsigned slot = 0; slot < workers.size(); ++slot) {
    std::string role = "worker ";
    role += std::to_string(slot);
    role += " gen 1";
    BOOST_TEST(wait_until([&] { return reopened_in(role); }, state_timeout),
               role << " did not reopen: " << file_text(log));
  }
  BOOST_TEST(ready_pids(server.snapshot()) == workers, boost::test_tools::per_element());
  BOOST_TEST(ask(server, "rotated") == "ROTATED");
}

// INT and QUIT: a fast stop, exit 0; a request in flight is not waited for
// (a graceful stop would wait up to --graceful-timeout, 60 s, for it).
BOOST_AUTO_TEST_CASE(sigint_and_sigquit_stop_the_master_fast) {
  for (int number : {SIGINT, SIGQUIT}) {
    BOOST_TEST_CONTEXT(signal_name(number)) {
      UpperServer server({"--framed", "127.0.0.1:0", "--graceful-timeout", "60"});
      const std::vector<pid_t> workers = ready_pids(server.ready_snapshot());
      auto in_flight = connection_with_half_a_frame(server);

      server.process().signal(number);
      BOOST_TEST(status_or_running(server.process().wait_exit(state_timeout)) == 0,
                 "the master waited for the request in flight");
      std::string stopping = "master: stopping fast (SIG";
      stopping += number == SIGINT ? "INT)" : "QUIT)";
      BOOST_TEST(logged(server, stopping) == 1u);
      try {
        in_flight.send_all("world");
      } catch (const std::exception&) {
        // already reset
      }
      const Transcript rest = in_flight.read_to_end();
      BOOST_TEST(rest.bytes.empty(), "answered after a fast stop: " << rest.bytes);
      BOOST_TEST(rest.end != End::still_open);
      for (pid_t worker : workers)
        BOOST_TEST(wait_exited(worker, state_timeout), "worker " << worker << " outlived it");
      BOOST_TEST(!shm_exists(server.stats_name()), "segment left behind");
    }
  }
}

// ---- 2. SIGTTIN, SIGTTOU ----

BOOST_AUTO_TEST_CASE(ttin_adds_a_worker_and_ttou_removes_one) {
  UpperServer server({"--framed", "127.0.0.1:0", "--max-workers", "3"});
  const std::vector<pid_t> first = ready_pids(server.ready_snapshot());
  BOOST_TEST_REQUIRE(first.size() == 2u);

  // TTIN: one more ready worker, beside the two.
  server.process().signal(SIGTTIN);
  auto grown = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const auto ready = ready_pids(s);
    return ready.size() == 3u && contains(ready, first[0]) && contains(ready, first[1]);
  });
  BOOST_TEST_REQUIRE(grown.has_value(), "no third ready worker after SIGTTIN");
  const std::vector<pid_t> three = ready_pids(*grown);
  BOOST_TEST(ask(server, "three") == "THREE");

  // Not past --max-workers.
  server.process().signal(SIGTTIN);
  BOOST_TEST(logged_when(server, "already 3 workers, the most --max-workers allows", 1));
  BOOST_TEST(logged(server, "one worker more") == 1u);

  // TTOU, twice: a worker stops each time, the others serve on.
  std::vector<pid_t> pool = three;
  for (std::size_t size : {2u, 1u}) {
    BOOST_TEST_CONTEXT("down to " << size) {
      server.process().signal(SIGTTOU);
      auto shrunk = server.when([&](const prefork::ScoreboardSnapshot& s) {
        return live_slots(s) == size && ready_pids(s).size() == size;
      });
      BOOST_TEST_REQUIRE(shrunk.has_value(), "the pool did not shrink after SIGTTOU");
      const std::vector<pid_t> now = ready_pids(*shrunk);
      for (pid_t pid : now) BOOST_TEST(contains(pool, pid), "a new worker " << pid);
      for (pid_t pid : pool)
        if (!contains(now, pid))
          BOOST_TEST(wait_exited(pid, state_timeout), "removed worker " << pid << " still runs");
      BOOST_TEST(shrunk->exits_crashed + shrunk->exits_signaled == 0u);
      BOOST_TEST(ask(server, "less") == "LESS");
      pool = now;
    }
  }

  // Not below one: refused, logged, the last worker serves on.
  server.process().signal(SIGTTOU);
  BOOST_TEST(logged_when(server, "one worker left: not removing it", 1));
  BOOST_TEST(logged(server, "one worker less") == 2u);
  BOOST_TEST(ask(server, "last") == "LAST");
  const auto last = server.snapshot();
  BOOST_TEST(ready_pids(last) == pool, boost::test_tools::per_element());
  BOOST_TEST(live_slots(last) == 1u);
}

// With --accept reuseport each worker owns its sockets: the pool's size
// cannot change, and the master says so.
BOOST_AUTO_TEST_CASE(ttin_and_ttou_are_refused_with_reuseport) {
  UpperServer server({"--framed", "127.0.0.1:0", "--accept", "reuseport"});
  const std::vector<pid_t> workers = ready_pids(server.ready_snapshot());
  BOOST_TEST_REQUIRE(workers.size() == 2u);
  const std::string refused = "the pool cannot change size with --accept reuseport";
  server.process().signal(SIGTTIN);
  BOOST_TEST(logged_when(server, refused, 1));
  server.process().signal(SIGTTOU);
  BOOST_TEST(logged_when(server, refused, 2));
  BOOST_TEST(logged(server, "one worker more") == 0u);
  BOOST_TEST(logged(server, "one worker less") == 0u);
  BOOST_TEST(ask(server, "same") == "SAME");
  const auto now = server.snapshot();
  BOOST_TEST(ready_pids(now) == workers, boost::test_tools::per_element());
  BOOST_TEST(live_slots(now) == 2u);
}

// ---- 3. --max-requests ----

// The worker that served its --max-requests is replaced by one started and
// ready first: at every look at the scoreboard while the load runs, a
// worker is ready, and no request fails.
//
// The server is upper_server's handler in tests/support/slow_start_server,
// whose workers take 300 ms to become ready: a master that stopped the old
// worker before its replacement was ready would leave no ready worker for
// that long, which the watch cannot miss (a forked upper_server worker is
// ready in well under a millisecond: such a gap could slip between two
// looks). The load is UDP: a datagram waits in the shared socket for
// whichever worker reads next, whereas a TCP connection that the old
// worker accepted just before its SIGTERM, its request not arrived yet, is
// closed unanswered by design (a graceful stop closes idle connections),
// which would make the count depend on timing.
BOOST_AUTO_TEST_CASE(max_requests_recycles_the_worker_without_a_dip_in_capacity) {
  constexpr unsigned max_requests = 20;
  UpperServer::Options options;
  options.workers = 1;
  options.program = "slow_start_server";
  const auto starting = Clock::now();
  UpperServer server({"--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--max-requests",
                      std::to_string(max_requests), "--setup-delay-ms", "300"},
                     options);
  // The delay is there, in both start modes (a spawned worker hears the
  // program's own options too).
  const bool delayed = Clock::now() - starting >= 300ms;
  BOOST_TEST_REQUIRE(delayed, "the worker was ready before its setup() had slept");
  const pid_t first = server.ready_snapshot().slots.at(0).pid;
  BOOST_TEST_REQUIRE(server.ready_snapshot().exits_recycled == 0u);

  CapacityWatch watch(server.stats_name());
  auto udp = UdpClient::connect(server.endpoint("udp"));
  unsigned sent = 0, failed = 0, after_recycle = 0;
  const auto deadline = Clock::now() + 2 * state_timeout;
  // Until the old worker has gone and the new one has served a while.
  while (after_recycle < 20 && Clock::now() < deadline) {
    try {
      if (udp.request("load") != "LOAD") ++failed;
    } catch (const std::exception&) {
      ++failed;
    }
    ++sent;
    if (watch.recycled() > 0) ++after_recycle;
  }
  watch.stop();
  BOOST_TEST_MESSAGE(sent << " requests, " << watch.observations << " looks at the scoreboard");
  BOOST_TEST(watch.error.empty(), watch.error);
  BOOST_TEST_REQUIRE(sent > max_requests);
  BOOST_TEST(failed == 0u);
  BOOST_TEST(watch.observations > 0u);
  BOOST_TEST(watch.without_ready == 0u, "no ready worker at some point:\n" << watch.first_dip);
  BOOST_TEST(watch.pids_seen.size() >= 2u);

  auto replaced = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const auto ready = ready_pids(s);
    return s.exits_recycled >= 1 && !ready.empty() && !contains(ready, first);
  });
  BOOST_TEST_REQUIRE(replaced.has_value(), "worker " << first << " was not replaced");
  BOOST_TEST(wait_exited(first, state_timeout), "the recycled worker " << first << " still runs");
  // A graceful exit (status 0), counted as recycled; nothing else.
  BOOST_TEST(replaced->exits_crashed == 0u);
  BOOST_TEST(replaced->exits_signaled == 0u);
  BOOST_TEST(replaced->exits_timed_out == 0u);
  BOOST_TEST(replaced->start_failures == 0u);
  BOOST_TEST(ask(server, "after") == "AFTER");
}

// ---- 4. /health and --drain-delay ----

BOOST_AUTO_TEST_CASE(health_answers_503_while_draining_and_the_listeners_still_serve) {
  constexpr Milliseconds drain_delay = 3'000ms;
  UpperServer server({"--framed", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--drain-delay",
                      std::to_string(drain_delay.count() / 1000)});
  const Endpoint metrics = metrics_endpoint(server, 1);
  const std::string serving = http_get(metrics, "/health");
  BOOST_TEST(serving.rfind("HTTP/1.1 200", 0) == 0u, serving);
  BOOST_TEST(serving.find("serving") != std::string::npos, serving);

  const auto sent = Clock::now();
  server.process().signal(SIGTERM);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return http_status(metrics, "/health") == 503; }, state_timeout, 20ms),
      "/health never answered 503 after SIGTERM");
  // Draining, not stopped: the listeners accept and the workers answer.
  BOOST_TEST(ask(server, "drained") == "DRAINED");
  BOOST_TEST(ready_pids(server.snapshot()).size() == 2u);
  BOOST_TEST(http_get(metrics, "/health").find("draining") != std::string::npos);

  const auto status = server.process().wait_exit(state_timeout + drain_delay);
  const auto elapsed = std::chrono::duration_cast<Milliseconds>(Clock::now() - sent);
  BOOST_TEST(status_or_running(status) == 0);
  BOOST_TEST_MESSAGE("exit " << elapsed.count() << " ms after SIGTERM");
  // Not before the delay: the master counts it from when it took the signal.
  BOOST_TEST(elapsed.count() >= drain_delay.count());
  BOOST_TEST(!shm_exists(server.stats_name()), "segment left behind");
}

// ---- 5. --start-timeout ----

// The first worker hangs before it is ready (its program sleeps instead):
// the master kills it after --start-timeout, counts a failed start and
// starts another, the real worker, which serves; that one, ready, is never
// held to the start timeout.
BOOST_AUTO_TEST_CASE(a_worker_not_ready_in_time_is_killed_and_replaced,
                     *utf::precondition(only_in_spawn_mode)) {
  constexpr Milliseconds start_limit = 2'000ms;
  TempDir dir;
  std::string text = "if mkdir '";
  text += dir.file("hung");
  text += "' 2>/dev/null; then\n  echo $$ > '";
  text += dir.file("sleepers");
  text += "'\n  exec sleep 300 >/dev/null 2>&1\nfi\nexec '";
  text += bin_path("prefork-worker");
  text += "' \"$@\"\n";
  const std::string worker = dir.script("worker", text);
  SleepersGuard guard{dir.file("sleepers")};

  UpperServer::Options options;
  options.workers = 1;
  options.wait_for_workers = false;
  UpperServer server({"--framed", "127.0.0.1:0", "--worker-exe", worker, "--start-timeout",
                      std::to_string(start_limit.count() / 1000), "--max-start-failures", "100"},
                     options);

  BOOST_TEST_REQUIRE(logged_when(server, "(--start-timeout): killing it", 1, start_timeout),
                     "the hanging worker was not killed");
  const std::vector<pid_t> hung = pids_in(dir.file("sleepers"));
  BOOST_TEST_REQUIRE(hung.size() == 1u);
  BOOST_TEST(wait_exited(hung[0], state_timeout), "the hanging worker " << hung[0] << " runs on");

  auto serving = server.when(
      [&](const prefork::ScoreboardSnapshot& s) {
        return s.start_failures >= 1 && ready_pids(s).size() == 1u;
      },
      start_timeout);
  BOOST_TEST_REQUIRE(serving.has_value(), "no worker ready after the failed start");
  BOOST_TEST(serving->start_failures == 1u);
  BOOST_TEST(logged_when(server, "before it was ready; starting another in", 1));
  BOOST_TEST(logged(server, "before it was ready; starting another in") == 1u);
  const pid_t ready = ready_pids(*serving).at(0);
  BOOST_TEST(ready != hung[0]);
  BOOST_TEST(ask(server, "echo") == "echo");  // prefork-worker's default handler

  // Ready, it stays: well past its start plus --start-timeout, the same
  // worker serves and nothing more failed.
  const auto started = Clock::now();
  while (Clock::now() - started < start_limit + 1'000ms) {
    const auto now = server.snapshot();
    BOOST_TEST_REQUIRE(ready_pids(now) == std::vector<pid_t>{ready},
                       boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(now.start_failures == 1u);
    std::this_thread::sleep_for(100ms);
  }
  BOOST_TEST(logged_when(server, "(--start-timeout): killing it", 1));
  BOOST_TEST(logged(server, "(--start-timeout): killing it") == 1u);
  BOOST_TEST(ask(server, "still") == "still");
}

// A worker asleep in accept() says it is waiting, which is healthy; one
// stopped there (SIGSTOP) makes no progress: aborted after --timeout and
// replaced (cause timeout), like any silent worker.
BOOST_AUTO_TEST_CASE(a_worker_stopped_while_asleep_in_accept_is_aborted_and_replaced) {
  UpperServer::Options options;
  options.workers = 1;
  UpperServer server({"--framed", "127.0.0.1:0", "--model", "prefork", "--timeout", "1"}, options);
  const pid_t worker = ready_pids(server.ready_snapshot()).at(0);
  BOOST_TEST_REQUIRE(
      server.when([](const prefork::ScoreboardSnapshot& s) { return s.slots.at(0).waiting > 0; })
          .has_value(),
      "the worker never said it was waiting in accept()");
  BOOST_TEST_REQUIRE(::kill(worker, SIGSTOP) == 0);
  auto replaced = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const auto ready = ready_pids(s);
    return s.exits_timed_out == 1 && ready.size() == 1u && ready[0] != worker;
  });
  BOOST_TEST_REQUIRE(replaced.has_value(), "the stopped worker " << worker << " was left alone");
  BOOST_TEST(wait_exited(worker, state_timeout));
  BOOST_TEST(replaced->exits_crashed + replaced->exits_signaled == 0u);
  BOOST_TEST(ask(server, "again") == "AGAIN");
}

// ---- 6. A worker's own children die with it ----

// A spawned worker's program starts a child (a `sleep`) before it becomes
// the real worker. Killed with -9, the worker is reaped and its process
// group killed, the child with it; at a stop (TERM), the same.
BOOST_AUTO_TEST_CASE(a_spawned_workers_child_is_killed_with_it,
                     *utf::precondition(only_in_spawn_mode)) {
  TempDir dir;
  // Its standard streams and the listener (descriptor 3) closed: the child
  // holds nothing of the master's.
  std::string text = "sleep 300 </dev/null >/dev/null 2>&1 3>&- &\necho $! >> '";
  text += dir.file("sleepers");
  text += "'\nexec '";
  text += bin_path("prefork-worker");
  text += "' \"$@\"\n";
  const std::string worker = dir.script("worker", text);
  SleepersGuard guard{dir.file("sleepers")};

  UpperServer::Options options;
  options.workers = 1;
  UpperServer server({"--framed", "127.0.0.1:0", "--worker-exe", worker}, options);
  const pid_t first = server.ready_snapshot().slots.at(0).pid;
  std::vector<pid_t> sleepers = pids_in(dir.file("sleepers"));
  BOOST_TEST_REQUIRE(sleepers.size() == 1u);
  BOOST_TEST_REQUIRE(process_alive(sleepers[0]));
  BOOST_TEST_REQUIRE(::getpgid(sleepers[0]) == first, "the child is not in its worker's group");

  // kill -9 of the worker: the master's reap kills its group.
  BOOST_TEST_REQUIRE(::kill(first, SIGKILL) == 0);
  BOOST_TEST(wait_exited(sleepers[0], state_timeout),
             "the child " << sleepers[0] << " outlived its worker " << first);

  auto replaced = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const auto ready = ready_pids(s);
    return ready.size() == 1u && ready[0] != first;
  });
  BOOST_TEST_REQUIRE(replaced.has_value(), "the killed worker was not replaced");
  BOOST_TEST(ask(server, "again") == "again");
  sleepers = pids_in(dir.file("sleepers"));
  BOOST_TEST_REQUIRE(sleepers.size() == 2u);
  BOOST_TEST_REQUIRE(process_alive(sleepers[1]));

  // TERM: the worker stops gracefully (exit 0); its child is killed too.
  server.process().signal(SIGTERM);
  BOOST_TEST(status_or_running(server.process().wait_exit(state_timeout)) == 0);
  BOOST_TEST(wait_exited(sleepers[1], state_timeout),
             "the child " << sleepers[1] << " outlived the stop");
}

// ---- 7. --pool dynamic ----

// One connection at a time per worker (--model prefork): each connection
// held makes a worker busy. With --min-spare 1 the pool grows while no
// worker is idle, up to --max-workers; once the connections close, it
// retires idle workers down to --max-spare.
BOOST_AUTO_TEST_CASE(the_dynamic_pool_grows_with_busy_workers_and_shrinks_when_idle) {
  constexpr std::size_t max_workers = 4, max_spare = 2;
  UpperServer::Options options;
  options.workers = 1;
  UpperServer server(
      {"--framed", "127.0.0.1:0", "--model", "prefork", "--pool", "dynamic", "--min-spare", "1",
       "--max-spare", std::to_string(max_spare), "--max-workers", std::to_string(max_workers)},
      options);

  std::vector<TcpClient> held;
  for (std::size_t busy = 1; busy <= max_workers; ++busy) {
    BOOST_TEST_CONTEXT(busy << " connections held") {
      // Served at once: an idle worker was there to take it.
      held.push_back(TcpClient::connect(server.endpoint("framed")));
      BOOST_TEST_REQUIRE(held.back().request_frame("hold") == "HOLD");
      // One idle worker more, while there is room.
      const std::size_t want = std::min(busy + 1, max_workers);
      auto grown = server.when([&](const prefork::ScoreboardSnapshot& s) {
        return ready_pids(s).size() == want && live_slots(s) == want;
      });
      BOOST_TEST_REQUIRE(grown.has_value(), "the pool did not grow to " << want);
    }
  }
  // Every worker busy, the pool at --max-workers: it grows no further
  // (checked across two of the master's once-a-second looks).
  const auto full = Clock::now();
  while (Clock::now() - full < 2'500ms) {
    BOOST_TEST_REQUIRE(live_slots(server.snapshot()) <= max_workers);
    std::this_thread::sleep_for(50ms);
  }
  // (The log is read from the server's pipe by a thread: wait for the lines.)
  BOOST_TEST(logged_when(server, "fewer than --min-spare", max_workers - 1));
  BOOST_TEST(logged(server, "fewer than --min-spare") == max_workers - 1);

  // Released: four idle workers, more than --max-spare; one retires a
  // second, down to two.
  const std::vector<pid_t> busy_pool = ready_pids(server.snapshot());
  held.clear();
  auto shrunk = server.when(
      [&](const prefork::ScoreboardSnapshot& s) {
        return live_slots(s) == max_spare && ready_pids(s).size() == max_spare;
      },
      state_timeout);
  BOOST_TEST_REQUIRE(shrunk.has_value(), "the pool did not shrink to --max-spare");
  const std::vector<pid_t> kept = ready_pids(*shrunk);
  for (pid_t pid : kept) BOOST_TEST(contains(busy_pool, pid));
  for (pid_t pid : busy_pool)
    if (!contains(kept, pid)) BOOST_TEST(wait_exited(pid, state_timeout));
  BOOST_TEST(shrunk->exits_crashed + shrunk->exits_signaled == 0u);
  BOOST_TEST(logged_when(server, "more than --max-spare 2: retiring one", max_workers - max_spare));
  BOOST_TEST(logged(server, "more than --max-spare 2: retiring one") == max_workers - max_spare);
  BOOST_TEST(ask(server, "idle") == "IDLE");
}

// SIGHUP reads the --config file again: a broken one changes nothing (one
// line says why, the same workers serve on); a good one is applied by
// workers started for it, every old one replaced.
BOOST_AUTO_TEST_CASE(hup_applies_a_changed_config_file_and_refuses_a_broken_one) {
  TempDir dir;
  auto write_config = [&](const std::string& text) { return dir.write("server.toml", text); };
  const std::string config = dir.file("server.toml");
  write_config("max-message = 1000\n");
  UpperServer server({"--framed", "127.0.0.1:0", "--config", config});
  const std::vector<pid_t> before = ready_pids(server.ready_snapshot());
  const std::string big(2000, 'x');
  auto too_big = [&] {
    auto client = TcpClient::connect(server.endpoint("framed"));
    client.send_frame(big);
    return client.closed_by_peer();
  };
  BOOST_TEST(too_big(), "a 2000-byte frame was answered under max-message = 1000");

  write_config("max-message = \"lots\"\n");
  server.process().signal(SIGHUP);
  BOOST_TEST_REQUIRE(logged_when(server, "reload refused", 1), server.process().stderr_text());
  BOOST_TEST(logged(server, "reload refused") == 1u);
  BOOST_TEST(server.process().stderr_text().find("max-message") != std::string::npos);
  BOOST_TEST(ready_pids(server.snapshot()) == before);
  BOOST_TEST(ask(server, "still") == "STILL");

  // What was set up once at start is refused, not silently kept.
  write_config("max-message = 100000\nbacklog = 64\n");
  server.process().signal(SIGHUP);
  BOOST_TEST_REQUIRE(logged_when(server, "reload refused", 2), server.process().stderr_text());
  BOOST_TEST(
      logged(server, "backlog changes only with a restart (an upgrade, USR2, keeps the sockets)") ==
      1u);
  BOOST_TEST(ready_pids(server.snapshot()) == before);

  write_config("max-message = 100000\n");
  server.process().signal(SIGHUP);
  BOOST_TEST_REQUIRE(logged_when(server, "reload done", 1), server.process().stderr_text());
  auto rolled = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const std::vector<pid_t> now = ready_pids(s);
    return now.size() == before.size() &&
           std::none_of(now.begin(), now.end(), [&](pid_t pid) { return contains(before, pid); });
  });
  BOOST_TEST(rolled.has_value(), "not every worker was replaced");
  BOOST_TEST(ask(server, big) == std::string(2000, 'X'));
}

// A reload whose first new worker fails to start (here: it misses
// --start-timeout) is rolled back, and the roll ends there: the same workers
// serve, the log says so, and the next reload is taken.
BOOST_AUTO_TEST_CASE(a_reload_whose_worker_fails_to_start_is_rolled_back_and_over) {
  TempDir dir;
  const std::string config = dir.file("server.toml");
  // 3 s: also what the good workers must meet, under ASan on a loaded machine.
  dir.write("server.toml", "start-timeout = 3\n");
  UpperServer::Options options;
  options.program = "slow_start_server";
  UpperServer server({"--framed", "127.0.0.1:0", "--config", config}, options);
  const std::vector<pid_t> before = ready_pids(server.ready_snapshot());

  dir.write("server.toml", "start-timeout = 3\nsetup-delay-ms = 10000\n");
  server.process().signal(SIGHUP);
  BOOST_TEST_REQUIRE(logged_when(server, "the new configuration does not start", 1),
                     server.process().stderr_text());
  BOOST_TEST(logged_when(server, "reload rolled back: 2 workers run configuration #1", 1),
             server.process().stderr_text());
  BOOST_TEST(ready_pids(server.snapshot()) == before, boost::test_tools::per_element());
  BOOST_TEST(ask(server, "kept") == "KEPT");

  // The key removed: the program's own option goes back to its initial 0.
  dir.write("server.toml", "start-timeout = 3\n");
  server.process().signal(SIGHUP);
  BOOST_TEST(logged_when(server, "reload done: 2 workers run configuration #3", 1),
             server.process().stderr_text());
}
