// The protocol API's ways to end a connection, over real sockets, in the
// model and start mode under test (tests/support/protocol_server.cpp): a
// session's greeting and replies, Reply::close() (the replies and last
// words, then an orderly close), Reply::abort() (a reset), a throwing
// handler (closed, counted as an error), the client's half-close and a line
// over the limit; the same through a plain lambda given to prefork_main and,
// in the blocking models, through a Connection& handler. What the client
// sees, and the scoreboard's closes by reason and errors by kind.
#define BOOST_TEST_MODULE integration_protocol_api
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/close_reason.hpp>
#include <prefork/models.hpp>

#include <signal.h>

#include <optional>

using namespace prefork::test;
using prefork::CloseReason;
using prefork::ErrorKind;
using namespace std::string_literals;

namespace {

constexpr std::size_t line_limit = 64;
// Generous: reached only when the server misbehaves, never on a slow machine.
constexpr Milliseconds io_timeout = 30'000ms;

UpperServer::Options server_options() {
  UpperServer::Options options;
  options.program = "protocol_server";
  options.workers = 1;
  return options;
}

UpperServer start(const std::string& handler, const std::string& listener = "--tcp") {
  return UpperServer(
      {listener, "127.0.0.1:0", "--max-message", std::to_string(line_limit), "--handler", handler},
      server_options());
}

TcpClient connect(UpperServer& server, const std::string& protocol = "tcp") {
  return TcpClient::connect(server.endpoint(protocol), io_timeout);
}

std::string cat(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (std::string_view piece : pieces) out += piece;
  return out;
}

// "ECHO eee...": a line of exactly the limit, and its answer.
std::string exact_limit_answer() { return std::string(line_limit - 5, 'e'); }
std::string exact_limit_echo() { return cat({"ECHO ", exact_limit_answer(), "\n"}); }

// The scoreboard once `count` connections have ended (workers count a close
// just after the client sees it).
prefork::ScoreboardSnapshot after_closes(UpperServer& server, std::uint64_t count) {
  auto seen = server.when(
      [count](const prefork::ScoreboardSnapshot& s) { return all_closes(s) >= count; }, io_timeout);
  BOOST_TEST_REQUIRE(seen.has_value(), "connections counted as closed: fewer than " << count);
  return *seen;
}

// The connection ended once, for `reason`, counted as the one error `error`
// or as none.
prefork::ScoreboardSnapshot closed_once_for(UpperServer& server, CloseReason reason,
                                            std::optional<ErrorKind> error = std::nullopt) {
  auto counted = after_closes(server, 1);
  BOOST_TEST(closes(counted, reason) == 1u);
  BOOST_TEST(all_closes(counted) == 1u);
  if (error) {
    BOOST_TEST(errors(counted, *error) == 1u);
    BOOST_TEST(counted.totals.errors == 1u);
  } else {
    BOOST_TEST(counted.totals.errors == 0u);
  }
  return counted;
}

bool blocking_model() { return prefork::facts(model_under_test()).blocking; }

boost::test_tools::assertion_result only_in_blocking_models(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(blocking_model());
  result.message() << "a Connection& handler runs in the blocking models only";
  return result;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(session)

BOOST_AUTO_TEST_CASE(greeting_replies_then_close_with_last_words) {
  UpperServer server = start("session");
  auto client = connect(server);
  // In one send: what follows CLOSE is never handled.
  client.send_all("ECHO one two\nNOPE\nCLOSE\nECHO never\n");
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "HELLO\none two\nERR\nBYE\nEND handler_closed\n");
  BOOST_TEST(seen.end == End::orderly);

  auto counted = closed_once_for(server, CloseReason::handler_closed);
  BOOST_TEST(counted.totals.requests == 3u);  // ECHO, NOPE, CLOSE
}

BOOST_AUTO_TEST_CASE(abort_resets_the_connection) {
  UpperServer server = start("session");
  auto client = connect(server);
  BOOST_TEST(client.recv_exactly(6) == "HELLO\n");
  client.send_all("ABORT\n");
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "");  // neither its reply nor last words
  BOOST_TEST(seen.end == End::reset);

  closed_once_for(server, CloseReason::handler_aborted);  // asked for, not an error
}

BOOST_AUTO_TEST_CASE(a_throwing_session_resets_and_counts_an_error) {
  UpperServer server = start("session");
  auto client = connect(server);
  BOOST_TEST(client.recv_exactly(6) == "HELLO\n");
  client.send_all("THROW\n");
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "");  // its half reply and the last words are dropped
  BOOST_TEST(seen.end == End::reset);

  closed_once_for(server, CloseReason::handler_failed, ErrorKind::handler_exception);
  // The worker lives on: the next connection is served.
  auto next = connect(server);
  next.send_all("ECHO still here\nCLOSE\n");
  BOOST_TEST(next.read_to_end().bytes == "HELLO\nstill here\nBYE\nEND handler_closed\n");
}

BOOST_AUTO_TEST_CASE(a_client_half_close_gets_answers_and_last_words) {
  UpperServer server = start("session");
  auto client = connect(server);
  client.send_all("ECHO a\nECHO b\n");
  client.shutdown_write();
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "HELLO\na\nb\nEND peer_closed\n");
  BOOST_TEST(seen.end == End::orderly);

  closed_once_for(server, CloseReason::peer_closed);
}

BOOST_AUTO_TEST_CASE(a_line_over_the_limit_closes_with_last_words) {
  UpperServer server = start("session");
  auto client = connect(server);
  std::string lines = exact_limit_echo();
  lines += std::string(line_limit + 10, 'x');  // never ended: refused all the same
  client.send_all(lines);
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == cat({"HELLO\n", exact_limit_answer(), "\nEND limit_exceeded\n"}));
  BOOST_TEST(seen.end == End::orderly);

  closed_once_for(server, CloseReason::limit_exceeded, ErrorKind::oversized_frame);
}

BOOST_AUTO_TEST_CASE(every_ending_counted_under_its_own_reason) {
  UpperServer server = start("session");
  for (std::string_view command : {"CLOSE\n", "ABORT\n", "THROW\n", "CLOSE\n"}) {
    auto client = connect(server);
    client.send_all(command);
    BOOST_TEST(client.read_to_end().end != End::still_open, command);
  }
  auto counted = after_closes(server, 4);
  BOOST_TEST(closes(counted, CloseReason::handler_closed) == 2u);
  BOOST_TEST(closes(counted, CloseReason::handler_aborted) == 1u);
  BOOST_TEST(closes(counted, CloseReason::handler_failed) == 1u);
  BOOST_TEST(all_closes(counted) == 4u);
  BOOST_TEST(counted.totals.connections_total == 4u);
  BOOST_TEST(errors(counted, ErrorKind::handler_exception) == 1u);
  BOOST_TEST(counted.totals.errors == 1u);
}

BOOST_AUTO_TEST_CASE(a_graceful_stop_ends_an_idle_connection_with_last_words) {
  UpperServer server = start("session");
  auto client = connect(server);
  BOOST_TEST(client.recv_exactly(6) == "HELLO\n");
  server.process().signal(SIGTERM);
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "END worker_stopping\n");
  BOOST_TEST(seen.end == End::orderly);
  BOOST_TEST(status_or_running(server.process().wait_exit(io_timeout)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// A plain lambda given to prefork_main: no session, the framed listener's
// default codec, and the same endings from Reply.
BOOST_AUTO_TEST_CASE(function_handler_replies_closes_aborts_and_fails) {
  UpperServer server = start("function", "--framed");
  // Each answer starts with Request::connection: numbered 1, 2, 3 in the
  // one worker process, whichever the model.
  {
    auto client = connect(server, "framed");
    BOOST_TEST(client.request_frame("hello") == "1:hello");
    BOOST_TEST(client.request_frame("again") == "1:again");
    client.send_frame("close");
    std::string bye = "\0\0\0\3bye"s;
    Transcript seen = client.read_to_end();
    BOOST_TEST(seen.bytes == bye);
    BOOST_TEST(seen.end == End::orderly);
  }
  {
    auto client = connect(server, "framed");
    BOOST_TEST(client.request_frame("x") == "2:x");
    client.send_frame("abort");
    Transcript seen = client.read_to_end();
    BOOST_TEST(seen.bytes == "");
    BOOST_TEST(seen.end == End::reset);
  }
  {
    auto client = connect(server, "framed");
    BOOST_TEST(client.request_frame("y") == "3:y");
    client.send_frame("throw");
    Transcript seen = client.read_to_end();
    BOOST_TEST(seen.bytes == "");
    BOOST_TEST(seen.end == End::reset);
  }
  auto counted = after_closes(server, 3);
  BOOST_TEST(closes(counted, CloseReason::handler_closed) == 1u);
  BOOST_TEST(closes(counted, CloseReason::handler_aborted) == 1u);
  BOOST_TEST(closes(counted, CloseReason::handler_failed) == 1u);
  BOOST_TEST(all_closes(counted) == 3u);
  BOOST_TEST(errors(counted, ErrorKind::handler_exception) == 1u);
  BOOST_TEST(counted.totals.errors == 1u);
  BOOST_TEST(counted.totals.requests == 7u);
}

// A Connection& handler (connection.hpp), blocking models only.
BOOST_AUTO_TEST_SUITE(connection, *boost::unit_test::precondition(only_in_blocking_models))

BOOST_AUTO_TEST_CASE(close_after_replies) {
  UpperServer server = start("connection");
  auto client = connect(server);
  client.send_all("ECHO one\nCLOSE\nECHO never\n");
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "HELLO\none\nBYE\n");
  BOOST_TEST(seen.end == End::orderly);
  closed_once_for(server, CloseReason::handler_closed);
}

BOOST_AUTO_TEST_CASE(abort_resets) {
  UpperServer server = start("connection");
  auto client = connect(server);
  BOOST_TEST(client.recv_exactly(6) == "HELLO\n");
  client.send_all("ABORT\n");
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "");
  BOOST_TEST(seen.end == End::reset);
  closed_once_for(server, CloseReason::handler_aborted);
}

BOOST_AUTO_TEST_CASE(a_throwing_handler_resets_and_counts_an_error) {
  // connection.hpp: "An exception is logged and the connection reset
  // (CloseReason::handler_failed)".
  UpperServer server = start("connection");
  auto client = connect(server);
  BOOST_TEST(client.recv_exactly(6) == "HELLO\n");
  client.send_all("THROW\n");
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "");
  BOOST_TEST(seen.end == End::reset);
  closed_once_for(server, CloseReason::handler_failed, ErrorKind::handler_exception);
}

BOOST_AUTO_TEST_CASE(a_client_half_close_ends_the_reads) {
  UpperServer server = start("connection");
  auto client = connect(server);
  client.send_all("ECHO a\n");
  client.shutdown_write();
  Transcript seen = client.read_to_end();
  // Writing after the reads ended still works: only the client's sending
  // side is closed (socketserver's "read to EOF, then answer").
  BOOST_TEST(seen.bytes == "HELLO\na\nEND peer_closed\n");
  BOOST_TEST(seen.end == End::orderly);
  closed_once_for(server, CloseReason::peer_closed);
}

BOOST_AUTO_TEST_CASE(a_line_over_the_limit_ends_with_limit_exceeded) {
  UpperServer server = start("connection");
  auto client = connect(server);
  std::string lines = exact_limit_echo();
  lines += std::string(line_limit + 10, 'y');
  client.send_all(lines);
  Transcript seen = client.read_to_end();
  // The line of exactly the limit is answered; the longer one refused, with
  // last words, as a session's.
  BOOST_TEST(seen.bytes == cat({"HELLO\n", exact_limit_answer(), "\nEND limit_exceeded\n"}));
  BOOST_TEST(seen.end == End::orderly);
  closed_once_for(server, CloseReason::limit_exceeded, ErrorKind::oversized_frame);
}

BOOST_AUTO_TEST_CASE(a_graceful_stop_ends_the_reads_and_leaves_room_for_last_words) {
  UpperServer server = start("connection");
  auto client = connect(server);
  BOOST_TEST(client.recv_exactly(6) == "HELLO\n");
  server.process().signal(SIGTERM);
  Transcript seen = client.read_to_end();
  BOOST_TEST(seen.bytes == "END worker_stopping\n");
  BOOST_TEST(seen.end == End::orderly);
  BOOST_TEST(status_or_running(server.process().wait_exit(io_timeout)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// Under the event model a Connection& handler is refused at start (exit 2).
BOOST_AUTO_TEST_CASE(connection_handler_refused_by_the_event_model,
                     *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                       boost::test_tools::assertion_result result(!blocking_model());
                       result.message() << "only the event model refuses it";
                       return result;
                     })) {
  ShmGuard shm(unique_stats_name());
  ServerProcess process(
      bin_path("protocol_server"),
      server_arguments(shm.name(), 1, {"--tcp", "127.0.0.1:0", "--handler", "connection"}));
  BOOST_TEST(status_or_running(process.wait_exit(io_timeout)) == 2);
}
