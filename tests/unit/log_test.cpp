// The log: one line per event with time, level, pid and role, text or JSON,
// filtered by level, appended to a file that reopen_log() follows after
// logrotate moved it.
#define BOOST_TEST_MODULE log
#include <boost/test/unit_test.hpp>

#include <prefork/core/log_limiter.hpp>
#include <prefork/error.hpp>
#include <prefork/log.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "files.hpp"
#include "pattern.hpp"

using prefork::test::Pattern;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A log file of the test's own, removed afterwards; the log goes back to
// stderr, the role to "master".
struct LogFile {
  explicit LogFile(prefork::LogSettings settings = {}) {
    path = "/tmp/prefork_unit_log_" + std::to_string(::getpid()) + ".log";
    std::remove(path.c_str());
    std::remove((path + ".1").c_str());
    settings.file = path;
    prefork::configure_log(settings);
  }
  ~LogFile() {
    prefork::configure_log({});
    prefork::set_log_role("master");
    std::remove(path.c_str());
    std::remove((path + ".1").c_str());
  }
  std::vector<std::string> lines() const { return lines_of(prefork::test::file_text(path)); }
  std::string path;
};

const std::string time_pattern = R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)";

}  // namespace

BOOST_AUTO_TEST_CASE(a_text_line_has_time_level_pid_and_role) {
  LogFile log;
  prefork::log_info("listening on %d listeners", 2);
  prefork::set_log_worker(3, 2);
  prefork::log_warning("slow");
  prefork::log_error("broken");
  prefork::log_sys_error("accept4", EMFILE, "listener %s", "tcp");
  const std::vector<std::string> lines = log.lines();
  BOOST_TEST_REQUIRE(lines.size() == 4u, prefork::test::file_text(log.path));
  const std::string pid = std::to_string(::getpid());
  const std::string expected[] = {
      " info prefork\\[" + pid + "\\] master: listening on 2 listeners",
      " warning prefork\\[" + pid + "\\] worker 3 gen 2: slow",
      " error prefork\\[" + pid + "\\] worker 3 gen 2: broken",
      " error prefork\\[" + pid +
          "\\] worker 3 gen 2: accept4 failed: Too many open files "
          "\\(listener tcp\\)",
  };
  for (std::size_t i = 0; i < lines.size(); ++i)
    BOOST_TEST(Pattern(time_pattern + expected[i]).matches(lines[i]), lines[i]);
}

BOOST_AUTO_TEST_CASE(lines_below_the_level_are_dropped) {
  LogFile log({.level = prefork::LogLevel::warning});
  BOOST_TEST(!prefork::log_enabled(prefork::LogLevel::info));
  BOOST_TEST(prefork::log_enabled(prefork::LogLevel::error));
  prefork::log_debug("d");
  prefork::log_info("i");
  prefork::log_warning("w");
  prefork::log_error("e");
  prefork::log_sys_error("open", ENOENT);
  const std::vector<std::string> lines = log.lines();
  BOOST_TEST_REQUIRE(lines.size() == 3u, prefork::test::file_text(log.path));
  BOOST_TEST(lines[0].ends_with(" master: w"));
  BOOST_TEST(lines[1].ends_with(" master: e"));
  BOOST_TEST(lines[2].ends_with(" master: open failed: No such file or directory"));

  prefork::configure_log({.level = prefork::LogLevel::debug, .file = log.path});
  prefork::log_debug("now %s", "seen");
  BOOST_TEST(log.lines().back().find(" debug prefork[") != std::string::npos);
  BOOST_TEST(log.lines().back().ends_with(": now seen"));
}

BOOST_AUTO_TEST_CASE(a_json_line_is_one_escaped_object) {
  LogFile log({.format = prefork::LogFormat::json});
  prefork::log_info("quote \" backslash \\ newline \n tab \t bell \a utf8 \xc3\xa9 bad \xff end");
  prefork::set_log_worker(7, 12345678901ull);
  prefork::log_error("from a worker");
  const std::vector<std::string> lines = log.lines();
  BOOST_TEST_REQUIRE(lines.size() == 2u, prefork::test::file_text(log.path));
  const std::string pid = std::to_string(::getpid());
  BOOST_TEST(Pattern(R"(\{"time":")" + time_pattern + R"(","level":"info","pid":)" + pid +
                     R"(,"role":"master","message":.*\})")
                 .matches(lines[0]),
             lines[0]);
  BOOST_TEST(lines[0].ends_with(R"("message":"quote \" backslash \\ newline \n tab \t bell \u0007 )"
                                "utf8 \xc3\xa9 bad \\ufffd end\"}"),
             lines[0]);
  BOOST_TEST(Pattern(R"(\{"time":")" + time_pattern + R"(","level":"error","pid":)" + pid +
                     R"(,"role":"worker","slot":7,"generation":12345678901,)"
                     R"("message":"from a worker"\})")
                 .matches(lines[1]),
             lines[1]);
}

BOOST_AUTO_TEST_CASE(a_text_message_stays_on_one_line) {
  LogFile log;
  prefork::log_info("first\nsecond\r");
  const std::vector<std::string> lines = log.lines();
  BOOST_TEST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0].ends_with(R"(master: first\nsecond\r)"), lines[0]);
}

BOOST_AUTO_TEST_CASE(a_long_message_is_cut_but_stays_one_line) {
  LogFile log({.format = prefork::LogFormat::json});
  const std::string quotes(5000, '"');  // 10000 bytes once escaped
  prefork::log_info("%s", quotes.c_str());
  const std::vector<std::string> lines = log.lines();
  BOOST_TEST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0].ends_with("\\\"\"}"), lines[0].substr(lines[0].size() - 20));
}

// logrotate renames the file, then signals; the next lines go to a new file
// of the same name, the first of them saying so.
BOOST_AUTO_TEST_CASE(reopen_log_follows_the_path_after_a_rename) {
  LogFile log;
  prefork::log_info("before");
  BOOST_TEST_REQUIRE(std::rename(log.path.c_str(), (log.path + ".1").c_str()) == 0);
  prefork::log_info("still into the renamed file");
  BOOST_TEST(prefork::reopen_log());
  prefork::log_info("after");
  const std::vector<std::string> old_lines = lines_of(prefork::test::file_text(log.path + ".1"));
  BOOST_TEST_REQUIRE(old_lines.size() == 2u);
  BOOST_TEST(old_lines[0].ends_with(": before"));
  BOOST_TEST(old_lines[1].ends_with(": still into the renamed file"));
  const std::vector<std::string> new_lines = log.lines();
  BOOST_TEST_REQUIRE(new_lines.size() == 2u, prefork::test::file_text(log.path));
  BOOST_TEST(new_lines[0].ends_with(": reopened the log file " + log.path), new_lines[0]);
  BOOST_TEST(new_lines[1].ends_with(": after"));
}

// O_APPEND: what another process appended in between is never overwritten.
BOOST_AUTO_TEST_CASE(the_log_file_is_appended_to) {
  LogFile log;
  prefork::log_info("one");
  {
    std::ofstream other(log.path, std::ios::app);
    other << "another writer\n";
  }
  prefork::log_info("two");
  const std::vector<std::string> lines = log.lines();
  BOOST_TEST_REQUIRE(lines.size() == 3u, prefork::test::file_text(log.path));
  BOOST_TEST(lines[1] == "another writer");
  BOOST_TEST(lines[2].ends_with(": two"));
}

BOOST_AUTO_TEST_CASE(a_log_file_that_cannot_be_opened_names_the_call_and_keeps_the_log) {
  LogFile log;
  try {
    prefork::configure_log({.file = "/nonexistent-dir/prefork.log"});
    BOOST_FAIL("an unopenable log file was accepted");
  } catch (const prefork::SystemError& e) {
    BOOST_TEST(std::string(e.what()) ==
               "open log file /nonexistent-dir/prefork.log: No such file or directory");
  }
  BOOST_TEST(prefork::log_settings().file == log.path);
  prefork::log_info("still here");
  BOOST_TEST(log.lines().back().ends_with(": still here"));
}

BOOST_AUTO_TEST_CASE(levels_and_formats_have_names) {
  for (auto level : {prefork::LogLevel::debug, prefork::LogLevel::info, prefork::LogLevel::warning,
                     prefork::LogLevel::error})
    BOOST_TEST((prefork::log_level_from_name(prefork::log_level_name(level)) == level));
  BOOST_TEST(!prefork::log_level_from_name("loud").has_value());
  BOOST_TEST((prefork::log_format_from_name("json") == prefork::LogFormat::json));
  BOOST_TEST(!prefork::log_format_from_name("xml").has_value());
}

// A flood of the same error is one line per interval, which says how many
// it stands for.
BOOST_AUTO_TEST_CASE(a_limiter_admits_one_event_per_interval_and_counts_the_rest) {
  using namespace std::chrono_literals;
  prefork::LogLimiter limiter(1s);
  const auto t0 = prefork::LogLimiter::Clock::time_point(100s);
  std::uint64_t suppressed = 99;
  BOOST_TEST(limiter.admit(t0, suppressed));
  BOOST_TEST(suppressed == 0u);
  for (int i = 0; i < 40; ++i) BOOST_TEST(!limiter.admit(t0 + 25ms * i, suppressed));
  BOOST_TEST(limiter.admit(t0 + 1s, suppressed));
  BOOST_TEST(suppressed == 40u);
  BOOST_TEST(!limiter.admit(t0 + 1500ms, suppressed));
  BOOST_TEST(limiter.admit(t0 + 5s, suppressed));
  BOOST_TEST(suppressed == 1u);
}

BOOST_AUTO_TEST_CASE(a_limited_line_ends_with_how_many_it_stands_for) {
  using namespace std::chrono_literals;
  prefork::LogLimiter limiter(1h);  // nothing else is admitted during the test
  const auto first = limiter.admit_now();
  BOOST_TEST_REQUIRE(first.has_value());
  BOOST_TEST(std::string(first->text) == " (0 more since the last such line)");
  BOOST_TEST(!limiter.admit_now().has_value());
}
