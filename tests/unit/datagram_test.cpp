// The worker's UDP service on its own: a datagram is one request, replies go
// back to the sender, and a datagram larger than the buffer is counted as an
// error and never handed to the handler as if it were whole.
#define BOOST_TEST_MODULE datagram
#include <boost/test/unit_test.hpp>

#include <prefork/listener.hpp>

#include <sys/socket.h>

#include <string>
#include <vector>

#include "datagram.hpp"

namespace {

struct Recorder final : prefork::Handler {
  std::vector<std::string> seen;
  void handle_datagram(const prefork::Request&, std::string_view datagram,
                       prefork::Reply& reply) override {
    seen.emplace_back(datagram);
    reply.send("re:" + std::string(datagram));
    reply.send("second");
  }
};

struct Loopback {
  std::vector<prefork::Listener> server = prefork::open_listeners(
      {{prefork::Protocol::datagram, prefork::Address::parse("127.0.0.1:0")}});
  prefork::UniqueFd client{::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)};

  void send(const std::string& bytes) {
    BOOST_REQUIRE(::sendto(client.get(), bytes.data(), bytes.size(), 0, server[0].local.data(),
                           server[0].local.length()) == static_cast<ssize_t>(bytes.size()));
  }
  std::string receive() {
    char buffer[256];
    ssize_t n = ::recv(client.get(), buffer, sizeof buffer, 0);
    return n < 0 ? "<none>" : std::string(buffer, static_cast<std::size_t>(n));
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(each_datagram_is_one_request_and_each_reply_one_datagram) {
  Loopback net;
  Recorder handler;
  prefork::Slot slot;
  prefork::SlotWriter stats(slot);
  prefork::DatagramService service(net.server[0].fd.get(), 0, handler, stats, 0);

  net.send("one");
  net.send("two");
  char buffer[64];
  service.on_readable(buffer, sizeof buffer, 64);

  BOOST_TEST(handler.seen == (std::vector<std::string>{"one", "two"}));
  BOOST_TEST(net.receive() == "re:one");
  BOOST_TEST(net.receive() == "second");
  BOOST_TEST(net.receive() == "re:two");
  BOOST_TEST(slot.counters.requests.load() == 2u);
  BOOST_TEST(slot.counters.bytes_in.load() == 6u);
  BOOST_TEST(slot.counters.bytes_out.load() == 2 * (6u + 6u));
  BOOST_TEST(slot.counters.errors.load() == 0u);
}

BOOST_AUTO_TEST_CASE(truncated_datagram_is_an_error_not_a_request) {
  Loopback net;
  Recorder handler;
  prefork::Slot slot;
  prefork::SlotWriter stats(slot);
  prefork::DatagramService service(net.server[0].fd.get(), 0, handler, stats, 0);

  net.send(std::string(20, 'x'));  // larger than the 8-byte buffer below
  net.send("fits");
  char buffer[8];
  service.on_readable(buffer, sizeof buffer, 64);

  BOOST_TEST(handler.seen == (std::vector<std::string>{"fits"}));
  BOOST_TEST(slot.counters.errors.load() == 1u);
  BOOST_TEST(slot.counters.requests.load() == 1u);
  BOOST_TEST(net.receive() == "re:fits");
}

BOOST_AUTO_TEST_CASE(a_datagram_over_max_message_is_dropped_as_truncated) {
  Loopback net;
  Recorder handler;
  prefork::Slot slot;
  prefork::SlotWriter stats(slot);
  prefork::DatagramService service(net.server[0].fd.get(), 0, handler, stats, 0, 4);

  net.send("fives");  // one byte over --max-message 4, though the buffer has room
  net.send("four");
  char buffer[64];
  service.on_readable(buffer, sizeof buffer, 64);

  BOOST_TEST(handler.seen == (std::vector<std::string>{"four"}));
  BOOST_TEST(slot.counters.errors.load() == 1u);
  BOOST_TEST(net.receive() == "re:four");
}

BOOST_AUTO_TEST_CASE(budget_bounds_one_turn) {
  Loopback net;
  Recorder handler;
  prefork::Slot slot;
  prefork::SlotWriter stats(slot);
  prefork::DatagramService service(net.server[0].fd.get(), 0, handler, stats, 0);
  for (int i = 0; i < 5; ++i) net.send(std::to_string(i));
  char buffer[64];
  service.on_readable(buffer, sizeof buffer, 3);
  BOOST_TEST(handler.seen.size() == 3u);
  service.on_readable(buffer, sizeof buffer, 3);
  BOOST_TEST(handler.seen.size() == 5u);
}
