// upper_server over its three listener kinds, IPv4 and IPv6: replies are
// right, frames survive any split, and the scoreboard counts every request
// exactly once.
#define BOOST_TEST_MODULE integration_protocols
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/frame_codec.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

using namespace prefork::test;

namespace {

const std::vector<std::string> messages{"hello", "Mixed Case 123", "a", "already UPPER", "x-y_z"};

// All six listeners: every protocol on 127.0.0.1 and on [::1].
std::vector<std::string> all_listeners() {
  return {"--tcp", "127.0.0.1:0", "--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0",
          "--tcp", "[::1]:0",     "--framed", "[::1]:0",     "--udp", "[::1]:0"};
}

}  // namespace

BOOST_AUTO_TEST_CASE(listening_lines_name_every_listener_with_its_port) {
  UpperServer server(all_listeners());
  BOOST_TEST_REQUIRE(server.endpoints().size() == 6u);
  for (const auto& e : server.endpoints()) {
    BOOST_TEST_CONTEXT(e.protocol << " " << e.host_port()) {
      BOOST_TEST(e.port != 0);  // the bound port, not the 0 asked for
      BOOST_TEST((e.host == "127.0.0.1" || e.host == "::1"));
      // IPv6 written with brackets, as HOST:PORT parsers expect it.
      BOOST_TEST(server.process().stdout_text().find("listening " + e.protocol + " " +
                                                     e.host_port() + "\n") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(raw_tcp_chunks_come_back_upper_cased) {
  UpperServer server(all_listeners());
  for (bool ipv6 : {false, true}) {
    auto client = TcpClient::connect(server.endpoint("tcp", ipv6));
    // One chunk at a time, each answered before the next: one chunk is then
    // exactly one request.
    for (const auto& m : messages) {
      client.send_all(m);
      BOOST_TEST(client.recv_exactly(m.size()) == ascii_upper(m));
    }
  }
  BOOST_TEST(server.requests_when_at_least(2 * messages.size()) == 2 * messages.size());
}

BOOST_AUTO_TEST_CASE(frames_come_back_upper_cased) {
  UpperServer server(all_listeners());
  for (bool ipv6 : {false, true}) {
    auto client = TcpClient::connect(server.endpoint("framed", ipv6));
    for (const auto& m : messages) BOOST_TEST(client.request_frame(m) == ascii_upper(m));
  }
  BOOST_TEST(server.requests_when_at_least(2 * messages.size()) == 2 * messages.size());
}

BOOST_AUTO_TEST_CASE(datagrams_come_back_upper_cased) {
  UpperServer server(all_listeners());
  for (bool ipv6 : {false, true}) {
    auto client = UdpClient::connect(server.endpoint("udp", ipv6));
    for (const auto& m : messages) BOOST_TEST(client.request(m) == ascii_upper(m));
  }
  BOOST_TEST(server.requests_when_at_least(2 * messages.size()) == 2 * messages.size());
}

BOOST_AUTO_TEST_CASE(frame_split_at_every_byte_is_one_request) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  auto client = TcpClient::connect(server.endpoint("framed"));
  const std::string payload = "split me anywhere";
  const std::string frame = prefork::encode_frame(payload);
  // Every cut point, the header's own bytes included.
  for (std::size_t cut = 1; cut < frame.size(); ++cut) {
    BOOST_TEST_CONTEXT("cut at " << cut) {
      client.send_all(frame.substr(0, cut));
      client.send_all(frame.substr(cut));
      BOOST_TEST(client.recv_frame() == ascii_upper(payload));
    }
  }
  // And one byte per write.
  for (char byte : frame) client.send_all(std::string(1, byte));
  BOOST_TEST(client.recv_frame() == ascii_upper(payload));
  BOOST_TEST(server.requests_when_at_least(frame.size()) == frame.size());
}

BOOST_AUTO_TEST_CASE(many_frames_in_one_write_are_answered_in_order) {
  UpperServer server({"--framed", "[::1]:0"});
  auto client = TcpClient::connect(server.endpoint("framed", true));
  constexpr std::size_t count = 200;
  std::string burst;
  for (std::size_t i = 0; i < count; ++i)
    burst += prefork::encode_frame("frame " + std::to_string(i));
  client.send_all(burst);
  for (std::size_t i = 0; i < count; ++i)
    BOOST_TEST(client.recv_frame() == "FRAME " + std::to_string(i));
  BOOST_TEST(server.requests_when_at_least(count) == count);
}

BOOST_AUTO_TEST_CASE(zero_length_frame_gets_a_zero_length_reply) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  auto client = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(client.request_frame("") == "");
  // The connection is still in step afterwards.
  BOOST_TEST(client.request_frame("after") == "AFTER");
  BOOST_TEST(server.requests_when_at_least(2) == 2u);
}

BOOST_AUTO_TEST_CASE(sixteen_concurrent_clients_get_their_own_replies) {
  UpperServer server(all_listeners());
  constexpr int clients = 16, requests_each = 60;
  // Boost.Test assertions are not thread-safe: threads record, main checks.
  std::mutex mutex;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        // A mix of protocols and families, so several workers and listeners
        // are busy at once; each payload names its client, so a reply that
        // went to the wrong connection shows.
        const char* protocol = c % 4 == 0 ? "tcp" : c % 4 == 1 ? "udp" : "framed";
        const Endpoint& endpoint = server.endpoint(protocol, c % 2 == 1);
        std::optional<TcpClient> tcp;
        std::optional<UdpClient> udp;
        if (std::string_view(protocol) == "udp")
          udp.emplace(UdpClient::connect(endpoint));
        else
          tcp.emplace(TcpClient::connect(endpoint));
        for (int r = 0; r < requests_each; ++r) {
          std::string m = "client " + std::to_string(c) + " request " + std::to_string(r);
          std::string reply;
          if (udp) {
            reply = udp->request(m);
          } else if (std::string_view(protocol) == "tcp") {
            tcp->send_all(m);
            reply = tcp->recv_exactly(m.size());
          } else {
            reply = tcp->request_frame(m);
          }
          if (reply != ascii_upper(m))
            throw std::runtime_error("got \"" + reply + "\" for \"" + m + "\"");
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        failures.push_back("client " + std::to_string(c) + ": " + e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& f : failures) BOOST_ERROR(f);
  BOOST_TEST(server.requests_when_at_least(clients * requests_each) ==
             static_cast<std::uint64_t>(clients * requests_each));
}

BOOST_AUTO_TEST_CASE(oversized_frame_closes_only_its_connection) {
  UpperServer server({"--framed", "127.0.0.1:0", "--max-frame", "1024"});
  // Both open at once. The offender goes first: the models that serve one
  // connection at a time (iterative, prefork) reach the bystander only after.
  auto offender = TcpClient::connect(server.endpoint("framed"));
  auto bystander = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(offender.request_frame("fine") == "FINE");

  // The header alone must be enough to refuse: max-frame + 1.
  char header[prefork::frame_header_size];
  prefork::write_frame_header(1025, header);
  offender.send_all(std::string(header, sizeof header));
  BOOST_TEST(offender.closed_by_peer());

  BOOST_TEST(bystander.request_frame("fine too") == "FINE TOO");
  BOOST_TEST(bystander.request_frame("still here") == "STILL HERE");
  // Exactly max-frame is allowed.
  const std::string largest(1024, 'q');
  BOOST_TEST(bystander.request_frame(largest) == ascii_upper(largest));

  auto counted = server.when([](const auto& s) { return s.totals.errors >= 1; });
  BOOST_TEST_REQUIRE(counted.has_value());
  BOOST_TEST(counted->totals.errors == 1u);
  BOOST_TEST(server.requests_when_at_least(4) == 4u);
}

namespace {

boost::test_tools::assertion_result not_per_connection_processes(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result result(model_under_test() !=
                                             prefork::Model::fork_per_connection);
  result.message() << "each connection's process logs its own first line";
  return result;
}

}  // namespace

// A client can send oversized messages as fast as it connects: each is
// counted, but logged at most once a second per worker process, with the
// count of those not logged.
BOOST_AUTO_TEST_CASE(a_flood_of_oversized_messages_is_logged_once_a_second,
                     *boost::unit_test::precondition(not_per_connection_processes)) {
  UpperServer server({"--framed", "127.0.0.1:0", "--max-frame", "16"});
  const auto began = std::chrono::steady_clock::now();
  constexpr unsigned flood = 40;
  char header[prefork::frame_header_size];
  prefork::write_frame_header(17, header);
  for (unsigned i = 0; i < flood; ++i) {
    auto offender = TcpClient::connect(server.endpoint("framed"));
    offender.send_all(std::string(header, sizeof header));
    BOOST_TEST(offender.closed_by_peer());
  }
  auto counted = server.when([](const auto& s) { return s.totals.errors >= flood; });
  BOOST_TEST_REQUIRE(counted.has_value());
  // A worker counts the error before it logs the line (CI saw the count
  // first, once).
  BOOST_TEST_REQUIRE(logged_when(server, "more since the last such line"),
                     server.process().stderr_text());
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - began)
          .count();
  const std::string log = server.process().stderr_text();
  std::size_t lines = 0;
  for (std::size_t at = 0; (at = log.find("a message over --max-message", at)) != log.npos; ++at)
    ++lines;
  BOOST_TEST(lines >= 1u, log);
  // At most one a second in each of the (two) worker processes.
  BOOST_TEST(lines <= 2u * (static_cast<std::size_t>(seconds) + 1), log);
  BOOST_TEST(log.find("more since the last such line") != log.npos, log);
}

namespace {

std::size_t resident_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

}  // namespace

// A client that sends and never reads must not make the worker buffer its
// replies without bound: past a watermark the worker stops reading from it,
// TCP flow control pushes back, and nothing is lost once the client reads.
BOOST_AUTO_TEST_CASE(slow_reader_is_pushed_back_not_buffered) {
  UpperServer server({"--framed", "127.0.0.1:0"}, {.workers = 1});
  const pid_t worker = worker_pids(server.ready_snapshot()).at(0);
  const std::size_t rss_before = resident_kib(worker);

  auto client = TcpClient::connect(server.endpoint("framed"));
  const std::string payload(64 * 1024, 'q');
  const std::string frame = prefork::encode_frame(payload);
  const int flags = ::fcntl(client.fd(), F_GETFL);
  ::fcntl(client.fd(), F_SETFL, flags | O_NONBLOCK);

  // Send until the kernel refuses more for a whole second (the server has
  // stopped reading), bounded at 256 MiB in case it never does.
  constexpr std::size_t max_frames = 4096;
  std::size_t sent = 0;
  while (sent < max_frames * frame.size()) {
    ssize_t n = ::send(client.fd(), frame.data() + sent % frame.size(),
                       frame.size() - sent % frame.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    BOOST_REQUIRE(errno == EAGAIN);
    pollfd writable{client.fd(), POLLOUT, 0};
    if (::poll(&writable, 1, 1000) == 0) break;
  }
  BOOST_TEST(sent < max_frames * frame.size(), "the server read 256 MiB without being read");
  const std::size_t rss_blocked = resident_kib(worker);
  // The output watermark is 1 MiB; allow for one frame in and out beyond it.
  BOOST_TEST(rss_blocked < rss_before + 8 * 1024,
             "worker RSS grew from " << rss_before << " KiB to " << rss_blocked << " KiB");

  // Finish the last partial frame while reading every reply.
  ::fcntl(client.fd(), F_SETFL, flags);
  const std::size_t frames = (sent + frame.size() - 1) / frame.size();
  std::thread finisher([&] {
    if (sent % frame.size() != 0)
      client.send_all(std::string_view(frame).substr(sent % frame.size()));
  });
  const std::string expected = ascii_upper(payload);
  std::size_t right = 0;
  for (std::size_t i = 0; i < frames; ++i) right += client.recv_frame() == expected;
  finisher.join();
  BOOST_TEST(right == frames);
  BOOST_TEST(server.requests_when_at_least(frames) == frames);
}

// A client that says it is done (shutdown of its sending side) still gets
// its answers, then sees the server close: nothing of the server (a parent
// of a per-connection child, say) may hold the connection open.
BOOST_AUTO_TEST_CASE(half_closed_client_gets_its_replies_then_eof) {
  UpperServer server({"--framed", "127.0.0.1:0", "--tcp", "127.0.0.1:0"});
  auto framed = TcpClient::connect(server.endpoint("framed"));
  framed.send_frame("one");
  framed.send_frame("two");
  framed.shutdown_write();
  BOOST_TEST(framed.recv_frame() == "ONE");
  BOOST_TEST(framed.recv_frame() == "TWO");
  BOOST_TEST(framed.closed_by_peer());

  auto raw = TcpClient::connect(server.endpoint("tcp"));
  raw.send_all("hello");
  raw.shutdown_write();
  BOOST_TEST(raw.recv_exactly(5) == "HELLO");
  BOOST_TEST(raw.closed_by_peer());
  BOOST_TEST(server.requests_when_at_least(3) == 3u);
}
