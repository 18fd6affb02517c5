// --idle-timeout, --read-timeout and --write-timeout against hostile
// clients, in the model and start mode under test (tests/support/
// protocol_server.cpp, whose sessions say "END <reason>" in on_close): a
// client that says nothing, a slowloris trickling a byte at a time, a
// client that never reads its replies; each closed, counted by its cause,
// its session told why; and 0 turning each off. Short timeouts (0.3 s) and
// generous bounds: the tests assert that a connection closes, never how
// fast.
#define BOOST_TEST_MODULE integration_timeouts
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/close_reason.hpp>
#include <prefork/models.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

using namespace prefork::test;
using prefork::CloseReason;
using namespace std::string_literals;

namespace {

// Generous: reached only when the server misbehaves.
constexpr Milliseconds io_timeout = 15'000ms;
const std::string short_timeout = "0.3";

UpperServer start(std::vector<std::string> timeouts, const std::string& handler = "session") {
  std::vector<std::string> args{"--tcp",   "127.0.0.1:0", "--max-message",
                                "1000000", "--handler",   handler};
  args.insert(args.end(), timeouts.begin(), timeouts.end());
  UpperServer::Options options;
  options.program = "protocol_server";
  // Two: in a process model a connection held open keeps one busy.
  options.workers = 2;
  return UpperServer(std::move(args), options);
}

TcpClient connect(UpperServer& server) {
  return TcpClient::connect(server.endpoint("tcp"), io_timeout);
}

std::uint64_t counted(UpperServer& server, CloseReason reason, std::uint64_t count) {
  auto seen = server.when(
      [&](const prefork::ScoreboardSnapshot& s) { return closes(s, reason) >= count; }, io_timeout);
  BOOST_TEST_REQUIRE(seen.has_value(),
                     "closes by " << prefork::close_reason_name(reason) << " fewer than " << count);
  return closes(*seen, reason);
}

// Sends `byte` every `pace` until the server ends the connection (or the
// generous bound passes); false if it never did.
bool trickle_until_closed(TcpClient& client, char byte, Milliseconds pace) {
  const auto deadline = std::chrono::steady_clock::now() + io_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::send(client.fd(), &byte, 1, MSG_NOSIGNAL) != 1) return true;  // reset already
    pollfd fd{client.fd(), POLLIN, 0};
    // The server's last words or its close end the trickle.
    if (::poll(&fd, 1, static_cast<int>(pace.count())) > 0) return true;
  }
  return false;
}

bool blocking_model() { return prefork::facts(model_under_test()).blocking; }

boost::test_tools::assertion_result only_in_blocking_models(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(blocking_model());
  result.message() << "a Connection& handler runs in the blocking models only";
  return result;
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_idle_connection_is_closed_and_its_session_told) {
  UpperServer server = start({"--idle-timeout", short_timeout});
  auto silent = connect(server);  // never says anything
  auto served = connect(server);  // idle after one request
  served.send_all("ECHO one\n");
  BOOST_TEST(served.recv_line() == "HELLO");
  BOOST_TEST(served.recv_line() == "one");

  Transcript seen = silent.read_to_end();
  BOOST_TEST(seen.bytes == "HELLO\nEND idle_timeout\n");
  BOOST_TEST(seen.end == End::orderly);
  seen = served.read_to_end();
  BOOST_TEST(seen.bytes == "END idle_timeout\n");
  BOOST_TEST(seen.end == End::orderly);
  BOOST_TEST(counted(server, CloseReason::idle_timeout, 2) == 2u);
}

BOOST_AUTO_TEST_CASE(a_listener_keeps_its_own_timeouts) {
  // The first listener's own idle timeout; the second has the server's,
  // which is off: only the first listener's idle connection closes.
  UpperServer::Options options;
  options.program = "protocol_server";
  options.workers = 2;
  UpperServer server({"--tcp", "127.0.0.1:0,idle-timeout=" + short_timeout, "--tcp", "127.0.0.1:0",
                      "--idle-timeout", "0", "--handler", "session"},
                     options);
  BOOST_TEST_REQUIRE(server.endpoints().size() == 2u);
  auto strict = TcpClient::connect(server.endpoints()[0], io_timeout);
  auto lenient = TcpClient::connect(server.endpoints()[1], io_timeout);
  BOOST_TEST(lenient.recv_line() == "HELLO");

  const Transcript seen = strict.read_to_end();
  BOOST_TEST(seen.bytes == "HELLO\nEND idle_timeout\n");
  BOOST_TEST(seen.end == End::orderly);
  BOOST_TEST(counted(server, CloseReason::idle_timeout, 1) == 1u);
  // Idle as long, and more: still served.
  lenient.send_all("ECHO still\n");
  BOOST_TEST(lenient.recv_line() == "still");
  BOOST_TEST(closes(server.snapshot(), CloseReason::idle_timeout) == 1u);
}

BOOST_AUTO_TEST_CASE(a_slowloris_is_closed_although_it_keeps_sending) {
  // No idle timeout: only the read timeout can end it.
  UpperServer server = start({"--idle-timeout", "0", "--read-timeout", short_timeout});
  auto client = connect(server);
  BOOST_TEST(client.recv_line() == "HELLO");
  client.send_all("ECHO ");
  BOOST_TEST_REQUIRE(trickle_until_closed(client, 'x', 100ms), "the slowloris was never closed");
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "END read_timeout\n");
  BOOST_TEST(seen.end != End::still_open);
  BOOST_TEST(counted(server, CloseReason::read_timeout, 1) == 1u);
  BOOST_TEST(all_closes(server.snapshot()) == 1u);
}

BOOST_AUTO_TEST_CASE(a_client_that_never_reads_is_closed) {
  // Only the write timeout can end it: the client stops reading (and, once
  // the server stops reading too, may be left mid-request).
  UpperServer server =
      start({"--idle-timeout", "0", "--read-timeout", "0", "--write-timeout", short_timeout});
  auto client = connect(server);
  const std::string request = "ECHO " + std::string(60'000, 'w') + "\n";
  // Requests with big replies until neither side takes more (the server's
  // output and both socket buffers are full) or the server closes it.
  client.send_without_reading(request, 1000ms, io_timeout);
  BOOST_TEST(counted(server, CloseReason::write_timeout, 1) == 1u);
  // The client sees the end once it reads what was sent before it.
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.end != End::still_open);
  BOOST_TEST(all_closes(server.snapshot()) == 1u);
}

// 0 turns a timeout off. The clock is the server's own: connections closed
// by the timeout still on, one after the other, prove that several times
// that timeout has passed while the other connection stayed.
BOOST_AUTO_TEST_CASE(a_zero_idle_timeout_keeps_idle_connections) {
  UpperServer server = start({"--idle-timeout", "0", "--read-timeout", short_timeout});
  auto idle = connect(server);
  BOOST_TEST(idle.recv_line() == "HELLO");
  for (int i = 0; i < 4; ++i) {
    auto started = connect(server);
    started.send_all("ECHO never finished");
    BOOST_TEST(started.read_to_end().end != End::still_open);
  }
  BOOST_TEST(counted(server, CloseReason::read_timeout, 4) == 4u);
  idle.send_all("ECHO still here\n");
  BOOST_TEST(idle.recv_line() == "still here");
  BOOST_TEST(closes(server.snapshot(), CloseReason::idle_timeout) == 0u);
}

BOOST_AUTO_TEST_CASE(a_zero_read_timeout_keeps_messages_started) {
  UpperServer server = start({"--idle-timeout", short_timeout, "--read-timeout", "0"});
  auto partial = connect(server);
  BOOST_TEST(partial.recv_line() == "HELLO");
  partial.send_all("ECHO still ");
  for (int i = 0; i < 4; ++i) {
    auto idle = connect(server);
    BOOST_TEST(idle.read_to_end().end != End::still_open);
  }
  BOOST_TEST(counted(server, CloseReason::idle_timeout, 4) == 4u);
  partial.send_all("here\n");
  BOOST_TEST(partial.recv_line() == "still here");
  BOOST_TEST(closes(server.snapshot(), CloseReason::read_timeout) == 0u);
}

// The blocking models' Connection& handlers: their read_line() and write()
// wait with the same limits.
BOOST_AUTO_TEST_CASE(a_connection_handler_hears_of_both_read_timeouts,
                     *boost::unit_test::precondition(only_in_blocking_models)) {
  UpperServer server =
      start({"--idle-timeout", short_timeout, "--read-timeout", short_timeout}, "connection");
  auto silent = connect(server);
  Transcript seen = silent.read_to_end();
  BOOST_TEST(seen.bytes == "HELLO\nEND idle_timeout\n");
  BOOST_TEST(counted(server, CloseReason::idle_timeout, 1) == 1u);

  auto slow = connect(server);
  BOOST_TEST(slow.recv_line() == "HELLO");
  slow.send_all("ECHO ");
  BOOST_TEST_REQUIRE(trickle_until_closed(slow, 'x', 100ms), "the slowloris was never closed");
  seen = slow.read_to_end();
  BOOST_TEST(seen.bytes == "END read_timeout\n");
  BOOST_TEST(counted(server, CloseReason::read_timeout, 1) == 1u);
}
