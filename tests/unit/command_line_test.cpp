// parse_command_line() and serve() in the embedder's own process: a bad
// command line or configuration is reported and returned, never an exit.
#define BOOST_TEST_MODULE command_line
#include <boost/test/unit_test.hpp>

#include <prefork/command_line.hpp>
#include <prefork/server.hpp>

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "files.hpp"
#include "pattern.hpp"

using prefork::test::Pattern;

namespace {

// What the code under test writes to one of stdout/stderr, while it runs.
class Captured {
 public:
  explicit Captured(std::FILE* stream) : stream_(stream), fd_(::fileno(stream)) {
    std::fflush(stream_);
    file_ = std::tmpfile();
    saved_ = ::dup(fd_);
    if (file_ == nullptr || saved_ < 0 || ::dup2(::fileno(file_), fd_) < 0)
      throw std::runtime_error("cannot capture the output");
  }
  ~Captured() { restore(); }
  std::string text() {
    restore();
    std::string out;
    std::rewind(file_);
    for (int c; (c = std::fgetc(file_)) != EOF;) out += static_cast<char>(c);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stream_);
    ::dup2(saved_, fd_);
    ::close(saved_);
    saved_ = -1;
  }
  std::FILE* stream_;
  int fd_;
  std::FILE* file_ = nullptr;
  int saved_ = -1;
};

struct Args {
  explicit Args(std::vector<std::string> args) : words(std::move(args)) {
    words.insert(words.begin(), "demo");
    for (std::string& word : words) argv.push_back(word.data());
    argv.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(words.size()); }
  std::vector<std::string> words;
  std::vector<char*> argv;
};

prefork::CommandLineDefaults defaults() {
  prefork::CommandLineDefaults d;
  d.program = "demo";
  d.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")}};
  d.stats_name = "demo";
  return d;
}

prefork::CommandLine parse(std::vector<std::string> words,
                           const prefork::CommandLineDefaults& d = defaults()) {
  Args args(std::move(words));
  return prefork::parse_command_line(args.argc(), args.argv.data(), d);
}

class Silent : public prefork::Handler {
 public:
  void handle(const prefork::Request&, std::string_view, prefork::Reply&) override {}
};

}  // namespace

BOOST_AUTO_TEST_CASE(help_and_version_return_0_without_a_config) {
  for (const char* flag : {"--help", "-h", "--version"}) {
    Captured out(stdout);
    prefork::CommandLine result = parse({"--workers", "3", flag});
    const std::string text = out.text();
    BOOST_TEST_CONTEXT(flag) {
      BOOST_TEST(!result.config.has_value());
      BOOST_TEST(result.exit_status == prefork::exit_ok);
      BOOST_TEST(text.find("demo") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(a_bad_flag_returns_2_after_one_error_and_one_hint) {
  Captured err(stderr);
  prefork::CommandLine result = parse({"--workers", "--stats", "x"});
  BOOST_TEST(!result.config.has_value());
  BOOST_TEST(result.exit_status == prefork::exit_usage);
  BOOST_TEST(err.text() == "demo: --workers needs a value\ntry 'demo --help'\n");
}

// What shm_open(3) would refuse, late and as "No such device", is a usage
// error; a name stays short enough for the upgrade's NAME.next.
BOOST_AUTO_TEST_CASE(stats_names_the_kernel_refuses_are_usage_errors) {
  for (const std::string& name : {std::string("."), std::string(".."), std::string("a/b"),
                                  std::string("/x"), std::string(), std::string(251, 'n')}) {
    Captured err(stderr);
    prefork::CommandLine result = parse({"--stats", name});
    BOOST_TEST_CONTEXT(name) {
      BOOST_TEST(!result.config.has_value());
      BOOST_TEST(result.exit_status == prefork::exit_usage);
      BOOST_TEST(err.text().find("--stats wants a file name in /dev/shm") != std::string::npos);
    }
  }
  BOOST_TEST(parse({"--stats", std::string(250, 'n')}).config->stats_name == std::string(250, 'n'));
  BOOST_TEST(parse({"--stats", "...x"}).config->stats_name == "...x");
}

BOOST_AUTO_TEST_CASE(flags_fill_the_config) {
  prefork::CommandLine result = parse(
      {"--udp", "127.0.0.1:0", "--workers=auto", "--framed", "[::1]:0", "--stats", "s1", "--model",
       "hybrid", "--accept", "flock", "--threads", "3", "--stats", "s2", "--", "--plugin", "x.so"});
  BOOST_TEST_REQUIRE(result.config.has_value());
  const prefork::ServerConfig& config = *result.config;
  BOOST_TEST_REQUIRE(config.listeners.size() == 2u);  // in the order given
  BOOST_TEST(prefork::protocol_name(config.listeners[0].protocol) == "udp");
  BOOST_TEST(config.listeners[1].address.to_string() == "[::1]:0");
  BOOST_TEST(config.workers == 0u);       // auto: one per CPU
  BOOST_TEST(config.stats_name == "s2");  // the last one counts
  BOOST_TEST(prefork::model_name(config.model) == "hybrid");
  BOOST_TEST(prefork::accept_name(config.accept) == "flock");
  BOOST_TEST(config.threads == 3u);
  BOOST_TEST(config.worker_args == (std::vector<std::string>{"--plugin", "x.so"}));
}

BOOST_AUTO_TEST_CASE(the_programs_defaults_and_max_frame_as_max_message) {
  prefork::CommandLineDefaults d = defaults();
  d.model = prefork::Model::prefork;
  d.max_message = 4096;
  prefork::CommandLine result = parse({}, d);
  BOOST_TEST_REQUIRE(result.config.has_value());
  BOOST_TEST(prefork::model_name(result.config->model) == "prefork");
  BOOST_TEST(result.config->max_message == 4096u);
  for (const char* flag : {"--max-message", "--max-frame"}) {
    result = parse({flag, "100", "--model", "event"}, d);
    BOOST_TEST_REQUIRE(result.config.has_value(), flag);
    BOOST_TEST(result.config->max_message == 100u, flag);
    BOOST_TEST(prefork::model_name(result.config->model) == "event");
  }
  Captured out(stdout);
  parse({"--help"}, d);
  const std::string help = out.text();
  BOOST_TEST(help.find("default prefork") != std::string::npos, help);
  BOOST_TEST(help.find("default 4096") != std::string::npos, help);
  BOOST_TEST(help.find(prefork::describe_models().substr(0, 30)) != std::string::npos, help);
}

BOOST_AUTO_TEST_CASE(the_programs_own_flags) {
  prefork::CommandLineDefaults d = defaults();
  std::string seen;
  d.options = {{"--delay-us", "a delay", [&](std::string_view value) {
                  if (value == "bad") throw std::invalid_argument("--delay-us wants a number");
                  seen = value;
                }}};
  BOOST_TEST(parse({"--delay-us", "25"}, d).config.has_value());
  BOOST_TEST(seen == "25");
  Captured err(stderr);
  BOOST_TEST(parse({"--delay-us=bad"}, d).exit_status == prefork::exit_usage);
  BOOST_TEST(err.text() == "demo: --delay-us wants a number\ntry 'demo --help'\n");
}

BOOST_AUTO_TEST_CASE(a_flag_defined_twice_is_the_programmers_error) {
  prefork::CommandLineDefaults d = defaults();
  d.options = {{"--workers", "again", [](std::string_view) {}}};
  BOOST_CHECK_THROW(parse({}, d), std::invalid_argument);
}

// serve() refuses what the command line refuses, with the same status.
BOOST_AUTO_TEST_CASE(serve_returns_2_for_an_invalid_config) {
  Silent handler;
  prefork::ServerConfig bad_pair;
  bad_pair.listeners = {{prefork::Protocol::framed, prefork::Address::parse("127.0.0.1:0")}};
  bad_pair.model = prefork::Model::prethreaded;
  bad_pair.accept = prefork::Accept::pass;
  bad_pair.stats_name = "prefork_unit_command_line_" + std::to_string(::getpid());
  Captured err(stderr);
  BOOST_TEST(prefork::serve(bad_pair, handler) == prefork::exit_usage);
  const std::string text = err.text();
  BOOST_TEST(text.find("--accept pass does not apply to --model prethreaded") != std::string::npos,
             text);

  prefork::ServerConfig nothing;  // no listeners
  BOOST_TEST(prefork::serve(nothing, handler) == prefork::exit_usage);
}

// A ConnectionHandler under a model that is not blocking: serve() refuses it,
// and prefork_main() says so as a usage error.
BOOST_AUTO_TEST_CASE(a_connection_handler_needs_a_blocking_model) {
  prefork::ServerConfig config;
  config.listeners = {{prefork::Protocol::stream, prefork::Address::parse("127.0.0.1:0")}};
  config.model = prefork::Model::event;
  config.stats_name = "prefork_unit_command_line_" + std::to_string(::getpid());
  auto echo = [](prefork::Connection&) {};
  {
    Captured err(stderr);
    BOOST_TEST(prefork::serve(config, echo) == prefork::exit_usage);
    BOOST_TEST(err.text().find("needs a blocking model, not --model event") != std::string::npos);
  }
  Args args({"--tcp", "127.0.0.1:0", "--model", "event"});
  Captured err(stderr);
  BOOST_TEST(prefork::prefork_main(args.argc(), args.argv.data(), echo, defaults()) ==
             prefork::exit_usage);
  const std::string text = err.text();
  BOOST_TEST(text.starts_with("demo: a ConnectionHandler (handle(Connection&)) needs a blocking "
                              "model, not --model event:"),
             text);
  BOOST_TEST(text.ends_with("\ntry 'demo --help'\n"), text);
}

namespace {

// A --config file of the test's own, removed afterwards; write() replaces
// its text (as an operator editing it before a reload).
struct ConfigFile {
  explicit ConfigFile(const std::string& text, const std::string& name = "prefork") {
    path = "/tmp/" + name + "_unit_" + std::to_string(::getpid()) + ".toml";
    write(text);
  }
  ~ConfigFile() { std::remove(path.c_str()); }
  void write(const std::string& text) const {
    std::FILE* file = std::fopen(path.c_str(), "w");
    BOOST_REQUIRE(file != nullptr);
    std::fputs(text.c_str(), file);
    std::fclose(file);
  }
  std::string path;
};

// The one error line a bad configuration gives, without the hint.
std::string error_of(std::vector<std::string> words,
                     const prefork::CommandLineDefaults& d = defaults()) {
  Captured err(stderr);
  prefork::CommandLine result = parse(std::move(words), d);
  const std::string text = err.text();
  BOOST_TEST(!result.config.has_value());
  BOOST_TEST(result.exit_status == prefork::exit_usage);
  BOOST_TEST(text == "demo: " + result.error + "\ntry 'demo --help'\n");
  return result.error;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_listener_takes_its_own_timeouts) {
  prefork::CommandLine result = parse({"--framed", "127.0.0.1:0,idle-timeout=2.5,write-timeout=0",
                                       "--tcp", "[::1]:0,read-timeout=7", "--udp", "127.0.0.1:0"});
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  const auto& listeners = result.config->listeners;
  BOOST_TEST_REQUIRE(listeners.size() == 3u);
  BOOST_TEST(listeners[0].address.to_string() == "127.0.0.1:0");
  BOOST_TEST(listeners[0].timeouts.idle.value().count() == 2500);
  BOOST_TEST(!listeners[0].timeouts.read.has_value());  // the server's
  BOOST_TEST(listeners[0].timeouts.write.value().count() == 0);
  BOOST_TEST(listeners[1].address.to_string() == "[::1]:0");
  BOOST_TEST(listeners[1].timeouts.read.value().count() == 7000);
  BOOST_TEST((listeners[2].timeouts == prefork::ListenerTimeouts{}));

  BOOST_TEST(error_of({"--udp", "127.0.0.1:0,idle-timeout=1"}) ==
             "--udp takes no idle-timeout: timeouts are for TCP connections");
  BOOST_TEST(error_of({"--tcp", "127.0.0.1:0,idle=1"}) ==
             "--tcp wants HOST:PORT[,idle-timeout=S][,read-timeout=S][,write-timeout=S], not "
             "'127.0.0.1:0,idle=1'");
  BOOST_TEST(error_of({"--tcp", "127.0.0.1:0,"}).starts_with("--tcp wants HOST:PORT["));
  BOOST_TEST(error_of({"--framed", "127.0.0.1:0,read-timeout=soon"}) ==
             "--framed read-timeout wants seconds from 0 to 86400, not 'soon'");
}

BOOST_AUTO_TEST_CASE(a_listener_in_the_file_is_a_string_or_a_table) {
  ConfigFile file(R"(idle-timeout = 30
tcp = "127.0.0.1:0,idle-timeout=5"

[[framed]]
listen = "127.0.0.1:0"
read-timeout = 0.5
write-timeout = 2

[[framed]]
listen = "[::1]:0"
)");
  prefork::CommandLine result = parse({"--config", file.path});
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  const prefork::ServerConfig& config = *result.config;
  BOOST_TEST(config.idle_timeout.count() == 30'000);
  BOOST_TEST_REQUIRE(config.listeners.size() == 3u);
  BOOST_TEST(config.listeners[0].timeouts.idle.value().count() == 5000);
  BOOST_TEST(config.listeners[1].address.to_string() == "127.0.0.1:0");
  BOOST_TEST(config.listeners[1].timeouts.read.value().count() == 500);
  BOOST_TEST(config.listeners[1].timeouts.write.value().count() == 2000);
  BOOST_TEST(!config.listeners[1].timeouts.idle.has_value());
  BOOST_TEST(config.listeners[2].address.to_string() == "[::1]:0");
  BOOST_TEST((config.listeners[2].timeouts == prefork::ListenerTimeouts{}));

  file.write("[[framed]]\nidle-timeout = 1\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":1: a table in framed wants listen = \"HOST:PORT\"");
  file.write("[[framed]]\nlisten = \"127.0.0.1:0\"\nidle = 1\n");
  BOOST_TEST(
      error_of({"--config", file.path}).starts_with(file.path + ":1: framed wants HOST:PORT["),
      error_of({"--config", file.path}));
}

BOOST_AUTO_TEST_CASE(a_config_file_sets_every_kind_of_key) {
  prefork::CommandLineDefaults d = defaults();
  std::string delay;
  d.options = {{"--delay-us", "a delay", [&](std::string_view value) { delay = value; }}};
  ConfigFile file(R"(# every kind of value a flag takes
workers = 4
graceful-timeout = 2.5
model = "prefork"
accept = "lock"
framed = ["127.0.0.1:0", "[::1]:0"]
udp = "127.0.0.1:0"
worker-stats = false
log-level = "debug"
log-format = "json"
log-file = "/tmp/x.log"
delay-us = 25
)");
  prefork::CommandLine result = parse({"--config", file.path}, d);
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  const prefork::ServerConfig& config = *result.config;
  BOOST_TEST(config.workers == 4u);
  BOOST_TEST(config.graceful_timeout.count() == 2500);
  BOOST_TEST(prefork::model_name(config.model) == "prefork");
  BOOST_TEST(prefork::accept_name(config.accept) == "lock");
  BOOST_TEST_REQUIRE(config.listeners.size() == 3u);  // in the file's order
  BOOST_TEST(config.listeners[0].address.to_string() == "127.0.0.1:0");
  BOOST_TEST(config.listeners[1].address.to_string() == "[::1]:0");
  BOOST_TEST(prefork::protocol_name(config.listeners[2].protocol) == "udp");
  BOOST_TEST(!config.worker_stats);
  BOOST_TEST((config.log.level == prefork::LogLevel::debug));
  BOOST_TEST((config.log.format == prefork::LogFormat::json));
  BOOST_TEST(config.log.file == "/tmp/x.log");
  BOOST_TEST(delay == "25");  // the program's own flag has its key too
}

BOOST_AUTO_TEST_CASE(the_flags_words_are_accepted_for_a_boolean) {
  ConfigFile file("worker-stats = \"off\"\n");
  prefork::CommandLine result = parse({"--config", file.path});
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  BOOST_TEST(!result.config->worker_stats);
  file.write("worker-stats = true\n");
  result = parse({"--config", file.path});
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  BOOST_TEST(result.config->worker_stats);
}

// Whatever the order: the command line's flag wins over the file's key.
BOOST_AUTO_TEST_CASE(a_flag_on_the_command_line_overrides_the_file) {
  ConfigFile file("workers = 4\nstats = \"from_file\"\nframed = \"127.0.0.1:0\"\n");
  for (const auto& words : {std::vector<std::string>{"--workers", "3", "--config", file.path},
                            std::vector<std::string>{"--config", file.path, "--workers", "3"}}) {
    prefork::CommandLine result = parse(words);
    BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
    BOOST_TEST(result.config->workers == 3u);
    BOOST_TEST(result.config->stats_name == "from_file");  // not given: the file's
    BOOST_TEST_REQUIRE(result.config->listeners.size() == 1u);
    BOOST_TEST(prefork::protocol_name(result.config->listeners[0].protocol) == "framed");
  }
  // Any listener flag replaces all the file's listeners.
  prefork::CommandLine result = parse({"--config", file.path, "--udp", "127.0.0.1:0"});
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  BOOST_TEST_REQUIRE(result.config->listeners.size() == 1u);
  BOOST_TEST(prefork::protocol_name(result.config->listeners[0].protocol) == "udp");
}

BOOST_AUTO_TEST_CASE(an_unknown_key_names_the_file_and_the_line) {
  ConfigFile file("# comment\n\nworkers = 2\nwokers = 4\n");
  BOOST_TEST(error_of({"--config", file.path}) == file.path + ":4: unknown key 'wokers'");
  file.write("graceful_timeout = 3\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path +
                 ":1: unknown key 'graceful_timeout' (the keys are the flags' names: "
                 "'graceful-timeout')");
  // Not settings: no keys.
  for (const char* key : {"help", "version", "config", "check-config"}) {
    file.write(std::string(key) + " = true\n");
    BOOST_TEST(error_of({"--config", file.path}) == file.path + ":1: unknown key '" + key + "'");
  }
  file.write("[server]\nworkers = 2\n");
  BOOST_TEST(error_of({"--config", file.path}).starts_with(file.path + ":1: unknown key 'server'"));
}

BOOST_AUTO_TEST_CASE(a_bad_value_names_the_key_the_file_and_the_line) {
  ConfigFile file("stats = \"s\"\nworkers = \"many\"\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":2: workers wants a number from 1 to 1024 or auto, not 'many'");
  file.write("\n\nframed = [\"127.0.0.1:0\",\n  \"nowhere\"]\n");
  const std::string framed = error_of({"--config", file.path});
  BOOST_TEST(framed.starts_with(file.path + ":4: framed: "), framed);
  file.write("workers = [1, 2]\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":1: workers takes one value, not an array");
  file.write("stats = true\n");
  BOOST_TEST(error_of({"--config", file.path}) == file.path + ":1: stats wants NAME, not true");
  file.write("graceful-timeout = -1\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":1: graceful-timeout wants seconds from 0 to 86400, not '-1'");
  file.write("log-level = \"loud\"\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":1: log-level wants debug, info, warning or error, not 'loud'");
  file.write("workers = 1979-05-27\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":1: workers wants a string, a number or a boolean, not a date or a time");
}

// A reload reads into the same handler: an option with an initial value goes
// back to it when its key leaves the file; one without keeps its last value.
BOOST_AUTO_TEST_CASE(a_programs_own_option_removed_from_the_file_goes_back_to_its_initial) {
  prefork::CommandLineDefaults d = defaults();
  std::string delay, kept;
  d.options = {{"--delay-us", "a delay", [&](std::string_view value) { delay = value; }, "7"},
               {"--kept", "no initial", [&](std::string_view value) { kept = value; }}};
  ConfigFile file("delay-us = 25\nkept = \"x\"\n");
  prefork::CommandLine first = parse({"--config", file.path}, d);
  BOOST_TEST_REQUIRE(first.config.has_value(), first.error);
  BOOST_TEST(delay == "25");
  BOOST_TEST(kept == "x");
  file.write("workers = 2\n");
  const prefork::CommandLine again = first.reload();
  BOOST_TEST_REQUIRE(again.config.has_value(), again.error);
  BOOST_TEST(delay == "7");
  BOOST_TEST(kept == "x");
  BOOST_TEST(parse({"--delay-us", "3"}, d).config.has_value());
  BOOST_TEST(delay == "3");
  Captured out(stdout);
  parse({"--help"}, d);
  BOOST_TEST(out.text().find("a delay (default 7)") != std::string::npos, out.text());
}

BOOST_AUTO_TEST_CASE(a_syntax_error_names_the_line_and_the_column) {
  ConfigFile file("workers = 2\nmodel = \"event\nstats = \"x\"\n");
  const std::string error = error_of({"--config", file.path});
  BOOST_TEST(Pattern(file.path + R"(:2:\d+: .+)").matches(error), error);
  file.write("workers = 2\nworkers = 3\n");
  BOOST_TEST(error_of({"--config", file.path}).starts_with(file.path + ":2:"));
}

// toml++ 3.3 reaches undefined behaviour on a non-ASCII character outside
// strings and comments (found by tests/fuzz): refused with its line before
// it reads the file; strings and comments hold any UTF-8.
BOOST_AUTO_TEST_CASE(non_ascii_outside_strings_and_comments_is_refused_with_its_line) {
  ConfigFile file("workers = 2\n\xEF\xBB\xAF.\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":2: a non-ASCII character outside a string or a comment");
  file.write("# caf\xC3\xA9\nworkers = 2 \xC5\x82\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":2: a non-ASCII character outside a string or a comment");
  file.write(
      "# caf\xC3\xA9\nstats = \"caf\xC3\xA9\\\"\xEF\xBA\x80\"  # \xC5\x82\n"
      "user = \'\xC5\x82\'\n");
  Captured err(stderr);
  const prefork::CommandLine result = parse({"--config", file.path}, defaults());
  BOOST_TEST_REQUIRE(result.config.has_value(), err.text());
  BOOST_TEST(result.config->stats_name == "caf\xC3\xA9\"\xEF\xBA\x80");
}

// Where toml++ 3.3 asks whether a non-ASCII character is whitespace (bare
// values to their end, the first character after a multi-line string's
// line-ending backslash), some reach undefined behaviour (framework/src/
// toml_input.hpp). Valid TOML is read as written; what is not is refused in
// one line, never undefined.
BOOST_AUTO_TEST_CASE(non_ascii_in_strings_is_read_and_elsewhere_refused) {
  ConfigFile file(
      "workers = 2\nstats = \"\"\"caf\\\n   \t\n  \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80\\\n"
      "\xF0\x9F\x98\x80\"\"\"\n");
  {
    Captured err(stderr);
    const prefork::CommandLine result = parse({"--config", file.path}, defaults());
    BOOST_TEST_REQUIRE(result.config.has_value(), err.text());
    BOOST_TEST(result.config->stats_name ==
               "caf\xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80\xF0\x9F\x98\x80");
  }
  // A multi-line string ends at its last quote (up to two belong to it).
  file.write("stats = \"\"\"caf\xC3\xA9\"\"\"\"\"\nworkers = 2\n");
  {
    Captured err(stderr);
    const prefork::CommandLine result = parse({"--config", file.path}, defaults());
    BOOST_TEST_REQUIRE(result.config.has_value(), err.text());
    BOOST_TEST(result.config->stats_name == "caf\xC3\xA9\"\"");
  }
  // Found by tests/fuzz: a backslash, tabs, then U+0169 on the same line.
  file.write("s = \"\"\"\\\t\t\t\xC5\xA9\tl\nr\tas]\n");
  BOOST_TEST(Pattern(file.path + R"(:1:\d+: .*line-ending backslashes must be .+)")
                 .matches(error_of({"--config", file.path})),
             error_of({"--config", file.path}));
  file.write("workers = 2\nstats = \"\"\"x\\\n  \xC5\"\"\"\n");
  BOOST_TEST(error_of({"--config", file.path}) == file.path + ":3: not UTF-8");
  // Found by tests/fuzz: a bare value holding quotes, in an array in an
  // inline table (toml++ reads it to its end; the quotes open no string).
  file.write("workers = 2\nu = [{a = [0, 1,\n72$\'$\xEF\xB3\xBF\'], b = 1}]\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":3: a non-ASCII character outside a string or a comment");
  // Found by tests/fuzz: after a date, a space and one digit, toml++ reads
  // on past the line's end (then fails); a date-time with a space is read.
  file.write("workers = 2\ns=1979-05-27 8\n\'\xEF\xB7\xBF\'-\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":3: a non-ASCII character outside a string or a comment");
  // Malformed files that break toml++'s internal assumptions: a parse error.
  for (const char* text : {"[&\n", "workers = 1979-05-27 8,\n"}) {
    file.write(text);
    BOOST_TEST(Pattern(file.path + R"(:1:\d+: .+)").matches(error_of({"--config", file.path})),
               error_of({"--config", file.path}));
  }
  file.write("workers = 1979-05-27 07:32:00\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":1: workers wants a string, a number or a boolean, not a date or a time");
  file.write("workers = 2\nu = 1\'\xC3\xA9\'\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":2: a non-ASCII character outside a string or a comment");
  // Quotes open strings where a key, a key's part or a value starts: toml++
  // reads this file (its keys are no flags').
  file.write(
      "\"caf\xC3\xA9\" = 1\nstats.\"\xC3\xA9\" = 2\nx = [\n  \'\xC3\xA9\',\n  "
      "{\"\xC3\xA9\"=\"\xC3\xA9\"},\n]\n");
  const std::string read = error_of({"--config", file.path});
  BOOST_TEST(Pattern(file.path + ":[12]: unknown key .+").matches(read), read);
  file.write("workers = 2\nstats = \"\"\"x\\\xC3\xA9\"\"\"\n");
  BOOST_TEST(error_of({"--config", file.path}) ==
             file.path + ":2: a backslash before a non-ASCII character (TOML's escapes are ASCII)");
}

BOOST_AUTO_TEST_CASE(a_missing_file_is_named_with_the_reason) {
  BOOST_TEST(error_of({"--config", "/nonexistent/prefork.toml"}) ==
             "open /nonexistent/prefork.toml: No such file or directory");
}

BOOST_AUTO_TEST_CASE(check_config_says_ok_or_gives_the_error) {
  ConfigFile file("workers = 2\nmodel = \"prethreaded\"\n");
  {
    Captured out(stdout);
    prefork::CommandLine result = parse({"--config", file.path, "--check-config"});
    BOOST_TEST(out.text() == "configuration ok\n");
    BOOST_TEST(!result.config.has_value());
    BOOST_TEST(result.exit_status == prefork::exit_ok);
  }
  // What serve() refuses, --check-config refuses.
  file.write("model = \"prethreaded\"\naccept = \"pass\"\n");
  BOOST_TEST(error_of({"--check-config", "--config", file.path})
                 .starts_with("--accept pass does not apply to --model prethreaded"));
  file.write("wokers = 2\n");
  BOOST_TEST(error_of({"--check-config", "--config", file.path}) ==
             file.path + ":1: unknown key 'wokers'");
  // Without a file: the flags alone.
  Captured out(stdout);
  BOOST_TEST(parse({"--check-config", "--workers", "2"}).exit_status == prefork::exit_ok);
  BOOST_TEST(out.text() == "configuration ok\n");
}

// The seam the master's SIGHUP uses: the same command line, the file read
// again, nothing printed.
BOOST_AUTO_TEST_CASE(reload_reads_the_file_again_and_the_flags_still_win) {
  ConfigFile file("workers = 2\nstats = \"first\"\n");
  prefork::CommandLine first = parse({"--config", file.path, "--threads", "5"});
  BOOST_TEST_REQUIRE(first.config.has_value(), first.error);
  BOOST_TEST_REQUIRE(static_cast<bool>(first.reload));
  BOOST_TEST_REQUIRE(static_cast<bool>(first.config->reload));
  BOOST_TEST(first.config->workers == 2u);

  file.write("workers = 6\nstats = \"second\"\nthreads = 9\n");
  prefork::CommandLine second = first.reload();
  BOOST_TEST_REQUIRE(second.config.has_value(), second.error);
  BOOST_TEST(second.config->workers == 6u);
  BOOST_TEST(second.config->stats_name == "second");
  BOOST_TEST(second.config->threads == 5u);  // the command line's --threads
  std::string error;
  std::optional<prefork::ServerConfig> again = first.config->reload(error);
  BOOST_TEST_REQUIRE(again.has_value(), error);
  BOOST_TEST(again->workers == 6u);
  BOOST_TEST(static_cast<bool>(again->reload));  // and so on, HUP after HUP

  file.write("workers = 6\n\nwokers = 7\n");
  Captured err(stderr);
  Captured out(stdout);
  prefork::CommandLine broken = second.reload();
  BOOST_TEST(!broken.config.has_value());
  BOOST_TEST(broken.exit_status == prefork::exit_usage);
  BOOST_TEST(broken.error == file.path + ":3: unknown key 'wokers'");
  error.clear();
  BOOST_TEST(!first.config->reload(error).has_value());
  BOOST_TEST(error == file.path + ":3: unknown key 'wokers'");
  file.write("workers = \"lots\"\n");
  BOOST_TEST(!first.config->reload(error).has_value());
  BOOST_TEST(error == file.path + ":1: workers wants a number from 1 to 1024 or auto, not 'lots'");
  BOOST_TEST(out.text().empty());
  BOOST_TEST(err.text().empty());  // a reload prints nothing
}

// Printed, and left for a caller that would rather log it.
BOOST_AUTO_TEST_CASE(the_first_parse_also_leaves_its_error) {
  Captured err(stderr);
  prefork::CommandLine result = parse({"--workers", "none"});
  BOOST_TEST(result.error == "--workers wants a number from 1 to 1024 or auto, not 'none'");
  BOOST_TEST(err.text() == "demo: " + result.error + "\ntry 'demo --help'\n");
}

BOOST_AUTO_TEST_CASE(graceful_timeout_takes_fractions_of_a_second) {
  prefork::CommandLine result = parse({"--graceful-timeout", "0.25"});
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  BOOST_TEST(result.config->graceful_timeout.count() == 250);
  BOOST_TEST(error_of({"--graceful-timeout", "soon"}) ==
             "--graceful-timeout wants seconds from 0 to 86400, not 'soon'");
}

BOOST_AUTO_TEST_CASE(log_flags_fill_the_config) {
  prefork::CommandLine result =
      parse({"--log-level", "warning", "--log-format=json", "--log-file", "/tmp/p.log"});
  BOOST_TEST_REQUIRE(result.config.has_value(), result.error);
  BOOST_TEST((result.config->log.level == prefork::LogLevel::warning));
  BOOST_TEST((result.config->log.format == prefork::LogFormat::json));
  BOOST_TEST(result.config->log.file == "/tmp/p.log");
  BOOST_TEST(error_of({"--log-format", "xml"}) == "--log-format wants text or json, not 'xml'");
  BOOST_TEST(error_of({"--log-level", "loud"}) ==
             "--log-level wants debug, info, warning or error, not 'loud'");
}

BOOST_AUTO_TEST_CASE(trace_is_off_unless_the_flag_or_the_key_says_so) {
  prefork::CommandLine plain = parse({});
  BOOST_TEST_REQUIRE(plain.config.has_value(), plain.error);
  BOOST_TEST(!plain.config->trace);
  prefork::CommandLine flag = parse({"--trace"});
  BOOST_TEST_REQUIRE(flag.config.has_value(), flag.error);
  BOOST_TEST(flag.config->trace);
  ConfigFile file("trace = true\n");
  prefork::CommandLine key = parse({"--config", file.path});
  BOOST_TEST_REQUIRE(key.config.has_value(), key.error);
  BOOST_TEST(key.config->trace);
}

// The master's signals that --help gives a meaning are those the README's
// table gives one (the others: ignored, or their default action).
BOOST_AUTO_TEST_CASE(help_and_the_readme_give_the_same_signals_a_meaning) {
  std::string help;
  {
    Captured out(stdout);
    parse({"--help"});
    help = out.text();
  }
  const Pattern name(R"(SIG[A-Z0-9]+)");
  std::set<std::string> in_help;
  const std::size_t begin = help.find("Signals to the master");
  BOOST_TEST_REQUIRE(begin != std::string::npos);
  const std::string block = help.substr(begin, help.find("\n  others", begin) - begin);
  for (const std::string& names : Pattern(R"(\n  [A-Z][A-Z0-9, ]*[A-Z0-9])").all(block))
    for (const std::string& signal : Pattern(R"([A-Z][A-Z0-9]+)").all(names))
      in_help.insert("SIG" + signal);

  const std::string readme = prefork::test::file_text(PREFORK_SOURCE_DIR "/README.md");
  const std::size_t table = readme.find("| To the master | Effect |");
  BOOST_TEST_REQUIRE(table != std::string::npos);
  const std::string rows = readme.substr(table, readme.find("\n\n", table) - table);
  std::set<std::string> in_readme;
  for (const std::string& row : Pattern(R"(\n\| SIG[^|]*\| [^\n]*)").all(rows)) {
    const std::string effect = row.substr(row.find(" | ") + 3);
    if (effect.starts_with("Ignored") || effect.starts_with("Their default") ||
        effect.starts_with("Default action") || effect.starts_with("Reap"))
      continue;
    for (const std::string& signal : name.all(row.substr(0, row.find(" | "))))
      in_readme.insert(signal);
  }
  BOOST_TEST(in_help.size() >= 8u);
  BOOST_TEST(in_help == in_readme);
}

// Every flag --help lists is in the README, and the other way round for the
// README's table of flags: the two are kept in step.
BOOST_AUTO_TEST_CASE(the_readme_lists_every_flag_of_help) {
  std::string help;
  {
    Captured out(stdout);
    parse({"--help"});
    help = out.text();
  }
  const std::string readme = prefork::test::file_text(PREFORK_SOURCE_DIR "/README.md");
  BOOST_TEST_REQUIRE(!readme.empty());
  const Pattern flag(R"((^|[ ,])(--[a-z][a-z-]*))");
  const std::vector<std::string> listed = flag.all(help, 2);
  for (const std::string& name : listed)
    BOOST_TEST(readme.find("`" + name) != std::string::npos, "README.md does not list " << name);
  BOOST_TEST(listed.size() > 20u);

  // A README row "| `--flag ..." names a flag that --help lists.
  const Pattern row(R"((^|\n)\| `(--[a-z][a-z-]*))");
  std::size_t rows = 0;
  for (const std::string& name : row.all(readme, 2)) {
    ++rows;
    BOOST_TEST((std::find(listed.begin(), listed.end(), name) != listed.end()),
               "--help does not list " << name << ", which README.md's tables do");
  }
  BOOST_TEST(rows > 20u);
}
