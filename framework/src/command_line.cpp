#include <prefork/command_line.hpp>
#include <prefork/flag_parser.hpp>
#include <prefork/server.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config_check.hpp"

namespace prefork {

namespace {

namespace po = boost::program_options;

using flags::UsageError;

// The models, in the order of their table; the accept strategies, auto and
// then every one some model takes, in the order of the enum.
std::vector<Model> known_models() {
  std::vector<Model> models;
  for (const ModelFacts& model : all_model_facts()) models.push_back(model.model);
  return models;
}
std::vector<Accept> known_accepts() {
  std::vector<Accept> accepts{Accept::automatic};
  for (const ModelFacts& model : all_model_facts())
    for (Accept accept : model.accepts)
      if (std::find(accepts.begin(), accepts.end(), accept) == accepts.end())
        accepts.push_back(accept);
  std::sort(accepts.begin(), accepts.end());
  return accepts;
}

template <typename Enum>
std::string names(const std::vector<Enum>& values, std::string_view (*name)(Enum) noexcept) {
  std::string list;
  for (Enum value : values) list.append(list.empty() ? "" : ", ").append(name(value));
  return list;
}

template <typename Enum>
Enum parse_name(std::string_view flag, std::string_view value, const std::vector<Enum>& values,
                std::string_view (*name)(Enum) noexcept) {
  for (Enum candidate : values)
    if (name(candidate) == value) return candidate;
  std::string message(flag);
  message.append(" wants one of ").append(names(values, name));
  message.append(", not '").append(value).append("'");
  throw UsageError(message);
}

// A value that must be one of two words: true for the first.
bool first_of_two(std::string_view flag, std::string_view value, std::string_view first,
                  std::string_view second) {
  if (value != first && value != second) {
    std::string message(flag);
    message.append(" wants ").append(first).append(" or ").append(second);
    message.append(", not '").append(value).append("'");
    throw UsageError(message);
  }
  return value == first;
}

// A flag as --help shows it, and what its value does to the configuration.
struct Flag {
  flags::Help help;
  std::function<void(const std::string& value)> apply;
};

struct FlagGroup {
  std::string title;
  std::vector<Flag> flags;
};

// Every flag of a server, as --help lists them, each changing `config`;
// --help and --version set `help` and `version`.
std::vector<FlagGroup> server_flags(ServerConfig& config, bool& help, bool& version,
                                    const CommandLineDefaults& defaults) {
  const ServerConfig initial;
  FlagGroup listeners{"Listeners (each repeatable)", {}};
  for (auto [protocol, text] :
       {std::pair{Protocol::stream, "raw TCP: each chunk read is one request"},
        {Protocol::framed,
         "TCP with 4-byte big-endian length-prefixed frames: each frame is one "
         "request"},
        {Protocol::datagram, "UDP: each datagram is one request"}}) {
    listeners.flags.push_back({{std::string(protocol_name(protocol)), "HOST:PORT", text},
                               [&config, protocol](const std::string& v) {
                                 config.listeners.push_back({protocol, Address::parse(v)});
                               }});
  }
  listeners.flags.push_back(
      {{"backlog", "N", "listen queue length (default " + std::to_string(initial.backlog) + ")"},
       [&config](const std::string& v) {
         config.backlog = flags::number("--backlog", v, 1, 65535);
       }});
  // --max-frame: its name before messages could be lines too.
  for (std::string flag : {"max-message", "max-frame"}) {
    const std::string text =
        flag == "max-frame" ? "the same as --max-message"
                            : "largest message (frame, line) accepted; a larger one closes the "
                              "connection (default " +
                                  std::to_string(defaults.max_message) + ")";
    listeners.flags.push_back({{flag, "BYTES", text}, [&config, flag](const std::string& v) {
                                 config.max_message =
                                     flags::number<std::size_t>("--" + flag, v, 0, 0xFFFFFFFFu);
                               }});
  }

  FlagGroup workers{"Workers", {}};
  workers.flags.push_back({{"workers", "N|auto", "worker processes (default auto: one per CPU)"},
                           [&config](const std::string& v) {
                             config.workers =
                                 v == "auto" ? 0 : flags::number("--workers", v, 1u, 1024u, "auto");
                           }});
  workers.flags.push_back(
      {{"start", "fork|spawn",
        "fork: children of this program image; spawn: new program images (default fork)"},
       [&config](const std::string& v) {
         config.start =
             first_of_two("--start", v, "fork", "spawn") ? StartMode::fork : StartMode::spawn;
       }});
  workers.flags.push_back(
      {{"worker-exe", "PATH",
        "spawn: run PATH as the worker (default: this program); the arguments after -- go to it"},
       [&config](const std::string& v) { config.worker_exe = v; }});
  workers.flags.push_back(
      {{"model", "NAME",
        "how a worker serves (default " + std::string(model_name(defaults.model)) +
            "): " + names(known_models(), model_name)},
       [&config](const std::string& v) {
         config.model = parse_name("--model", v, known_models(), model_name);
       }});
  workers.flags.push_back(
      {{"accept", "NAME",
        "how the workers of a pool take turns at new connections (default: the model's own; "
        "which go with which model: below)"},
       [&config](const std::string& v) {
         config.accept = parse_name("--accept", v, known_accepts(), accept_name);
       }});
  workers.flags.push_back({{"threads", "N",
                            "prethreaded, hybrid: threads per process (default " +
                                std::to_string(default_threads) + ")"},
                           [&config](const std::string& v) {
                             config.threads = flags::number("--threads", v, 1u, 1024u);
                           }});
  workers.flags.push_back({{"graceful-timeout", "SECONDS",
                            "on stop, how long workers may finish their requests (default " +
                                std::to_string(initial.graceful_timeout.count() / 1000) + ")"},
                           [&config](const std::string& v) {
                             config.graceful_timeout = std::chrono::seconds(
                                 flags::number("--graceful-timeout", v, 0u, 86400u));
                           }});

  FlagGroup observing{"Scoreboard and metrics", {}};
  observing.flags.push_back(
      {{"stats", "NAME",
        "shared-memory scoreboard name, for prefork-top (default " +
            (defaults.stats_name.empty() ? "prefork_<pid>" : defaults.stats_name) + ")"},
       [&config](const std::string& v) {
         if (v.empty() || v.find('/') != std::string::npos)
           throw UsageError("--stats wants a name without '/', not '" + v + "'");
         config.stats_name = v;
       }});
  observing.flags.push_back(
      {{"metrics", "HOST:PORT",
        "the master serves GET /metrics (OpenMetrics) and GET /stats.json over HTTP here"},
       [&config](const std::string& v) { config.metrics = Address::parse(v); }});
  observing.flags.push_back(
      {{"worker-stats", "on|off",
        "off: workers do not count into the scoreboard (only to measure its cost; default on)"},
       [&config](const std::string& v) {
         config.worker_stats = first_of_two("--worker-stats", v, "on", "off");
       }});

  // ---- Running as a system service (issue 9: privileges, pid file) -------
  // Socket activation needs no flag: LISTEN_FDS is read by WorkerPlan.
  FlagGroup service{"Running as a service", {}};
  service.flags.push_back(
      {{"user", "NAME",
        "workers drop to this user (and its groups) once set up; the master, which binds, "
        "keeps its identity (needs root)"},
       [&config](const std::string& v) {
         if (v.empty()) throw UsageError("--user wants a user name or number");
         config.user = v;
       }});
  service.flags.push_back({{"group", "NAME", "workers drop to this group (default: the user's)"},
                           [&config](const std::string& v) {
                             if (v.empty())
                               throw UsageError("--group wants a group name or number");
                             config.group = v;
                           }});
  service.flags.push_back(
      {{"allow-root", "",
        "let workers run as root when the master is root and no --user is given (refused "
        "otherwise)"},
       [&config](const std::string&) { config.allow_root = true; }});
  service.flags.push_back(
      {{"pid-file", "PATH",
        "write the master's pid here once listening (atomically), remove it at exit; refuse to "
        "start if it names a running master"},
       [&config](const std::string& v) {
         if (v.empty()) throw UsageError("--pid-file wants a path");
         config.pid_file = v;
       }});
  // ---- end of the system-service block ------------------------------------

  std::vector<FlagGroup> groups{listeners, workers, observing, service};
  if (!defaults.options.empty()) {
    FlagGroup own{defaults.program + "'s own options", {}};
    for (const ExtraOption& option : defaults.options) {
      const std::size_t dashes = std::min(option.flag.find_first_not_of('-'), option.flag.size());
      own.flags.push_back({{option.flag.substr(dashes), "VALUE", option.help},
                           [&option](const std::string& v) { option.apply(v); }});
    }
    groups.push_back(own);
  }
  groups.push_back({"Other",
                    {{{"help,h", "", "this text"}, [&help](const std::string&) { help = true; }},
                     {{"version", "", "the program's version and prefork's"},
                      [&version](const std::string&) { version = true; }}}});
  return groups;
}

void print_help(const CommandLineDefaults& defaults, const po::options_description& options) {
  std::printf("usage: %s [OPTION]... [-- WORKER-ARGS...]\n", defaults.program.c_str());
  if (!defaults.description.empty()) std::printf("%s\n", defaults.description.c_str());
  std::string listeners;
  for (const ListenerSpec& spec : defaults.listeners)
    listeners.append(" --")
        .append(protocol_name(spec.protocol))
        .append(" ")
        .append(spec.address.to_string());
  if (!listeners.empty())
    std::printf("Without --tcp, --framed or --udp, it serves:\n %s\n", listeners.c_str());
  std::printf("%s", flags::help_text(options).c_str());
  // The models table, indented under its heading.
  std::string models;
  const std::string table = describe_models();
  for (std::size_t at = 0; at < table.size();) {
    const std::size_t end = std::min(table.find('\n', at), table.size() - 1);
    models.append("  ").append(table, at, end - at + 1);
    at = end + 1;
  }
  std::printf("\n--model NAME, and the --accept strategies that go with it:\n%s", models.c_str());
  std::printf("\nSignals: TERM or INT stops gracefully (twice: at once), QUIT stops at once.\n");
  std::printf(
      "Under systemd: listeners may be inherited (LISTEN_FDS: named tcp, framed, udp,\n"
      "or in the order of the flags); READY=1 and STOPPING=1 go to NOTIFY_SOCKET.\n"
      "See README, \"Running under systemd\".\n");
}

}  // namespace

CommandLine parse_command_line(int argc, char** argv, const CommandLineDefaults& defaults) {
  CommandLine result;
  ServerConfig config;
  config.stats_name = defaults.stats_name;
  config.model = defaults.model;
  config.max_message = defaults.max_message;
  bool help = false, version = false;
  const std::vector<FlagGroup> groups = server_flags(config, help, version, defaults);

  po::options_description options;
  std::map<std::string, const Flag*> by_name;
  for (const FlagGroup& group : groups) {
    std::vector<flags::Help> section;
    for (const Flag& flag : group.flags) {
      const std::string key = flag.help.name.substr(0, flag.help.name.find(','));
      if (key.empty() || !by_name.emplace(key, &flag).second)
        throw std::invalid_argument(defaults.program + ": the flag '--" + key +
                                    "' is defined twice or has no name");
      section.push_back(flag.help);
    }
    options.add(flags::section(group.title, section));
  }

  // After the first `--`: the spawned worker program's arguments. By
  // default a spawned worker is this program re-run with our arguments.
  std::vector<std::string> words(argv + 1, argv + argc);
  auto dashes = std::find(words.begin(), words.end(), "--");
  const bool worker_args_given = dashes != words.end();
  std::vector<std::string> after_dashes(worker_args_given ? dashes + 1 : dashes, words.end());
  config.worker_args = words;
  words.erase(dashes, words.end());

  try {
    const po::parsed_options parsed = flags::parse(words, options);
    // --help and --version win over any bad value.
    for (const po::option& option : parsed.options)
      if (option.string_key == "help" || option.string_key == "version")
        by_name.at(option.string_key)->apply({});
    if (help) {
      print_help(defaults, options);
      return result;
    }
    if (version) {
      std::printf("%s (prefork %s)\n", defaults.program.c_str(), PREFORK_VERSION);
      return result;
    }
    for (const po::option& option : parsed.options) {
      if (option.string_key.empty())
        throw UsageError("unexpected argument '" + option.value.at(0) + "'");
      try {
        by_name.at(option.string_key)->apply(option.value.empty() ? "" : option.value[0]);
      } catch (const std::invalid_argument& e) {  // Address::parse, the program's own flags
        std::string message = e.what();
        if (message.find("--" + option.string_key) == std::string::npos)
          message = "--" + option.string_key + ": " + message;
        throw UsageError(message);
      }
    }
    if (config.listeners.empty()) config.listeners = defaults.listeners;
    if (!config.worker_exe.empty() || worker_args_given) config.worker_args = after_dashes;
    if (std::string error = config_error(config); !error.empty()) throw UsageError(error);
  } catch (const UsageError& e) {
    result.exit_status = flags::usage_error(defaults.program, e.what());
    return result;
  }
  result.config = std::move(config);
  return result;
}

int prefork_main(int argc, char** argv, Handler& handler, const CommandLineDefaults& defaults) {
  if (started_as_worker()) return serve_as_worker(handler);
  CommandLine command_line = parse_command_line(argc, argv, defaults);
  if (!command_line.config) return command_line.exit_status;
  // What only the handler decides (a ConnectionHandler needs a blocking
  // model), said as the command line's other errors are.
  if (std::string error = config_error(*command_line.config, &handler); !error.empty())
    return flags::usage_error(defaults.program, error);
  return serve(*command_line.config, handler);
}

}  // namespace prefork
