// The master's supervision, seen from outside: a killed worker is replaced,
// workers die with their master, spawn mode starts new program images, and a
// worker program that cannot start makes the master give up.
#define BOOST_TEST_MODULE integration_supervision
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <signal.h>

#include <algorithm>

using namespace prefork::test;
namespace utf = boost::unit_test;

namespace {

void send_requests(UpperServer& server, int count) {
  // A new connection each time, so no connection is left on a worker that
  // the test is about to kill.
  for (int i = 0; i < count; ++i) {
    auto client = TcpClient::connect(server.endpoint("framed"));
    BOOST_TEST(client.request_frame("ping") == "PING");
  }
}

// The value of NAME in "NAME=value" entries; nullopt when absent.
std::optional<std::string> value_of(const std::vector<std::string>& environment,
                                    const std::string& name) {
  for (const auto& entry : environment)
    if (entry.starts_with(name + "=")) return entry.substr(name.size() + 1);
  return std::nullopt;
}

}  // namespace

// A blocking worker busy with one connection for longer than --timeout,
// each request well within it, makes progress: the master leaves it alone
// (it once saw no heartbeat until the connection ended, and aborted it).
BOOST_AUTO_TEST_CASE(a_blocking_worker_busy_within_its_timeout_is_not_aborted) {
  if (!prefork::facts(model_under_test()).blocking) {
    BOOST_TEST_MESSAGE("not a blocking model: skipped");
    return;
  }
  UpperServer::Options options;
  options.workers = 1;
  options.program = "bench_server";
  // Each request sleeps 0.4 s: the worker is busy almost all the time.
  UpperServer server({"--framed", "127.0.0.1:0", "--timeout", "3", "--io-wait-us", "400000"},
                     options);
  const pid_t worker = server.snapshot().slots.at(0).pid;
  auto client = TcpClient::connect(server.endpoint("framed"));
  for (int i = 0; i < 15; ++i) BOOST_TEST_REQUIRE(!client.request_frame("x").empty());
  const prefork::ScoreboardSnapshot after = server.snapshot();
  BOOST_TEST(after.exits_timed_out == 0u);
  BOOST_TEST(after.slots.at(0).pid == worker);
}

BOOST_AUTO_TEST_CASE(killed_worker_is_replaced_and_its_counts_kept) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  send_requests(server, 5);
  BOOST_TEST_REQUIRE(server.requests_when_at_least(5) == 5u);

  const prefork::ScoreboardSnapshot before = server.snapshot();
  const prefork::SlotSnapshot victim = before.slots.at(0);
  const prefork::SlotSnapshot other = before.slots.at(1);
  BOOST_TEST_REQUIRE(::kill(victim.pid, SIGKILL) == 0);

  auto repaired = server.when([&](const prefork::ScoreboardSnapshot& s) {
    const auto& slot = s.slots.at(0);
    return slot.pid > 0 && slot.pid != victim.pid && slot.state == prefork::WorkerState::ready &&
           s.worker_restarts >= before.worker_restarts + 1;
  });
  BOOST_TEST_REQUIRE(repaired.has_value(), "slot 0 not refilled in time");
  BOOST_TEST(repaired->slots[0].generation == victim.generation + 1);
  BOOST_TEST(repaired->worker_restarts == before.worker_restarts + 1);
  BOOST_TEST(repaired->slots[1].pid == other.pid);  // the other worker was left alone
  // What the dead worker counted is folded into the totals, not lost.
  BOOST_TEST(repaired->totals.requests == 5u);

  // The master reaped it: no zombie of the master's is left with that pid.
  BOOST_TEST(
      wait_until([&] { return !is_zombie(victim.pid) || parent_of(victim.pid) != server.pid(); },
                 state_timeout));

  send_requests(server, 5);
  BOOST_TEST(server.requests_when_at_least(10) == 10u);
}

// Each worker killed in turn, the pool keeps serving: whichever worker held
// the accept lock (or had connections passed to it) was among them.
BOOST_AUTO_TEST_CASE(every_worker_killed_in_turn_the_pool_keeps_serving) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  const prefork::ScoreboardSnapshot start = server.snapshot();
  for (std::size_t slot = 0; slot < start.slots.size(); ++slot) {
    const pid_t victim = server.snapshot().slots.at(slot).pid;
    BOOST_TEST_REQUIRE(::kill(victim, SIGKILL) == 0);
    auto refilled = server.when([&](const prefork::ScoreboardSnapshot& s) {
      const auto& entry = s.slots.at(slot);
      return entry.pid > 0 && entry.pid != victim && entry.state == prefork::WorkerState::ready;
    });
    BOOST_TEST_REQUIRE(refilled.has_value(), "slot " << slot << " not refilled in time");
    send_requests(server, 4);
  }
  const std::uint64_t expected = 4 * start.slots.size();
  BOOST_TEST(server.requests_when_at_least(expected) == expected);
}

BOOST_AUTO_TEST_CASE(workers_exit_when_the_master_is_killed) {
  UpperServer server({"--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0"});
  const std::vector<pid_t> workers = worker_pids(server.ready_snapshot());
  BOOST_TEST_REQUIRE(workers.size() == 2u);

  server.process().signal(SIGKILL);
  BOOST_TEST(status_or_running(server.process().wait_exit(state_timeout)) == 128 + SIGKILL);
  // Orphans are re-parented to init; gone or a zombie both mean they stopped.
  for (pid_t worker : workers)
    BOOST_TEST(wait_exited(worker, state_timeout),
               "worker " << worker << " still runs after its master was killed");
}

BOOST_AUTO_TEST_CASE(workers_are_children_of_the_master) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  std::vector<pid_t> children = children_of(server.pid());
  std::sort(children.begin(), children.end());
  std::vector<pid_t> workers = worker_pids(server.ready_snapshot());
  std::sort(workers.begin(), workers.end());
  BOOST_TEST(children == workers, boost::test_tools::per_element());
  BOOST_TEST(server.ready_snapshot().master_pid == server.pid());
}

BOOST_AUTO_TEST_CASE(spawned_workers_are_new_images_forked_ones_are_not) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  for (pid_t worker : worker_pids(server.ready_snapshot())) {
    BOOST_TEST_CONTEXT("worker " << worker) {
      // /proc/<pid>/environ is the environment the image was exec'd with:
      // a spawned worker got its listeners as LISTEN_FDS for its own pid; a
      // forked one shares the master's image, which has no LISTEN_FDS.
      const auto environment = environment_of(worker);
      BOOST_TEST_REQUIRE(!environment.empty());
      if (spawn_mode()) {
        BOOST_TEST(value_of(environment, "LISTEN_FDS").has_value());
        // Exactly the decimal pid: sd_listen_fds() parses LISTEN_PID with
        // strtoul base 0, so a zero-padded "0000012345" reads as octal (or
        // fails at an 8 or 9) and a libsystemd worker would find no listeners.
        BOOST_TEST(value_of(environment, "LISTEN_PID").value_or("(absent)") ==
                   std::to_string(worker));
      } else {
        BOOST_TEST(!value_of(environment, "LISTEN_FDS").has_value());
        BOOST_TEST(!value_of(environment, "LISTEN_PID").has_value());
      }
      BOOST_TEST(executable_of(worker) == executable_of(server.pid()));
    }
  }
  // Either way the listeners work.
  auto client = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(client.request_frame("image") == "IMAGE");
}

BOOST_AUTO_TEST_CASE(master_gives_up_when_workers_cannot_start,
                     *utf::precondition(only_in_spawn_mode)) {
  const std::string stats = unique_stats_name();
  ShmGuard shm(stats);
  ServerProcess server(
      bin_path("upper_server"),
      {"--start", "spawn", "--stats", stats, "--workers", "2", "--allow-root", "--worker-exe",
       "/bin/false", "--framed", "127.0.0.1:0", "--log-level", "warning"});
  // /bin/false dies at once, every time: the master must stop restarting it.
  auto status = server.wait_exit(20'000ms);
  BOOST_TEST_REQUIRE(status.has_value(), "still running: " << server.describe());
  BOOST_TEST(*status == 3, server.describe());
  // Said at level error, so a log kept at warning still tells why it ended.
  const std::string log = server.stderr_text();
  BOOST_TEST(log.find(" error prefork[") != std::string::npos, "no error line: " << log);
  BOOST_TEST(log.find("none serves: giving up") != std::string::npos, "no reason given: " << log);
  BOOST_TEST(log.find(" warning prefork[") != std::string::npos, "failed starts unsaid: " << log);
  BOOST_TEST(!shm_exists(stats), "segment left behind: " << shm_path(stats));
}

// Exit status 3 from a worker means "my set-up failed": restarting it would
// fail the same way, so the master stops at once instead of backing off.
BOOST_AUTO_TEST_CASE(worker_boot_error_stops_the_master_at_once,
                     *utf::precondition(only_in_spawn_mode)) {
  const std::string stats = unique_stats_name();
  ShmGuard shm(stats);
  ServerProcess server(bin_path("upper_server"),
                       {"--start", "spawn", "--stats", stats, "--workers", "2", "--allow-root",
                        "--worker-exe", bin_path("prefork-worker"), "--framed", "127.0.0.1:0", "--",
                        "--handler", "no-such-handler"});
  auto status = server.wait_exit(20'000ms);
  BOOST_TEST_REQUIRE(status.has_value(), "still running: " << server.describe());
  BOOST_TEST(*status == 3, server.describe());
  BOOST_TEST(server.stderr_text().find("failed to boot") != std::string::npos, server.describe());
  // No backoff: the first failure was enough.
  BOOST_TEST(server.stderr_text().find("restarting it in") == std::string::npos, server.describe());
  BOOST_TEST(!shm_exists(stats), "segment left behind: " << shm_path(stats));
}

// fork-per-connection: each connection is served by a child of the worker.
BOOST_AUTO_TEST_SUITE(connection_children)

namespace {

boost::test_tools::assertion_result only_fork_per_connection(utf::test_unit_id) {
  boost::test_tools::assertion_result result(model_under_test() ==
                                             prefork::Model::fork_per_connection);
  result.message() << "only meaningful with --model fork-per-connection";
  return result;
}

// The one connection child of `worker`, serving `client` after one request.
pid_t serving_child(pid_t worker, TcpClient& client) {
  BOOST_TEST_REQUIRE(client.request_frame("hold") == "HOLD");
  const std::vector<pid_t> children = children_of(worker);
  BOOST_TEST_REQUIRE(children.size() == 1u, "children of worker " << worker);
  return children.front();
}

// A connection child left behind by a failed test: orphaned to this test (a
// child subreaper), it is killed and reaped here, by its pid.
struct Orphan {
  pid_t pid;
  ~Orphan() {
    if (parent_of(pid) == ::getpid() && process_alive(pid)) ::kill(pid, SIGKILL);
    wait_exited(pid, 2'000ms);
  }
};

std::string states_of_children(pid_t worker) {
  std::string text;
  for (pid_t child : children_of(worker)) {
    // Appended piece by piece: GCC 12 warns wrongly (-Wrestrict) on " " + string.
    text += ' ';
    text += std::to_string(child);
    text += is_zombie(child) ? " (zombie)" : " (running)";
  }
  return text;
}

}  // namespace

// A killed worker takes its connections with it, as a thread model's do: the
// child must not go on holding the client (and the UDP listeners) open.
BOOST_AUTO_TEST_CASE(children_die_with_their_worker, *utf::precondition(only_fork_per_connection)) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  const pid_t worker = server.ready_snapshot().slots.at(0).pid;
  auto client = TcpClient::connect(server.endpoint("framed"));
  Orphan child{serving_child(worker, client)};

  BOOST_TEST_REQUIRE(::kill(worker, SIGKILL) == 0);
  BOOST_TEST(wait_exited(child.pid, state_timeout),
             "connection child " << child.pid << " outlived its worker " << worker);
  BOOST_TEST(client.closed_by_peer(state_timeout), "the client's connection is still open");
}

// A child that has served its client is reaped when it ends, not when the
// next connection comes (none comes here).
BOOST_AUTO_TEST_CASE(finished_children_are_reaped_without_a_new_connection,
                     *utf::precondition(only_fork_per_connection)) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  const pid_t worker = server.ready_snapshot().slots.at(0).pid;
  {
    auto client = TcpClient::connect(server.endpoint("framed"));
    serving_child(worker, client);
  }  // the client leaves: its child serves to the end and exits
  BOOST_TEST(wait_until([&] { return children_of(worker).empty(); }, state_timeout),
             "children of worker " << worker << " left:" << states_of_children(worker));
}

// A child killed while it waits on its client (the OOM killer, an operator)
// must not leave its worker marked waiting: the heartbeat (--timeout) would
// exempt that worker for good.
BOOST_AUTO_TEST_CASE(a_child_killed_while_waiting_leaves_its_worker_watched,
                     *utf::precondition(only_fork_per_connection)) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  const pid_t worker = server.ready_snapshot().slots.at(0).pid;
  auto client = TcpClient::connect(server.endpoint("framed"));
  Orphan child{serving_child(worker, client)};  // now waiting for the next request
  BOOST_TEST_REQUIRE(::kill(child.pid, SIGKILL) == 0);
  BOOST_TEST_REQUIRE(wait_exited(child.pid, state_timeout));
  // Only the worker itself, asleep in accept(), waits.
  BOOST_TEST(
      server.when([](const prefork::ScoreboardSnapshot& s) { return s.slots.at(0).waiting == 1; })
          .has_value(),
      describe(server.snapshot()));
}

BOOST_AUTO_TEST_SUITE_END()
