#include <prefork/command_line.hpp>
#include <prefork/server.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace prefork {

namespace {

class UsageError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

void print_usage(std::FILE* out, const CommandLineDefaults& defaults) {
  std::fprintf(out,
               "usage: %s [--tcp HOST:PORT] [--framed HOST:PORT] [--udp HOST:PORT]\n"
               "       [--workers N] [--start fork|spawn] [--stats NAME] [--max-message BYTES]\n"
               "       [--graceful-timeout SECONDS] [--backlog N] [--worker-exe PATH]\n"
               "       [--model NAME] [--accept NAME] [--threads N] [--metrics HOST:PORT]\n"
               "       [--worker-stats on|off]\n"
               "       [--help] [--version] [-- WORKER-ARGS...]\n",
               defaults.program.c_str());
  if (!defaults.description.empty()) std::fprintf(out, "\n%s\n", defaults.description.c_str());
  std::string models;
  {
    std::string table = describe_models();
    for (std::size_t at = 0; at < table.size();) {
      std::size_t end = table.find('\n', at);
      models += "    " + table.substr(at, end - at + 1);
      at = end + 1;
    }
  }
  std::string listeners;
  for (const ListenerSpec& spec : defaults.listeners)
    listeners += " --" + std::string(protocol_name(spec.protocol)) + ' ' + spec.address.to_string();
  std::fprintf(
      out,
      "\n"
      "  --tcp HOST:PORT      raw TCP stream: each chunk read is one request (repeatable)\n"
      "  --framed HOST:PORT   TCP with 4-byte big-endian length-prefixed frames (repeatable)\n"
      "  --udp HOST:PORT      UDP: each datagram is one request (repeatable)\n"
      "                       without any of these:%s\n"
      "  --workers N          worker processes (default: one per CPU)\n"
      "  --start MODE         fork: children of this image; spawn: new program images\n"
      "                       (default fork)\n"
      "  --stats NAME         shared-memory scoreboard name, for prefork-top (default %s)\n"
      "  --max-message BYTES  largest message (frame, line) accepted; larger closes the\n"
      "                       connection (default %zu; --max-frame is the same)\n"
      "  --graceful-timeout S on stop, how long workers may finish requests (default 10)\n"
      "  --backlog N          listen queue length (default 1024)\n"
      "  --worker-exe PATH    spawn mode: run PATH as the worker (default: this program);\n"
      "                       arguments after -- go to it\n"
      "  --model NAME         how workers serve (default %s), with the --accept strategies\n"
      "                       that go with it (how a pool takes turns at new connections):\n"
      "%s"
      "  --threads N          prethreaded, hybrid: threads per process (default %u)\n"
      "  --metrics HOST:PORT  the master serves GET /metrics (OpenMetrics) and\n"
      "                       GET /stats.json over HTTP here\n"
      "  --worker-stats on|off  off: workers do not count into the scoreboard (only to\n"
      "                       measure its cost; default on)\n"
      "\nSignals: TERM or INT stops gracefully (twice: at once), QUIT stops at once.\n",
      listeners.c_str(),
      defaults.stats_name.empty() ? "prefork_<pid>" : defaults.stats_name.c_str(),
      defaults.max_message, std::string(model_name(defaults.model)).c_str(), models.c_str(),
      default_threads);
  if (!defaults.options.empty())
    std::fprintf(out, "\n%s's own options:\n", defaults.program.c_str());
  for (const ExtraOption& option : defaults.options)
    std::fprintf(out, "  %-20s %s\n", (option.flag + " V").c_str(), option.help.c_str());
}

template <typename Number>
Number parse_number(std::string_view flag, std::string_view text, Number low, Number high) {
  Number value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < low ||
      value > high)
    throw UsageError(std::string(flag) + " wants a number from " + std::to_string(low) + " to " +
                     std::to_string(high) + ", not '" + std::string(text) + "'");
  return value;
}

template <typename Enum>
Enum parse_name(std::string_view flag, std::string_view value,
                std::optional<Enum> (*from_name)(std::string_view) noexcept,
                std::string_view choices) {
  if (auto parsed = from_name(value)) return *parsed;
  throw UsageError(std::string(flag) + " wants one of " + std::string(choices) + ", not '" +
                   std::string(value) + "'");
}

ServerConfig parse(int argc, char** argv, const CommandLineDefaults& defaults) {
  ServerConfig config;
  config.stats_name = defaults.stats_name;
  config.model = defaults.model;
  config.max_message = defaults.max_message;
  // By default a spawned worker is this program re-run with our arguments.
  for (int i = 1; i < argc; ++i) config.worker_args.emplace_back(argv[i]);
  std::vector<std::string> after_dashes;
  bool worker_args_given = false;

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      worker_args_given = true;
      for (++i; i < argc; ++i) after_dashes.emplace_back(argv[i]);
      break;
    }
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout, defaults);
      std::exit(exit_ok);
    }
    if (arg == "--version") {
      std::printf("%s (prefork %s)\n", defaults.program.c_str(), PREFORK_VERSION);
      std::exit(exit_ok);
    }
    std::string_view value;
    std::size_t equals = arg.find('=');
    std::string flag(arg.substr(0, equals));
    if (flag.rfind("--", 0) != 0)
      throw UsageError("unexpected argument '" + std::string(arg) + "'");
    if (equals != std::string_view::npos) {
      value = arg.substr(equals + 1);
    } else {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      value = argv[++i];
    }

    try {
      if (auto protocol = protocol_from_name(std::string_view(flag).substr(2))) {
        config.listeners.push_back(ListenerSpec{*protocol, Address::parse(value)});
      } else if (flag == "--workers") {
        config.workers = parse_number<unsigned>(flag, value, 1, 1024);
      } else if (flag == "--start") {
        if (value == "fork")
          config.start = StartMode::fork;
        else if (value == "spawn")
          config.start = StartMode::spawn;
        else
          throw UsageError("--start wants fork or spawn, not '" + std::string(value) + "'");
      } else if (flag == "--stats") {
        if (value.empty() || value.find('/') != std::string_view::npos)
          throw UsageError("--stats wants a name without '/'");
        config.stats_name = value;
      } else if (flag == "--max-message" || flag == "--max-frame") {
        config.max_message = parse_number<std::size_t>(flag, value, 0, 0xFFFFFFFFu);
      } else if (flag == "--graceful-timeout") {
        config.graceful_timeout =
            std::chrono::milliseconds(parse_number<unsigned>(flag, value, 0, 86400) * 1000);
      } else if (flag == "--backlog") {
        config.backlog = parse_number<int>(flag, value, 1, 65535);
      } else if (flag == "--model") {
        config.model = parse_name(flag, value, model_from_name,
                                  "event, iterative, fork-per-connection, "
                                  "thread-per-connection, prefork, prethreaded, hybrid");
      } else if (flag == "--accept") {
        config.accept = parse_name(flag, value, accept_from_name,
                                   "auto, shared, lock, flock, reuseport, exclusive, pass, main");
      } else if (flag == "--threads") {
        config.threads = parse_number<unsigned>(flag, value, 1, 1024);
      } else if (flag == "--metrics") {
        config.metrics = Address::parse(value);
      } else if (flag == "--worker-stats") {
        if (value != "on" && value != "off")
          throw UsageError("--worker-stats wants on or off, not '" + std::string(value) + "'");
        config.worker_stats = value == "on";
      } else if (flag == "--worker-exe") {
        config.worker_exe = value;
      } else if (auto extra = std::find_if(defaults.options.begin(), defaults.options.end(),
                                           [&](const ExtraOption& o) { return o.flag == flag; });
                 extra != defaults.options.end()) {
        extra->apply(value);
      } else {
        throw UsageError("unknown option " + flag);
      }
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  if (config.listeners.empty()) config.listeners = defaults.listeners;
  if (config.listeners.empty()) throw UsageError("nothing to serve: give --tcp, --framed or --udp");
  if (!config.worker_exe.empty() || worker_args_given) config.worker_args = after_dashes;
  if (!config.worker_exe.empty() && config.start != StartMode::spawn)
    throw UsageError("--worker-exe needs --start spawn");
  if (std::string why; !resolve_accept(config.model, config.accept, why)) throw UsageError(why);
  return config;
}

}  // namespace

ServerConfig parse_command_line(int argc, char** argv, const CommandLineDefaults& defaults) {
  try {
    return parse(argc, argv, defaults);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", defaults.program.c_str(), e.what());
    print_usage(stderr, defaults);
    std::exit(exit_usage);
  }
}

int prefork_main(int argc, char** argv, Handler& handler, const CommandLineDefaults& defaults) {
  if (started_as_worker()) return serve_as_worker(handler);
  return serve(parse_command_line(argc, argv, defaults), handler);
}

}  // namespace prefork
