// The --metrics endpoint under abuse (issue 10): it runs on a thread of its
// own, so a slowloris does not starve normal scrapes, hundreds of
// concurrent scrapes are all answered, and the master goes on supervising
// (a killed worker is replaced) while scrapes are slow and many.
#define BOOST_TEST_MODULE integration_metrics
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <prefork/core/scoreboard_layout.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

using namespace prefork::test;

namespace {

// The soft descriptor limit raised to the hard one (the server inherits
// it): how many this process may open.
rlim_t raise_descriptor_limit() {
  rlimit limit{};
  BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0, std::strerror(errno));
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0, std::strerror(errno));
  return limit.rlim_cur;
}

// A whole HTTP response: the status line is 200 and the body is as long as
// its Content-Length says.
bool complete_200(const std::string& response) {
  if (response.rfind("HTTP/1.1 200 OK\r\n", 0) != 0) return false;
  const std::size_t end = response.find("\r\n\r\n");
  const std::size_t length = response.find("Content-Length: ");
  if (end == std::string::npos || length == std::string::npos || length > end) return false;
  return std::stoul(response.substr(length + 16)) == response.size() - end - 4;
}

// GET /metrics on a connection of its own, each receive bounded by `timeout`.
std::string scrape(const Endpoint& endpoint, Milliseconds timeout) {
  TcpClient client = TcpClient::connect(endpoint, timeout);
  client.send_all("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
  return client.read_to_end().bytes;
}

// Connections that begin a request head and never finish it: the first
// half send nothing after the first line, the others trickle one byte at a
// time (tick()).
struct Slowloris {
  std::vector<TcpClient> clients;
  std::vector<bool> closed;

  Slowloris(const Endpoint& endpoint, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      clients.push_back(TcpClient::connect(endpoint));
      clients.back().send_all("GET /metrics HTTP/1.1\r\nX-Slow: ");
    }
    closed.assign(count, false);
  }
  bool trickles(std::size_t i) const { return i % 2 == 1; }

  // One byte more on each trickling connection still open; notes the
  // connections the server closed. Throws if the server answered one.
  void tick() {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      if (closed[i]) continue;
      pollfd entry{clients[i].fd(), POLLIN, 0};
      if (::poll(&entry, 1, 0) == 1) {
        char byte;
        const ssize_t n = ::recv(clients[i].fd(), &byte, 1, MSG_DONTWAIT);
        if (n > 0) throw std::runtime_error("the server answered a request it never got whole");
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed[i] = true;
        continue;
      }
      if (trickles(i) && ::send(clients[i].fd(), "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
          errno != EAGAIN)
        closed[i] = true;
    }
  }
  std::size_t open() const {
    return static_cast<std::size_t>(std::count(closed.begin(), closed.end(), false));
  }
};

// The scoreboard header's sequence left odd, as a master that died while
// folding a slot in leaves it: every snapshot spins up to its timeout (1 s).
class StuckHeader {
 public:
  explicit StuckHeader(const std::string& stats_name) {
    fd_ = ::open(shm_path(stats_name).c_str(), O_RDWR | O_CLOEXEC);
    BOOST_TEST_REQUIRE(fd_ >= 0, std::strerror(errno));
    struct stat st {};
    BOOST_TEST_REQUIRE(::fstat(fd_, &st) == 0, std::strerror(errno));
    size_ = static_cast<std::size_t>(st.st_size);
    base_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    BOOST_TEST_REQUIRE(base_ != MAP_FAILED, std::strerror(errno));
    header().sequence.fetch_add(1);
  }
  ~StuckHeader() {
    header().sequence.fetch_add(1);
    ::munmap(base_, size_);
    ::close(fd_);
  }
  prefork::Header& header() { return *static_cast<prefork::Header*>(base_); }
  const prefork::Slot& slot(unsigned i) {
    return reinterpret_cast<const prefork::Slot*>(static_cast<char*>(base_) +
                                                  sizeof(prefork::Header))[i];
  }

 private:
  int fd_ = -1;
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_slowloris_does_not_starve_scrapes_and_is_dropped_at_its_header_deadline) {
  raise_descriptor_limit();
  UpperServer server({"--framed", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
  const Endpoint metrics = metrics_endpoint(server, 1);
  Slowloris slow(metrics, 200);
  slow.tick();
  BOOST_TEST(slow.open() == 200u);

  // Normal scrapes meanwhile: each answered whole, within a generous bound.
  for (int i = 0; i < 5; ++i) {
    const std::string response = scrape(metrics, 10'000ms);
    BOOST_TEST(complete_200(response), response.substr(0, 200));
    slow.tick();
  }
  // The slow ones are closed at their header deadline (5 s), trickling or
  // not: a byte now and then does not buy time.
  const bool all_dropped = wait_until(
      [&] {
        slow.tick();
        return slow.open() == 0;
      },
      state_timeout + 10'000ms, 500ms);
  BOOST_TEST(all_dropped, slow.open() << " slow connections still open");
  BOOST_TEST(complete_200(scrape(metrics, 10'000ms)));
}

BOOST_AUTO_TEST_CASE(hundreds_of_concurrent_scrapes_are_all_answered) {
  const rlim_t limit = raise_descriptor_limit();
  const std::size_t count = std::min<std::size_t>(500, limit > 200 ? limit - 100 : 100);
  UpperServer server({"--framed", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
  const Endpoint metrics = metrics_endpoint(server, 1);
  // All connected before any request goes: the backlog and the thread's
  // clients hold them all.
  std::vector<TcpClient> clients;
  for (std::size_t i = 0; i < count; ++i) clients.push_back(TcpClient::connect(metrics));
  for (TcpClient& client : clients) client.send_all("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");

  std::vector<std::string> responses(count);
  std::vector<bool> done(count, false);
  std::size_t finished = 0;
  const auto deadline = Clock::now() + 60'000ms;
  while (finished < count && Clock::now() < deadline) {
    std::vector<pollfd> entries;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < count; ++i)
      if (!done[i]) {
        entries.push_back(pollfd{clients[i].fd(), POLLIN, 0});
        which.push_back(i);
      }
    if (::poll(entries.data(), entries.size(), 1000) <= 0) continue;
    for (std::size_t k = 0; k < entries.size(); ++k) {
      if (entries[k].revents == 0) continue;
      const std::size_t i = which[k];
      char buffer[65536];
      const ssize_t n = ::recv(clients[i].fd(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        responses[i].append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        done[i] = true;
        ++finished;
      }
    }
  }
  BOOST_TEST(finished == count, finished << " of " << count << " scrapes ended in time");
  std::size_t answered = 0;
  for (const std::string& response : responses) answered += complete_200(response) ? 1 : 0;
  BOOST_TEST(answered == count);
}

// Scrapes that take the endpoint a second each (a stuck segment), many at
// once, with a slowloris beside them: the master still replaces a killed
// worker as it always does, and the new worker holds none of the
// endpoint's connections.
BOOST_AUTO_TEST_CASE(the_master_replaces_a_killed_worker_while_the_endpoint_is_flooded) {
  raise_descriptor_limit();
  UpperServer server({"--framed", "127.0.0.1:0", "--metrics", "127.0.0.1:0"});
  const Endpoint metrics = metrics_endpoint(server, 1);
  const prefork::SlotSnapshot victim = server.ready_snapshot().slots.front();

  StuckHeader stuck(server.stats_name());
  std::atomic<bool> flooding{true};
  std::atomic<std::size_t> scrapes{0};
  std::vector<std::thread> scrapers;
  for (int i = 0; i < 24; ++i)
    scrapers.emplace_back([&] {
      while (flooding.load()) {
        try {
          scrape(metrics, 5'000ms);
          ++scrapes;
        } catch (const std::exception&) {
        }
      }
    });
  // The flood is on: some scrapes (503, the segment stays mid-update) end.
  BOOST_TEST(wait_until([&] { return scrapes.load() >= 8; }, state_timeout));

  // Open while the replacement is forked: it must not keep them (its
  // close_in_child), or the server's close at their deadline would not end
  // them.
  Slowloris slow(metrics, 30);
  // Answered once accepted, and so accepted after all of them (one queue).
  BOOST_TEST(!scrape(metrics, 10'000ms).empty());
  BOOST_TEST_REQUIRE(::kill(victim.pid, SIGKILL) == 0, std::strerror(errno));
  // Read from the slots themselves: a snapshot would spin on the header.
  const bool replaced = wait_until(
      [&] {
        unsigned ready = 0;
        for (unsigned i = 0; i < stuck.header().slots_in_use.load(); ++i) {
          const prefork::Slot& slot = stuck.slot(i);
          const pid_t pid = slot.pid.load();
          if (pid > 0 && pid != victim.pid && slot.state.load() == prefork::WorkerState::ready)
            ++ready;
        }
        return ready == 2;
      },
      state_timeout);
  flooding.store(false);
  for (std::thread& scraper : scrapers) scraper.join();
  BOOST_TEST(replaced, "worker " << victim.pid << " was not replaced during the flood");
  BOOST_TEST(wait_exited(victim.pid, state_timeout));
  const bool all_dropped = wait_until(
      [&] {
        slow.tick();
        return slow.open() == 0;
      },
      state_timeout + 10'000ms, 500ms);
  BOOST_TEST(all_dropped, slow.open() << " slow connections still open");
}
