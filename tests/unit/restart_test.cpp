// The master's restart policy: the wait before restarting a slot that keeps
// dying at start, and the limit on such deaths, for any value an embedder
// can put in ServerConfig.
#define BOOST_TEST_MODULE restart
#include <boost/test/unit_test.hpp>

#include <prefork/server.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>

#include "master.hpp"
#include "server_process.hpp"

using namespace std::chrono_literals;
using namespace prefork::test;

BOOST_AUTO_TEST_CASE(restart_delay_doubles_from_100_ms_up_to_5_s) {
  BOOST_TEST(prefork::restart_delay(0).count() == 0);
  BOOST_TEST(prefork::restart_delay(1).count() == 100);
  BOOST_TEST(prefork::restart_delay(2).count() == 200);
  BOOST_TEST(prefork::restart_delay(3).count() == 400);
  BOOST_TEST(prefork::restart_delay(7).count() == 5'000);
}

// Any count of deaths in a row: never negative, never above the cap, never
// shorter than for fewer deaths (a shift by the count overflowed past 31).
BOOST_AUTO_TEST_CASE(restart_delay_is_bounded_and_monotonic_for_any_count) {
  auto previous = prefork::restart_delay(0);
  for (unsigned deaths = 1; deaths <= 200; ++deaths) {
    const auto delay = prefork::restart_delay(deaths);
    BOOST_TEST_CONTEXT("after " << deaths << " deaths") {
      BOOST_TEST(delay.count() >= previous.count());
      BOOST_TEST(delay.count() <= 5'000);
    }
    previous = delay;
  }
  for (unsigned deaths : {1000u, UINT_MAX / 2, UINT_MAX - 1, UINT_MAX})
    BOOST_TEST(prefork::restart_delay(deaths).count() == 5'000, "after " << deaths << " deaths");
}

namespace {

struct Quiet final : prefork::Handler {};

// serve(config) in a child process (it would run a master); its exit status,
// or -1 if it still runs after the timeout (then it is stopped and reaped).
int serve_in_child(const prefork::ServerConfig& config) {
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  BOOST_TEST_REQUIRE(child >= 0, "fork failed");
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    Quiet handler;
    ::_exit(prefork::serve(config, handler));
  }
  int status = 0;
  const bool exited =
      wait_until([&] { return ::waitpid(child, &status, WNOHANG) == child; }, 10'000ms);
  if (!exited) {
    // A master that did not refuse the config: a graceful stop removes its
    // scoreboard and reaps its workers; SIGKILL if it does not end.
    ::kill(child, SIGTERM);
    if (!wait_until([&] { return ::waitpid(child, &status, WNOHANG) == child; }, 10'000ms)) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
    }
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

// 0 would make the master give up at the first exit of any worker, even a
// clean recycle: serve() refuses it as a usage error, before it binds or
// starts anything.
BOOST_AUTO_TEST_CASE(serve_refuses_zero_max_start_failures) {
  prefork::ServerConfig config;
  config.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")}};
  config.workers = 1;
  config.stats_name = unique_stats_name();
  ShmGuard shm(config.stats_name);
  config.max_start_failures = 0;
  BOOST_TEST(serve_in_child(config) == prefork::exit_usage);
  BOOST_TEST(!shm_exists(config.stats_name));
}
