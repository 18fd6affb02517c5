// examples/kv_server, a session per connection over the line codec, in the
// model and start mode under test: its commands, lines split and merged
// any way, the line limit, QUIT closing from the handler, nothing left
// behind by a client that leaves mid-line, the store living per worker
// process, and each connection's end counted by its reason.
#define BOOST_TEST_MODULE integration_kv
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/models.hpp>

using namespace prefork::test;
using prefork::CloseReason;

namespace {

constexpr std::size_t line_limit = 1024;

UpperServer::Options kv_options() {
  UpperServer::Options options;
  options.program = "kv_server";
  options.workers = 1;  // one store: every connection sees the same one
  return options;
}

std::vector<std::string> kv_args() {
  return {"--tcp", "127.0.0.1:0", "--max-message", std::to_string(line_limit)};
}

// Pieces joined with += (GCC 12 warns wrongly on "literal" + std::string:
// docs/NOTES.md).
std::string cat(std::initializer_list<std::string_view> pieces) {
  std::string out;
  for (std::string_view piece : pieces) out += piece;
  return out;
}

std::string ask(TcpClient& client, std::string_view line) {
  client.send_all(cat({line, "\n"}));
  return client.recv_line();
}

// A model that forks a process per connection gives each its own store.
bool store_per_connection() { return model_under_test() == prefork::Model::fork_per_connection; }

}  // namespace

BOOST_AUTO_TEST_CASE(commands_answer_as_documented) {
  UpperServer server(kv_args(), kv_options());
  auto client = TcpClient::connect(server.endpoint("tcp"));
  BOOST_TEST(ask(client, "GET colour") == "NIL");
  BOOST_TEST(ask(client, "SET colour deep blue") == "OK");
  BOOST_TEST(ask(client, "GET colour") == "deep blue");
  BOOST_TEST(ask(client, "DEL colour") == "1");
  BOOST_TEST(ask(client, "DEL colour") == "0");
  BOOST_TEST(ask(client, "GET colour") == "NIL");
  BOOST_TEST(ask(client, "FLY away") == "ERR unknown command");
  BOOST_TEST(ask(client, "") == "ERR unknown command");
  // The connection stays after an unknown command.
  BOOST_TEST(ask(client, "SET k v") == "OK");
  BOOST_TEST(ask(client, "QUIT") == "BYE");
  BOOST_TEST(client.closed_by_peer());
}

BOOST_AUTO_TEST_CASE(crlf_and_lf_lines_are_both_understood) {
  UpperServer server(kv_args(), kv_options());
  auto client = TcpClient::connect(server.endpoint("tcp"));
  client.send_all("SET a 1\r\n");
  BOOST_TEST(client.recv_line() == "OK");
  client.send_all("GET a\r\n");
  BOOST_TEST(client.recv_line() == "1");  // the CR is not part of the key or value
  client.send_all("GET a\n");
  BOOST_TEST(client.recv_line() == "1");
}

BOOST_AUTO_TEST_CASE(a_line_split_at_every_byte_is_one_command) {
  UpperServer server(kv_args(), kv_options());
  auto client = TcpClient::connect(server.endpoint("tcp"));
  const std::string line = "SET split value in pieces\r\n";
  for (char c : line) client.send_all(std::string(1, c));  // TCP_NODELAY: separate segments
  BOOST_TEST(client.recv_line() == "OK");
  BOOST_TEST(ask(client, "GET split") == "value in pieces");
}

BOOST_AUTO_TEST_CASE(many_lines_merged_in_one_send_are_answered_in_order) {
  UpperServer server(kv_args(), kv_options());
  auto client = TcpClient::connect(server.endpoint("tcp"));
  std::string batch;
  constexpr int count = 200;
  for (int i = 0; i < count; ++i) {
    const std::string n = std::to_string(i);
    batch += cat({"SET k", n, " v", n, "\n"});
  }
  for (int i = 0; i < count; ++i) batch += cat({"GET k", std::to_string(i), "\r\n"});
  client.send_all(batch);
  for (int i = 0; i < count; ++i) BOOST_TEST_REQUIRE(client.recv_line() == "OK");
  for (int i = 0; i < count; ++i)
    BOOST_TEST_REQUIRE(client.recv_line() == cat({"v", std::to_string(i)}));
}

BOOST_AUTO_TEST_CASE(a_line_over_the_limit_is_refused_and_the_connection_closed) {
  UpperServer server(kv_args(), kv_options());
  auto client = TcpClient::connect(server.endpoint("tcp"));
  BOOST_TEST(ask(client, "SET before limit") == "OK");
  // Never finished: the server must not wait for its end.
  client.send_all(cat({"SET big ", std::string(line_limit + 10, 'x')}));
  BOOST_TEST(client.recv_line() == "ERR line too long");
  BOOST_TEST(client.closed_by_peer());
  // A line of exactly the limit is fine.
  auto other = TcpClient::connect(server.endpoint("tcp"));
  std::string value(line_limit - std::string_view("SET k ").size(), 'y');
  BOOST_TEST(ask(other, cat({"SET k ", value})) == "OK");
  BOOST_TEST(ask(other, "GET k") == value);
}

BOOST_AUTO_TEST_CASE(a_client_that_leaves_mid_line_leaves_nothing_behind) {
  UpperServer server(kv_args(), kv_options());
  {
    auto leaver = TcpClient::connect(server.endpoint("tcp"));
    BOOST_TEST(ask(leaver, "SET x 1") == "OK");
    leaver.send_all("GET");  // half a line, then gone
  }
  // The next client, maybe from the same address, starts clean.
  auto next = TcpClient::connect(server.endpoint("tcp"));
  BOOST_TEST(ask(next, " x") == "ERR unknown command");
  BOOST_TEST(ask(next, "QUIT") == "BYE");
}

BOOST_AUTO_TEST_CASE(the_store_lives_in_the_worker_process) {
  UpperServer server(kv_args(), kv_options());
  {
    auto writer = TcpClient::connect(server.endpoint("tcp"));
    BOOST_TEST(ask(writer, "SET shared yes") == "OK");
    BOOST_TEST(ask(writer, "QUIT") == "BYE");
  }
  auto reader = TcpClient::connect(server.endpoint("tcp"));
  // One worker process: one store. A process per connection: each its own.
  BOOST_TEST(ask(reader, "GET shared") == (store_per_connection() ? "NIL" : "yes"));
}

BOOST_AUTO_TEST_CASE(each_connection_end_is_counted_by_its_reason) {
  UpperServer server(kv_args(), kv_options());
  {
    auto quitter = TcpClient::connect(server.endpoint("tcp"));
    BOOST_TEST(ask(quitter, "QUIT") == "BYE");
    BOOST_TEST(quitter.closed_by_peer());
  }
  {
    auto talker = TcpClient::connect(server.endpoint("tcp"));
    talker.send_all(std::string(line_limit + 10, 'z'));
    BOOST_TEST(talker.recv_line() == "ERR line too long");
    BOOST_TEST(talker.closed_by_peer());
  }
  {
    auto leaver = TcpClient::connect(server.endpoint("tcp"));
    BOOST_TEST(ask(leaver, "GET a") == "NIL");
    leaver.shutdown_write();
    BOOST_TEST(leaver.closed_by_peer());
  }
  auto counted = server.when([](const prefork::ScoreboardSnapshot& s) {
    return closes(s, CloseReason::handler_closed) + closes(s, CloseReason::limit_exceeded) +
               closes(s, CloseReason::peer_closed) >=
           3;
  });
  BOOST_TEST_REQUIRE(counted.has_value());
  BOOST_TEST(closes(*counted, CloseReason::handler_closed) == 1u);
  BOOST_TEST(closes(*counted, CloseReason::limit_exceeded) == 1u);
  BOOST_TEST(closes(*counted, CloseReason::peer_closed) == 1u);
  BOOST_TEST(errors(*counted, prefork::ErrorKind::oversized_frame) == 1u);
  BOOST_TEST(all_closes(*counted) == 3u);
}
