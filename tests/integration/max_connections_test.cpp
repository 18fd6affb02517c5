// --max-connections against a flood of idle clients, in the model and start
// mode under test: a worker holding its cap accepts no more (the connection
// waits in the listen queue, unanswered and uncounted) until one of its
// connections closes, and the scoreboard, /stats.json and prefork-top say it
// is at its cap. The negative checks are bounded: the scoreboard's accepted
// count must stay put while a request waits a second for an answer that
// must not come (without the cap it comes in milliseconds).
#define BOOST_TEST_MODULE integration_max_connections
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/models.hpp>

#include <boost/json/src.hpp>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>

using namespace prefork::test;
namespace json = boost::json;

namespace {

constexpr Milliseconds io_timeout = 15'000ms;
// How long a request that must stay unanswered is watched.
constexpr int unanswered_ms = 1000;

UpperServer start(unsigned workers, unsigned cap) {
  UpperServer::Options options;
  options.workers = workers;
  // hybrid: more threads than the cap, so that the cap is what binds.
  std::vector<std::string> args{"--framed", "127.0.0.1:0", "--max-connections",
                                std::to_string(cap)};
  if (prefork::facts(model_under_test()).threads) {
    args.push_back("--threads");
    args.push_back("8");
  }
  return UpperServer(std::move(args), options);
}

TcpClient connect(UpperServer& server) {
  return TcpClient::connect(server.endpoint("framed"), io_timeout);
}

std::uint64_t accepted(const prefork::ScoreboardSnapshot& s) { return s.totals.connections_total; }

unsigned at_cap(const prefork::ScoreboardSnapshot& s) {
  unsigned count = 0;
  for (const auto& slot : s.slots) count += prefork::at_connection_cap(slot) ? 1 : 0;
  return count;
}

// True when nothing arrives on `client` within `ms`.
bool unanswered(TcpClient& client, int ms) {
  pollfd fd{client.fd(), POLLIN, 0};
  return ::poll(&fd, 1, ms) == 0;
}

bool one_process() { return one_process_model(); }

boost::test_tools::assertion_result only_where_the_flag_binds(boost::unit_test::test_unit_id) {
  const prefork::Model model = model_under_test();
  boost::test_tools::assertion_result result(
      prefork::connection_cap(model, prefork::Accept::shared, 1000, prefork::default_threads) ==
      1000);
  result.message() << "the model's pool holds fewer connections than the flag";
  return result;
}

boost::test_tools::assertion_result only_in_pools(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(!one_process());
  result.message() << "the model runs one worker process";
  return result;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_worker_at_its_cap_accepts_no_more_until_one_closes) {
  UpperServer server = start(1, 3);
  BOOST_TEST_REQUIRE(server.ready_snapshot().slots.size() >= 1u);
  BOOST_TEST(logged_when(server.process(), "at most 3 connections each, 3 in all"),
             server.process().stderr_text());
  BOOST_TEST(server.ready_snapshot().slots[0].connections_max == 3u);

  std::deque<TcpClient> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(connect(server));
    BOOST_TEST(held.back().request_frame("held") == "HELD");
  }
  auto full = server.when([](const prefork::ScoreboardSnapshot& s) {
    return s.slots[0].connections_active == 3 && at_cap(s) == 1;
  });
  BOOST_TEST_REQUIRE(full.has_value(), "the worker never showed 3 of 3 connections");
  BOOST_TEST(accepted(*full) == 3u);

  // The kernel completes the handshake (the backlog), the worker does not accept.
  TcpClient waiting = connect(server);
  waiting.send_frame("waiting");
  BOOST_TEST(unanswered(waiting, unanswered_ms), "the 4th connection was served over the cap");
  const auto still = server.snapshot();
  BOOST_TEST(accepted(still) == 3u);
  BOOST_TEST(still.slots[0].connections_active == 3u);

  held.pop_front();  // one closes: the waiting one is taken and answered
  BOOST_TEST(waiting.recv_frame() == "WAITING");
  auto taken = server.when([](const prefork::ScoreboardSnapshot& s) { return accepted(s) == 4; });
  BOOST_TEST_REQUIRE(taken.has_value());
  BOOST_TEST(accepted(*taken) == 4u);
  for (TcpClient& client : held) BOOST_TEST(client.request_frame("still") == "STILL");
}

// Two workers, a cap of 2 each: four idle connections fill both, a fifth
// waits, and every reader shows both at their cap.
BOOST_AUTO_TEST_CASE(every_worker_full_leaves_the_next_in_the_queue,
                     *boost::unit_test::precondition(only_in_pools)) {
  UpperServer server = start(2, 2);
  std::deque<TcpClient> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(connect(server));
    BOOST_TEST(held.back().request_frame("held") == "HELD");
  }
  auto full = server.when([](const prefork::ScoreboardSnapshot& s) { return at_cap(s) == 2; });
  BOOST_TEST_REQUIRE(full.has_value(), "the workers never both showed 2 of 2 connections");
  BOOST_TEST(accepted(*full) == 4u);

  TcpClient waiting = connect(server);
  waiting.send_frame("waiting");
  BOOST_TEST(unanswered(waiting, unanswered_ms), "the 5th connection was served over the caps");
  BOOST_TEST(accepted(server.snapshot()) == 4u);

  const Finished table = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST_REQUIRE(status_or_running(table.status) == 0, table.description);
  BOOST_TEST(table.out.find("2^") != std::string::npos, table.out);
  BOOST_TEST(table.out.find("^ at its connection cap") != std::string::npos, table.out);

  const Finished top =
      run_to_end(bin_path("prefork-top"), {"--json", "--once", server.stats_name()});
  BOOST_TEST_REQUIRE(status_or_running(top.status) == 0, top.description);
  const json::value document = json::parse(top.out);
  unsigned marked = 0;
  for (const json::value& worker : document.at("workers").as_array()) {
    const json::object& w = worker.as_object();
    if (w.at("pid").to_number<int>() == 0) continue;
    BOOST_TEST(w.at("connections_max").to_number<std::uint64_t>() == 2u);
    marked += w.at("at_connection_cap").as_bool() ? 1 : 0;
  }
  BOOST_TEST(marked == 2u);

  held.pop_back();
  BOOST_TEST(waiting.recv_frame() == "WAITING");
  auto taken = server.when([](const prefork::ScoreboardSnapshot& s) { return accepted(s) == 5; });
  BOOST_TEST_REQUIRE(taken.has_value());
}

// A worker at its cap must fit in the open-files limit: the master says so
// when it cannot, with the numbers.
BOOST_AUTO_TEST_CASE(a_cap_over_the_open_files_limit_is_warned_about,
                     *boost::unit_test::precondition(only_where_the_flag_binds)) {
  ShmGuard shm(unique_stats_name());
  std::vector<std::string> args{"--nofile=128:128", bin_path("upper_server")};
  for (std::string& arg :
       server_arguments(shm.name(), 1, {"--framed", "127.0.0.1:0", "--max-connections", "1000"}))
    args.push_back(std::move(arg));
  ServerProcess server("prlimit", args);  // prlimit sets the limits, then execs the server
  server.wait_for_listening(1, start_timeout);
  BOOST_TEST(logged_when(server, "--max-connections 1000 per worker"), server.describe());
  BOOST_TEST(logged_when(server, "RLIMIT_NOFILE is 128"), server.describe());
}

// The cap is a worker setting a reload (SIGHUP) changes: the workers started
// for the new configuration have the new one.
BOOST_AUTO_TEST_CASE(a_reload_gives_new_workers_the_new_cap,
                     *boost::unit_test::precondition(only_where_the_flag_binds)) {
  TempDir dir;
  auto write_config = [&](const std::string& text) { return dir.write("server.toml", text); };
  const std::string config = dir.file("server.toml");
  write_config("max-connections = 3\n");
  UpperServer::Options options;
  options.workers = 1;
  UpperServer server({"--framed", "127.0.0.1:0", "--config", config}, options);
  BOOST_TEST(server.ready_snapshot().slots[0].connections_max == 3u);

  write_config("max-connections = 2\n");
  server.process().signal(SIGHUP);
  auto applied = server.when([](const prefork::ScoreboardSnapshot& s) {
    unsigned ready = 0;
    for (const auto& slot : s.slots) {
      if (slot.pid == 0) continue;
      if (slot.connections_max != 2) return false;
      ready += slot.state == prefork::WorkerState::ready ? 1 : 0;
    }
    return ready > 0;
  });
  BOOST_TEST(applied.has_value(), "no worker with the reloaded cap of 2");
}
