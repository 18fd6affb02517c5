// A session is called by one thread at a time, in every model and start
// mode (the promise in framework/core/include/prefork/handler.hpp), while
// many clients pipeline many lines at once and when a stop closes the
// sessions still open. tests/support/session_probe.cpp keeps each
// session's state plain and counts overlapping calls: every reply and the
// server's stderr must show none; under the ThreadSanitizer build any
// sharing of that plain state is a report, which fails the test too
// (fixture.cpp).
#define BOOST_TEST_MODULE integration_sessions
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

using namespace prefork::test;

namespace {

constexpr unsigned workers = 2;
constexpr std::size_t clients = 16;
constexpr std::uint64_t lines_per_client = 300;
// Generous: a one-at-a-time model serves the clients in turn, and the
// sanitizer builds are slow; a healthy server answers in milliseconds.
constexpr Milliseconds io_timeout = 60'000ms;
constexpr Milliseconds stop_timeout = 60'000ms;

UpperServer::Options probe_options() {
  UpperServer::Options options;
  options.program = "session_probe";
  options.workers = workers;
  return options;
}

std::vector<std::string> probe_args() { return {"--tcp", "127.0.0.1:0"}; }

// How many connections the model under test serves at once (more wait in
// the backlog): the stop case holds this many open.
std::size_t served_at_once() {
  if (model_under_test() == prefork::Model::iterative) return 1;
  if (model_under_test() == prefork::Model::prefork) return workers;
  return prefork::default_threads;  // prethreaded's --threads; the others serve more
}

// "<n> <calls> <overlaps> <out of order>", as the probe answers line n.
std::string expected_answer(std::uint64_t n) {
  std::string answer = std::to_string(n);
  answer += ' ';
  answer += std::to_string(n + 2);  // on_open, then lines 0..n
  answer += " 0 0";
  return answer;
}

// Lines from..to-1, each "<n>\n", sent in pieces of varying sizes so that
// lines are split and merged across the server's reads.
void send_lines(TcpClient& client, std::uint64_t from, std::uint64_t to) {
  std::string all;
  for (std::uint64_t n = from; n < to; ++n) {
    all += std::to_string(n);
    all += '\n';
  }
  static constexpr std::size_t pieces[] = {1, 7, 64, 3, 500, 2, 1500};
  std::size_t at = 0;
  for (std::size_t i = 0; at < all.size(); ++i) {
    const std::size_t size = std::min(pieces[i % std::size(pieces)], all.size() - at);
    client.send_all(std::string_view(all).substr(at, size));
    at += size;
  }
}

// What went wrong in the client threads (Boost.Test's assertions are for
// the main thread only).
class Failures {
 public:
  void add(std::string what) {
    std::lock_guard lock(mutex_);
    list_.push_back(std::move(what));
  }
  std::string text() const {
    std::lock_guard lock(mutex_);
    std::ostringstream out;
    for (const auto& failure : list_) out << "\n  " << failure;
    return out.str();
  }
  bool empty() const {
    std::lock_guard lock(mutex_);
    return list_.empty();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> list_;
};

// Answers from `from` to `to`-1, each checked; false after the first wrong one.
bool expect_answers(TcpClient& client, std::uint64_t from, std::uint64_t to, std::size_t who,
                    Failures& failures) {
  for (std::uint64_t n = from; n < to; ++n) {
    std::string answer = client.recv_line();
    if (answer != expected_answer(n)) {
      failures.add("client " + std::to_string(who) + ": line " + std::to_string(n) + " answered '" +
                   answer + "', expected '" + expected_answer(n) + "'");
      return false;
    }
  }
  return true;
}

// Stops the server as its operator would and checks it ended cleanly with
// no overlap logged, by any worker, in any call (on_close included).
void stop_and_check(UpperServer& server) {
  server.process().signal(SIGTERM);
  BOOST_TEST(status_or_running(server.process().wait_exit(stop_timeout)) == 0);
  BOOST_TEST(server.process().stderr_text().find("SESSION OVERLAP") == std::string::npos,
             "a session was called during another call of its own");
}

}  // namespace

BOOST_AUTO_TEST_CASE(many_clients_pipelining_never_overlap_a_session) {
  UpperServer server(probe_args(), probe_options());
  const Endpoint endpoint = server.endpoint("tcp");
  Failures failures;
  std::vector<std::thread> threads;
  for (std::size_t who = 0; who < clients; ++who)
    threads.emplace_back([&, who] {
      try {
        auto client = TcpClient::connect(endpoint, io_timeout);
        if (client.recv_line() != "hello") return failures.add("no greeting");
        // Half the lines at once, then the rest while the first are
        // answered: pipelined both ways.
        send_lines(client, 0, lines_per_client / 2);
        if (!expect_answers(client, 0, lines_per_client / 4, who, failures)) return;
        send_lines(client, lines_per_client / 2, lines_per_client);
        expect_answers(client, lines_per_client / 4, lines_per_client, who, failures);
      } catch (const std::exception& e) {
        failures.add("client " + std::to_string(who) + ": " + e.what());
      }
    });
  for (auto& thread : threads) thread.join();
  BOOST_TEST(failures.empty(), "failures:" << failures.text());
  // Every line was handled once: the scoreboard counts them as requests.
  if (failures.empty())
    BOOST_TEST(server.requests_when_at_least(clients * lines_per_client) ==
               clients * lines_per_client);
  stop_and_check(server);
}

BOOST_AUTO_TEST_CASE(sessions_closed_by_a_stop_never_overlap) {
  UpperServer server(probe_args(), probe_options());
  std::vector<TcpClient> open;
  for (std::size_t i = 0; i < served_at_once(); ++i) {
    open.push_back(TcpClient::connect(server.endpoint("tcp"), io_timeout));
    BOOST_TEST_REQUIRE(open.back().recv_line() == "hello");
    send_lines(open.back(), 0, 50);
  }
  // Every line answered: the sessions are open and idle when the stop comes.
  Failures failures;
  for (std::size_t i = 0; i < open.size(); ++i) expect_answers(open[i], 0, 50, i, failures);
  BOOST_TEST_REQUIRE(failures.empty(), "failures:" << failures.text());
  stop_and_check(server);
  for (auto& client : open) BOOST_TEST(client.closed_by_peer(io_timeout));
}
