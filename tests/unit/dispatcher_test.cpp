// --accept pass: the master's dispatcher, on its own. Out of descriptors it
// stops watching the listeners for a moment, and says until when, so that
// the master's poll wakes to accept again then (not up to a second later).
#define BOOST_TEST_MODULE dispatcher
#include <boost/test/unit_test.hpp>

#include <prefork/server.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include <prefork/core/passed_connection.hpp>
#include "dispatcher.hpp"
#include "server_process.hpp"
#include "worker_plan.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

prefork::ServerConfig pass_config() {
  prefork::ServerConfig config;
  config.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")}};
  config.workers = 1;
  config.model = prefork::Model::prefork;
  config.accept = prefork::Accept::pass;
  config.stats_name = prefork::test::unique_stats_name();  // names a lock file pass never makes
  return config;
}

// While it lives, every new descriptor of this process fails with EMFILE:
// the soft RLIMIT_NOFILE is lowered to the lowest free descriptor.
class NoMoreDescriptors {
 public:
  explicit NoMoreDescriptors(int open_fd) {
    BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0, std::strerror(errno));
    const int lowest_free = ::fcntl(open_fd, F_DUPFD_CLOEXEC, 0);
    BOOST_TEST_REQUIRE(lowest_free >= 0, std::strerror(errno));
    ::close(lowest_free);
    rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(lowest_free);
    BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0, std::strerror(errno));
  }
  ~NoMoreDescriptors() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  NoMoreDescriptors(const NoMoreDescriptors&) = delete;
  NoMoreDescriptors& operator=(const NoMoreDescriptors&) = delete;

 private:
  rlimit saved_{};
};

bool watches(const std::vector<pollfd>& fds, int fd) {
  return std::any_of(fds.begin(), fds.end(), [fd](const pollfd& p) { return p.fd == fd; });
}

// A connection passed on the worker's end of the channel, if one is there.
prefork::UniqueFd receive_passed(int channel) {
  prefork::Received received = prefork::receive_passed(channel, MSG_DONTWAIT);
  return received.well_formed() ? std::move(received.fd) : prefork::UniqueFd();
}

}  // namespace

BOOST_AUTO_TEST_CASE(after_emfile_the_dispatcher_reports_when_it_accepts_again) {
  prefork::ServerConfig config = pass_config();
  prefork::WorkerPlan plan(config);
  prefork::Dispatcher dispatcher(plan);
  BOOST_TEST(!dispatcher.next_deadline().has_value(), "a deadline before any pause");

  const prefork::Listener& listener = plan.master_listeners()[0];
  const int listener_fd = listener.fd.get();
  prefork::UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  BOOST_TEST_REQUIRE(client.get() >= 0);
  BOOST_TEST_REQUIRE(::connect(client.get(), listener.local.data(), listener.local.length()) == 0,
                     std::strerror(errno));
  const int worker_channel = plan.worker_channel(0);
  BOOST_TEST_REQUIRE(::send(worker_channel, "r", 1, MSG_NOSIGNAL) == 1);  // the worker is idle

  // The listener is readable, but accept4 fails with EMFILE: a pause.
  std::vector<pollfd> fds{{listener_fd, POLLIN, POLLIN}};
  const auto before = Clock::now();
  {
    NoMoreDescriptors limit(listener_fd);
    dispatcher.serve(fds);
  }
  const auto deadline = dispatcher.next_deadline();
  const auto checked = Clock::now();
  if (deadline) {
    BOOST_TEST((*deadline > before && *deadline <= checked + 100ms),
               "the deadline is not the end of the 100 ms pause");
    std::vector<pollfd> paused;
    dispatcher.add_poll_fds(paused);
    if (Clock::now() < *deadline)
      BOOST_TEST(!watches(paused, listener_fd), "the listener is watched during the pause");
  } else {
    // Only a machine that stalled this test for the whole pause may see none.
    BOOST_TEST((checked - before >= 100ms), "no deadline reported during the pause");
  }
  BOOST_TEST(receive_passed(worker_channel).get() < 0,
             "a connection passed although accept failed");

  // Once the pause is over the listener is watched again and the connection
  // that waited in the backlog goes to the idle worker.
  BOOST_TEST_REQUIRE(
      prefork::test::wait_until([&] { return !dispatcher.next_deadline().has_value(); }, 10'000ms));
  std::vector<pollfd> resumed;
  dispatcher.add_poll_fds(resumed);
  BOOST_TEST_REQUIRE(watches(resumed, listener_fd));
  for (pollfd& p : resumed) p.revents = p.fd == listener_fd ? POLLIN : 0;
  dispatcher.serve(resumed);
  BOOST_TEST(receive_passed(worker_channel).get() >= 0, "the waiting connection was not passed");
}
