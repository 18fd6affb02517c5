// What the scoreboard says about a real server: totals that stay exact
// while every worker is replaced again and again under load, per-listener
// counts and error kinds as clients cause them, the listen queue the master
// reports, and the master's --metrics HTTP endpoint (checked by promtool and
// a strict OpenMetrics parser when they are installed; .ci/run installs
// them).
#define BOOST_TEST_MODULE integration_observability
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "clients.hpp"
#include "fixture.hpp"

using namespace prefork::test;
namespace json = boost::json;

namespace {

constexpr unsigned replacements = 100;
constexpr unsigned pool = 8;

struct Load {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> replies{0}, bytes_sent{0}, bytes_received{0}, failures{0};
};

// Keep-alive framed requests until told to stop, reconnecting whenever a
// worker closes the connection (as a draining worker does). Only replies
// received are counted: a request the server never read has no reply.
void run_client(const Endpoint& endpoint, Load& load, unsigned id) {
  std::optional<TcpClient> client;
  for (std::uint64_t n = 0; !load.stop.load(); ++n) {
    // Appended piece by piece: GCC 12 warns wrongly (-Wrestrict, PR 105329)
    // on "literal" + std::string at -O2.
    std::string payload(1, 'c');
    payload += std::to_string(id);
    payload += '-';
    payload += std::to_string(n);
    try {
      if (!client) client.emplace(TcpClient::connect(endpoint, 5000ms));
      const std::string reply = client->request_frame(payload);
      if (reply != ascii_upper(payload)) throw std::runtime_error("wrong reply " + reply);
      load.replies += 1;
      load.bytes_sent += 4 + payload.size();
      load.bytes_received += 4 + reply.size();
    } catch (const std::exception&) {
      load.failures += 1;
      client.reset();
    }
  }
}

// tests/support/check_metrics.sh on (extension, content) files: its exit
// status (77: the tools are not installed) and output.
std::pair<int, std::string> check_metrics(
    const std::vector<std::pair<std::string, std::string>>& files) {
  char dir[] = "/tmp/prefork_metrics_XXXXXX";
  BOOST_TEST_REQUIRE(::mkdtemp(dir) != nullptr);
  std::string command = "bash " + source_path("tests/support/check_metrics.sh");
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string path = std::string(dir) + "/" + std::to_string(i) + files[i].first;
    std::ofstream(path) << files[i].second;
    command += " " + path;
  }
  std::string output;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  BOOST_TEST_REQUIRE(pipe != nullptr);
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
    output.append(buffer, n);
  const int status = ::pclose(pipe);
  std::filesystem::remove_all(dir);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::uint64_t listener_requests(const prefork::CounterValues& c, std::size_t listener) {
  return listener < c.listeners.size() ? c.listeners[listener].requests : 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(totals_exact_across_100_worker_replacements_under_load) {
  UpperServer server({"--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0"}, {pool, true});
  const prefork::ScoreboardSnapshot start = server.ready_snapshot();
  const unsigned slots = static_cast<unsigned>(start.slots.size());
  Load load;
  std::vector<std::thread> clients;
  for (unsigned i = 0; i < 2; ++i)
    clients.emplace_back(run_client, server.endpoint("framed"), std::ref(load), i);
  struct Join {
    Load& load;
    std::vector<std::thread>& threads;
    ~Join() {
      load.stop = true;
      for (auto& t : threads) t.join();
    }
  } join{load, clients};

  for (unsigned i = 0; i < replacements; ++i) {
    const unsigned slot = i % slots;
    // Old enough that the master does not take its death for a failed start.
    auto ready = server.when([&](const prefork::ScoreboardSnapshot& s) {
      const prefork::SlotSnapshot& entry = s.slots.at(slot);
      return entry.state == prefork::WorkerState::ready &&
             s.taken_ns > entry.started_ns + 1'100'000'000ull;
    });
    BOOST_TEST_REQUIRE(ready.has_value(), "slot " << slot << " not ready before replacement " << i);
    const pid_t victim = ready->slots.at(slot).pid;
    BOOST_TEST_REQUIRE(::kill(victim, SIGTERM) == 0);
    auto replaced = server.when([&](const prefork::ScoreboardSnapshot& s) {
      const prefork::SlotSnapshot& entry = s.slots.at(slot);
      return entry.pid > 0 && entry.pid != victim && entry.state == prefork::WorkerState::ready;
    });
    BOOST_TEST_REQUIRE(replaced.has_value(), "slot " << slot << " not refilled, replacement " << i);
  }
  load.stop = true;
  for (auto& t : clients) t.join();
  clients.clear();

  const std::uint64_t replies = load.replies.load();
  BOOST_TEST_MESSAGE(replies << " replies, " << load.failures.load() << " reconnects");
  BOOST_TEST(replies > replacements);
  // Every request a worker read was answered (the stops were graceful), so
  // the server counted exactly the replies the clients received.
  auto settled = server.when(
      [&](const prefork::ScoreboardSnapshot& s) { return s.latency->count() >= replies; });
  BOOST_TEST_REQUIRE(settled.has_value());
  const prefork::ScoreboardSnapshot& end = *settled;
  BOOST_TEST(end.totals.requests == replies);
  BOOST_TEST(listener_requests(end.totals, 0) == replies);
  BOOST_TEST(listener_requests(end.totals, 1) == 0u);
  BOOST_TEST(end.totals.bytes_in == load.bytes_sent.load());
  BOOST_TEST(end.totals.bytes_out == load.bytes_received.load());
  BOOST_TEST(end.latency->count() == replies);
  BOOST_TEST(end.totals.errors == 0u);
  BOOST_TEST(end.worker_restarts == start.worker_restarts + replacements);
  BOOST_TEST(end.exits_recycled == replacements);  // exit status 0 after SIGTERM
  BOOST_TEST(end.exits_crashed == 0u);
  BOOST_TEST(end.exits_signaled == 0u);
  BOOST_TEST(end.generation == slots + replacements);
  // Most of it was counted by workers that are gone.
  BOOST_TEST(end.retired.requests > 0u);
}

BOOST_AUTO_TEST_CASE(listeners_and_error_kinds_are_counted_apart) {
  UpperServer server({"--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--max-frame", "64"});
  TcpClient framed = TcpClient::connect(server.endpoint("framed"));
  for (int i = 0; i < 5; ++i) BOOST_TEST(framed.request_frame("abc") == "ABC");
  UdpClient udp = UdpClient::connect(server.endpoint("udp"));
  for (int i = 0; i < 3; ++i) BOOST_TEST(udp.request("xyz") == "XYZ");
  // Oversized: the connection is closed and the error counted as such.
  framed.send_frame(std::string(65, 'x'));
  BOOST_TEST(framed.closed_by_peer());
  // A peer that resets after its reply.
  TcpClient reset = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(reset.request_frame("q") == "Q");
  linger abort{1, 0};
  BOOST_TEST_REQUIRE(::setsockopt(reset.fd(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort) == 0);
  reset.close();

  auto counted = server.when([](const prefork::ScoreboardSnapshot& s) {
    return s.totals.requests >= 9 && s.totals.errors >= 2;
  });
  BOOST_TEST_REQUIRE(counted.has_value());
  const prefork::CounterValues& t = counted->totals;
  BOOST_TEST(t.requests == 9u);
  BOOST_TEST(listener_requests(t, 0) == 6u);  // framed
  BOOST_TEST(listener_requests(t, 1) == 3u);  // udp
  BOOST_TEST(t.listeners.at(0).connections == 2u);
  BOOST_TEST(t.listeners.at(0).errors == 2u);
  using prefork::ErrorKind;
  BOOST_TEST(t.error_kinds[static_cast<unsigned>(ErrorKind::oversized_frame)] == 1u);
  BOOST_TEST(t.error_kinds[static_cast<unsigned>(ErrorKind::peer_reset)] == 1u);
  BOOST_TEST(t.errors == 2u);
  BOOST_TEST(counted->latency->count() == 9u);
  BOOST_TEST(counted->latency->percentile(99) > 0u);
  BOOST_TEST(counted->listeners.at(0).name == "framed " + server.endpoint("framed").host_port());
  for (const prefork::SlotSnapshot& slot : counted->slots) {
    BOOST_TEST(slot.rss_bytes > 0u);
    BOOST_TEST(slot.heartbeat_ns >= slot.started_ns);
  }
}

BOOST_AUTO_TEST_CASE(the_master_reports_the_listen_queue) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  // Stopped workers accept nothing: connections wait in the queue.
  const std::vector<pid_t> workers = worker_pids(server.ready_snapshot());
  struct Resume {
    std::vector<pid_t> pids;
    ~Resume() {
      for (pid_t pid : pids) ::kill(pid, SIGCONT);
    }
  } resume{workers};
  for (pid_t pid : workers) BOOST_TEST_REQUIRE(::kill(pid, SIGSTOP) == 0);
  std::vector<TcpClient> waiting;
  for (int i = 0; i < 5; ++i) waiting.push_back(TcpClient::connect(server.endpoint("framed")));
  auto queued = server.when(
      [](const prefork::ScoreboardSnapshot& s) { return s.listeners.at(0).queue_depth == 5; });
  BOOST_TEST(queued.has_value(), "queue depth " << server.snapshot().listeners.at(0).queue_depth);
  BOOST_TEST(server.snapshot().listeners.at(0).queue_limit == 1024u);
  for (pid_t pid : workers) ::kill(pid, SIGCONT);
  for (TcpClient& client : waiting) BOOST_TEST(client.request_frame("go") == "GO");
  auto drained = server.when(
      [](const prefork::ScoreboardSnapshot& s) { return s.listeners.at(0).queue_depth == 0; });
  BOOST_TEST(drained.has_value());
}

BOOST_AUTO_TEST_CASE(the_metrics_endpoint_serves_what_the_scoreboard_holds) {
  UpperServer server(
      {"--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
  const Endpoint metrics = metrics_endpoint(server, 2);
  // A client that connects and says nothing must not hold the master up.
  TcpClient silent = TcpClient::connect(metrics);
  TcpClient framed = TcpClient::connect(server.endpoint("framed"));
  for (int i = 0; i < 7; ++i) BOOST_TEST(framed.request_frame("m") == "M");
  BOOST_TEST_REQUIRE(server.when([](const auto& s) { return s.totals.requests == 7; }).has_value());

  const std::string text = http(metrics, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  BOOST_TEST(text.rfind("HTTP/1.1 200 OK\r\n", 0) == 0u, text.substr(0, 200));
  BOOST_TEST(text.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  const std::string series = "prefork_requests_total{slot=\"",
                    listener = "listener=\"framed " + server.endpoint("framed").host_port() + "\"";
  BOOST_TEST(text.find(series) != std::string::npos);
  BOOST_TEST(text.find(listener) != std::string::npos);
  BOOST_TEST(text.find("# EOF") == std::string::npos);
  const std::string open = http(metrics,
                                "GET /metrics HTTP/1.1\r\nHost: t\r\n"
                                "Accept: application/openmetrics-text; version=1.0.0\r\n\r\n");
  BOOST_TEST(open.find("Content-Type: application/openmetrics-text; version=1.0.0") !=
             std::string::npos);
  const std::string open_body = body_of(open);
  BOOST_TEST(open_body.size() >= 6u);
  BOOST_TEST(open_body.substr(open_body.size() - 6) == "# EOF\n");
  const std::string stats = http(metrics, "GET /stats.json HTTP/1.0\r\n\r\n");
  BOOST_TEST(stats.find("Content-Type: application/json") != std::string::npos);
  const json::value doc = json::parse(body_of(stats));
  BOOST_TEST(doc.at("master_pid").to_number<int>() == server.pid());
  BOOST_TEST(doc.at("totals").at("requests").to_number<int>() == 7);
  BOOST_TEST(doc.at("workers").as_array().size() == 2u);

  // All three through promtool, the strict OpenMetrics parser and json.
  auto [status, output] =
      check_metrics({{".prom", body_of(text)}, {".om", open_body}, {".json", body_of(stats)}});
  if (status == 77)
    BOOST_TEST_MESSAGE("not checked by promtool and the OpenMetrics parser: " << output);
  else
    BOOST_TEST(status == 0, output);

  BOOST_TEST(http(metrics, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0) == 0u);
  BOOST_TEST(http(metrics, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0) == 0u);
  BOOST_TEST(http(metrics, "nonsense\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0u);
  BOOST_TEST(http(metrics, "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n")
                 .rfind("HTTP/1.1 431", 0) == 0u);
  // The silent client did not stop anything; the server still serves.
  BOOST_TEST(framed.request_frame("still") == "STILL");
}

// Stevens' pre-forked server sleeps in accept(): the slot says so, so that
// an old heartbeat there reads as idle, not as stuck.
BOOST_AUTO_TEST_CASE(workers_asleep_in_accept_are_marked_waiting) {
  UpperServer server({"--framed", "127.0.0.1:0", "--model", "prefork", "--accept", "shared"});
  auto all_waiting = [](const prefork::ScoreboardSnapshot& s) {
    return std::all_of(s.slots.begin(), s.slots.end(),
                       [](const prefork::SlotSnapshot& slot) { return slot.waiting == 1; });
  };
  BOOST_TEST_REQUIRE(server.when(all_waiting).has_value());
  // A connection being served: its worker now waits on the client, not in
  // accept(), and that is waiting too (for the heartbeat, an idle
  // keep-alive client is no hang of the worker's).
  TcpClient client = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(client.request_frame("busy") == "BUSY");
  auto one_busy = server.when([](const prefork::ScoreboardSnapshot& s) {
    return std::count_if(s.slots.begin(), s.slots.end(), [](const prefork::SlotSnapshot& slot) {
             return slot.connections_active == 1 && slot.waiting == 1;
           }) == 1;
  });
  BOOST_TEST(one_busy.has_value());
  client.close();
  BOOST_TEST(server.when(all_waiting).has_value());
}
