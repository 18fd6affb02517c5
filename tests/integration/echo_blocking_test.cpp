// examples/echo_blocking: the lesson's socketserver handlers as blocking
// handlers (handle(Connection&), handle_datagram) in the blocking model
// and start mode under test; refused under the event model.
#define BOOST_TEST_MODULE integration_echo_blocking
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <signal.h>

using namespace prefork::test;

namespace {

UpperServer::Options echo_options() {
  UpperServer::Options options;
  options.program = "echo_blocking";
  return options;
}

std::vector<std::string> echo_args() { return {"--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"}; }

}  // namespace

BOOST_AUTO_TEST_CASE(tcp_messages_come_back_upper_cased_in_a_loop) {
  UpperServer server(echo_args(), echo_options());
  auto client = TcpClient::connect(server.endpoint("tcp"));
  for (const std::string message : {"client33333", "hello", "Mixed 123"}) {
    client.send_all(message);
    BOOST_TEST(client.recv_exactly(message.size()) == ascii_upper(message));
  }
  client.shutdown_write();
  BOOST_TEST(client.closed_by_peer());  // handle() saw recv() == 0 and returned
}

BOOST_AUTO_TEST_CASE(several_clients_are_served_at_once_where_the_model_allows) {
  UpperServer server(echo_args(), echo_options());
  // Each served in turn by the one-at-a-time models, at once by the others:
  // either way every one gets its answers.
  std::vector<TcpClient> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(TcpClient::connect(server.endpoint("tcp")));
  for (int i = 0; i < 3; ++i) {
    clients[i].send_all("client" + std::to_string(i));
    clients[i].shutdown_write();
  }
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(clients[i].recv_exactly(7) == "CLIENT" + std::to_string(i));
}

BOOST_AUTO_TEST_CASE(udp_datagrams_come_back_upper_cased) {
  UpperServer server(echo_args(), echo_options());
  auto client = UdpClient::connect(server.endpoint("udp"));
  BOOST_TEST(client.request("client444444") == "CLIENT444444");
  BOOST_TEST(client.request("client1111") == "CLIENT1111");
}

BOOST_AUTO_TEST_CASE(turns_are_counted_as_requests) {
  UpperServer server(echo_args(), echo_options());
  {
    auto client = TcpClient::connect(server.endpoint("tcp"));
    for (int i = 0; i < 3; ++i) {
      client.send_all("abc");
      BOOST_TEST(client.recv_exactly(3) == "ABC");
    }
  }
  BOOST_TEST(server.requests_when_at_least(3) == 3u);
}

BOOST_AUTO_TEST_CASE(an_idle_connection_ends_on_a_graceful_stop) {
  UpperServer server(echo_args(), echo_options());
  auto client = TcpClient::connect(server.endpoint("tcp"));
  client.send_all("x");
  BOOST_TEST(client.recv_exactly(1) == "X");
  BOOST_TEST(::kill(server.pid(), SIGTERM) == 0);
  BOOST_TEST(client.closed_by_peer(10'000ms));
  BOOST_TEST(status_or_running(server.process().wait_exit(15'000ms)) == 0);
}

// Not a blocking model: a usage error, before anything is served.
BOOST_AUTO_TEST_CASE(the_event_model_refuses_a_blocking_handler) {
  ShmGuard shm(unique_stats_name());
  ServerProcess server(bin_path("echo_blocking"),
                       {"--start", start_mode(), "--stats", shm.name(), "--allow-root", "--model",
                        "event", "--tcp", "127.0.0.1:0"});
  BOOST_TEST(status_or_running(server.wait_exit(15'000ms)) == 2);
  BOOST_TEST(server.stderr_text().find("needs a blocking model") != std::string::npos,
             server.stderr_text());
}
