// Graceful stop: SIGTERM lets in-flight requests finish, then the master
// exits 0 leaving no process and no segment; --graceful-timeout bounds the
// wait for a client that never finishes its request.
#define BOOST_TEST_MODULE integration_shutdown
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/frame_codec.hpp>

#include <signal.h>

#include <cstring>

using namespace prefork::test;
using prefork::frame_header_size;

namespace {

// A connection whose worker has read half a frame: the header announcing 10
// bytes and 5 of them.
TcpClient connection_with_half_a_frame(UpperServer& server) {
  auto client = TcpClient::connect(server.endpoint("framed"));
  // A full round trip first: the connection has been accepted by a worker.
  BOOST_TEST_REQUIRE(client.request_frame("warm") == "WARM");
  const std::uint64_t half_read = server.snapshot().totals.bytes_in + frame_header_size + 5;
  char header[frame_header_size];
  prefork::write_frame_header(10, header);
  client.send_all(std::string(header, sizeof header) + "hello");
  // Workers count bytes_in as they read, so this says the half frame is in
  // the worker, not just in a socket buffer.
  auto in_worker = [&](const prefork::ScoreboardSnapshot& s) {
    return s.totals.bytes_in >= half_read;
  };
  BOOST_TEST_REQUIRE(server.when(in_worker).has_value());
  return client;
}

// Every worker has taken the stop: it drains, or (nothing in flight) it has
// already exited and its slot is empty.
bool all_stopping(const prefork::ScoreboardSnapshot& s) {
  for (const auto& slot : s.slots)
    if (slot.state != prefork::WorkerState::stopping && slot.state != prefork::WorkerState::empty)
      return false;
  return !s.slots.empty();
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigterm_lets_the_request_in_flight_finish) {
  UpperServer server({"--framed", "127.0.0.1:0", "--graceful-timeout", "10"});
  const std::vector<pid_t> workers = worker_pids(server.ready_snapshot());
  auto client = connection_with_half_a_frame(server);

  server.process().signal(SIGTERM);
  // The stop is under way before the rest of the frame is sent.
  BOOST_TEST_REQUIRE(server.when(all_stopping).has_value(), "workers never reported stopping");
  client.send_all("world");
  BOOST_TEST(client.recv_frame() == "HELLOWORLD");
  BOOST_TEST(client.closed_by_peer(), "connection left open after its last request");

  BOOST_TEST(status_or_running(server.process().wait_exit(state_timeout)) == 0);
  for (pid_t worker : workers)
    BOOST_TEST(wait_exited(worker, state_timeout), "worker " << worker << " outlived its master");
  BOOST_TEST(!shm_exists(server.stats_name()), "segment left behind");
}

BOOST_AUTO_TEST_CASE(sigterm_or_sigint_on_an_idle_server_exits_promptly) {
  for (int sig : {SIGTERM, SIGINT}) {
    BOOST_TEST_CONTEXT(::strsignal(sig)) {
      UpperServer server({"--tcp", "127.0.0.1:0", "--udp", "[::1]:0"});
      const std::vector<pid_t> workers = worker_pids(server.ready_snapshot());
      server.process().signal(sig);
      BOOST_TEST(status_or_running(server.process().wait_exit(5'000ms)) == 0);
      for (pid_t worker : workers) BOOST_TEST(wait_exited(worker, 5'000ms));
      BOOST_TEST(!shm_exists(server.stats_name()));
    }
  }
}

BOOST_AUTO_TEST_CASE(graceful_timeout_bounds_the_wait_for_a_stuck_client) {
  UpperServer server({"--framed", "127.0.0.1:0", "--graceful-timeout", "1"});
  const std::vector<pid_t> workers = worker_pids(server.ready_snapshot());
  // The rest of this frame never comes.
  auto client = connection_with_half_a_frame(server);

  const auto start = Clock::now();
  server.process().signal(SIGTERM);
  auto status = server.process().wait_exit(6'000ms);
  const auto elapsed = std::chrono::duration_cast<Milliseconds>(Clock::now() - start);
  BOOST_TEST_REQUIRE(status.has_value(), "master still runs 6 s after SIGTERM with a 1 s timeout");
  BOOST_TEST_MESSAGE("exit status " << *status << " after " << elapsed.count() << " ms");
  // Killing the workers that outlived the timeout is still a clean stop.
  BOOST_TEST(*status == 0, server.process().describe());
  // It did wait for the request in flight, and not much longer.
  BOOST_TEST(elapsed.count() >= 900);
  BOOST_TEST(elapsed.count() <= 5'000);
  for (pid_t worker : workers)
    BOOST_TEST(wait_exited(worker, 5'000ms),
               "worker " << worker << " outlived the graceful timeout");
  BOOST_TEST(!shm_exists(server.stats_name()));
  // The stuck client is told, not left waiting.
  BOOST_TEST(client.closed_by_peer(1'000ms));
}
