// upper_server's command line and start-up failures: exit statuses 0, 1, 2
// and messages a person can act on.
#define BOOST_TEST_MODULE integration_command_line
#include <boost/test/unit_test.hpp>

#include "files.hpp"
#include "fixture.hpp"
#include "pattern.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

using namespace prefork::test;

namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Runs upper_server to completion in the test's start mode.
struct Run {
  explicit Run(std::vector<std::string> args)
      : shm(unique_stats_name()), process(bin_path("upper_server"), with_mode(std::move(args))) {
    status = process.wait_exit(state_timeout);
  }
  std::vector<std::string> with_mode(std::vector<std::string> args) const {
    std::vector<std::string> all{"--start", start_mode(), "--stats", shm.name(), "--allow-root"};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }

  ShmGuard shm;
  ServerProcess process;
  std::optional<int> status;
};

}  // namespace

// Every usage error is one line naming the flag, then one hint line: not
// the whole --help text.
void expect_usage_error(const Run& run, const std::string& expected) {
  BOOST_TEST_CONTEXT(run.process.describe()) {
    BOOST_TEST_REQUIRE(run.status.has_value());
    BOOST_TEST(*run.status == 2);
    const std::vector<std::string> lines = split_lines(run.process.stderr_text());
    BOOST_TEST_REQUIRE(!lines.empty());
    BOOST_TEST(lines[0].find(expected) != std::string::npos,
               "the error line does not say '" << expected << "'");
    BOOST_TEST(lines.size() == 2u);
    BOOST_TEST(lines.back() == "try 'upper_server --help'");
    BOOST_TEST(run.process.stdout_text().find("listening") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(unknown_flag_given_last_is_an_unknown_option) {
  expect_usage_error(Run({"--framed", "127.0.0.1:0", "--no-such-flag"}),
                     "unknown option '--no-such-flag'");
  expect_usage_error(Run({"--no-such-flag", "--framed", "127.0.0.1:0"}),
                     "unknown option '--no-such-flag'");
}

BOOST_AUTO_TEST_CASE(a_missing_value_does_not_swallow_the_next_flag) {
  expect_usage_error(Run({"--framed", "127.0.0.1:0", "--workers", "--stats", "x"}),
                     "--workers needs a value");
  // --stats would take any word as its name.
  expect_usage_error(Run({"--stats", "--workers", "2", "--framed", "127.0.0.1:0"}),
                     "--stats needs a value");
  expect_usage_error(Run({"--framed", "127.0.0.1:0", "--workers"}), "--workers needs a value");
}

BOOST_AUTO_TEST_CASE(a_usage_error_is_one_line_and_a_hint) {
  expect_usage_error(Run({"--workers", "many", "--framed", "127.0.0.1:0"}),
                     "--workers wants a number from 1 to 1024 or auto, not 'many'");
  expect_usage_error(Run({"--model", "prethreaded", "--accept", "pass", "--framed", "127.0.0.1:0"}),
                     "--accept pass does not apply to --model prethreaded");
  expect_usage_error(Run({"stray", "--framed", "127.0.0.1:0"}), "unexpected argument 'stray'");
}

BOOST_AUTO_TEST_CASE(bad_flag_values_exit_2) {
  const std::vector<std::vector<std::string>> cases{
      {"--workers", "many", "--framed", "127.0.0.1:0"},
      {"--start", "sideways", "--framed", "127.0.0.1:0"},
      {"--framed", "not-an-address"},
      {"--max-frame", "-5", "--framed", "127.0.0.1:0"},
      {"--framed"},  // missing value
      {"--workers", "0", "--framed", "127.0.0.1:0"},
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

BOOST_AUTO_TEST_CASE(workers_auto_starts_one_worker_per_cpu) {
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  ShmGuard shm(unique_stats_name());
  ServerProcess server(bin_path("upper_server"),
                       {"--start", start_mode(), "--stats", shm.name(), "--allow-root", "--workers",
                        "auto", "--framed", "127.0.0.1:0"});
  server.wait_for_listening(1, start_timeout);
  auto ready = scoreboard_when(
      shm.name(),
      [&](const prefork::ScoreboardSnapshot& s) {
        return s.slots.size() == cpus && all_workers_ready(s);
      },
      start_timeout);
  BOOST_TEST(ready.has_value(), cpus << " workers not ready; " << server.describe());
  server.signal(SIGTERM);
  BOOST_TEST(status_or_running(server.wait_exit(state_timeout)) == 0, server.describe());
}

// --help shows the models table (describe_models(), the table in
// docs/architecture.md): each model's line, then the --accept strategies it
// takes and its default.
BOOST_AUTO_TEST_CASE(help_lists_the_accept_strategies_of_every_model) {
  Run run({"--help"});
  BOOST_TEST_REQUIRE(run.status.has_value(), run.process.describe());
  BOOST_TEST(*run.status == 0, run.process.describe());
  const std::vector<std::string> help = split_lines(run.process.stdout_text(1'000ms));
  auto trimmed = [](const std::string& line) {
    auto start = line.find_first_not_of(' ');
    return start == std::string::npos ? std::string() : line.substr(start);
  };
  for (auto [model, accepts] : std::initializer_list<std::pair<const char*, const char*>>{
           {"event", "--accept exclusive reuseport (default exclusive)"},
           {"iterative", "--accept shared (default shared)"},
           {"fork-per-connection", "--accept shared (default shared)"},
           {"thread-per-connection", "--accept shared (default shared)"},
           {"prefork", "--accept shared lock flock reuseport exclusive pass (default shared)"},
           {"prethreaded", "--accept lock main (default lock); --threads N"},
           {"hybrid",
            "--accept shared lock flock reuseport exclusive (default lock); --threads N"}}) {
    bool found = false;
    for (std::size_t i = 0; i + 1 < help.size() && !found; ++i)
      found =
          trimmed(help[i]).starts_with(std::string(model) + ' ') && trimmed(help[i + 1]) == accepts;
    BOOST_TEST(found, "--help has no line for " << model << " followed by '" << accepts << "'");
  }
}

// --max-frame is --max-message by its older name.
BOOST_AUTO_TEST_CASE(max_frame_is_max_message) {
  expect_usage_error(Run({"--max-message", "x", "--framed", "127.0.0.1:0"}),
                     "--max-message wants a number from 0 to 4294967295, not 'x'");
  expect_usage_error(Run({"--max-frame", "x", "--framed", "127.0.0.1:0"}),
                     "--max-frame wants a number from 0 to 4294967295, not 'x'");
}

namespace {

// A file of the test's own under /tmp, removed afterwards.
struct TempFile {
  TempFile(const std::string& suffix, const std::string& text = {})
      : path("/tmp/" + unique_stats_name() + suffix) {
    if (!text.empty()) {
      std::ofstream out(path);
      out << text;
    }
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string text() const { return file_text(path); }
  std::string path;
};

}  // namespace

// The sample file in examples/ is a valid configuration, and checking it
// binds nothing and leaves nothing behind.
BOOST_AUTO_TEST_CASE(the_example_config_file_passes_check_config) {
  Run run({"--config", source_path("examples/prefork.toml"), "--check-config"});
  BOOST_TEST_REQUIRE(run.status.has_value(), run.process.describe());
  BOOST_TEST(*run.status == 0, run.process.describe());
  BOOST_TEST(run.process.stdout_text(1'000ms) == "configuration ok\n");
  BOOST_TEST(run.process.stderr_text().empty(), run.process.describe());
  BOOST_TEST(!shm_exists(run.shm.name()), "segment left behind");
}

BOOST_AUTO_TEST_CASE(a_bad_config_file_exits_2_naming_the_file_line_and_key) {
  TempFile file(".toml", "framed = \"127.0.0.1:0\"\nwokers = 2\n");
  expect_usage_error(Run({"--config", file.path}), file.path + ":2: unknown key 'wokers'");
  expect_usage_error(Run({"--config", file.path, "--check-config"}),
                     file.path + ":2: unknown key 'wokers'");
  TempFile syntax(".toml", "framed = [\"127.0.0.1:0\"\n");
  expect_usage_error(Run({"--config", syntax.path}), syntax.path + ":");
  expect_usage_error(Run({"--config", "/nonexistent/prefork.toml"}),
                     "open /nonexistent/prefork.toml: No such file or directory");
}

// The file's settings serve, and the command line's flag wins.
BOOST_AUTO_TEST_CASE(a_server_runs_from_its_config_file_and_flags_override_it) {
  TempFile file(".toml", "framed = [\"127.0.0.1:0\"]\nworkers = 3\ngraceful-timeout = 1.5\n");
  ShmGuard shm(unique_stats_name());
  ServerProcess server(bin_path("upper_server"),
                       {"--start", start_mode(), "--stats", shm.name(), "--allow-root", "--workers",
                        "2", "--config", file.path});
  const std::vector<Endpoint> endpoints = server.wait_for_listening(1, start_timeout);
  BOOST_TEST(endpoints.at(0).protocol == "framed");
  prefork::ScoreboardSnapshot last;
  auto ready = scoreboard_when(
      shm.name(),
      [](const prefork::ScoreboardSnapshot& s) {
        return s.slots.size() == 2u && all_workers_ready(s);
      },
      start_timeout, &last);
  BOOST_TEST(ready.has_value(), describe(last) << server.describe());
  server.signal(SIGTERM);
  BOOST_TEST(status_or_running(server.wait_exit(state_timeout)) == 0, server.describe());
}

// SIGHUP reads the file again: a new pool size is the reloaded pool's.
BOOST_AUTO_TEST_CASE(a_reload_takes_the_pool_size_from_the_file_again) {
  TempFile file(".toml", "framed = [\"127.0.0.1:0\"]\nworkers = 2\n");
  ShmGuard shm(unique_stats_name());
  ServerProcess server(bin_path("upper_server"), {"--start", start_mode(), "--stats", shm.name(),
                                                  "--allow-root", "--config", file.path});
  server.wait_for_listening(1, start_timeout);
  // `count` workers, all ready, none of them one of `old`: the roll is over.
  std::set<pid_t> old;
  auto rolled_to = [&old](std::size_t count) {
    return [&old, count](const prefork::ScoreboardSnapshot& s) {
      std::size_t ready = 0;
      for (const prefork::SlotSnapshot& slot : s.slots) {
        if (slot.state == prefork::WorkerState::empty) continue;
        if (slot.state != prefork::WorkerState::ready || old.count(slot.pid)) return false;
        ++ready;
      }
      return ready == count;
    };
  };
  prefork::ScoreboardSnapshot last;
  BOOST_TEST_REQUIRE(scoreboard_when(shm.name(), rolled_to(2), start_timeout, &last).has_value(),
                     describe(last) << server.describe());
  for (const prefork::SlotSnapshot& slot : last.slots)
    if (slot.pid > 0) old.insert(slot.pid);
  { std::ofstream(file.path) << "framed = [\"127.0.0.1:0\"]\nworkers = 3\n"; }
  server.signal(SIGHUP);
  BOOST_TEST(scoreboard_when(shm.name(), rolled_to(3), start_timeout, &last).has_value(),
             describe(last) << server.describe());
  // Past the room the scoreboard was made with (twice the first pool): as
  // many as fit, and one line says so.
  for (const prefork::SlotSnapshot& slot : last.slots)
    if (slot.pid > 0) old.insert(slot.pid);
  { std::ofstream(file.path) << "framed = [\"127.0.0.1:0\"]\nworkers = 9\n"; }
  server.signal(SIGHUP);
  BOOST_TEST(scoreboard_when(shm.name(), rolled_to(4), start_timeout, &last).has_value(),
             describe(last) << server.describe());
  BOOST_TEST(logged_when(server, "workers = 9 is more than this master has room for: 4"),
             server.describe());
  server.signal(SIGTERM);
  BOOST_TEST(status_or_running(server.wait_exit(state_timeout)) == 0, server.describe());
}

// Text on stderr by default: time, level, pid, role.
BOOST_AUTO_TEST_CASE(log_lines_carry_time_level_pid_and_role) {
  ShmGuard shm(unique_stats_name());
  ServerProcess server(bin_path("upper_server"),
                       {"--start", start_mode(), "--stats", shm.name(), "--allow-root", "--workers",
                        "1", "--framed", "127.0.0.1:0"});
  server.wait_for_listening(1, start_timeout);
  const Pattern starting(R"((^|\n)\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info prefork\[)" +
                         std::to_string(server.pid()) + R"(\] master: starting 1 worker )");
  BOOST_TEST(wait_until([&] { return starting.found_in(server.stderr_text()); }, state_timeout),
             server.describe());
  server.signal(SIGTERM);
  BOOST_TEST(status_or_running(server.wait_exit(state_timeout)) == 0, server.describe());
}

// JSON into a file, at debug level: the workers (spawned ones too, a new
// program image) follow the master's settings; nothing goes to stderr.
BOOST_AUTO_TEST_CASE(log_settings_reach_the_workers) {
  TempFile log(".log");
  ShmGuard shm(unique_stats_name());
  ServerProcess server(
      bin_path("upper_server"),
      {"--start", start_mode(), "--stats", shm.name(), "--allow-root", "--workers", "2", "--framed",
       "127.0.0.1:0", "--log-level", "debug", "--log-format", "json", "--log-file", log.path});
  server.wait_for_listening(1, start_timeout);
  auto worker_ready = [&](unsigned slot) {
    return Pattern(R"(\{"time":"[0-9T:.Z-]+","level":"debug","pid":\d+,"role":"worker",)"
                   R"("slot":)" +
                   std::to_string(slot) +
                   R"(,"generation":\d+,"message":"ready: model event, accept exclusive"\})");
  };
  const Pattern ready0 = worker_ready(0), ready1 = worker_ready(1);
  BOOST_TEST(wait_until(
                 [&] {
                   const std::string text = log.text();
                   return ready0.found_in(text) && ready1.found_in(text);
                 },
                 start_timeout),
             "the log file:\n"
                 << log.text() << server.describe());
  server.signal(SIGTERM);
  BOOST_TEST(status_or_running(server.wait_exit(state_timeout)) == 0, server.describe());
  const std::vector<std::string> lines = split_lines(log.text());
  BOOST_TEST(lines.size() >= 4u);
  for (const std::string& line : lines)
    BOOST_TEST((line.starts_with(R"({"time":")") && line.ends_with("\"}")), line);
  BOOST_TEST(log.text().find(R"("role":"master","message":"stopped)") != std::string::npos,
             log.text());
  BOOST_TEST(server.stderr_text().empty(), server.describe());
}
