// What a worker does with each signal (workers/src/worker_signals.hpp), in
// the model and start mode under test, sent to the worker itself (and, in
// fork-per-connection, to its connection child): USR1 reopens the log
// files; every other catchable signal that does not report a fault, except
// the stops, leaves it serving, with the same pid and the same
// connections; INT and QUIT stop it at once, without waiting for a request
// in flight (half received, or held by the handler), and the master
// replaces it. Run with tests/support/protocol_server's sessions.
#define BOOST_TEST_MODULE integration_worker_signals
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <signal.h>

#include <cstring>
#include <stdexcept>

using namespace prefork::test;

namespace {

// Generous: reached only when the server misbehaves, never on a slow machine.
constexpr Milliseconds io_timeout = 30'000ms;

// Longer than any wait below: a worker that waited for its requests in
// flight, as a graceful stop does, could not pass.
const std::string graceful_timeout_seconds = "300";

UpperServer start() {
  UpperServer::Options options;
  options.program = "protocol_server";
  options.workers = 1;
  return UpperServer({"--tcp", "127.0.0.1:0", "--graceful-timeout", graceful_timeout_seconds},
                     options);
}

// Whether a handler that never returns blocks only its own thread or
// process, not the worker's loop (the event model and the one-thread
// blocking ones call the handler in the loop's thread).
bool handler_runs_beside_the_loop() {
  using prefork::Model;
  const Model model = model_under_test();
  return model == Model::fork_per_connection || model == Model::thread_per_connection ||
         model == Model::prethreaded || model == Model::hybrid;
}

// Every catchable signal that is neither a stop nor USR1 nor a fault.
std::vector<int> signals_without_meaning() {
  std::vector<int> numbers = {SIGHUP,  SIGUSR2, SIGWINCH,  SIGALRM, SIGTSTP, SIGTTIN,
                              SIGTTOU, SIGURG,  SIGVTALRM, SIGPROF, SIGIO,   SIGPWR,
                              SIGXCPU, SIGXFSZ, SIGSTKFLT, SIGPIPE, SIGCHLD, SIGCONT};
  for (int number = SIGRTMIN; number <= SIGRTMAX; ++number) numbers.push_back(number);
  return numbers;
}

// The lines of `pid` in `log` that say it reopened its log files.
std::size_t reopened(const std::string& log, pid_t pid) {
  const std::string prefix = "prefork[" + std::to_string(pid) + "]";
  std::size_t count = 0;
  std::size_t at = 0;
  while ((at = log.find("reopening log files", at)) != std::string::npos) {
    const std::size_t line = log.rfind('\n', at);
    const std::size_t start = line == std::string::npos ? 0 : line + 1;
    // The line's prefix: "[time level ]prefork[PID] worker ...".
    const std::size_t own = log.find(prefix, start);
    if (own != std::string::npos && own < at) ++count;
    at += 1;
  }
  return count;
}

// A session that has been greeted and has had one round trip.
TcpClient greeted(UpperServer& server) {
  auto client = TcpClient::connect(server.endpoint("tcp"), io_timeout);
  BOOST_TEST_REQUIRE(client.recv_line() == "HELLO");
  client.send_all("ECHO ready\n");
  BOOST_TEST_REQUIRE(client.recv_line() == "ready");
  return client;
}

// Reads to the end of the connection (EOF or a reset); throws when it is
// still open after io_timeout.
std::string rest_until_closed(TcpClient& client) {
  Transcript rest = client.read_to_end();
  if (rest.end == End::still_open)
    throw std::runtime_error("the connection is still open after " +
                             std::to_string(io_timeout.count()) + " ms");
  return rest.bytes;
}

prefork::SlotSnapshot the_worker(const prefork::ScoreboardSnapshot& snapshot) {
  BOOST_TEST_REQUIRE(snapshot.slots.size() == 1u);
  return snapshot.slots[0];
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_other_signal_leaves_the_worker_serving) {
  UpperServer server = start();
  const pid_t worker = the_worker(server.ready_snapshot()).pid;
  auto client = greeted(server);
  // fork-per-connection: the child serving this connection gets them too.
  std::vector<pid_t> targets = {worker};
  if (model_under_test() == prefork::Model::fork_per_connection) {
    const auto children = children_of(worker);
    BOOST_TEST_REQUIRE(children.size() == 1u, "the connection's child of worker " << worker);
    targets.push_back(children[0]);
  }

  // An ignored signal is dropped when sent; one whose default action kills
  // dooms the process when sent: it would die before serving again.
  for (int number : signals_without_meaning())
    for (pid_t target : targets)
      BOOST_TEST_REQUIRE(::kill(target, number) == 0, "kill " << number << " " << target);
  if (targets.size() > 1) BOOST_TEST_REQUIRE(::kill(targets[1], SIGUSR1) == 0);

  // The same connection, and a new one, still served by the same worker
  // (one after the other: iterative serves one at a time).
  client.send_all("ECHO still here\n");
  BOOST_TEST(client.recv_line() == "still here");
  for (pid_t target : targets) BOOST_TEST(process_alive(target), "pid " << target << " died");
  client.close();
  {
    auto second = greeted(server);
    const auto now = server.snapshot();
    BOOST_TEST(the_worker(now).pid == worker);
    BOOST_TEST((the_worker(now).state == prefork::WorkerState::ready));
    BOOST_TEST(now.worker_restarts == 0u);
  }
  BOOST_TEST(reopened(server.process().stderr_text(), worker) == 0u);

  // USR1 reopens the log files, in the worker's loop. One asleep in
  // accept() itself may take it just before it gets there: then it
  // reopens when it wakes, before serving; a connection wakes it.
  BOOST_TEST_REQUIRE(::kill(worker, SIGUSR1) == 0);
  greeted(server);
  BOOST_TEST(wait_until([&] { return reopened(server.process().stderr_text(), worker) >= 1; },
                        state_timeout),
             "USR1 did not reopen the log files");
  greeted(server);
  BOOST_TEST(reopened(server.process().stderr_text(), worker) == 1u);
  BOOST_TEST(server.snapshot().worker_restarts == 0u);
}

BOOST_AUTO_TEST_CASE(sigint_and_sigquit_stop_the_worker_without_waiting_for_requests_in_flight) {
  UpperServer server = start();
  for (int number : {SIGINT, SIGQUIT}) {
    BOOST_TEST_CONTEXT(::strsignal(number)) {
      const auto before = server.when(all_workers_ready);
      BOOST_TEST_REQUIRE(before.has_value());
      const pid_t worker = the_worker(*before).pid;

      // Half a request: the worker has read "ECHO hal" of "ECHO half\n".
      auto half = greeted(server);
      const std::uint64_t read_so_far = server.snapshot().totals.bytes_in;
      half.send_all("ECHO hal");
      BOOST_TEST_REQUIRE(server
                             .when([&](const prefork::ScoreboardSnapshot& s) {
                               return s.totals.bytes_in >= read_so_far + 8;
                             })
                             .has_value());
      // And, where it holds only its own thread or process, a request the
      // handler never returns from.
      std::optional<TcpClient> held;
      if (handler_runs_beside_the_loop()) {
        held.emplace(greeted(server));
        const std::uint64_t requests = server.snapshot().totals.requests;
        held->send_all("HOLD\n");
        BOOST_TEST_REQUIRE(server
                               .when([&](const prefork::ScoreboardSnapshot& s) {
                                 return s.totals.requests >= requests + 1;
                               })
                               .has_value());
      }

      BOOST_TEST_REQUIRE(::kill(worker, number) == 0);
      BOOST_TEST_REQUIRE(wait_exited(worker, state_timeout),
                         "worker " << worker << " still runs: it waits for the requests in flight");
      // Too late now: a graceful stop would have answered "half".
      try {
        half.send_all("f\n");
      } catch (const std::exception&) {
        // the connection is already reset
      }
      const std::string after = rest_until_closed(half);
      BOOST_TEST(after.find("half") == std::string::npos, "answered after the stop: " << after);
      if (held) BOOST_TEST(rest_until_closed(*held).empty());

      // Exit status 0 (the master counts it as recycled), and replaced.
      const auto replaced = server.when([&](const prefork::ScoreboardSnapshot& s) {
        return all_workers_ready(s) && s.slots[0].pid != worker &&
               s.exits_recycled + s.exits_crashed + s.exits_signaled >
                   before->exits_recycled + before->exits_crashed + before->exits_signaled;
      });
      BOOST_TEST_REQUIRE(replaced.has_value(), "the master did not replace worker " << worker);
      BOOST_TEST(replaced->exits_recycled == before->exits_recycled + 1);
      BOOST_TEST(replaced->exits_crashed == before->exits_crashed);
      BOOST_TEST(replaced->exits_signaled == before->exits_signaled);
      auto client = greeted(server);
      client.send_all("ECHO again\n");
      BOOST_TEST(client.recv_line() == "again");
    }
  }
}
