// upper_server's command line and start-up failures: exit statuses 0, 1, 2
// and messages a person can act on.
#define BOOST_TEST_MODULE integration_command_line
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <sstream>

using namespace prefork::test;

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Runs upper_server to completion in the test's start mode.
struct Run {
  explicit Run(std::vector<std::string> args)
      : shm(unique_stats_name()), process(bin_path("upper_server"), with_mode(std::move(args))) {
    status = process.wait_exit(state_timeout);
  }
  std::vector<std::string> with_mode(std::vector<std::string> args) const {
    std::vector<std::string> all{"--start", start_mode(), "--stats", shm.name()};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }

  ShmGuard shm;
  ServerProcess process;
  std::optional<int> status;
};

}  // namespace

BOOST_AUTO_TEST_CASE(unknown_flag_exits_2_with_usage_on_stderr) {
  Run run({"--no-such-flag", "--framed", "127.0.0.1:0"});
  BOOST_TEST_REQUIRE(run.status.has_value(), run.process.describe());
  BOOST_TEST(*run.status == 2, run.process.describe());
  BOOST_TEST(lower(run.process.stderr_text()).find("usage") != std::string::npos,
             run.process.describe());
  BOOST_TEST(run.process.stdout_text().find("listening") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_flag_values_exit_2) {
  const std::vector<std::vector<std::string>> cases{
      {"--workers", "many", "--framed", "127.0.0.1:0"},
      {"--start", "sideways", "--framed", "127.0.0.1:0"},
      {"--framed", "not-an-address"},
      {"--max-frame", "-5", "--framed", "127.0.0.1:0"},
      {"--framed"},  // missing value
      {"--metrics", "nowhere", "--framed", "127.0.0.1:0"},
      {"--worker-stats", "maybe", "--framed", "127.0.0.1:0"},
  };
  for (const auto& args : cases) {
    // --start comes first in Run; a later --start wins or is rejected, both
    // of which exercise the parser.
    Run run(args);
    BOOST_TEST_CONTEXT(run.process.describe()) {
      BOOST_TEST_REQUIRE(run.status.has_value());
      BOOST_TEST(*run.status == 2);
      BOOST_TEST(!run.process.stderr_text().empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(bind_failure_exits_1_naming_the_address_and_the_error) {
  // A port the test holds, listening: the server's bind must fail even with
  // SO_REUSEADDR.
  prefork::UniqueFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  BOOST_TEST_REQUIRE(holder.get() >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_TEST_REQUIRE(::bind(holder.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) ==
                     0);
  BOOST_TEST_REQUIRE(::listen(holder.get(), 1) == 0);
  socklen_t length = sizeof address;
  ::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&address), &length);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  Run run({"--framed", taken});
  BOOST_TEST_REQUIRE(run.status.has_value(), run.process.describe());
  BOOST_TEST(*run.status == 1, run.process.describe());
  // One line holds both: what failed and why.
  const std::string err = run.process.stderr_text();
  bool named = false;
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);)
    named = named || (line.find(taken) != std::string::npos &&
                      line.find("Address already in use") != std::string::npos);
  BOOST_TEST(named, "no stderr line names " << taken << " and the error:\n" << err);

  // The metrics endpoint binds at set-up too, with the same kind of message.
  Run metrics({"--framed", "127.0.0.1:0", "--metrics", taken});
  BOOST_TEST_REQUIRE(metrics.status.has_value(), metrics.process.describe());
  BOOST_TEST(*metrics.status == 1, metrics.process.describe());
  BOOST_TEST(metrics.process.stderr_text().find(taken) != std::string::npos);
  BOOST_TEST(!shm_exists(metrics.shm.name()), "segment left behind");
  BOOST_TEST(!shm_exists(run.shm.name()), "segment left behind");
}

BOOST_AUTO_TEST_CASE(help_exits_0_and_describes_the_flags) {
  Run run({"--help"});
  BOOST_TEST_REQUIRE(run.status.has_value(), run.process.describe());
  BOOST_TEST(*run.status == 0, run.process.describe());
  const std::string out = run.process.stdout_text(1'000ms);
  for (const char* flag : {"--framed", "--tcp", "--udp", "--workers", "--start", "--stats"})
    BOOST_TEST(out.find(flag) != std::string::npos, "--help does not mention " << flag);
}

BOOST_AUTO_TEST_CASE(version_exits_0) {
  Run run({"--version"});
  BOOST_TEST_REQUIRE(run.status.has_value(), run.process.describe());
  BOOST_TEST(*run.status == 0, run.process.describe());
  BOOST_TEST(!run.process.stdout_text(1'000ms).empty());
}
