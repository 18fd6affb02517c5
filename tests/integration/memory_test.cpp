// A worker's memory for connections, read from its scoreboard slot
// (rss_bytes, written with the heartbeat): given back after a burst of
// large messages while the connections stay open, and bounded by
// connections x limits against clients that stall mid-message or never
// read their replies (README "Memory"). One worker, so that one slot holds
// every connection; the model and start mode under test.
//
// The bounds are generous (a quarter of the burst, the documented limits):
// the tests assert where memory goes, never how fast. They rely on glibc's
// allocator giving freed blocks back to the kernel; AddressSanitizer keeps
// freed memory in quarantine and ThreadSanitizer has an allocator of its
// own, so under either the RSS assertions are skipped (the clients still
// run: the server must survive them).
#define BOOST_TEST_MODULE integration_memory
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/frame_codec.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <thread>

using namespace prefork::test;
using namespace std::string_literals;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif

// Under a sanitizer, fewer clients: nothing is measured, and the server
// runs 5-15 times slower.
constexpr std::size_t clients = sanitized ? 8 : 64;

constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;
// The event model's back-pressure limit (workers/src/connection.hpp).
constexpr std::size_t watermark = 1 * MiB;
// Generous: reached only when memory is not given back.
constexpr Milliseconds settle_timeout = 20'000ms;

UpperServer start(std::size_t max_message) {
  // No timeouts: the hostile clients must stay for the measurement.
  UpperServer::Options options;
  options.workers = 1;
  return UpperServer({"--framed", "127.0.0.1:0", "--max-message", std::to_string(max_message),
                      "--idle-timeout", "0", "--read-timeout", "0", "--write-timeout", "0"},
                     options);
}

// The one worker's resident memory as its slot said at a heartbeat after
// `since_ns` (realtime, as the slot's heartbeat_ns); 0 before that.
std::uint64_t worker_rss(const prefork::ScoreboardSnapshot& s, std::uint64_t since_ns) {
  for (const auto& slot : s.slots)
    if (slot.pid > 0 && slot.state == prefork::WorkerState::ready && slot.heartbeat_ns > since_ns)
      return slot.rss_bytes;
  return 0;
}

std::uint64_t realtime_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string frame(std::size_t size) { return prefork::encode_frame(std::string(size, 'm')); }

// Until the worker's RSS, as a heartbeat after the call said it (at most
// once a second), is at most `bound`; the last value seen (0: no heartbeat
// came). A small request on `ping` keeps a blocking model's heartbeat
// going: its threads beat when they wake for a client, and an idle one
// sleeps in accept().
std::uint64_t rss_when_at_most(UpperServer& server, std::uint64_t bound, TcpClient& ping) {
  const std::uint64_t since = realtime_ns();
  std::uint64_t rss = 0;
  const auto deadline = std::chrono::steady_clock::now() + settle_timeout;
  do {
    BOOST_REQUIRE(ping.request_frame("ping") == "PING");
    if (std::uint64_t now = worker_rss(server.snapshot(), since); now != 0) rss = now;
    // Under a sanitizer, any fresh value: the bound is not asserted.
    if (rss != 0 && (sanitized || rss <= bound)) return rss;
    std::this_thread::sleep_for(200ms);  // the poll's pace; the deadline bounds it
  } while (std::chrono::steady_clock::now() < deadline);
  return rss;
}

// The baseline: the worker's RSS once it has served a first request (its
// scratch buffer touched), at a heartbeat after that.
std::uint64_t baseline(UpperServer& server, TcpClient& ping) {
  BOOST_REQUIRE(ping.request_frame("warm") == "WARM");
  const std::uint64_t rss = rss_when_at_most(server, ~std::uint64_t{0}, ping);
  BOOST_REQUIRE_MESSAGE(rss != 0, "the worker's heartbeat never came");
  return rss;
}

// Sends frames of `size` until the server takes no more for a while (it
// stopped reading: back-pressure); never reads a reply.
void send_until_pushed_back(TcpClient& client, std::size_t size) {
  const TcpClient::Flood end = client.send_without_reading(frame(size), 500ms, settle_timeout);
  BOOST_REQUIRE_MESSAGE(end != TcpClient::Flood::closed,
                        "the server closed a client that only stopped reading");
  BOOST_REQUIRE_MESSAGE(end == TcpClient::Flood::pushed_back, "the server never pushed back");
}

}  // namespace

// The finding: 200 connections that each sent one 1 MiB frame and
// then sat idle kept about 2 MiB of worker RSS each (the input buffer and
// the reply's, never shrunk).
BOOST_AUTO_TEST_CASE(memory_is_given_back_after_a_burst_while_connections_stay_open) {
  constexpr std::size_t connections = clients, size = 1'000'000;
  UpperServer server = start(1 * MiB);
  auto ping = TcpClient::connect(server.endpoint("framed"));
  const std::uint64_t before = baseline(server, ping);

  std::vector<TcpClient> clients;
  const std::string big = std::string(size, 'b');
  for (std::size_t i = 0; i < connections; ++i) {
    clients.push_back(TcpClient::connect(server.endpoint("framed")));
    BOOST_REQUIRE(clients.back().request_frame(big).size() == size);
  }
  // All open and idle now: a quarter of a frame each at most.
  const std::uint64_t bound = before + connections * (size / 4);
  const std::uint64_t idle = rss_when_at_most(server, bound, ping);
  BOOST_TEST_MESSAGE("worker RSS: " << before << " before, " << idle << " idle after the burst");
  BOOST_TEST_REQUIRE(idle != 0, "the worker's heartbeat never came");
  if (!sanitized) BOOST_TEST(idle <= bound);
  // Still served.
  BOOST_TEST(clients.front().request_frame("after") == "AFTER");
}

// The hostile half: frames stalled one byte short of their end, and
// clients that never read their replies. Each connection holds at most a
// message at the limit plus one read of input and the back-pressure limit
// plus one reply of output (README "Memory"); once they are gone, the
// worker is back near its baseline.
BOOST_AUTO_TEST_CASE(memory_is_bounded_by_the_limits_against_hostile_clients) {
  constexpr std::size_t each = clients / 2;
  constexpr std::size_t limit = 256 * KiB;
  UpperServer server = start(limit);
  auto ping = TcpClient::connect(server.endpoint("framed"));
  const std::uint64_t before = baseline(server, ping);

  std::vector<TcpClient> hostile;
  const std::string stalled = frame(limit).substr(0, 4 + limit - 1);
  for (std::size_t i = 0; i < each; ++i) {
    hostile.push_back(TcpClient::connect(server.endpoint("framed")));
    hostile.back().send_all(stalled);
  }
  for (std::size_t i = 0; i < each; ++i) {
    hostile.push_back(TcpClient::connect(server.endpoint("framed")));
    send_until_pushed_back(hostile.back(), limit);
  }
  // Per connection: input up to a message and one 64 KiB read; output up
  // to the watermark and one reply (a message's size here).
  const std::uint64_t per_connection = (limit + 64 * KiB) + (watermark + limit + 4);
  const std::uint64_t bound = before + hostile.size() * per_connection;
  const std::uint64_t held = rss_when_at_most(server, bound, ping);
  BOOST_TEST_MESSAGE("worker RSS: " << before << " before, " << held << " with " << hostile.size()
                                    << " hostile connections (bound " << bound << ")");
  BOOST_TEST_REQUIRE(held != 0, "the worker's heartbeat never came");
  if (!sanitized) BOOST_TEST(held <= bound);

  hostile.clear();  // closed: everything they held is given back
  const std::uint64_t gone_bound = before + 4 * MiB;
  const std::uint64_t after = rss_when_at_most(server, gone_bound, ping);
  BOOST_TEST_MESSAGE("worker RSS once they closed: " << after);
  BOOST_TEST_REQUIRE(after != 0, "the worker's heartbeat never came");
  if (!sanitized) BOOST_TEST(after <= gone_bound);
  BOOST_TEST(ping.request_frame("still") == "STILL");
}
