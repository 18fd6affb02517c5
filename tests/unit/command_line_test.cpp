// parse_command_line() and serve() in the embedder's own process: a bad
// command line or configuration is reported and returned, never an exit.
#define BOOST_TEST_MODULE command_line
#include <boost/test/unit_test.hpp>

#include <prefork/command_line.hpp>
#include <prefork/server.hpp>

#include <stdio.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

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
