#define BOOST_TEST_MODULE address
#include <boost/test/unit_test.hpp>

#include <prefork/address.hpp>
#include <prefork/listener.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <stdexcept>

using prefork::Address;

BOOST_AUTO_TEST_CASE(ipv4_round_trip) {
  Address a = Address::parse("127.0.0.1:8080");
  BOOST_TEST(a.family() == AF_INET);
  BOOST_TEST(a.port() == 8080);
  BOOST_TEST(a.to_string() == "127.0.0.1:8080");
}

BOOST_AUTO_TEST_CASE(ipv6_in_brackets) {
  Address a = Address::parse("[::1]:0");
  BOOST_TEST(a.family() == AF_INET6);
  BOOST_TEST(a.port() == 0);
  BOOST_TEST(a.to_string() == "[::1]:0");
}

BOOST_AUTO_TEST_CASE(star_means_any_ipv4) {
  BOOST_TEST(Address::parse("*:80").to_string() == "0.0.0.0:80");
}

// Names go through the system's resolver; a bare chroot may have no
// /etc/hosts, and then there is nothing for us to check.
bool system_resolves_localhost() {
  addrinfo* result = nullptr;
  if (::getaddrinfo("localhost", "9000", nullptr, &result) != 0) return false;
  ::freeaddrinfo(result);
  return true;
}

BOOST_AUTO_TEST_CASE(localhost_resolves,
                     *boost::unit_test::precondition([](boost::unit_test::test_unit_id) {
                       return system_resolves_localhost();
                     })) {
  Address a = Address::parse("localhost:9000");
  BOOST_TEST(a.port() == 9000);
  BOOST_TEST((a.family() == AF_INET || a.family() == AF_INET6));
}

BOOST_AUTO_TEST_CASE(bad_addresses_are_refused_with_the_text) {
  for (const char* text : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                           "127.0.0.1:80x", ":80", "::1:80", "[::1]", "no.such.host.invalid:80"}) {
    try {
      Address::parse(text);
      BOOST_ERROR("accepted " << text);
    } catch (const std::invalid_argument& e) {
      BOOST_TEST(std::string(e.what()).find(text) != std::string::npos, e.what());
    }
  }
}

BOOST_AUTO_TEST_CASE(protocol_names) {
  using prefork::Protocol;
  BOOST_TEST((prefork::protocol_from_name("tcp") == Protocol::stream));
  BOOST_TEST((prefork::protocol_from_name("framed") == Protocol::framed));
  BOOST_TEST((prefork::protocol_from_name("udp") == Protocol::datagram));
  BOOST_TEST(!prefork::protocol_from_name("sctp"));
  BOOST_TEST(prefork::protocol_name(Protocol::framed) == "framed");
}

BOOST_AUTO_TEST_CASE(port_zero_binds_a_real_port) {
  std::vector<prefork::ListenerSpec> specs{
      {prefork::Protocol::stream, Address::parse("127.0.0.1:0")},
      {prefork::Protocol::datagram, Address::parse("[::1]:0")}};
  auto listeners = prefork::open_listeners(specs, {.backlog = 16});
  BOOST_TEST_REQUIRE(listeners.size() == 2u);
  BOOST_TEST(listeners[0].local.port() != 0);
  BOOST_TEST(listeners[1].local.port() != 0);
  BOOST_TEST(listeners[1].local.to_string().rfind("[::1]:", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(bind_failure_names_address_and_error) {
  std::vector<prefork::ListenerSpec> specs{
      {prefork::Protocol::stream, Address::parse("127.0.0.1:0")}};
  auto first = prefork::open_listeners(specs, {.backlog = 16});
  std::vector<prefork::ListenerSpec> again{{prefork::Protocol::stream, first[0].local}};
  try {
    prefork::open_listeners(again, {.backlog = 16});
    BOOST_ERROR("second bind succeeded");
  } catch (const std::exception& e) {
    std::string what = e.what();
    BOOST_TEST(what.find(first[0].local.to_string()) != std::string::npos, what);
    BOOST_TEST(what.find("Address already in use") != std::string::npos, what);
  }
}
