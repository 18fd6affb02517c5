// --trace's pieces: the time since the master's start, the words for a
// waitpid() status (from real children), and one log line per event only
// while the trace is on.
#define BOOST_TEST_MODULE trace
#include <boost/test/unit_test.hpp>

#include <prefork/core/trace.hpp>
#include <prefork/log.hpp>
#include <prefork/scoreboard.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "files.hpp"
#include "pattern.hpp"

using prefork::test::Pattern;

namespace {

// The status waitpid() reports for a child that runs `body` (which must
// end it), after `signal` is sent to it (0: none).
int status_of_child(void (*body)(), int signal = 0) {
  const pid_t pid = ::fork();
  BOOST_TEST_REQUIRE(pid >= 0);
  if (pid == 0) {
    body();
    ::_exit(99);  // never back into the test runner
  }
  if (signal != 0) BOOST_TEST_REQUIRE(::kill(pid, signal) == 0);
  int status = 0;
  BOOST_TEST_REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

// The log in a file of the test's own; the trace off again afterwards.
struct TracedLog {
  TracedLog() {
    path = "/tmp/prefork_unit_trace_" + std::to_string(::getpid()) + ".log";
    std::remove(path.c_str());
    prefork::configure_log({.file = path});
  }
  ~TracedLog() {
    prefork::configure_trace(std::nullopt);
    prefork::configure_log({});
    std::remove(path.c_str());
  }
  std::string text() const { return prefork::test::file_text(path); }
  std::string path;
};

}  // namespace

BOOST_AUTO_TEST_CASE(the_time_is_milliseconds_with_three_decimals) {
  BOOST_TEST(prefork::trace_time_text(0) == "+0.000ms");
  BOOST_TEST(prefork::trace_time_text(999) == "+0.000ms");
  BOOST_TEST(prefork::trace_time_text(12'345'678) == "+12.345ms");
  BOOST_TEST(prefork::trace_time_text(3'600'000'000'000) == "+3600000.000ms");
  BOOST_TEST(prefork::trace_time_text(-2'000) == "-0.002ms");
}

BOOST_AUTO_TEST_CASE(an_exit_status_is_named_as_waitpid_gave_it) {
  BOOST_TEST(prefork::wait_status_text(status_of_child([] { ::_exit(0); })) ==
             "exited with status 0");
  BOOST_TEST(prefork::wait_status_text(status_of_child([] { ::_exit(3); })) ==
             "exited with status 3");
}

BOOST_AUTO_TEST_CASE(a_signal_is_named_by_number_and_name) {
  BOOST_TEST(prefork::wait_status_text(status_of_child([] { ::pause(); }, SIGKILL)) ==
             "killed by signal 9 (SIGKILL)");
  BOOST_TEST(prefork::wait_status_text(status_of_child([] { ::pause(); }, SIGTERM)) ==
             "killed by signal 15 (SIGTERM)");
  // A core dump depends on RLIMIT_CORE: the status is made by hand.
  BOOST_TEST(prefork::wait_status_text(SIGSEGV | 0x80) ==
             "killed by signal 11 (SIGSEGV), core dumped");
  BOOST_TEST(prefork::signal_name(SIGTERM) == "SIGTERM");
  BOOST_TEST(prefork::signal_name(999) == "signal 999");
}

BOOST_AUTO_TEST_CASE(an_event_is_one_line_while_on_and_none_while_off) {
  TracedLog log;
  prefork::configure_trace(std::nullopt);
  BOOST_TEST(!prefork::trace_enabled());
  prefork::trace("fork: slot %u -> pid %d", 0u, 4242);
  BOOST_TEST(log.text().empty(), log.text());

  prefork::configure_trace(prefork::monotonic_ns());
  BOOST_TEST(prefork::trace_enabled());
  BOOST_TEST_REQUIRE(prefork::trace_origin().has_value());
  prefork::trace("fork: slot %u -> pid %d", 0u, 4242);
  const std::string pid = std::to_string(::getpid());
  BOOST_TEST(Pattern(R"(\S+ info prefork\[)" + pid +
                     R"(\] master: trace \+\d+\.\d{3}ms fork: slot 0 -> pid 4242\n)")
                 .matches(log.text()),
             log.text());
}
